/**
 * What a public deployment gets (S52 and the rest of item 8): /docs off in production unless
 * enabled, and served with a strict Content-Security-Policy; verified addresses required before
 * login and invitation accept (REQUIRE_VERIFIED_EMAIL, on in production); a token whose account is
 * gone answers 401; a request naming two origins is refused.
 */
import { createHash } from "node:crypto"
import { request as httpRequest } from "node:http"
import { Effect, Either, Redacted } from "effect"
import { describe, expect, it } from "vitest"
import { ApiClient } from "../../src/rpc/client.ts"
import { Unauthorized } from "../../src/rpc/Errors.ts"
import { STRONG_PASSWORD, type TokenPairBody, uniqueEmail } from "../support/AuthClient.ts"
import { e2e, eventually } from "../support/E2e.ts"
import { tokenIn, waitForMail } from "../support/Mailbox.ts"
import { invitationToken, type User } from "../support/Tenant.ts"
import { query } from "../support/TestDatabase.ts"

/** The typed client's answer to `f`, as an Either. */
const viaRpc = <A, E>(url: string, token: string | undefined, f: (client: ApiClient["Type"]) => Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    return yield* f(yield* ApiClient)
  }).pipe(Effect.provide(ApiClient.layer(`${url}/rpc`, { accessToken: () => token })), Effect.either, Effect.runPromise)

describe("in production (NODE_ENV=production)", () => {
  const { server, api, node, database, createOrganization } = e2e({ NODE_ENV: "production" })

  /** Registers, verifies the address with the mailed token, and signs in. */
  const verifiedUser = async (label: string): Promise<User> => {
    const email = uniqueEmail(label)
    expect((await api.register(email, STRONG_PASSWORD)).status).toBe(202)
    const mail = await waitForMail(
      node.dataDir,
      (m) => m.to.includes(email) && m.subject === "Verify your email address"
    )
    expect((await api.call("POST", "/v1/auth/email/verify", { body: { token: tokenIn(mail) } })).status).toBe(204)
    const login = await api.login(email, STRONG_PASSWORD)
    expect(login.status).toBe(200)
    const tokens = login.body as TokenPairBody
    const userId = String((await api.me(tokens.accessToken)).body.id)
    return {
      email,
      password: STRONG_PASSWORD,
      token: tokens.accessToken,
      refreshToken: tokens.refreshToken,
      sessionId: tokens.sessionId,
      userId,
      tokens
    }
  }

  it("does not serve /docs; /openapi.json stays (S52)", async () => {
    const docs = await api.call("GET", "/docs")
    expect(docs.status).toBe(404)
    expect(docs.body).toMatchObject({ code: "not_found" })
    expect((await fetch(`${server.url}/openapi.json`)).status).toBe(200)
  })

  it("refuses login until the address is verified, on both doors, then lets it in", async () => {
    const email = uniqueEmail("unverified")
    expect((await api.register(email, STRONG_PASSWORD)).status).toBe(202)
    const refused = await api.login(email, STRONG_PASSWORD)
    expect(refused.status).toBe(401)
    expect(refused.body).toMatchObject({ _tag: "Unauthorized", code: "email_not_verified" })
    const viaClient = await viaRpc(server.url, undefined, (client) =>
      client.auth.login({ email, password: Redacted.make(STRONG_PASSWORD) })
    )
    expect(Either.isLeft(viaClient) && viaClient.left).toBeInstanceOf(Unauthorized)
    expect(Either.isLeft(viaClient) && (viaClient.left as Unauthorized).code).toBe("email_not_verified")
    // A wrong password still says only that the credentials are wrong.
    expect((await api.login(email, "not the password at all")).body).toMatchObject({ code: "invalid_credentials" })

    const mail = await waitForMail(
      node.dataDir,
      (m) => m.to.includes(email) && m.subject === "Verify your email address"
    )
    expect((await api.call("POST", "/v1/auth/email/verify", { body: { token: tokenIn(mail) } })).status).toBe(204)
    expect((await api.login(email, STRONG_PASSWORD)).status).toBe(200)
  })

  it("refuses an invitation accept by a session whose address is not verified, on both doors", async () => {
    const owner = await verifiedUser("prod-owner")
    const invitee = await verifiedUser("prod-invitee")
    const organizationId = await createOrganization(owner)
    // The session outlives the verification (an address changed or un-verified by an operator).
    await query(database.url, "UPDATE users SET email_verified_at = NULL WHERE id = $1", [invitee.userId])
    const invited = await api.call("POST", `/v1/orgs/${organizationId}/invitations`, {
      token: owner.token,
      body: { email: invitee.email, roleIds: [] }
    })
    expect(invited.status).toBe(201)
    const { token } = await invitationToken(node.dataDir, invitee.email)
    const refused = await api.call("POST", "/v1/invitations/accept", { token: invitee.token, body: { token } })
    expect(refused.status).toBe(401)
    expect(refused.body).toMatchObject({ code: "email_not_verified" })
    const viaClient = await viaRpc(server.url, invitee.token, (client) => client.invitations.accept({ token }))
    expect(Either.isLeft(viaClient) && (viaClient.left as Unauthorized).code).toBe("email_not_verified")

    await query(database.url, "UPDATE users SET email_verified_at = now() WHERE id = $1", [invitee.userId])
    expect((await api.call("POST", "/v1/invitations/accept", { token: invitee.token, body: { token } })).status).toBe(
      200
    )
  })
})

/** A GET with the raw header list given (repeated names stay repeated), after a Host header. */
const rawGet = (url: string, path: string, rawHeaders: Array<string>) =>
  new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
    const target = new URL(path, url)
    const req = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method: "GET",
        headers: ["Host", target.host, ...rawHeaders]
      },
      (res) => {
        let body = ""
        res.on("data", (chunk) => {
          body += chunk
        })
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
      }
    )
    req.on("error", reject)
    req.end()
  })

describe("outside production", () => {
  const APP = "https://app.example.com"
  const { server, api, database, signUp } = e2e({ ALLOWED_ORIGINS: APP })

  it("serves /docs with a Content-Security-Policy that runs only the page's own scripts (S52)", async () => {
    const response = await fetch(`${server.url}/docs`)
    expect(response.status).toBe(200)
    const policy = response.headers.get("content-security-policy") ?? ""
    expect(policy).toContain("default-src 'none'")
    expect(policy).toContain("frame-ancestors 'none'")
    const scriptSrc = policy.split(";").find((part) => part.trim().startsWith("script-src")) ?? ""
    expect(scriptSrc).not.toContain("unsafe-inline")
    expect(scriptSrc).not.toContain("*")
    const html = await response.text()
    const scripts = [...html.matchAll(/<script(?:\s[^>]*)?>([\s\S]*?)<\/script>/g)].map((m) => m[1]!)
    expect(scripts.length).toBeGreaterThan(1)
    for (const script of scripts.filter((s) => s.trim() !== "")) {
      expect(scriptSrc).toContain(`'sha256-${createHash("sha256").update(script).digest("base64")}'`)
    }
  })

  it("answers 401 invalid_token, not 500, to a token whose account was deleted in the database, on both doors", async () => {
    const user = await signUp("deleted")
    await query(database.url, "DELETE FROM users WHERE id = $1", [user.userId])
    // The deletion ends the account's sessions through the outbox (migration 0006): every node refuses
    // the token once the relay has delivered that, within the event stream's latency (GET /v1/me answers
    // from the node's profile cache, which the same event clears). Never a 500 meanwhile.
    const first = await api.me(user.token)
    expect([200, 401]).toContain(first.status)
    await eventually(
      () => api.call("GET", "/v1/auth/sessions", { token: user.token }),
      (reply) => reply.status !== 200
    )
    await eventually(
      () => api.me(user.token),
      (reply) => reply.status !== 200
    )
    const me = await api.me(user.token)
    expect(me.status).toBe(401)
    expect(me.body).toMatchObject({ _tag: "Unauthorized", code: "invalid_token" })
    const sessions = await api.call("GET", "/v1/auth/sessions", { token: user.token })
    expect(sessions.status).toBe(401)
    const viaClient = await viaRpc(server.url, user.token, (client) => client.auth.me())
    expect(Either.isLeft(viaClient) && viaClient.left).toBeInstanceOf(Unauthorized)
    expect(Either.isLeft(viaClient) && (viaClient.left as Unauthorized).code).toBe("invalid_token")
  })

  it("refuses a request carrying two Origin headers, whichever comes first", async () => {
    for (const origins of [
      [APP, "https://evil.example.com"],
      ["https://evil.example.com", APP]
    ]) {
      const reply = await rawGet(server.url, "/health/live", ["Origin", origins[0]!, "Origin", origins[1]!])
      expect(reply.status).toBe(400)
      expect(JSON.parse(reply.body)).toMatchObject({
        code: "invalid_payload",
        message: "Send at most one Origin header"
      })
      expect(reply.headers["access-control-allow-origin"]).toBeUndefined()
    }
    // One allowed Origin still gets its CORS answer.
    const single = await rawGet(server.url, "/health/live", ["Origin", APP])
    expect(single.status).toBe(200)
    expect(single.headers["access-control-allow-origin"]).toBe(APP)
  })
})
