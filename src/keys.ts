/** `yarn keys`: prints a fresh JWT_PRIVATE_KEYS and MFA_ENCRYPTION_KEY for a cluster's settings. */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect } from "effect"
import { generateKeys } from "./layers/auth/Keys.ts"

generateKeys.pipe(
  Effect.flatMap((keys) =>
    Console.log(`JWT_PRIVATE_KEYS='${JSON.stringify(keys.jwt)}'\nMFA_ENCRYPTION_KEY=${keys.mfaKey}`)
  ),
  NodeRuntime.runMain
)
