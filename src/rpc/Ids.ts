/**
 * Identifiers are canonical from decoding on (S49): a UUID is accepted in any case and decoded to
 * lowercase, so one entity never has two keys (the session registry, the router, rate limits and
 * audit rows all compare ids as strings). Encoding leaves an id as it is. The JSON Schema is the
 * UUID's (`format: uuid`), so the OpenAPI document does not change.
 */
import { Schema } from "effect"

/**
 * A UUID in any case, decoded to lowercase; `identifier` names it in the OpenAPI components. The
 * decoded side accepts any case too, so a client (the RPC client encodes what it is given) may send
 * an id as the user typed it: the server's decoding is what makes it canonical.
 */
export const canonicalId = (identifier?: string) =>
  Schema.transform(identifier === undefined ? Schema.UUID : Schema.UUID.annotations({ identifier }), Schema.UUID, {
    strict: true,
    decode: (id) => id.toLowerCase(),
    encode: (id) => id
  })

/** Any UUID: the anonymous `UUID` of the OpenAPI document, decoded to lowercase. */
export const Id = canonicalId()
