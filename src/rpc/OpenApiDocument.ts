/**
 * The OpenAPI document as the server behaves, where the generated one says less or otherwise:
 * - a 400 `HttpApiDecodeError` carries `code: "invalid_payload"` (and `issues`) like every error;
 * - request bodies accept and drop unknown fields (only conditions refuse them), so they are not
 *   `additionalProperties: false`;
 * - writes answer `X-Permission-Revision`, 429s `Retry-After`; date-times say `format: date-time`;
 * - each operation's prose (OperationDocs.json, by operationId) before its permission note;
 * - contact. The servers list is added where the public URL is known (`servedApi`).
 */
import docs from "./OperationDocs.json" with { type: "json" }

type Doc = { readonly summary?: string; readonly description?: string }
const prose: Readonly<Record<string, Doc>> = docs
type Json = Record<string, unknown>

const isObject = (value: unknown): value is Json => typeof value === "object" && value !== null

/** Component schemas whose strictness is real: the decoder refuses unknown fields there. */
const STRICT = new Set(["Condition"])

const REF = "#/components/schemas/"

/** Drops `additionalProperties: false` from a request schema and what it reaches, but strict components. */
const relax = (schema: unknown, components: Json, seen: Set<string>): void => {
  if (Array.isArray(schema)) {
    for (const item of schema) relax(item, components, seen)
    return
  }
  if (!isObject(schema)) return
  const ref = schema.$ref
  if (typeof ref === "string" && ref.startsWith(REF)) {
    const name = ref.slice(REF.length)
    if (STRICT.has(name) || seen.has(name)) return
    seen.add(name)
    relax(components[name], components, seen)
    return
  }
  if (schema.additionalProperties === false) delete schema.additionalProperties
  for (const value of Object.values(schema)) relax(value, components, seen)
}

const header = (description: string, schema: Json) => ({ description, schema })

const revisionHeader = header(
  "The organization's revision after this write (also in the body): pass it as `minRevision` to read your own write.",
  { type: "string", pattern: "^\\d+$" }
)

const retryAfterHeader = header("Seconds until a retry can succeed (also `retryAfter` in the body).", {
  type: "integer",
  minimum: 0
})

/** Whether a response schema (inline or a component) has a `revision` property. */
const carriesRevision = (schema: unknown, components: Json): boolean => {
  if (!isObject(schema)) return false
  const ref = schema.$ref
  const resolved = typeof ref === "string" ? components[ref.slice(REF.length)] : schema
  return isObject(resolved) && isObject(resolved.properties) && "revision" in resolved.properties
}

export const polish = (spec: Record<string, any>): Record<string, any> => {
  const document = structuredClone(spec) as unknown as Json & {
    info: Json
    paths: Record<string, Record<string, Json>>
    components: { schemas: Json }
  }
  const components = document.components.schemas

  const decodeError = components.HttpApiDecodeError
  if (isObject(decodeError) && isObject(decodeError.properties)) {
    decodeError.properties.code = { type: "string", enum: ["invalid_payload"] }
    decodeError.required = [...new Set([...((decodeError.required as Array<string>) ?? []), "code"])]
    delete decodeError.additionalProperties
  }

  const dateTime = components.DateTimeUtc
  if (isObject(dateTime)) {
    dateTime.format = "date-time"
    dateTime.description = "An instant in UTC, ISO 8601 (e.g. `2026-12-04T18:00:00.000Z`)"
  }

  for (const methods of Object.values(document.paths)) {
    for (const [method, operation] of Object.entries(methods)) {
      const doc = prose[operation.operationId as string]
      if (doc?.summary !== undefined) operation.summary = doc.summary
      if (doc?.description !== undefined) {
        operation.description =
          typeof operation.description === "string" ? `${doc.description}\n\n${operation.description}` : doc.description
      }
      const body = (operation.requestBody as Json | undefined)?.content
      if (isObject(body)) relax(body, components, new Set())
      const responses = operation.responses as Record<string, Json>
      for (const [status, response] of Object.entries(responses)) {
        const schema = (response.content as Record<string, Json> | undefined)?.["application/json"]?.schema
        if (status === "429") response.headers = { "Retry-After": retryAfterHeader }
        if (method !== "get" && status.startsWith("2") && carriesRevision(schema, components)) {
          response.headers = { "X-Permission-Revision": revisionHeader }
        }
      }
    }
  }

  document.info.contact = { name: "Live Permission Server maintainers" }
  return document
}
