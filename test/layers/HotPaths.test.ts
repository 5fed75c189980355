import { createServer, type IncomingMessage, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { describe, expect, it } from "@effect/vitest"
import { DateTime, Effect, Layer, Schema } from "effect"
import { ProfileCache } from "../../src/layers/auth/ProfileCache.ts"
import { makeFrontDoor } from "../../src/layers/http/FrontDoor.ts"
import { makeHotPaths } from "../../src/layers/http/HotPaths.ts"
import { Me } from "../../src/rpc/Auth.ts"
import { BatchCheckResult, CheckResult } from "../../src/rpc/Authz.ts"
import { Ticket } from "../../src/rpc/Realtime.ts"
import { AccessTokens } from "../../src/services/AccessTokens.ts"
import { type CheckAnswer, type CheckRequest, PermissionStore } from "../../src/services/PermissionStore.ts"
import { Realtime } from "../../src/services/Realtime.ts"
import { Revocations } from "../../src/services/Revocations.ts"

const ORG = "0b6f3c1e-2a4d-4c8e-9f10-1a2b3c4d5e6f"
const USER = "5d3a1f2e-7b6c-4d9e-8a01-23456789abcd"
const OTHER = "9e8d7c6b-5a49-4382-b1a0-fedcba987654"
const SESSION = "s-1"

/** What this node's memory holds, changed by each test. */
const memory = {
  tokens: new Set(["known"]),
  revoked: false as boolean | undefined,
  profile: true,
  /** Answers from memory; undefined: the check must wait or read. */
  answer: (request: CheckRequest): CheckAnswer | undefined =>
    // As the store: no answer without a revision to answer at (the watermark for `cached`), or ahead of it.
    (request.minRevision === undefined && request.consistency !== "cached") ||
    (request.minRevision !== undefined && BigInt(request.minRevision) > 7n)
      ? undefined
      : {
          member: request.userId !== OTHER || request.permission !== "stranger:probe",
          allowed: request.permission !== "documents:delete",
          reason: `memory decided ${request.permission}`,
          revision: "7"
        }
}

const asked: Array<CheckRequest> = []

const Fakes = Layer.mergeAll(
  Layer.succeed(
    Realtime,
    Realtime.of({
      issueTicket: () => Effect.die("unused"),
      redeem: () => Effect.die("unused"),
      issueTicketNow: (_user, organizationId) =>
        organizationId === ORG
          ? Effect.succeed({ ticket: "t".repeat(43), url: `ws://localhost/ws?ticket=${"t".repeat(43)}`, expiresIn: 30 })
          : undefined
    })
  ),
  Layer.succeed(
    AccessTokens,
    AccessTokens.of({
      ttlSeconds: 900,
      jwks: { keys: [] },
      issue: () => Effect.die("unused"),
      verify: () => Effect.die("unused"),
      verifiedNow: (token) =>
        memory.tokens.has(token) ? { userId: USER, sessionId: SESSION, expiresAt: 2e9 } : undefined
    })
  ),
  Layer.succeed(
    Revocations,
    Revocations.of({
      revoke: () => Effect.void,
      isRevoked: () => Effect.die("unused"),
      revokedNow: () => memory.revoked
    })
  ),
  Layer.succeed(
    ProfileCache,
    ProfileCache.of({
      profile: () => Effect.die("unused"),
      changeWith: () => Effect.die("unused"),
      profileNow: (userId) =>
        memory.profile
          ? new Me({
              id: userId,
              email: "hot@example.com",
              name: "Hot",
              emailVerified: true,
              mfaEnabled: false,
              createdAt: DateTime.unsafeMake(0)
            })
          : undefined
    })
  ),
  Layer.succeed(PermissionStore, {
    checkNow: (request: CheckRequest) => {
      asked.push(request)
      return memory.answer(request)
    },
    checkManyNow: (
      organizationId: string,
      checks: ReadonlyArray<Omit<CheckRequest, "organizationId" | "minRevision" | "consistency">>,
      minRevision: string | undefined,
      consistency: CheckRequest["consistency"]
    ) => {
      const answers = checks.map((check) => memory.answer({ organizationId, minRevision, consistency, ...check }))
      return answers.some((answer) => answer === undefined) ? undefined : (answers as Array<CheckAnswer>)
    }
  } as unknown as PermissionStore["Type"])
)

const bodyOf = (request: IncomingMessage) =>
  new Promise<string>((resolve) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
  })

/**
 * A server as HttpServer.ts makes it, the front door then the hot paths, whose routes answer 299
 * (untouched request) or 298 (handed over), echoing the body they read.
 */
const serve = Effect.gen(function* () {
  const hot = yield* makeHotPaths
  const front = yield* makeFrontDoor
  const server: Server = createServer((request, response) => {
    front(request, response)
    const route = (status: number) => (replayed: IncomingMessage) =>
      void bodyOf(replayed).then((body) => response.writeHead(status).end(body))
    if (!hot(request, response, route(298))) route(299)(request)
  })
  yield* Effect.acquireRelease(
    Effect.async<void>((resume) => void server.listen(0, "127.0.0.1", () => resume(Effect.void))),
    () => Effect.sync(() => server.close())
  )
  const { port } = server.address() as AddressInfo
  return (method: string, path: string, body?: unknown, token = "known") =>
    Effect.promise(async () => {
      const response = await fetch(`http://127.0.0.1:${port}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { "content-type": "application/json" })
        },
        ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) })
      })
      return { status: response.status, headers: response.headers, text: await response.text() }
    })
})

const reset = () => {
  memory.tokens = new Set(["known"])
  memory.revoked = false
  memory.profile = true
  asked.length = 0
}

describe("HotPaths", () => {
  it("writes check results and tickets in the form their schemas encode (the hot paths skip the encoding)", () => {
    const result = { allowed: true, reason: "role editor grants documents:read", revision: "42" }
    expect(Schema.encodeSync(CheckResult)(new CheckResult(result))).toStrictEqual(result)
    const batch = { revision: "42", results: [{ allowed: false, reason: "no grant allows it (default deny)" }] }
    expect(Schema.encodeSync(BatchCheckResult)(new BatchCheckResult(batch))).toStrictEqual(batch)
    const ticket = { ticket: "t".repeat(43), url: "ws://localhost/ws?ticket=t", expiresIn: 30 }
    expect(Schema.encodeSync(Ticket)(new Ticket(ticket))).toStrictEqual(ticket)
  })

  it.layer(Fakes)((it) => {
    it.scoped(
      "answers from memory what memory holds, with the route's headers, and hands the rest over, body intact",
      () =>
        Effect.gen(function* () {
          reset()
          const call = yield* serve
          const check = `/v1/orgs/${ORG}/check`

          const me = yield* call("GET", "/v1/me")
          expect(me.status).toBe(200)
          expect(JSON.parse(me.text)).toMatchObject({
            id: USER,
            email: "hot@example.com",
            createdAt: "1970-01-01T00:00:00.000Z"
          })
          expect(me.headers.get("cache-control")).toBe("no-store")
          expect(me.headers.get("x-content-type-options")).toBe("nosniff")
          expect(me.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/)

          const cached = { permission: "documents:read", consistency: "cached" }
          const allowed = yield* call("POST", check, cached)
          expect(allowed.status).toBe(200)
          expect(JSON.parse(allowed.text)).toEqual({
            allowed: true,
            reason: "memory decided documents:read",
            revision: "7"
          })
          expect(allowed.headers.get("x-permission-revision")).toBe("7")
          // The guard asked at the watermark first, then the check itself at the guard's revision.
          expect(asked.map((a) => [a.permission, a.minRevision, a.consistency])).toEqual([
            ["authz:check", undefined, "cached"],
            ["documents:read", "7", "cached"]
          ])

          const batch = yield* call("POST", `${check}/batch`, {
            checks: [{ permission: "documents:read" }, { permission: "documents:delete" }],
            consistency: "cached"
          })
          expect(batch.status).toBe(200)
          expect(JSON.parse(batch.text)).toMatchObject({
            revision: "7",
            results: [{ allowed: true }, { allowed: false }]
          })

          // Each of these is the routes' to answer: untouched (299) or with the body it read (298).
          const handedOver = [
            [yield* call("POST", check, { permission: "documents:read" }), 298], // latest: a revision read
            [yield* call("POST", check, { ...cached, minRevision: "8" }), 298], // ahead of memory: a wait
            [yield* call("POST", check, { ...cached, permission: "not a key" }), 298], // the schema refuses
            [yield* call("POST", check, "{not json"), 298],
            [yield* call("POST", check, { ...cached, userId: OTHER, permission: "stranger:probe" }), 298], // 404
            [yield* call("POST", `/v1/orgs/not-an-id/check`, cached), 298],
            [yield* call("POST", `${check}?x=1`, cached), 299],
            [yield* call("POST", check, cached, "unknown"), 299], // a token not verified before
            [yield* call("GET", "/v1/me/"), 299]
          ] as const
          expect(handedOver.map(([answer]) => answer.status)).toEqual(handedOver.map(([, status]) => status))
          expect(JSON.parse(handedOver[0]![0].text)).toEqual({ permission: "documents:read" })
          expect(handedOver[3]![0].text).toBe("{not json")

          const ticket = yield* call("POST", "/v1/realtime/tickets", { organizationId: ORG.toUpperCase() })
          expect(ticket.status).toBe(201)
          expect(JSON.parse(ticket.text)).toEqual({
            ticket: "t".repeat(43),
            url: `ws://localhost/ws?ticket=${"t".repeat(43)}`,
            expiresIn: 30
          })
          const other = yield* call("POST", "/v1/realtime/tickets", { organizationId: OTHER })
          expect([other.status, JSON.parse(other.text)]).toEqual([298, { organizationId: OTHER }])

          memory.revoked = undefined // out of the revocation lease: the routes ask
          expect((yield* call("GET", "/v1/me")).status).toBe(299)
          memory.revoked = true
          expect((yield* call("POST", check, cached)).status).toBe(299)
          memory.revoked = false
          memory.profile = false
          expect((yield* call("GET", "/v1/me")).status).toBe(299)
        })
    )
  })
})
