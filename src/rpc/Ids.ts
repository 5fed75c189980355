/**
 * Identifiers are canonical from decoding on (S49): a UUID is accepted in any case and decoded to
 * lowercase, so one entity never has two keys (the session registry, the router, rate limits and
 * audit rows all compare ids as strings). Encoding leaves an id as it is. The JSON Schema is the
 * UUID's (`format: uuid`), so the OpenAPI document does not change.
 */
import { Schema } from "effect"

const Canonical = Schema.UUID.pipe(Schema.lowercased())

/** A UUID in any case, decoded to lowercase; `identifier` names it in the OpenAPI components. */
export const canonicalId = (identifier?: string) =>
  Schema.transform(identifier === undefined ? Schema.UUID : Schema.UUID.annotations({ identifier }), Canonical, {
    strict: true,
    decode: (id) => id.toLowerCase(),
    encode: (id) => id
  })

/** Any UUID: the anonymous `UUID` of the OpenAPI document, decoded to lowercase. */
export const Id = canonicalId()
