/** Live session tickets on both doors, from one implementation. */
import { Effect } from "effect"
import { RealtimeApi, Ticket } from "../../rpc/Realtime.ts"
import { CurrentUser } from "../../rpc/Security.ts"
import { Realtime } from "../../services/Realtime.ts"
import { implement } from "./Implement.ts"

export const RealtimeHandlers = implement(
  RealtimeApi,
  Effect.map(Realtime, (realtime) => ({
    ticket: ({ organizationId }) =>
      Effect.flatMap(CurrentUser, (user) => realtime.issueTicket(user, organizationId)).pipe(
        Effect.map((issued) => new Ticket(issued))
      )
  }))
)
