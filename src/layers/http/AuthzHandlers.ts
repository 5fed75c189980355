/** Checks, explanations and effective sets on both doors, from one implementation. */
import { DateTime, Effect } from "effect"
import {
  AuthzApi,
  type BatchCheckRequest,
  BatchCheckResult,
  type CheckRequest,
  CheckResult,
  EffectivePermissions,
  Explanation
} from "../../rpc/Authz.ts"
import { NotFound } from "../../rpc/Errors.ts"
import { CurrentMember, type Member } from "../../rpc/Security.ts"
import { PermissionStore, type PermissionStoreShape } from "../../services/PermissionStore.ts"
import { implement } from "./Implement.ts"
import { actingFor } from "./OrgAuthorization.ts"

const noSuchMember = new NotFound({ message: "No such member" })

/** The store's question for one check by `member` (shared with the hot paths, HotPaths.ts). */
export const checkQuestion = (member: Member, request: typeof CheckRequest.Type) => ({
  organizationId: member.organizationId,
  userId: request.userId ?? member.userId,
  permission: request.permission,
  resource: request.resource,
  minRevision: atLeast(request.minRevision, member.revision),
  consistency: request.consistency
})

/** The store's questions for a batch by `member`, all at one revision (shared with the hot paths). */
export const batchQuestions = (member: Member, request: typeof BatchCheckRequest.Type) =>
  [
    member.organizationId,
    request.checks.map((c) => ({ userId: c.userId ?? member.userId, permission: c.permission, resource: c.resource })),
    atLeast(request.minRevision, member.revision),
    request.consistency
  ] as const

/** The store's question for one check by `member`, after the guard's second half for other users. */
const asked = (store: PermissionStoreShape, member: Member, request: typeof CheckRequest.Type) =>
  Effect.as(actingFor(store, member, [request.userId]), checkQuestion(member, request))

/** The later of the caller's `minRevision` and the guard's revision: the handler reads nothing again. */
export const atLeast = (asked: string | undefined, guard: string | undefined) =>
  asked === undefined ? guard : guard === undefined || BigInt(asked) > BigInt(guard) ? asked : guard

/** A non-member's answer is 404, like the guard's for strangers. */
const ofMember = <A extends { readonly member: boolean }>(answer: A) =>
  answer.member ? Effect.succeed(answer) : Effect.fail(noSuchMember)

const make = Effect.gen(function* () {
  const store = yield* PermissionStore

  const check = (member: Member, request: typeof CheckRequest.Type) =>
    asked(store, member, request).pipe(
      Effect.flatMap(store.check),
      Effect.flatMap(ofMember),
      Effect.map(({ allowed, reason, revision }) => new CheckResult({ allowed, reason, revision }))
    )

  const checkBatch = (member: Member, request: typeof BatchCheckRequest.Type) =>
    Effect.gen(function* () {
      yield* actingFor(
        store,
        member,
        request.checks.map((c) => c.userId)
      )
      const answers = yield* store.checkMany(...batchQuestions(member, request))
      if (answers.some((answer) => !answer.member)) return yield* noSuchMember
      return new BatchCheckResult({
        revision: answers[0]?.revision ?? "0",
        results: answers.map((answer) => ({ allowed: answer.allowed, reason: answer.reason }))
      })
    })

  const explain = (member: Member, request: typeof CheckRequest.Type) =>
    asked(store, member, request).pipe(
      Effect.flatMap(store.explain),
      Effect.flatMap(ofMember),
      Effect.map(
        ({ allowed, reason, revision, paths }) =>
          new Explanation({
            allowed,
            reason,
            revision,
            paths: paths.map((path) => ({
              ...path,
              assignment: {
                ...path.assignment,
                expiresAt:
                  path.assignment.expiresAt === undefined ? undefined : DateTime.unsafeMake(path.assignment.expiresAt)
              }
            }))
          })
      )
    )

  const effective = (member: Member, userId: string) =>
    Effect.gen(function* () {
      yield* actingFor(store, member, [userId])
      // Membership first, so a stranger's id answers 404 rather than an empty set.
      const { revision } = yield* store
        .check({ organizationId: member.organizationId, userId, permission: "org:read", minRevision: member.revision })
        .pipe(Effect.catchTag("Conflict", Effect.die), Effect.flatMap(ofMember))
      const result = yield* store.effective(member.organizationId, userId, revision)
      return new EffectivePermissions({ userId, ...result })
    })

  return { check, checkBatch, explain, effective }
})

export const AuthzHandlers = implement(
  AuthzApi,
  Effect.map(make, (authz) => ({
    check: (input) => Effect.flatMap(CurrentMember, (member) => authz.check(member, input)),
    checkBatch: (input) => Effect.flatMap(CurrentMember, (member) => authz.checkBatch(member, input)),
    explain: (input) => Effect.flatMap(CurrentMember, (member) => authz.explain(member, input)),
    effective: ({ userId }) => Effect.flatMap(CurrentMember, (member) => authz.effective(member, userId))
  }))
)
