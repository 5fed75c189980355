import { OpenApi } from "@effect/platform"
import { describe, expect, it } from "vitest"
import { Api } from "../../src/rpc/Api.ts"

const spec = OpenApi.fromApi(Api) as unknown as {
  openapi: string
  paths: Record<string, Record<string, { responses: Record<string, unknown>; security?: unknown }>>
}

describe("the OpenAPI document", () => {
  it("is OpenAPI 3.1 and lists every auth operation with its errors", () => {
    expect(spec.openapi).toBe("3.1.0")
    const operations = Object.entries(spec.paths).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, operation]) => ({
        path,
        method,
        statuses: Object.keys(operation.responses)
      }))
    )
    const find = (method: string, path: string) => operations.find((o) => o.method === method && o.path === path)
    expect(find("post", "/v1/auth/login")?.statuses).toEqual(expect.arrayContaining(["200", "400", "401", "429"]))
    expect(find("post", "/v1/auth/register")?.statuses).toEqual(expect.arrayContaining(["202", "400", "429"]))
    expect(find("post", "/v1/auth/refresh")?.statuses).toEqual(expect.arrayContaining(["200", "401"]))
    expect(find("delete", "/v1/auth/sessions/{id}")?.statuses).toEqual(expect.arrayContaining(["204", "401", "404"]))
    expect(find("get", "/v1/me")?.statuses).toEqual(expect.arrayContaining(["200", "401"]))
    expect(find("get", "/.well-known/jwks.json")?.statuses).toContain("200")
    expect(find("get", "/health/ready")?.statuses).toEqual(expect.arrayContaining(["200", "503"]))
    for (const path of [
      "/v1/auth/login/mfa",
      "/v1/auth/logout",
      "/v1/auth/logout-all",
      "/v1/auth/sessions",
      "/v1/auth/password/forgot",
      "/v1/auth/password/reset",
      "/v1/auth/password/change",
      "/v1/auth/email/verify",
      "/v1/auth/mfa/totp/enroll",
      "/v1/auth/mfa/totp/confirm",
      "/v1/auth/mfa/totp/disable"
    ]) {
      expect(Object.keys(spec.paths)).toContain(path)
    }
  })

  it("marks the signed-in operations with bearer security", () => {
    expect(spec.paths["/v1/me"]?.get?.security).toEqual([{ bearer: [] }])
    expect(spec.paths["/v1/auth/login"]?.post?.security).toEqual([])
  })

  it("names the permission every organization and admin operation requires", () => {
    const operations = Object.entries(spec.paths).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, operation]) => ({ path, method, operation }))
    )
    const guarded = operations.filter(
      ({ path }) => path.startsWith("/v1/orgs/{organizationId}") || path.startsWith("/v1/admin")
    )
    expect(guarded.length).toBe(31)
    for (const { path, method, operation } of guarded) {
      const permission = (operation as Record<string, unknown>)["x-required-permission"]
      expect(permission, `${method} ${path}`).toMatch(/^([a-z]+:[a-z*]+|platform-admin)$/)
      expect(operation.security, `${method} ${path}`).toEqual([{ bearer: [] }])
    }
  })

  // An accidental change to the public API shows up here, in review.
  it("matches the reviewed snapshot", async () => {
    await expect(JSON.stringify(spec, null, 2)).toMatchFileSnapshot("./__snapshots__/openapi.json")
  })
})
