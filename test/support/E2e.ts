/**
 * The set-up the end-to-end suites share: a server process on its own database (startTestNode) for
 * one describe block, its REST client, RPC runners, and sign-ups and organizations made through
 * the public API.
 */
import { Effect } from "effect"
import { afterAll, beforeAll } from "vitest"
import { ApiClient } from "../../src/rpc/client.ts"
import { type Rest, rest } from "./AuthClient.ts"
import type { ServerProcess } from "./ServerProcess.ts"
import { createOrganization, signUp, type Tenant, tenant, type User } from "./Tenant.ts"
import { query, type TestDatabase } from "./TestDatabase.ts"
import { startTestNode, type TestNode } from "./TestNode.ts"

/** Runs an effect that needs the RPC client, to its value (a typed failure rejects). */
export type RpcRunner = <A, E>(effect: Effect.Effect<A, E, ApiClient>) => Promise<A>

/** A token, or a function read before each call so that a test can switch users between calls. */
export type AccessToken = string | undefined | (() => string | undefined)

/** RPC runners for the node at `url` (its base, without `/rpc`), calling as the holder of `token`. */
export const rpcAt =
  (url: string) =>
  (token?: AccessToken): RpcRunner => {
    const accessToken = typeof token === "function" ? token : () => token
    return (effect) => effect.pipe(Effect.provide(ApiClient.layer(`${url}/rpc`, { accessToken })), Effect.runPromise)
  }

/** One node as clients reach it: REST and RPC. */
export interface Door {
  readonly server: ServerProcess
  readonly api: Rest
  readonly rpc: (token?: AccessToken) => RpcRunner
}

export const door = (server: ServerProcess): Door => ({ server, api: rest(server.url), rpc: rpcAt(server.url) })

/** The settings of a node behind the tests' rotating client addresses: one trusted proxy hop, a loose IP limit. */
export const BEHIND_PROXY = { TRUST_PROXY: "1", AUTH_IP_RATE_LIMIT: "1000" } as const

export interface E2e extends Door {
  readonly node: TestNode
  readonly database: TestDatabase
  /** Starts another node of the same cluster (stopped with the first). */
  readonly another: () => Promise<Door>
  readonly signUp: (label: string, password?: string) => Promise<User>
  /** A new organization owned by `owner`; its id. */
  readonly createOrganization: (owner: User, label?: string) => Promise<string>
  /** The organization's set-up steps, taken as `owner` (invitations by mail, roles, assignments). */
  readonly tenant: (owner: User, organizationId: string) => Tenant
  /**
   * Makes `userId` a member holding only the named system role, straight in the database: for suites
   * about something other than the members API.
   */
  readonly addMember: (organizationId: string, userId: string, role: string) => Promise<void>
}

const start = async (env: Record<string, string>): Promise<E2e> => {
  const node = await startTestNode({ ...BEHIND_PROXY, ...env })
  const first = door(node.server)
  return {
    ...first,
    node,
    database: node.database,
    another: async () => door(await node.another()),
    signUp: (label, password) => signUp(first.api, label, password),
    createOrganization: (owner, label) => createOrganization(first.api, owner, label),
    tenant: (owner, organizationId) => tenant(first.api, node.dataDir, owner, organizationId),
    addMember: async (organizationId, userId, role) => {
      await query(node.database.url, "INSERT INTO memberships (organization_id, user_id) VALUES ($1, $2)", [
        organizationId,
        userId
      ])
      await query(
        node.database.url,
        "INSERT INTO assignments (organization_id, user_id, role_id) SELECT $1, $2, id FROM roles WHERE organization_id = $1 AND name = $3",
        [organizationId, userId, role]
      )
    }
  }
}

/** An object standing for the one `get` returns when it is used (in a test or a later hook), not when it is made. */
const standIn = <T extends object>(get: () => T): T =>
  new Proxy({} as T, {
    get: (_, key) => {
      const target = get()
      const value: unknown = Reflect.get(target, key)
      return typeof value === "function" ? value.bind(target) : value
    },
    has: (_, key) => Reflect.has(get(), key)
  })

/**
 * Starts a node for the enclosing describe block (in a `beforeAll`, with `BEHIND_PROXY` and `env`)
 * and stops it afterwards, removing its database and data directory. What it returns stands for
 * the started node, so a suite destructures it once at the top and uses it in its tests and in
 * hooks it declares after this call.
 */
export const e2e = (env: Record<string, string> | (() => Promise<Record<string, string>>) = {}): E2e => {
  let started: E2e | undefined
  beforeAll(async () => {
    started = await start(typeof env === "function" ? await env() : env)
  }, 90_000)
  afterAll(() => started?.node.stop())
  const current = () => {
    if (started === undefined) throw new Error("the suite's node is not started: use it inside tests or later hooks")
    return started
  }
  return {
    node: standIn(() => current().node),
    database: standIn(() => current().database),
    server: standIn(() => current().server),
    api: standIn(() => current().api),
    rpc: (token) => current().rpc(token),
    another: () => current().another(),
    signUp: (label, password) => current().signUp(label, password),
    createOrganization: (owner, label) => current().createOrganization(owner, label),
    tenant: (owner, organizationId) => current().tenant(owner, organizationId),
    addMember: (organizationId, userId, role) => current().addMember(organizationId, userId, role)
  }
}

/** The OpenAPI document the node at `url` serves, with its operations by path and method. */
export const openApi = async (url: string) =>
  (await (await fetch(`${url}/openapi.json`)).json()) as {
    paths: Record<string, Record<string, Record<string, unknown>>>
  }

/** Calls `f` every 200 ms until `done` holds of its answer or `timeoutMs` passes; the last answer. */
export const eventually = async <A>(f: () => Promise<A>, done: (a: A) => boolean, timeoutMs = 15_000) => {
  const deadline = Date.now() + timeoutMs
  let last = await f()
  while (!done(last) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200))
    last = await f()
  }
  return last
}
