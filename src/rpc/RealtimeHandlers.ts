/** Thin adapters from both doors to the Realtime service. */
import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { Realtime } from "../services/Realtime.ts"
import { Api } from "./Api.ts"
import { RealtimeRpcs, Ticket } from "./Realtime.ts"
import { CurrentUser } from "./Security.ts"

const issue = (organizationId: string) =>
  Effect.all([Realtime, CurrentUser]).pipe(
    Effect.flatMap(([realtime, user]) => realtime.issueTicket(user, organizationId)),
    Effect.map((issued) => new Ticket(issued))
  )

export const RealtimeHttpLive = HttpApiBuilder.group(Api, "realtime", (handlers) =>
  handlers.handle("ticket", ({ payload }) => issue(payload.organizationId))
)

export const RealtimeRpcLive = RealtimeRpcs.toLayer({
  "realtime.ticket": ({ organizationId }) => issue(organizationId)
})
