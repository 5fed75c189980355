/**
 * The served OpenAPI document as a consumer's tools read it: Spectral's `spectral:oas` ruleset
 * finds no error and no warning, and swagger-parser validates it (the document the server serves
 * is `servedApi(PUBLIC_URL)`; test/e2e/embedded.test.ts checks the served one is this one).
 */
import SwaggerParser from "@apidevtools/swagger-parser"
import { OpenApi } from "@effect/platform"
import { Document, Spectral } from "@stoplight/spectral-core"
import { Json } from "@stoplight/spectral-parsers"
import { oas } from "@stoplight/spectral-rulesets"
import { describe, expect, it } from "vitest"
import { servedApi } from "../../src/rpc/Api.ts"

const document = OpenApi.fromApi(servedApi("http://localhost:3000"))

const SEVERITY = ["error", "warning", "information", "hint"]

describe("the served OpenAPI document, through consumers' tools", () => {
  it("has no Spectral (spectral:oas) error or warning", async () => {
    const spectral = new Spectral()
    spectral.setRuleset({ extends: [oas] } as never)
    const results = await spectral.run(new Document(JSON.stringify(document, null, 2), Json))
    const problems = results
      .filter((result) => result.severity <= 1)
      .map((result) => `${SEVERITY[result.severity]} ${result.code} at ${result.path.join(".")}: ${result.message}`)
    expect(problems).toEqual([])
  })

  it("validates with swagger-parser", async () => {
    const api = await SwaggerParser.validate(structuredClone(document) as never)
    expect(api.info.title).toBe("Live Permission Server")
  })

  it("describes what the server sends: decode errors with their code, date-times, revision and retry headers", () => {
    const spec = document as unknown as {
      servers: Array<{ url: string }>
      components: { schemas: Record<string, { properties?: Record<string, unknown>; format?: string }> }
      paths: Record<string, Record<string, { responses: Record<string, { headers?: Record<string, unknown> }> }>>
    }
    expect(spec.servers[0]?.url).toBe("http://localhost:3000")
    expect(spec.components.schemas.HttpApiDecodeError?.properties).toHaveProperty("code")
    expect(spec.components.schemas.DateTimeUtc?.format).toBe("date-time")
    const assign = spec.paths["/v1/orgs/{organizationId}/assignments"]?.post?.responses["201"]
    expect(assign?.headers).toHaveProperty("X-Permission-Revision")
    expect(spec.paths["/v1/auth/login"]?.post?.responses["429"]?.headers).toHaveProperty("Retry-After")
  })
})
