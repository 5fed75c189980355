/**
 * PasswordHasher: argon2id hashes, computed off the event loop with a bound on hashes in flight.
 * Owns: hashing, verifying, and spending the same time when there is no hash to verify against.
 * Does not own: which passwords are acceptable (PasswordPolicy).
 */
import { Context, type Effect, type Option, type Redacted } from "effect"

export interface PasswordHasherShape {
  readonly hash: (password: Redacted.Redacted<string>) => Effect.Effect<string>
  /** False for a wrong password; with no stored hash, verifies against a dummy so timing does not tell. */
  readonly verify: (stored: Option.Option<string>, password: Redacted.Redacted<string>) => Effect.Effect<boolean>
}

export class PasswordHasher extends Context.Tag("app/PasswordHasher")<PasswordHasher, PasswordHasherShape>() {}
