import { Effect, Either, Redacted } from "effect"
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from "jose"
import { TOTP } from "otpauth"
import { beforeAll, describe, expect, it } from "vitest"
import { generateKeys } from "../../src/layers/auth/Keys.ts"
import { ApiClient } from "../../src/rpc/client.ts"
import { InvalidInput, Unauthorized } from "../../src/rpc/Errors.ts"
import { freshIp, type Rest, STRONG_PASSWORD, type TokenPairBody, uniqueEmail } from "../support/AuthClient.ts"
import { type E2e, e2e } from "../support/E2e.ts"
import { readMailbox, tokenIn, waitForMail } from "../support/Mailbox.ts"
import type { ServerProcess } from "../support/ServerProcess.ts"
import { query } from "../support/TestDatabase.ts"

const ORIGIN = "https://app.example.com"

// Two nodes sharing one Postgres and one Redis, as in production.
describe("authentication, end to end on Postgres and Redis", () => {
  const {
    node,
    database,
    server: nodeA,
    api: a,
    signUp,
    another
  } = e2e(async () => {
    const keys = await Effect.runPromise(generateKeys)
    return {
      ALLOWED_ORIGINS: ORIGIN,
      JWT_PRIVATE_KEYS: JSON.stringify(keys.jwt),
      MFA_ENCRYPTION_KEY: keys.mfaKey,
      LOG_FORMAT: "json",
      LOG_LEVEL: "debug"
    }
  })
  let dataDir: string
  let nodeB: ServerProcess
  let b: Rest
  let rpcB: E2e["rpc"]

  beforeAll(async () => {
    dataDir = node.dataDir
    ;({ server: nodeB, api: b, rpc: rpcB } = await another())
  }, 60_000)

  describe("register", () => {
    it("answers the same for a new and a taken address, and the mail tells them apart", async () => {
      const email = uniqueEmail("register")
      const first = await a.register(email, STRONG_PASSWORD, "Ann")
      const second = await a.register(email.toUpperCase(), "another good passphrase", "Impostor")
      expect(first.status).toBe(202)
      expect(second.status).toBe(202)
      expect(second.body).toEqual(first.body)
      expect(first.body).toEqual({ status: "pending_verification" })
      await waitForMail(dataDir, (m) => m.to.includes(email) && m.subject === "Verify your email address")
      await waitForMail(
        dataDir,
        (m) => m.to.includes(email) && m.subject === "Someone tried to register with your address"
      )
    })

    it("lets a new account log in at once, and verifies the email with the mailed token once", async () => {
      const email = uniqueEmail("verify")
      await a.register(email, STRONG_PASSWORD)
      const login = await a.login(email, STRONG_PASSWORD)
      expect(login.status).toBe(200)
      expect((await a.me(login.body.accessToken)).body).toMatchObject({ email, emailVerified: false })
      const mail = await waitForMail(dataDir, (m) => m.to.includes(email) && m.subject === "Verify your email address")
      const token = tokenIn(mail)
      expect((await a.call("POST", "/v1/auth/email/verify", { body: { token } })).status).toBe(204)
      expect((await a.me(login.body.accessToken)).body).toMatchObject({ emailVerified: true })
      const again = await a.call("POST", "/v1/auth/email/verify", { body: { token } })
      expect(again.status).toBe(401)
      expect(again.body).toMatchObject({ code: "invalid_token" })
    })

    it("refuses common, short and oversized passwords with clear errors", async () => {
      const common = await a.register(uniqueEmail("weak"), "Password123")
      expect(common.status).toBe(400)
      expect(common.body).toMatchObject({ code: "weak_password", field: "password" })
      const short = await a.register(uniqueEmail("short"), "seven77")
      expect(short.status).toBe(400)
      expect(short.body).toMatchObject({ code: "invalid_payload" })
      expect(String(short.body.message)).toContain("password")
      const long = await a.register(uniqueEmail("long"), "x".repeat(129))
      expect(long.status).toBe(400)
      const huge = await a.register(uniqueEmail("huge"), "x".repeat(1024 * 1024))
      expect(huge.status).toBe(413)
    })

    it("accepts any characters and compares passwords exactly", async () => {
      const password = "  Pässwörd 🔐 with spaces  "
      const email = uniqueEmail("unicode")
      expect((await a.register(email, password)).status).toBe(202)
      expect((await a.login(email, password)).status).toBe(200)
      expect((await a.login(email, password.trim())).status).toBe(401)
    })

    it("stores an argon2id hash with m=19456, t=2, p=1, never the password", async () => {
      const { email } = await signUp("hash")
      const [row] = await query(database.url, "SELECT password_hash FROM users WHERE email = $1", [email])
      expect(String(row?.password_hash)).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/)
    })
  })

  describe("login", () => {
    it("returns an EdDSA access token that verifies against the public JWKS", async () => {
      const { tokens } = await signUp("jwks")
      expect(tokens).toMatchObject({ tokenType: "Bearer", expiresIn: 900 })
      const header = decodeProtectedHeader(tokens.accessToken)
      expect(header).toMatchObject({ alg: "EdDSA", typ: "at+jwt" })
      const jwks = (await fetch(`${nodeA.url}/.well-known/jwks.json`).then((r) => r.json())) as {
        keys: Array<Record<string, unknown> & { kid: string; kty: string }>
      }
      expect(jwks.keys[0]).toMatchObject({ kty: "OKP", crv: "Ed25519", alg: "EdDSA", use: "sig", kid: header.kid })
      expect(jwks.keys[0]?.d).toBeUndefined()
      const { payload } = await jwtVerify(tokens.accessToken, createLocalJWKSet(jwks as never), {
        algorithms: ["EdDSA"]
      })
      expect(payload.sid).toBe(tokens.sessionId)
      expect(payload.exp! - payload.iat!).toBe(900)
    })

    it("gives the same answer for an unknown user, a wrong password and a disabled user", async () => {
      const { email } = await signUp("uniform")
      const disabled = await signUp("disabled")
      await query(database.url, "UPDATE users SET disabled_at = now() WHERE email = $1", [disabled.email])
      const unknown = await a.login(uniqueEmail("nobody"), STRONG_PASSWORD)
      const wrong = await a.login(email, "not the password at all")
      const off = await a.login(disabled.email, disabled.password)
      for (const reply of [unknown, wrong, off]) {
        expect(reply.status).toBe(401)
        expect(reply.body).toEqual({
          _tag: "Unauthorized",
          code: "invalid_credentials",
          message: "The email or password is not correct"
        })
      }
    })

    it("takes about as long for an unknown user as for a wrong password (no timing oracle)", async () => {
      const { email } = await signUp("timing")
      const time = async (f: () => Promise<unknown>) => {
        const started = performance.now()
        await f()
        return performance.now() - started
      }
      const median = (xs: Array<number>) => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)]!
      const unknown: Array<number> = []
      const wrong: Array<number> = []
      for (let i = 0; i < 5; i++) {
        unknown.push(await time(() => a.login(uniqueEmail("ghost"), "wrong password 1")))
        wrong.push(await time(() => a.login(email, `wrong password ${i}`)))
      }
      // Both spend one argon2id verification (~10 ms); without the dummy verify, unknown would be ~1 ms.
      expect(median(unknown)).toBeGreaterThan(median(wrong) / 3)
      expect(median(wrong)).toBeLessThan(median(unknown) * 3)
    })

    it("forgets earlier failures after a successful login", async () => {
      const { email, password } = await signUp("reset-counter")
      for (let i = 0; i < 4; i++) expect((await a.login(email, `wrong ${i} password`, freshIp())).status).toBe(401)
      expect((await a.login(email, password)).status).toBe(200)
      for (let i = 0; i < 4; i++) expect((await a.login(email, `wrong ${i} again`, freshIp())).status).toBe(401)
      expect((await a.login(email, password)).status).toBe(200)
    })

    it("throttles an account after 5 failures whatever the IP, with Retry-After, and not forever", async () => {
      const { email, password } = await signUp("lockout")
      for (let i = 0; i < 5; i++) expect((await a.login(email, `wrong ${i} password`, freshIp())).status).toBe(401)
      const locked = await a.login(email, password, freshIp())
      expect(locked.status).toBe(429)
      expect(locked.body).toMatchObject({ code: "too_many_requests" })
      const retryAfter = Number(locked.headers.get("retry-after"))
      expect(retryAfter).toBeGreaterThan(0)
      expect(retryAfter).toBeLessThanOrEqual(60)
      // An unknown address gets the same treatment, so a 429 reveals nothing about existence.
      const ghost = uniqueEmail("ghost-lock")
      for (let i = 0; i < 5; i++) await a.login(ghost, `wrong ${i} password`, freshIp())
      expect((await a.login(ghost, password, freshIp())).status).toBe(429)
      // Another account is not affected.
      const other = await signUp("lockout-other")
      expect((await a.login(other.email, other.password)).status).toBe(200)
    })
  })

  describe("refresh sessions", () => {
    it("rotate on every refresh: the new pair works and the old refresh token is dead", async () => {
      const { tokens } = await signUp("rotate")
      const next = await a.refresh(tokens.refreshToken)
      expect(next.status).toBe(200)
      expect(next.body.refreshToken).not.toBe(tokens.refreshToken)
      expect(next.body.sessionId).toBe(tokens.sessionId)
      expect((await a.me(next.body.accessToken)).status).toBe(200)
      const again = await a.refresh(next.body.refreshToken)
      expect(again.status).toBe(200)
    })

    it("end the whole family when a rotated token is replayed, live token included, and audit it", async () => {
      const { tokens } = await signUp("reuse")
      const next = await a.refresh(tokens.refreshToken)
      expect(next.status).toBe(200)
      const replay = await a.refresh(tokens.refreshToken)
      expect(replay.status).toBe(401)
      expect(replay.body).toMatchObject({ code: "invalid_token" })
      expect((await a.refresh(next.body.refreshToken)).status).toBe(401)
      expect((await a.me(next.body.accessToken)).status).toBe(401)
      expect((await b.me(next.body.accessToken)).status).toBe(401)
      const audit = await query(database.url, "SELECT action, target FROM audit_log WHERE target = $1", [
        `session:${tokens.sessionId}`
      ])
      expect(audit.map((row) => row.action)).toContain("session.refresh_token_reused")
    })

    it("let exactly one of two concurrent refreshes with the same token succeed", async () => {
      const { tokens } = await signUp("race")
      const replies = await Promise.all([a.refresh(tokens.refreshToken), b.refresh(tokens.refreshToken)])
      expect(replies.map((r) => r.status).sort()).toEqual([200, 401])
    })

    it("are opaque 256-bit tokens stored only as SHA-256", async () => {
      const { tokens } = await signUp("opaque")
      expect(tokens.refreshToken).toMatch(/^[A-Za-z0-9_-]{43}$/)
      const rows = await query(database.url, "SELECT token_hash FROM refresh_tokens WHERE session_id = $1", [
        tokens.sessionId
      ])
      expect(rows).toHaveLength(1)
      const stored = rows[0]!.token_hash as Buffer
      expect(stored.length).toBe(32)
      expect(stored.toString("utf8")).not.toContain(tokens.refreshToken)
    })

    it("expire when idle past REFRESH_IDLE_TTL or older than REFRESH_ABSOLUTE_TTL", async () => {
      const idle = await signUp("idle")
      await query(database.url, "UPDATE sessions SET idle_expires_at = now() - interval '1 second' WHERE id = $1", [
        idle.tokens.sessionId
      ])
      expect((await a.refresh(idle.tokens.refreshToken)).status).toBe(401)
      const old = await signUp("absolute")
      await query(database.url, "UPDATE sessions SET absolute_expires_at = now() - interval '1 second' WHERE id = $1", [
        old.tokens.sessionId
      ])
      expect((await a.refresh(old.tokens.refreshToken)).status).toBe(401)
    })
  })

  describe("logout and revocation", () => {
    it("ends the session at once on every node: the very next request on the other node is refused", async () => {
      const { tokens } = await signUp("logout")
      expect((await b.me(tokens.accessToken)).status).toBe(200)
      expect((await a.call("POST", "/v1/auth/logout", { token: tokens.accessToken })).status).toBe(204)
      const onB = await b.me(tokens.accessToken)
      expect(onB.status).toBe(401)
      expect(onB.body).toMatchObject({ code: "invalid_token" })
      expect((await a.me(tokens.accessToken)).status).toBe(401)
      expect((await a.refresh(tokens.refreshToken)).status).toBe(401)
    })

    it("logout-all ends every session of the user", async () => {
      const { email, password, tokens } = await signUp("logout-all")
      const second = (await a.login(email, password)).body
      expect((await b.call("POST", "/v1/auth/logout-all", { token: tokens.accessToken })).status).toBe(204)
      expect((await a.me(second.accessToken)).status).toBe(401)
      expect((await b.me(tokens.accessToken)).status).toBe(401)
    })

    it("lists the user's sessions with device details, and revokes one by id", async () => {
      const { email, password, tokens } = await signUp("sessions")
      const phone = await a.call<TokenPairBody>("POST", "/v1/auth/login", {
        body: { email, password },
        ip: "203.0.113.9",
        headers: { "user-agent": "PhoneApp/1.0" }
      })
      const list = await a.call<Array<Record<string, unknown>>>("GET", "/v1/auth/sessions", {
        token: tokens.accessToken
      })
      expect(list.status).toBe(200)
      expect(list.body).toHaveLength(2)
      expect(list.body.find((s) => s.current === true)?.id).toBe(tokens.sessionId)
      expect(list.body.find((s) => s.id === phone.body.sessionId)).toMatchObject({
        current: false,
        ip: "203.0.113.9",
        userAgent: "PhoneApp/1.0"
      })
      const revoke = await a.call("DELETE", `/v1/auth/sessions/${phone.body.sessionId}`, { token: tokens.accessToken })
      expect(revoke.status).toBe(204)
      expect((await b.me(phone.body.accessToken)).status).toBe(401)
      expect((await a.me(tokens.accessToken)).status).toBe(200)
    })

    it("answers 404 for another user's session id, and leaves that session alone", async () => {
      const mallory = await signUp("mallory")
      const victim = await signUp("victim")
      const attempt = await a.call("DELETE", `/v1/auth/sessions/${victim.tokens.sessionId}`, {
        token: mallory.tokens.accessToken
      })
      expect(attempt.status).toBe(404)
      expect((await a.me(victim.tokens.accessToken)).status).toBe(200)
    })

    it("refuses requests without a token, with a malformed token, or with an unsigned one", async () => {
      expect((await a.call("GET", "/v1/me")).body).toMatchObject({ code: "unauthorized" })
      expect((await a.me("not-a-jwt")).body).toMatchObject({ code: "invalid_token" })
      const { tokens } = await signUp("alg-none")
      const [, payload] = tokens.accessToken.split(".")
      const none = `${Buffer.from(JSON.stringify({ alg: "none", typ: "at+jwt" })).toString("base64url")}.${payload}.`
      expect((await a.me(none)).status).toBe(401)
    })
  })

  describe("passwords", () => {
    it("forgot-password answers 202 for any address; the reset token works once, ends all sessions, no auto-login", async () => {
      const { email, tokens } = await signUp("reset")
      const unknown = await a.call("POST", "/v1/auth/password/forgot", { body: { email: uniqueEmail("unknown") } })
      const known = await a.call("POST", "/v1/auth/password/forgot", { body: { email } })
      expect(unknown.status).toBe(202)
      expect(known.status).toBe(202)
      expect(known.body).toEqual(unknown.body)
      const mail = await waitForMail(dataDir, (m) => m.to.includes(email) && m.subject === "Reset your password")
      const token = tokenIn(mail)
      const weak = await a.call("POST", "/v1/auth/password/reset", { body: { token, password: "qwertyuiop" } })
      expect(weak.body).toMatchObject({ code: "weak_password" })
      const reset = await a.call("POST", "/v1/auth/password/reset", {
        body: { token, password: "a brand new passphrase" }
      })
      expect(reset.status).toBe(204)
      expect(reset.body).toEqual({})
      expect((await b.me(tokens.accessToken)).status).toBe(401)
      expect((await a.refresh(tokens.refreshToken)).status).toBe(401)
      expect((await a.login(email, STRONG_PASSWORD)).status).toBe(401)
      expect((await a.login(email, "a brand new passphrase")).status).toBe(200)
      const reuse = await a.call("POST", "/v1/auth/password/reset", {
        body: { token, password: "yet another passphrase" }
      })
      expect(reuse.status).toBe(401)
      await waitForMail(dataDir, (m) => m.to.includes(email) && m.subject === "Your password was changed")
    })

    it("a reset token expires after 30 minutes", async () => {
      const { email } = await signUp("reset-expiry")
      await a.call("POST", "/v1/auth/password/forgot", { body: { email } })
      const token = tokenIn(
        await waitForMail(dataDir, (m) => m.to.includes(email) && m.subject === "Reset your password")
      )
      const [row] = await query(
        database.url,
        "SELECT round(extract(epoch FROM expires_at - created_at)) AS ttl FROM one_time_tokens WHERE purpose = 'password_reset' AND user_id = (SELECT id FROM users WHERE email = $1)",
        [email]
      )
      expect(Number(row?.ttl)).toBe(1800)
      await query(database.url, "UPDATE one_time_tokens SET expires_at = now() WHERE purpose = 'password_reset'")
      expect(
        (await a.call("POST", "/v1/auth/password/reset", { body: { token, password: "a brand new passphrase" } }))
          .status
      ).toBe(401)
    })

    it("change needs the current password and ends the other sessions, not this one", async () => {
      const { email, password, tokens } = await signUp("change")
      const other = (await a.login(email, password)).body
      const wrong = await a.call("POST", "/v1/auth/password/change", {
        token: tokens.accessToken,
        body: { currentPassword: "not it at all", newPassword: "a different passphrase" }
      })
      expect(wrong.status).toBe(400)
      expect(wrong.body).toMatchObject({ code: "wrong_password", field: "currentPassword" })
      const changed = await a.call("POST", "/v1/auth/password/change", {
        token: tokens.accessToken,
        body: { currentPassword: password, newPassword: "a different passphrase" }
      })
      expect(changed.status).toBe(204)
      expect((await a.me(tokens.accessToken)).status).toBe(200)
      expect((await b.me(other.accessToken)).status).toBe(401)
      await waitForMail(dataDir, (m) => m.to.includes(email) && m.subject === "Your password was changed")
    })
  })

  describe("TOTP MFA", () => {
    it("enrolls, confirms with recovery codes, requires a second factor at login, refuses replays", async () => {
      const { email, password, tokens } = await signUp("mfa")
      const enroll = await a.call<{ secret: string; otpauthUrl: string }>("POST", "/v1/auth/mfa/totp/enroll", {
        token: tokens.accessToken
      })
      expect(enroll.status).toBe(200)
      expect(enroll.body.secret).toMatch(/^[A-Z2-7]{32}$/)
      expect(enroll.body.otpauthUrl).toMatch(/^otpauth:\/\/totp\//)
      const totp = new TOTP({ secret: enroll.body.secret })
      const now = Date.now()
      const confirmCode = totp.generate({ timestamp: now })
      const confirm = await a.call<{ recoveryCodes: Array<string> }>("POST", "/v1/auth/mfa/totp/confirm", {
        token: tokens.accessToken,
        body: { code: confirmCode }
      })
      expect(confirm.status).toBe(200)
      expect(confirm.body.recoveryCodes).toHaveLength(10)
      expect(new Set(confirm.body.recoveryCodes).size).toBe(10)
      expect((await a.me(tokens.accessToken)).body).toMatchObject({ mfaEnabled: true })
      await waitForMail(dataDir, (m) => m.to.includes(email) && m.subject === "Two-factor authentication is on")

      const challenge = await a.login(email, password)
      expect(challenge.body).toMatchObject({ mfaRequired: true })
      expect(challenge.body.accessToken).toBeUndefined()
      const mfaToken = challenge.body.mfaToken!
      const replay = await a.call("POST", "/v1/auth/login/mfa", { body: { mfaToken, code: confirmCode } })
      expect(replay.status).toBe(401)
      const nextCode = totp.generate({ timestamp: now + 30_000 })
      const ok = await a.call<TokenPairBody>("POST", "/v1/auth/login/mfa", { body: { mfaToken, code: nextCode } })
      expect(ok.status).toBe(200)
      expect((await a.me(ok.body.accessToken)).status).toBe(200)
      const tokenReuse = await a.call("POST", "/v1/auth/login/mfa", { body: { mfaToken, code: nextCode } })
      expect(tokenReuse.status).toBe(401)

      // A recovery code works once.
      const recovery = confirm.body.recoveryCodes[0]!
      const second = (await a.login(email, password)).body.mfaToken!
      expect((await a.call("POST", "/v1/auth/login/mfa", { body: { mfaToken: second, code: recovery } })).status).toBe(
        200
      )
      const third = (await a.login(email, password)).body.mfaToken!
      expect((await a.call("POST", "/v1/auth/login/mfa", { body: { mfaToken: third, code: recovery } })).status).toBe(
        401
      )

      // Turning it off needs the password and a code.
      const noPassword = await a.call("POST", "/v1/auth/mfa/totp/disable", {
        token: tokens.accessToken,
        body: { password: "wrong wrong wrong", code: confirm.body.recoveryCodes[1] }
      })
      expect(noPassword.body).toMatchObject({ code: "wrong_password" })
      const off = await a.call("POST", "/v1/auth/mfa/totp/disable", {
        token: tokens.accessToken,
        body: { password, code: confirm.body.recoveryCodes[1] }
      })
      expect(off.status).toBe(204)
      expect((await a.me(tokens.accessToken)).body).toMatchObject({ mfaEnabled: false })
      expect((await a.login(email, password)).body.accessToken).toBeDefined()
    })

    it("limits code guessing, and the TOTP secret is stored encrypted", async () => {
      const { email, password, tokens } = await signUp("mfa-guess")
      const enroll = await a.call<{ secret: string }>("POST", "/v1/auth/mfa/totp/enroll", { token: tokens.accessToken })
      const [row] = await query(
        database.url,
        "SELECT secret_encrypted FROM mfa_totp WHERE user_id = (SELECT id FROM users WHERE email = $1)",
        [email]
      )
      expect(String(row?.secret_encrypted)).not.toContain(enroll.body.secret)
      const totp = new TOTP({ secret: enroll.body.secret })
      await a.call("POST", "/v1/auth/mfa/totp/confirm", { token: tokens.accessToken, body: { code: totp.generate() } })
      const mfaToken = (await a.login(email, password)).body.mfaToken!
      const statuses: Array<number> = []
      for (let i = 0; i < 7; i++) {
        statuses.push((await a.call("POST", "/v1/auth/login/mfa", { body: { mfaToken, code: "000000" } })).status)
      }
      expect(statuses.slice(0, 5).every((s) => s === 401)).toBe(true)
      expect(statuses.at(-1)).toBe(429)
    })
  })

  describe("password reset with MFA on", () => {
    it("does not bypass the second factor: after a reset, login still asks for a code", async () => {
      const { email, tokens } = await signUp("reset-mfa")
      const enroll = await a.call<{ secret: string }>("POST", "/v1/auth/mfa/totp/enroll", { token: tokens.accessToken })
      const totp = new TOTP({ secret: enroll.body.secret })
      await a.call("POST", "/v1/auth/mfa/totp/confirm", { token: tokens.accessToken, body: { code: totp.generate() } })
      await a.call("POST", "/v1/auth/password/forgot", { body: { email } })
      const token = tokenIn(
        await waitForMail(dataDir, (m) => m.to.includes(email) && m.subject === "Reset your password")
      )
      const reset = await a.call("POST", "/v1/auth/password/reset", {
        body: { token, password: "reset but still mfa" }
      })
      expect(reset.status).toBe(204)
      const login = await a.login(email, "reset but still mfa")
      expect(login.body).toMatchObject({ mfaRequired: true })
      expect(login.body.accessToken).toBeUndefined()
    })
  })

  describe("browsers with the refresh cookie", () => {
    it("get an HttpOnly, Secure, SameSite=Strict cookie on /v1/auth, usable only from an allowed Origin", async () => {
      const email = uniqueEmail("cookie")
      await a.register(email, STRONG_PASSWORD)
      const login = await a.call<TokenPairBody>("POST", "/v1/auth/login", {
        body: { email, password: STRONG_PASSWORD },
        headers: { origin: ORIGIN }
      })
      const cookie = login.headers.get("set-cookie") ?? ""
      expect(cookie).toMatch(/^lps_refresh=[A-Za-z0-9_-]{43};/)
      expect(cookie).toMatch(/HttpOnly/i)
      expect(cookie).toMatch(/Secure/i)
      expect(cookie).toMatch(/SameSite=Strict/i)
      expect(cookie).toMatch(/Path=\/v1\/auth/)
      const value = cookie.split(";")[0]!
      const fromApp = await a.call<TokenPairBody>("POST", "/v1/auth/refresh", {
        body: {},
        headers: { origin: ORIGIN, cookie: value }
      })
      expect(fromApp.status).toBe(200)
      const next = (fromApp.headers.get("set-cookie") ?? "").split(";")[0]!
      const fromElsewhere = await a.call("POST", "/v1/auth/refresh", {
        body: {},
        headers: { origin: "https://evil.example.com", cookie: next }
      })
      expect(fromElsewhere.status).toBe(401)
      const noOrigin = await a.call("POST", "/v1/auth/refresh", { body: {}, headers: { cookie: next } })
      expect(noOrigin.status).toBe(401)
    })
  })

  describe("through the typed RPC client", () => {
    it("registers, logs in, reads /me, lists sessions and logs out, with typed errors", async () => {
      let token: string | undefined
      const email = uniqueEmail("rpc")
      const result = await Effect.gen(function* () {
        const client = yield* ApiClient.make(`${nodeA.url}/rpc`, { accessToken: () => token })
        yield* client.auth.register({ email, password: Redacted.make(STRONG_PASSWORD), name: "Rita" })
        const wrong = yield* Effect.either(client.auth.login({ email, password: Redacted.make("nope nope nope") }))
        const weak = yield* Effect.either(
          client.auth.register({ email: uniqueEmail("rpc-weak"), password: Redacted.make("password123"), name: "W" })
        )
        const login = yield* client.auth.login({ email, password: Redacted.make(STRONG_PASSWORD) })
        if (!("accessToken" in login)) return yield* Effect.die("expected tokens")
        token = login.accessToken
        const me = yield* client.auth.me()
        const sessions = yield* client.auth.sessions()
        yield* client.auth.logout()
        const after = yield* Effect.either(client.auth.me())
        return { wrong, weak, me, sessions, after }
      }).pipe(Effect.scoped, Effect.runPromise)
      expect(Either.isLeft(result.wrong) && result.wrong.left).toBeInstanceOf(Unauthorized)
      expect(Either.isLeft(result.wrong) && (result.wrong.left as Unauthorized).code).toBe("invalid_credentials")
      expect(Either.isLeft(result.weak) && result.weak.left).toBeInstanceOf(InvalidInput)
      expect(result.me.email).toBe(email)
      expect(result.sessions).toHaveLength(1)
      expect(Either.isLeft(result.after) && (result.after.left as Unauthorized).code).toBe("invalid_token")
    })
  })

  describe("the rest of the table through the RPC client", () => {
    it("refresh, sessions, revoke, password change, reset, email verification, MFA and logout-all", async () => {
      let token: string | undefined
      const email = uniqueEmail("rpc-all")
      const run = rpcB(() => token)
      const client = ApiClient
      const signIn = (password: string) =>
        run(
          Effect.flatMap(client, (c) => c.auth.login({ email, password: Redacted.make(password) })).pipe(
            Effect.map((r) => r as TokenPairBody)
          )
        )

      await run(
        Effect.flatMap(client, (c) => c.auth.register({ email, password: Redacted.make(STRONG_PASSWORD), name: "R" }))
      )
      const verification = tokenIn(
        await waitForMail(dataDir, (m) => m.to.includes(email) && m.subject === "Verify your email address")
      )
      await run(Effect.flatMap(client, (c) => c.auth.verifyEmail({ token: verification })))

      const first = await signIn(STRONG_PASSWORD)
      const second = await signIn(STRONG_PASSWORD)
      token = first.accessToken
      const rotated = await run(Effect.flatMap(client, (c) => c.auth.refresh({ refreshToken: first.refreshToken })))
      expect(rotated.sessionId).toBe(first.sessionId)
      const replay = await run(
        Effect.flatMap(client, (c) => Effect.either(c.auth.refresh({ refreshToken: first.refreshToken })))
      )
      expect(Either.isLeft(replay) && (replay.left as Unauthorized).code).toBe("invalid_token")

      token = second.accessToken
      const me = await run(Effect.flatMap(client, (c) => c.auth.me()))
      expect(me).toMatchObject({ email, emailVerified: true, mfaEnabled: false })
      const sessions = await run(Effect.flatMap(client, (c) => c.auth.sessions()))
      expect(sessions.map((x) => x.id)).toEqual([second.sessionId])

      const third = await signIn(STRONG_PASSWORD)
      await run(Effect.flatMap(client, (c) => c.auth.revokeSession({ id: third.sessionId })))
      expect((await a.me(third.accessToken)).status).toBe(401)

      const wrong = await run(
        Effect.flatMap(client, (c) =>
          Effect.either(
            c.auth.changePassword({
              currentPassword: Redacted.make("not the password"),
              newPassword: Redacted.make("rpc changed passphrase")
            })
          )
        )
      )
      expect(Either.isLeft(wrong) && (wrong.left as InvalidInput).code).toBe("wrong_password")
      await run(
        Effect.flatMap(client, (c) =>
          c.auth.changePassword({
            currentPassword: Redacted.make(STRONG_PASSWORD),
            newPassword: Redacted.make("rpc changed passphrase")
          })
        )
      )

      const enrollment = await run(Effect.flatMap(client, (c) => c.auth.enrollTotp()))
      const totp = new TOTP({ secret: enrollment.secret })
      const codes = await run(Effect.flatMap(client, (c) => c.auth.confirmTotp({ code: totp.generate() })))
      expect(codes.recoveryCodes).toHaveLength(10)
      const challenge = await run(
        Effect.flatMap(client, (c) => c.auth.login({ email, password: Redacted.make("rpc changed passphrase") }))
      )
      expect(challenge).toMatchObject({ mfaRequired: true })
      const viaCode = await run(
        Effect.flatMap(client, (c) =>
          c.auth.loginMfa({ mfaToken: (challenge as { mfaToken: string }).mfaToken, code: codes.recoveryCodes[0]! })
        )
      )
      expect(viaCode.accessToken).toBeDefined()
      await run(
        Effect.flatMap(client, (c) =>
          c.auth.disableTotp({ password: Redacted.make("rpc changed passphrase"), code: codes.recoveryCodes[1]! })
        )
      )

      await run(Effect.flatMap(client, (c) => c.auth.forgotPassword({ email })))
      const resetToken = tokenIn(
        await waitForMail(dataDir, (m) => m.to.includes(email) && m.subject === "Reset your password")
      )
      await run(
        Effect.flatMap(client, (c) =>
          c.auth.resetPassword({ token: resetToken, password: Redacted.make("rpc reset passphrase") })
        )
      )
      expect((await a.me(second.accessToken)).status).toBe(401)

      const fresh = await signIn("rpc reset passphrase")
      token = fresh.accessToken
      await run(Effect.flatMap(client, (c) => c.auth.logoutAll()))
      expect((await a.me(fresh.accessToken)).status).toBe(401)

      const jwks = await run(Effect.flatMap(client, (c) => c.auth.jwks()))
      expect(jwks.keys[0]).toMatchObject({ alg: "EdDSA", use: "sig" })
    })
  })

  describe("what stays out of logs and the audit trail", () => {
    it("never logs or audits passwords or tokens, and audits logins with ip, user agent and request id", async () => {
      const password = "a very recognisable passphrase"
      const { email, tokens } = await signUp("secrets", password)
      await a.refresh(tokens.refreshToken)
      await a.login(email, "another recognisable wrong one")
      const logs = nodeA.output() + nodeB.output()
      for (const secret of [password, "another recognisable wrong one", tokens.refreshToken, tokens.accessToken]) {
        expect(logs).not.toContain(secret)
      }
      const audit = await query(
        database.url,
        "SELECT action, ip, user_agent, request_id, data::text AS data FROM audit_log WHERE actor_id = (SELECT id FROM users WHERE email = $1)",
        [email]
      )
      expect(audit.map((row) => row.action)).toEqual(expect.arrayContaining(["login.succeeded", "login.failed"]))
      for (const row of audit) {
        expect(row.ip).toMatch(/^10\./)
        expect(row.request_id).toBeTruthy()
        for (const secret of [password, tokens.refreshToken]) expect(String(row.data)).not.toContain(secret)
      }
      expect(readMailbox(dataDir).length).toBeGreaterThan(0)
    })
  })
})
