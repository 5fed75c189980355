/** What a wrong credential answers (the same whatever was wrong), and what a new password must be. */
import { Effect, Redacted } from "effect"
import { isCommonPassword } from "../../domain/PasswordPolicy.ts"
import { InvalidInput, Unauthorized } from "../../rpc/Errors.ts"

export const invalidCredentials = new Unauthorized({
  code: "invalid_credentials",
  message: "The email or password is not correct"
})

export const invalidToken = new Unauthorized({
  code: "invalid_token",
  message: "The token is not valid or has expired"
})

/** REQUIRE_VERIFIED_EMAIL: said only to a caller who proved the password (or holds the invitation). */
export const emailNotVerified = new Unauthorized({
  code: "email_not_verified",
  message: "Verify your email address first: follow the link in the mail we sent when you registered"
})

/** Refuses a password from the common-password list; `field` names it in the error. */
export const checkPolicy = (password: Redacted.Redacted<string>, field: string) =>
  isCommonPassword(Redacted.value(password))
    ? Effect.fail(
        new InvalidInput({ code: "weak_password", field, message: "This password is too common; choose another" })
      )
    : Effect.void
