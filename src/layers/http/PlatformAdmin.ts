/**
 * The guard of the operator's endpoints on both doors: a valid session whose user is a platform
 * administrator (`users.is_platform_admin`, set with `yarn admin grant <email>`). Everyone else
 * gets 403, signed-out callers 401.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Layer, Option, Redacted } from "effect"
import { Forbidden, ServiceUnavailable } from "../../rpc/Errors.ts"
import { PlatformAdmin, RpcPlatformAdmin, type SignedIn } from "../../rpc/Security.ts"
import { SignIn } from "../../services/SignIn.ts"
import { bearerToken } from "./RequestMeta.ts"

const makeCheck = Effect.gen(function* () {
  const signIn = yield* SignIn
  const sql = yield* SqlClient.SqlClient
  return (token: Option.Option<string>) =>
    Effect.gen(function* () {
      const user = yield* signIn.authenticate(token)
      const rows = yield* sql<{ isPlatformAdmin: boolean }>`
        SELECT is_platform_admin FROM users WHERE id = ${user.userId} AND disabled_at IS NULL`.pipe(
        Effect.catchAllCause((cause) =>
          Effect.logError("admin guard: cannot read the user; denying", cause).pipe(
            Effect.zipRight(Effect.fail(new ServiceUnavailable({ message: "Cannot decide right now; denied" })))
          )
        )
      )
      if (rows[0]?.isPlatformAdmin !== true) {
        return yield* new Forbidden({ message: "Only platform administrators may do this" })
      }
      return user satisfies SignedIn
    })
})

export const PlatformAdminLive = Layer.effect(
  PlatformAdmin,
  Effect.map(makeCheck, (check) => ({ bearer: (token) => check(Option.some(Redacted.value(token))) }))
)

export const RpcPlatformAdminLive = Layer.effect(
  RpcPlatformAdmin,
  Effect.map(
    makeCheck,
    (check) =>
      ({ headers }) =>
        check(bearerToken(headers))
  )
)
