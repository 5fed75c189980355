/** Thin adapters from both doors to the Members service. */
import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { Api } from "../../rpc/Api.ts"
import { InvitationsRpcs } from "../../rpc/Invitations.ts"
import { MembersRpcs } from "../../rpc/Members.ts"
import { CurrentMember, CurrentUser } from "../../rpc/Security.ts"
import { Members } from "../../services/Members.ts"
import { httpMeta as meta, withRevisionHeader } from "./HandlerSupport.ts"
import { requestMeta } from "./RequestMeta.ts"

/** The guarded caller and the request's audit metadata. */
const caller = Effect.all([CurrentMember, meta])

export const MembersHttpLive = HttpApiBuilder.group(Api, "members", (handlers) =>
  Effect.map(Members, (members) =>
    handlers
      .handle("invite", ({ payload }) => Effect.flatMap(caller, ([member, m]) => members.invite(member, payload, m)))
      .handle("invitations", () => Effect.flatMap(CurrentMember, members.invitations))
      .handle("revokeInvitation", ({ path }) =>
        Effect.flatMap(caller, ([member, m]) => members.revokeInvitation(member, path.invitationId, m))
      )
      .handle("list", () => Effect.flatMap(CurrentMember, members.list))
      .handle("remove", ({ path }) =>
        Effect.flatMap(caller, ([member, m]) => members.remove(member, path.userId, m)).pipe(
          Effect.flatMap(withRevisionHeader)
        )
      )
      .handle("assignments", ({ urlParams }) =>
        Effect.flatMap(CurrentMember, (member) => members.assignments(member, urlParams))
      )
      .handle("assign", ({ payload }) =>
        Effect.flatMap(caller, ([member, m]) => members.assign(member, payload, m)).pipe(
          Effect.flatMap(withRevisionHeader)
        )
      )
      .handle("unassign", ({ path }) =>
        Effect.flatMap(caller, ([member, m]) => members.unassign(member, path.assignmentId, m)).pipe(
          Effect.flatMap(withRevisionHeader)
        )
      )
  )
)

export const MembersRpcLive = MembersRpcs.toLayer(
  Effect.map(Members, (members) =>
    MembersRpcs.of({
      "invitations.create": ({ email, roleIds }, { headers }) =>
        Effect.flatMap(CurrentMember, (member) => members.invite(member, { email, roleIds }, requestMeta(headers))),
      "invitations.list": () => Effect.flatMap(CurrentMember, members.invitations),
      "invitations.revoke": ({ invitationId }, { headers }) =>
        Effect.flatMap(CurrentMember, (member) => members.revokeInvitation(member, invitationId, requestMeta(headers))),
      "members.list": () => Effect.flatMap(CurrentMember, members.list),
      "members.remove": ({ userId }, { headers }) =>
        Effect.flatMap(CurrentMember, (member) => members.remove(member, userId, requestMeta(headers))),
      "assignments.list": ({ userId, roleId, includeExpired }) =>
        Effect.flatMap(CurrentMember, (member) => members.assignments(member, { userId, roleId, includeExpired })),
      "assignments.create": ({ userId, roleId, scope, expiresAt }, { headers }) =>
        Effect.flatMap(CurrentMember, (member) =>
          members.assign(member, { userId, roleId, scope, expiresAt }, requestMeta(headers))
        ),
      "assignments.delete": ({ assignmentId }, { headers }) =>
        Effect.flatMap(CurrentMember, (member) => members.unassign(member, assignmentId, requestMeta(headers)))
    })
  )
)

export const InvitationsHttpLive = HttpApiBuilder.group(Api, "invitations", (handlers) =>
  Effect.map(Members, (members) =>
    handlers.handle("accept", ({ payload }) =>
      Effect.all([CurrentUser, meta]).pipe(
        Effect.flatMap(([user, m]) => members.accept(user, payload.token, m)),
        Effect.flatMap(withRevisionHeader)
      )
    )
  )
)

export const InvitationsRpcLive = InvitationsRpcs.toLayer(
  Effect.map(Members, (members) =>
    InvitationsRpcs.of({
      "invitations.accept": ({ token }, { headers }) =>
        Effect.flatMap(CurrentUser, (user) => members.accept(user, token, requestMeta(headers)))
    })
  )
)
