/**
 * Text the database cannot store — a NUL character, an unpaired UTF-16 surrogate — is refused at
 * decoding with 400 `invalid_payload` naming the field, never a 500 (S50): in an email (register,
 * login, forgot password, signed out), an organization, role or permission text, an assignment
 * scope and a condition literal. The RPC client refuses the same input with the same message, and
 * a hand-written RPC line carrying it is refused as a payload that does not decode, not as an
 * internal error. Real Postgres and Redis.
 */
import { Cause, Effect, Redacted } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ApiClient } from "../../src/rpc/client.ts"
import { STORABLE_MESSAGE } from "../../src/rpc/Text.ts"
import { rest, uniqueEmail } from "../support/AuthClient.ts"
import { rpcAt } from "../support/E2e.ts"
import { createOrganization, signUp, tenant, type User } from "../support/Tenant.ts"
import { startTestNode, type TestNode } from "../support/TestNode.ts"

const NUL = "\u0000"
const LONE = "\ud800"
const HOSTILE = [
  ["NUL", NUL],
  ["a lone surrogate", LONE]
] as const

describe("hostile text is refused at decoding (S50)", () => {
  let node: TestNode
  let api: ReturnType<typeof rest>
  let owner: User
  let org: ReturnType<typeof tenant>
  let roleId: string

  beforeAll(async () => {
    node = await startTestNode({ TRUST_PROXY: "1", AUTH_IP_RATE_LIMIT: "1000" })
    api = rest(node.server.url)
    owner = await signUp(api, "hostile-owner")
    org = tenant(api, node.dataDir, owner, await createOrganization(api, owner, "hostile"))
    await org.createPermission("docs:read")
    roleId = (await org.createRole("hostile-target", [])).role.id
  }, 120_000)

  afterAll(() => node?.stop())

  /** Each place, over HTTP (method, path, body, signed in?) and the field the answer must name. */
  const places = (bad: string) => {
    const email = uniqueEmail("hostile").replace("@", `${bad}@`)
    const literal = (value: string) => ({ eq: [{ var: "resource.attributes.owner" }, value] })
    return [
      {
        what: "register email",
        method: "POST",
        path: "/v1/auth/register",
        field: "email",
        signedIn: false,
        body: { email, password: "a strong passphrase here", name: "Hostile" }
      },
      {
        what: "register name",
        method: "POST",
        path: "/v1/auth/register",
        field: "name",
        signedIn: false,
        body: { email: uniqueEmail("hostile-name"), password: "a strong passphrase here", name: `Bad${bad}Name` }
      },
      {
        what: "login email",
        method: "POST",
        path: "/v1/auth/login",
        field: "email",
        signedIn: false,
        body: { email, password: "whatever it is" }
      },
      {
        what: "forgot-password email",
        method: "POST",
        path: "/v1/auth/password/forgot",
        field: "email",
        signedIn: false,
        body: { email }
      },
      {
        what: "organization name",
        method: "POST",
        path: "/v1/orgs",
        field: "name",
        signedIn: true,
        body: { name: `Org${bad}`, slug: `hostile-${Date.now()}-${Math.floor(Math.random() * 1e6)}` }
      },
      {
        what: "organization rename",
        method: "PATCH",
        path: org.path,
        field: "name",
        signedIn: true,
        body: { name: `Org${bad}` }
      },
      {
        what: "role name",
        method: "POST",
        path: `${org.path}/roles`,
        field: "name",
        signedIn: true,
        body: { name: `Role${bad}` }
      },
      {
        what: "role description",
        method: "PATCH",
        path: `${org.path}/roles/${roleId}`,
        field: "description",
        signedIn: true,
        body: { description: `About${bad}` }
      },
      {
        what: "permission description",
        method: "POST",
        path: `${org.path}/permissions`,
        field: "description",
        signedIn: true,
        body: { key: "docs:share", description: `Share${bad}` }
      },
      {
        what: "condition literal",
        method: "PUT",
        path: `${org.path}/roles/${roleId}/grants`,
        field: "grants",
        signedIn: true,
        body: { grants: [{ permission: "docs:read", effect: "allow", condition: literal(`x${bad}`) }] }
      },
      {
        what: "assignment scope",
        method: "POST",
        path: `${org.path}/assignments`,
        field: "scope",
        signedIn: true,
        body: { userId: owner.userId, roleId, scope: { type: "project", id: `p${bad}` } }
      }
    ] as const
  }

  it.each(HOSTILE)("answers %s in every text field with 400 invalid_payload naming the field (S50)", async (_, bad) => {
    for (const place of places(bad)) {
      const reply = await api.call(place.method, place.path, {
        body: place.body,
        ...(place.signedIn ? { token: owner.token } : {})
      })
      expect(reply.status, place.what).toBe(400)
      expect(reply.body, place.what).toMatchObject({ code: "invalid_payload" })
      expect(String(reply.body.message), place.what).toContain(place.field)
      if (place.field !== "grants") expect(String(reply.body.message), place.what).toContain(STORABLE_MESSAGE)
    }
    // Nothing was half-done: the organization and the role kept their names.
    const current = await api.call<{ name: string }>("GET", org.path, { token: owner.token })
    expect(current.body.name).toBe("Org hostile")
    expect((await api.call("GET", "/health/live")).status).toBe(200)
  })

  it.each(HOSTILE)(
    "the RPC client refuses %s with the same message, before anything is stored (S50)",
    async (_, bad) => {
      const email = uniqueEmail("hostile-rpc").replace("@", `${bad}@`)
      const signedOut = rpcAt(node.server.url)()
      const signedIn = rpcAt(node.server.url)(owner.token)
      /** What refused the call: the client's own encoding of the payload (a defect), or the server. */
      const refusal = <A, E>(effect: Effect.Effect<A, E, ApiClient>) =>
        effect.pipe(
          Effect.as("accepted"),
          Effect.catchAllCause((cause) => Effect.succeed(Cause.pretty(cause)))
        )
      const refusals = [
        await signedOut(refusal(Effect.flatMap(ApiClient, (c) => c.auth.forgotPassword({ email })))),
        await signedOut(
          refusal(Effect.flatMap(ApiClient, (c) => c.auth.login({ email, password: Redacted.make("whatever") })))
        ),
        await signedIn(
          refusal(
            Effect.flatMap(ApiClient, (c) => c.orgs.update({ organizationId: org.organizationId, name: `Org${bad}` }))
          )
        ),
        await signedIn(
          refusal(
            Effect.flatMap(ApiClient, (c) => c.roles.create({ organizationId: org.organizationId, name: `Role${bad}` }))
          )
        )
      ]
      for (const message of refusals) expect(message).toContain(STORABLE_MESSAGE)
      expect(refusals[0]).toContain("email")
      expect(refusals[2]).toContain("name")
    }
  )

  it("refuses a hand-written RPC line carrying NUL as a payload that does not decode, naming the field (S50)", async () => {
    const line = JSON.stringify({
      _tag: "Request",
      id: "1",
      tag: "orgs.update",
      payload: { organizationId: org.organizationId, name: `Org${NUL}` },
      headers: [["authorization", `Bearer ${owner.token}`]]
    })
    const response = await fetch(`${node.server.url}/rpc`, {
      method: "POST",
      headers: { "content-type": "application/ndjson", authorization: `Bearer ${owner.token}` },
      body: `${line}\n`
    })
    // The answer is the typed error the REST door gives: a failure BadRequest invalid_payload naming
    // the field, not a defect.
    const exits = (await response.text())
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l))
      .filter((m) => m._tag === "Exit")
    expect(exits).toEqual([
      {
        _tag: "Exit",
        requestId: "1",
        exit: {
          _tag: "Failure",
          cause: { _tag: "Fail", error: { _tag: "BadRequest", code: "invalid_payload", message: expect.any(String) } }
        }
      }
    ])
    const message = exits[0].exit.cause.error.message as string
    expect(message).toContain(STORABLE_MESSAGE)
    expect(message).toMatch(/^name: /)
    expect(message).not.toContain(NUL)
    const current = await api.call<{ name: string }>("GET", org.path, { token: owner.token })
    expect(current.body.name).toBe("Org hostile")
  })

  it("still takes ordinary non-ASCII text: accents, CJK, emoji (a surrogate pair) (S50)", async () => {
    const renamed = await api.call<{ name: string }>("PATCH", org.path, {
      token: owner.token,
      body: { name: "Équipe 東京 🚀" }
    })
    expect(renamed.status).toBe(200)
    expect(renamed.body.name).toBe("Équipe 東京 🚀")
    await api.call("PATCH", org.path, { token: owner.token, body: { name: "Org hostile" } })
  })
})
