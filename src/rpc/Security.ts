/**
 * How callers prove who they are, on both doors: a bearer access token, checked by one middleware
 * for HttpApi and one for RPC, each providing the signed-in `CurrentUser`.
 */
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import * as OpenApi from "@effect/platform/OpenApi"
import { RpcMiddleware } from "@effect/rpc"
import { Context, Schema } from "effect"
import type { CatalogKey } from "../domain/Catalog.ts"
import { Forbidden, NotFound, ServiceUnavailable, Unauthorized } from "./Errors.ts"

export interface SignedIn {
  readonly userId: string
  readonly sessionId: string
}

export class CurrentUser extends Context.Tag("app/CurrentUser")<CurrentUser, SignedIn>() {}

const failure = Schema.Union(Unauthorized, ServiceUnavailable)

export class Authentication extends HttpApiMiddleware.Tag<Authentication>()("app/Authentication", {
  failure,
  provides: CurrentUser,
  security: { bearer: HttpApiSecurity.bearer }
}) {}

export class RpcAuthentication extends RpcMiddleware.Tag<RpcAuthentication>()("app/RpcAuthentication", {
  failure,
  provides: CurrentUser,
  requiredForClient: true
}) {}

/** The permission an operation requires, declared next to its definition (endpoint or Rpc). */
export class RequiredPermission extends Context.Tag("app/RequiredPermission")<RequiredPermission, CatalogKey>() {}

/**
 * Annotations for an endpoint that needs `permission` in the organization named by its path:
 * the guard reads the tag; the OpenAPI document shows it as `x-required-permission`.
 */
export const requires = (permission: CatalogKey) =>
  Context.make(RequiredPermission, permission).pipe(
    Context.add(OpenApi.Override, {
      "x-required-permission": permission,
      description: `Requires the \`${permission}\` permission in the organization.`
    })
  )

/**
 * Marks an operation any member may perform about themselves: the declared permission is needed
 * only when it names another user (the handler asks `actingFor` in OrgAuthorization.ts).
 */
export class SelfService extends Context.Tag("app/SelfService")<SelfService, true>() {}

/** Like `requires`, for operations a member may always perform about themselves. */
export const requiresUnlessSelf = (permission: CatalogKey) =>
  Context.make(RequiredPermission, permission).pipe(
    Context.add(SelfService, true as const),
    Context.add(OpenApi.Override, {
      "x-required-permission": permission,
      "x-self-service": true,
      description: `Any member may ask about themselves; asking about another user requires the \`${permission}\` permission in the organization.`
    })
  )

/** What the OpenAPI document shows as the requirement of a platform administrators' operation. */
export const platformAdminOnly = Context.make(OpenApi.Override, {
  "x-required-permission": "platform-admin",
  description: "Platform administrators only."
})

export interface Member extends SignedIn {
  readonly organizationId: string
  /** Set on self-service operations: the permission needed to act about another user. */
  readonly aboutOthers?: string | undefined
  /**
   * The organization's revision the guard decided at. It was read after the request arrived, so
   * the handler's own decisions at this revision or later see every commit before the request,
   * with no second read.
   */
  readonly revision?: string | undefined
}

/** The signed-in caller, checked to hold the operation's permission in this organization. */
export class CurrentMember extends Context.Tag("app/CurrentMember")<CurrentMember, Member>() {}

const memberFailure = Schema.Union(Unauthorized, Forbidden, NotFound, ServiceUnavailable)

/**
 * The guard of every organization endpoint: a valid session, membership of the organization in
 * the path (else 404, so ids of other tenants reveal nothing) and the endpoint's permission (else
 * 403 naming it).
 */
export class OrgAuthorization extends HttpApiMiddleware.Tag<OrgAuthorization>()("app/OrgAuthorization", {
  failure: memberFailure,
  provides: CurrentMember,
  security: { bearer: HttpApiSecurity.bearer }
}) {}

/** The same guard for RPCs; the organization comes from the payload's `organizationId`. */
export class RpcOrgAuthorization extends RpcMiddleware.Tag<RpcOrgAuthorization>()("app/RpcOrgAuthorization", {
  failure: memberFailure,
  provides: CurrentMember,
  requiredForClient: true
}) {}

/** Platform administrators only (users.is_platform_admin): the operator's endpoints under /v1/admin. */
export class PlatformAdmin extends HttpApiMiddleware.Tag<PlatformAdmin>()("app/PlatformAdmin", {
  failure: Schema.Union(Unauthorized, Forbidden, ServiceUnavailable),
  provides: CurrentUser,
  security: { bearer: HttpApiSecurity.bearer }
}) {}

export class RpcPlatformAdmin extends RpcMiddleware.Tag<RpcPlatformAdmin>()("app/RpcPlatformAdmin", {
  failure: Schema.Union(Unauthorized, Forbidden, ServiceUnavailable),
  provides: CurrentUser,
  requiredForClient: true
}) {}

/** Each HttpApi guard and its RPC twin: an operation's Rpc carries the twin of its endpoint's guard. */
export const guardTwins: ReadonlyMap<unknown, RpcMiddleware.TagClassAny> = new Map<unknown, RpcMiddleware.TagClassAny>([
  [Authentication, RpcAuthentication],
  [OrgAuthorization, RpcOrgAuthorization],
  [PlatformAdmin, RpcPlatformAdmin]
])

/** The RPC twin of the guards in `R` (a group's or endpoint's middleware identifiers). */
export type GuardTwin<R> =
  | (Authentication extends R ? typeof RpcAuthentication : never)
  | (OrgAuthorization extends R ? typeof RpcOrgAuthorization : never)
  | (PlatformAdmin extends R ? typeof RpcPlatformAdmin : never)
