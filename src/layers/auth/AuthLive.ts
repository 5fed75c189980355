import { Effect, Layer } from "effect"
import { Accounts } from "../../services/Accounts.ts"
import { Auth } from "../../services/Auth.ts"
import { Mfa } from "../../services/Mfa.ts"
import { SignIn } from "../../services/SignIn.ts"

/** `Auth`, the one tag of the older callers, made of the services that own each job. */
export const AuthLive = Layer.effect(
  Auth,
  Effect.gen(function* () {
    const accounts = yield* Accounts
    const signIn = yield* SignIn
    const mfa = yield* Mfa
    return Auth.of({ ...accounts, ...signIn, ...mfa })
  })
)
