/** Thin adapters from both doors to the Realtime service. */
import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { Api } from "../../rpc/Api.ts"
import { RealtimeRpcs, Ticket } from "../../rpc/Realtime.ts"
import { CurrentUser } from "../../rpc/Security.ts"
import { Realtime } from "../../services/Realtime.ts"

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
