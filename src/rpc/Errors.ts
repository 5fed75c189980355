/**
 * Errors that cross the wire. Each is one class used by both doors: HttpApi endpoints add it with
 * `.addError(E)` (the status comes from its annotation) and Rpcs name it as `error`. On the wire every
 * error is `{ _tag, code, message, ... }` with a stable `code` and a human `message`.
 */
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import { Schema } from "effect"

/** A `code` field fixed to one value, filled in by the constructor. */
export const code = <const C extends string>(value: C) =>
  Schema.Literal(value).pipe(
    Schema.propertySignature,
    Schema.withConstructorDefault(() => value)
  )

export class BadRequest extends Schema.TaggedError<BadRequest>()(
  "BadRequest",
  { code: Schema.Literal("invalid_payload", "invalid_json"), message: Schema.String },
  HttpApiSchema.annotations({ status: 400, description: "The request body or parameters are not valid" })
) {}

export class NotFound extends Schema.TaggedError<NotFound>()(
  "NotFound",
  { code: code("not_found"), message: Schema.String },
  HttpApiSchema.annotations({ status: 404 })
) {}

export class MethodNotAllowed extends Schema.TaggedError<MethodNotAllowed>()(
  "MethodNotAllowed",
  { code: code("method_not_allowed"), message: Schema.String },
  HttpApiSchema.annotations({ status: 405 })
) {}

export class LengthRequired extends Schema.TaggedError<LengthRequired>()(
  "LengthRequired",
  { code: code("length_required"), message: Schema.String },
  HttpApiSchema.annotations({ status: 411 })
) {}

export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()(
  "PayloadTooLarge",
  { code: code("payload_too_large"), message: Schema.String },
  HttpApiSchema.annotations({ status: 413 })
) {}

export class InternalError extends Schema.TaggedError<InternalError>()(
  "InternalError",
  { code: code("internal_error"), message: Schema.String },
  HttpApiSchema.annotations({ status: 500 })
) {}

export const CheckStatus = Schema.Literal("up", "down")

export const HealthChecks = Schema.Struct({ database: CheckStatus, events: CheckStatus })

export class NotReady extends Schema.TaggedError<NotReady>()(
  "NotReady",
  {
    code: code("not_ready"),
    message: Schema.String,
    status: Schema.Literal("not_ready"),
    checks: HealthChecks
  },
  HttpApiSchema.annotations({ status: 503, description: "A dependency of this node is down" })
) {}

export class Unauthorized extends Schema.TaggedError<Unauthorized>()(
  "Unauthorized",
  {
    code: Schema.Literal("unauthorized", "invalid_credentials", "invalid_token", "email_not_verified"),
    message: Schema.String
  },
  HttpApiSchema.annotations({ status: 401, description: "Not signed in, or the credentials or token are not valid" })
) {}

export class Forbidden extends Schema.TaggedError<Forbidden>()(
  "Forbidden",
  { code: code("forbidden"), message: Schema.String },
  HttpApiSchema.annotations({ status: 403 })
) {}

export class Conflict extends Schema.TaggedError<Conflict>()(
  "Conflict",
  { code: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 409 })
) {}

export class TooManyRequests extends Schema.TaggedError<TooManyRequests>()(
  "TooManyRequests",
  {
    code: code("too_many_requests"),
    message: Schema.String,
    /** Seconds until a retry can succeed; also sent as the Retry-After header. */
    retryAfter: Schema.Int
  },
  HttpApiSchema.annotations({ status: 429 })
) {}

/** A payload that decoded but breaks a rule the schema cannot express (e.g. a common password). */
export class InvalidInput extends Schema.TaggedError<InvalidInput>()(
  "InvalidInput",
  {
    code: Schema.Literal("weak_password", "invalid_code", "wrong_password"),
    message: Schema.String,
    field: Schema.String
  },
  HttpApiSchema.annotations({ status: 400 })
) {}

export class ServiceUnavailable extends Schema.TaggedError<ServiceUnavailable>()(
  "ServiceUnavailable",
  { code: code("unavailable"), message: Schema.String },
  HttpApiSchema.annotations({ status: 503, description: "A dependency is down; the request was refused to stay safe" })
) {}
