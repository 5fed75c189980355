/**
 * How callers prove who they are, on both doors: a bearer access token, checked by one middleware
 * for HttpApi and one for RPC, each providing the signed-in `CurrentUser`.
 */
import { HttpApiMiddleware, HttpApiSecurity } from "@effect/platform"
import { RpcMiddleware } from "@effect/rpc"
import { Context, Schema } from "effect"
import { ServiceUnavailable, Unauthorized } from "./Errors.ts"

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
