/**
 * The guard of organization endpoints on both doors: the caller's session, their membership of
 * the organization named by the request (path or `organizationId`), and the permission the
 * endpoint declares. Nothing reaches an organization handler without passing it.
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import { Context, Effect, Either, Layer, Option, Redacted, Schema } from "effect"
import { Api } from "../../rpc/Api.ts"
import { Forbidden, NotFound } from "../../rpc/Errors.ts"
import { Id } from "../../rpc/Ids.ts"
import {
  type Member,
  OrgAuthorization,
  RequiredPermission,
  RpcOrgAuthorization,
  SelfService,
  type SignedIn
} from "../../rpc/Security.ts"
import {
  type CheckAnswer,
  type Consistency,
  PermissionStore,
  type PermissionStoreShape
} from "../../services/PermissionStore.ts"
import { SignIn } from "../../services/SignIn.ts"
import { spannedGen } from "../../services/Span.ts"
import { bearerToken } from "./RequestMeta.ts"

/** The route parameter as sent (any case) to its canonical, lowercase form (S49). */
const canonicalId = Schema.decodeUnknownOption(Id)
const noSuchOrganization = new NotFound({ message: "No such organization" })

export interface Declared {
  readonly permission: string
  readonly selfService: boolean
  /** The operation takes `consistency`: a caller asking for `cached` gets the guard at the watermark too. */
  readonly consistency: boolean
}

const declared = (annotations: Context.Context<never>, consistency: boolean): Declared | undefined => {
  const permission = Context.getOption(annotations, RequiredPermission)
  if (Option.isNone(permission)) return undefined
  return {
    permission: permission.value,
    selfService: Option.isSome(Context.getOption(annotations, SelfService)),
    consistency
  }
}

/** Whether a payload schema (a Struct, when there is one) has a `consistency` field. */
const takesConsistency = (schema: Option.Option<unknown>) =>
  Option.match(schema, {
    onNone: () => false,
    onSome: (payload) => "consistency" in ((payload as { readonly fields?: object }).fields ?? {})
  })

/** The `consistency` a payload asks for, if it is `cached`. */
const consistencyOf = (payload: unknown): Consistency | undefined =>
  (payload as { consistency?: unknown } | null | undefined)?.consistency === "cached" ? "cached" : undefined

/** method + path pattern → what each HttpApi endpoint declares. */
export const declaredPermissions = () => {
  const table = new Map<string, Declared>()
  HttpApi.reflect(Api, {
    onGroup: () => {},
    onEndpoint: ({ endpoint, mergedAnnotations }) => {
      const declaration = declared(mergedAnnotations, takesConsistency(endpoint.payloadSchema))
      if (declaration !== undefined) table.set(`${endpoint.method} ${endpoint.path}`, declaration)
    }
  })
  return table
}

const forbidden = (permission: string, reason: string) =>
  new Forbidden({ message: `Missing permission ${permission} (${reason})` })

/**
 * The guard's decision from the store's answer about the caller and the declared permission: the
 * member the handler acts as, or the refusal. Shared with the hot paths (HotPaths.ts).
 */
export const admitted = (
  user: SignedIn,
  organizationId: string,
  { permission, selfService }: Declared,
  answer: CheckAnswer
): Either.Either<Member, Forbidden | NotFound> => {
  if (!answer.member) return Either.left(noSuchOrganization)
  const { revision } = answer
  if (selfService) {
    // About themselves any member may ask, unless the organization or the user is shut out.
    if (answer.blocked === true) return Either.left(forbidden(permission, answer.reason))
    return Either.right({ ...user, organizationId, aboutOthers: permission, revision })
  }
  if (!answer.allowed) return Either.left(forbidden(permission, answer.reason))
  return Either.right({ ...user, organizationId, revision })
}

/** The users other than the member that an operation names. */
export const othersIn = (member: Member, userIds: ReadonlyArray<string | undefined>) =>
  userIds.filter((id): id is string => id !== undefined && id !== member.userId)

const authorize = spannedGen(
  "OrgAuthorization.authorize",
  function* (
    user: SignedIn,
    requested: unknown,
    declaration: Declared | undefined,
    consistency: Consistency | undefined
  ) {
    // Deny by default: an organization endpoint that declares no permission is refused.
    if (declaration === undefined) return yield* new Forbidden({ message: "This operation declares no permission" })
    const canonical = canonicalId(requested)
    if (Option.isNone(canonical)) return yield* noSuchOrganization
    const organizationId = canonical.value
    const store = yield* PermissionStore
    // Without minRevision the store never answers `revision_not_reached`.
    const answer = yield* store
      .check({ organizationId, userId: user.userId, permission: declaration.permission, consistency })
      .pipe(Effect.catchTag("Conflict", Effect.die))
    return yield* admitted(user, organizationId, declaration, answer)
  }
)

/**
 * The second half of the guard for self-service operations: the user the operation is about —
 * the caller when `userId` is absent or their own — after checking that the caller holds the
 * declared permission when it names someone else.
 */
export const actingFor = spannedGen(
  "OrgAuthorization.actingFor",
  function* (store: PermissionStoreShape, member: Member, userIds: ReadonlyArray<string | undefined>) {
    if (othersIn(member, userIds).length === 0) return
    const permission = member.aboutOthers
    if (permission === undefined) return yield* new Forbidden({ message: "This operation declares no permission" })
    const answer = yield* store
      .check({ organizationId: member.organizationId, userId: member.userId, permission, minRevision: member.revision })
      .pipe(Effect.catchTag("Conflict", Effect.die))
    if (!answer.allowed) return yield* forbidden(permission, answer.reason)
  }
)

export const OrgAuthorizationLive = Layer.effect(
  OrgAuthorization,
  Effect.gen(function* () {
    const signIn = yield* SignIn
    const context = yield* Effect.context<PermissionStore>()
    const permissions = declaredPermissions()
    return {
      bearer: (token) =>
        Effect.gen(function* () {
          const user = yield* signIn.authenticate(Option.some(Redacted.value(token)))
          const route = yield* HttpRouter.RouteContext
          const request = yield* HttpServerRequest.HttpServerRequest
          const declaration = permissions.get(`${request.method} ${route.route.path}`)
          // The body is read once and kept: the handler decodes the same text.
          const consistency =
            declaration?.consistency === true
              ? consistencyOf(yield* request.json.pipe(Effect.orElseSucceed(() => undefined)))
              : undefined
          return yield* authorize(user, route.params.organizationId, declaration, consistency)
        }).pipe(Effect.provide(context))
    }
  })
)

export const RpcOrgAuthorizationLive = Layer.effect(
  RpcOrgAuthorization,
  Effect.gen(function* () {
    const signIn = yield* SignIn
    const context = yield* Effect.context<PermissionStore>()
    return ({ headers, payload, rpc }) =>
      Effect.gen(function* () {
        const user = yield* signIn.authenticate(bearerToken(headers))
        const organizationId = (payload as { organizationId?: unknown } | undefined)?.organizationId
        return yield* authorize(
          user,
          organizationId,
          declared(rpc.annotations, takesConsistency(Option.some(rpc.payloadSchema))),
          consistencyOf(payload)
        )
      }).pipe(Effect.provide(context))
  })
)
