/**
 * Every operation is declared once and served on two doors. This walks every operation of the API
 * and calls it over HTTP and through the RPC client as the callers a guard must turn away (nobody
 * signed in, a stranger to the organization, a member holding nothing, a user who is not a platform
 * administrator), with a valid input made from the operation's own schema, and shows both doors
 * answer the same error (`_tag`, `code`, `message`), naming the same required permission.
 */
import { HttpApi, type HttpApiEndpoint } from "@effect/platform"
import { Arbitrary, Context, Effect, Either, FastCheck, Option, Schema } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Api } from "../../src/rpc/Api.ts"
import { ApiClient } from "../../src/rpc/client.ts"
import { Rpcs } from "../../src/rpc/Rpcs.ts"
import {
  Authentication,
  OrgAuthorization,
  PlatformAdmin,
  RequiredPermission,
  SelfService
} from "../../src/rpc/Security.ts"
import { rest } from "../support/AuthClient.ts"
import { signUp, tenant, type User } from "../support/Tenant.ts"
import { startTestNode, type TestNode } from "../support/TestNode.ts"

type Guard = "none" | "signed-in" | "member" | "platform-admin"

interface Operation {
  readonly group: string
  readonly endpoint: HttpApiEndpoint.HttpApiEndpoint.AnyWithProps
  readonly guard: Guard
  readonly permission: string | undefined
  readonly selfService: boolean
}

const guardOf = (middlewares: ReadonlySet<unknown>): Guard =>
  middlewares.has(OrgAuthorization)
    ? "member"
    : middlewares.has(PlatformAdmin)
      ? "platform-admin"
      : middlewares.has(Authentication)
        ? "signed-in"
        : "none"

const operations: Array<Operation> = []
HttpApi.reflect(Api, {
  onGroup: () => {},
  onEndpoint: ({ group, endpoint, mergedAnnotations, middleware }) => {
    operations.push({
      group: group.identifier,
      endpoint: endpoint as unknown as HttpApiEndpoint.HttpApiEndpoint.AnyWithProps,
      guard: guardOf(middleware),
      permission: Option.getOrUndefined(Context.getOption(mergedAnnotations, RequiredPermission)),
      selfService: Option.isSome(Context.getOption(mergedAnnotations, SelfService))
    })
  }
})

const rpcOf = (operation: Operation) => Rpcs.requests.get(`${operation.group}.${operation.endpoint.name}`)

/** A valid input for the operation (what its Rpc's payload accepts), made from the schema itself. */
const sampleInput = (operation: Operation, organizationId: string): Record<string, unknown> => {
  const schema = rpcOf(operation)!.payloadSchema as Schema.Schema<Record<string, unknown>>
  const [sample] = FastCheck.sample(Arbitrary.make(schema), { numRuns: 1, seed: 42 })
  return "organizationId" in (sample ?? {}) ? { ...sample, organizationId } : { ...sample }
}

const encoded = (schema: Option.Option<Schema.Schema.Any>, input: Record<string, unknown>) => {
  if (Option.isNone(schema)) return undefined
  const s = schema.value as Schema.Schema<Record<string, unknown>, Record<string, unknown>>
  const fields = Object.keys((s as unknown as { fields: Record<string, unknown> }).fields)
  const own = Object.fromEntries(Object.entries(input).filter(([key]) => fields.includes(key)))
  return Schema.encodeSync(s)(own)
}

describe("both doors of every operation", () => {
  let node: TestNode
  let api: ReturnType<typeof rest>
  let owner: User
  let stranger: User
  let nobody: User
  let organizationId: string

  beforeAll(async () => {
    node = await startTestNode()
    api = rest(node.server.url)
    owner = await signUp(api, "doors-owner")
    stranger = await signUp(api, "doors-stranger")
    nobody = await signUp(api, "doors-nobody")
    const created = await api.call<{ id: string }>("POST", "/v1/orgs", {
      token: owner.token,
      body: { name: "Doors", slug: `doors-${Date.now()}` }
    })
    organizationId = created.body.id
    // A member holding no role at all: every permission is missing.
    await tenant(api, node.dataDir, owner, organizationId).join(nobody, [])
  }, 120_000)

  afterAll(() => node?.stop())

  /** The operation over HTTP: path parameters in the path, the query, the JSON body. */
  const overHttp = async (operation: Operation, input: Record<string, unknown>, token: string | undefined) => {
    const { endpoint } = operation
    const path = encoded(endpoint.pathSchema, input) ?? {}
    const query = encoded(endpoint.urlParamsSchema, input)
    const body = encoded(endpoint.payloadSchema, input)
    let url = endpoint.path.replace(/:(\w+)/g, (_, name: string) => encodeURIComponent(String(path[name])))
    const params = new URLSearchParams(
      Object.entries(query ?? (endpoint.method === "GET" ? (body ?? {}) : {})).map(
        ([k, v]) => [k, String(v)] as [string, string]
      )
    )
    if ([...params].length > 0) url += `?${params}`
    const reply = await api.call(endpoint.method, url, {
      ...(token === undefined ? {} : { token }),
      ...(endpoint.method === "GET" || body === undefined ? {} : { body })
    })
    return {
      status: reply.status,
      error: { _tag: reply.body._tag, code: reply.body.code, message: reply.body.message }
    }
  }

  /** The same operation through the typed RPC client. */
  const overRpc = async (operation: Operation, input: Record<string, unknown>, token: string | undefined) => {
    const result = await Effect.gen(function* () {
      const client = (yield* ApiClient) as unknown as Record<
        string,
        Record<string, (input: unknown) => Effect.Effect<unknown, { _tag: string; code: string; message: string }>>
      >
      return yield* Effect.either(client[operation.group]![operation.endpoint.name]!(input))
    }).pipe(Effect.provide(ApiClient.layer(`${node.server.url}/rpc`, { accessToken: () => token })), Effect.runPromise)
    if (Either.isRight(result)) return { error: undefined }
    const { _tag, code, message } = result.left
    return { error: { _tag, code, message } }
  }

  const guarded = operations.filter((operation) => operation.guard !== "none")

  it("declares each operation once: one Rpc per endpoint, named group.endpoint, with the same permission", () => {
    expect(Rpcs.requests.size).toBe(operations.length)
    for (const operation of operations) {
      const rpc = rpcOf(operation)
      expect(rpc, `${operation.group}.${operation.endpoint.name}`).toBeDefined()
      expect(Option.getOrUndefined(Context.getOption(rpc!.annotations, RequiredPermission))).toBe(operation.permission)
    }
    expect(guarded.filter((operation) => operation.guard === "member").length).toBe(25)
  })

  it.each(guarded.map((operation) => [`${operation.group}.${operation.endpoint.name}`, operation] as const))(
    "%s turns away the same callers with the same error on both doors",
    async (_name, operation) => {
      const input = sampleInput(operation, organizationId)
      const callers: Array<readonly [who: string, token: string | undefined, status: number]> = [
        ["nobody signed in", undefined, 401]
      ]
      if (operation.guard === "member") {
        callers.push(["a stranger to the organization", stranger.token, 404])
        if (!operation.selfService) callers.push(["a member holding nothing", nobody.token, 403])
      }
      if (operation.guard === "platform-admin") callers.push(["a user who is not an administrator", owner.token, 403])
      for (const [who, token, status] of callers) {
        const http = await overHttp(operation, input, token)
        const rpc = await overRpc(operation, input, token)
        expect(http.status, `${who} over HTTP`).toBe(status)
        expect(rpc.error, `${who} over RPC`).toEqual(http.error)
        if (status === 403 && operation.permission !== undefined) {
          expect(http.error.message, who).toContain(operation.permission)
        }
      }
    }
  )
})
