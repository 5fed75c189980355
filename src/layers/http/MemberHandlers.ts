/** Members, assignments and invitations on both doors, from one implementation each. */
import { Effect } from "effect"
import { InvitationsApi } from "../../rpc/Invitations.ts"
import { AssignmentsApi, MembersApi } from "../../rpc/Members.ts"
import { CurrentMember, CurrentUser } from "../../rpc/Security.ts"
import { Invitations } from "../../services/Invitations.ts"
import { Members } from "../../services/Members.ts"
import { implement } from "./Implement.ts"

export const MembersHandlers = implement(
  MembersApi,
  Effect.map(Members, (members) => ({
    list: () => Effect.flatMap(CurrentMember, members.list),
    remove: ({ userId }, { meta }) => Effect.flatMap(CurrentMember, (member) => members.remove(member, userId, meta))
  }))
)

export const AssignmentsHandlers = implement(
  AssignmentsApi,
  Effect.map(Members, (members) => ({
    list: ({ userId, roleId, includeExpired }) =>
      Effect.flatMap(CurrentMember, (member) => members.assignments(member, { userId, roleId, includeExpired })),
    create: ({ userId, roleId, scope, expiresAt }, { meta }) =>
      Effect.flatMap(CurrentMember, (member) => members.assign(member, { userId, roleId, scope, expiresAt }, meta)),
    delete: ({ assignmentId }, { meta }) =>
      Effect.flatMap(CurrentMember, (member) => members.unassign(member, assignmentId, meta))
  }))
)

export const InvitationsHandlers = implement(
  InvitationsApi,
  Effect.map(Invitations, (invitations) => ({
    create: ({ email, roleIds }, { meta }) =>
      Effect.flatMap(CurrentMember, (member) => invitations.create(member, { email, roleIds }, meta)),
    list: () => Effect.flatMap(CurrentMember, invitations.list),
    revoke: ({ invitationId }, { meta }) =>
      Effect.flatMap(CurrentMember, (member) => invitations.revoke(member, invitationId, meta)),
    accept: ({ token }, { meta }) => Effect.flatMap(CurrentUser, (user) => invitations.accept(user, token, meta))
  }))
)
