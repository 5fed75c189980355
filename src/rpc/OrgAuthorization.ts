/**
 * The guard of organization endpoints on both doors: the caller's session, their membership of
 * the organization named by the request (path or `organizationId`), and the permission the
 * endpoint declares. Nothing reaches an organization handler without passing it.
 */
import { HttpApi, HttpRouter, HttpServerRequest } from "@effect/platform"
import { Context, Effect, Layer, Option, Redacted, Schema } from "effect"
import { Auth } from "../services/Auth.ts"
import { PermissionStore } from "../services/PermissionStore.ts"
import { Api } from "./Api.ts"
import { Forbidden, NotFound } from "./Errors.ts"
import { bearerToken } from "./RequestMeta.ts"
import { type Member, OrgAuthorization, RequiredPermission, RpcOrgAuthorization, type SignedIn } from "./Security.ts"

const isUuid = Schema.is(Schema.UUID)
const noSuchOrganization = new NotFound({ message: "No such organization" })

/** method + path pattern → the permission each HttpApi endpoint declares. */
const declaredPermissions = () => {
  const table = new Map<string, string>()
  HttpApi.reflect(Api, {
    onGroup: () => {},
    onEndpoint: ({ endpoint, mergedAnnotations }) => {
      const permission = Context.getOption(mergedAnnotations, RequiredPermission)
      if (Option.isSome(permission)) table.set(`${endpoint.method} ${endpoint.path}`, permission.value)
    }
  })
  return table
}

const authorize = Effect.fn("OrgAuthorization.authorize")(function* (
  user: SignedIn,
  organizationId: unknown,
  permission: string | undefined
) {
  // Deny by default: an organization endpoint that declares no permission is refused.
  if (permission === undefined) return yield* new Forbidden({ message: "This operation declares no permission" })
  if (typeof organizationId !== "string" || !isUuid(organizationId)) return yield* noSuchOrganization
  const store = yield* PermissionStore
  // Without minRevision the store never answers `revision_not_reached`.
  const answer = yield* store
    .check({ organizationId, userId: user.userId, permission })
    .pipe(Effect.catchTag("Conflict", Effect.die))
  if (!answer.member) return yield* noSuchOrganization
  if (!answer.allowed) {
    return yield* new Forbidden({ message: `Missing permission ${permission} (${answer.reason})` })
  }
  return { ...user, organizationId } satisfies Member
})

export const OrgAuthorizationLive = Layer.effect(
  OrgAuthorization,
  Effect.gen(function* () {
    const auth = yield* Auth
    const context = yield* Effect.context<PermissionStore>()
    const permissions = declaredPermissions()
    return {
      bearer: (token) =>
        Effect.gen(function* () {
          const user = yield* auth.authenticate(Option.some(Redacted.value(token)))
          const route = yield* HttpRouter.RouteContext
          const request = yield* HttpServerRequest.HttpServerRequest
          const permission = permissions.get(`${request.method} ${route.route.path}`)
          return yield* authorize(user, route.params.org, permission)
        }).pipe(Effect.provide(context))
    }
  })
)

export const RpcOrgAuthorizationLive = Layer.effect(
  RpcOrgAuthorization,
  Effect.gen(function* () {
    const auth = yield* Auth
    const context = yield* Effect.context<PermissionStore>()
    return ({ headers, payload, rpc }) =>
      Effect.gen(function* () {
        const user = yield* auth.authenticate(bearerToken(headers))
        const organizationId = (payload as { organizationId?: unknown } | undefined)?.organizationId
        return yield* authorize(
          user,
          organizationId,
          Option.getOrUndefined(Context.getOption(rpc.annotations, RequiredPermission))
        )
      }).pipe(Effect.provide(context))
  })
)
