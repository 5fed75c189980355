/**
 * Text the database can store (S50). Postgres refuses a NUL character in `text` (and in any query
 * parameter), and UTF-8 has no form for an unpaired UTF-16 surrogate: such input would reach the
 * database and fail there as a 500. Every string field that reaches the database is refused at
 * decoding instead, with 400 `invalid_payload` naming the field, the same on both doors.
 */
import { Schema } from "effect"

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

export const STORABLE_MESSAGE = "must not contain NUL characters or unpaired surrogates"

/** Whether Postgres can store `text` as UTF-8. */
export const isStorable = (text: string) => !text.includes("\u0000") && !LONE_SURROGATE.test(text)

/** Refuses a string the database cannot store; adds nothing to the JSON Schema. */
export const storable =
  <S extends Schema.Schema.Any>() =>
  <A extends string>(
    self: S & Schema.Schema<A, Schema.Schema.Encoded<S>, Schema.Schema.Context<S>>
  ): Schema.filter<S> =>
    self.pipe(Schema.filter((text) => isStorable(text as string), { message: () => STORABLE_MESSAGE }))

/** Any string the database can store. */
export const StorableString = Schema.String.pipe(storable())
