import type { AddressInfo } from "node:net"
import { Effect, Either } from "effect"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { WebSocket, WebSocketServer } from "ws"
import { type ConnectOptions, type LiveChange, LiveClient, type LiveStatus } from "../../src/rpc/LiveClient.ts"
import {
  type ClientMessage,
  CloseCode,
  decodeClientMessage,
  encodeServerMessage,
  type ServerMessage
} from "../../src/rpc/LiveProtocol.ts"

// --- A fake live server speaking the protocol with the shared schemas -----------------------------

interface FakeConnection {
  readonly url: URL
  readonly socket: WebSocket
  readonly received: Array<ClientMessage>
  send(message: ServerMessage): void
}

const hello = (
  revision: string,
  overrides: Partial<Extract<ServerMessage, { type: "hello" }>> = {}
): ServerMessage => ({
  type: "hello",
  sessionId: "session-1",
  userId: "user-1",
  organizationId: "org-1",
  roles: ["editor"],
  permissions: ["doc:read", "org:read"],
  scoped: { "doc/1": ["doc:edit"] },
  scopedDenied: {},
  revision,
  ...overrides
})

const diff = (
  revision: string,
  change: Partial<Omit<Extract<ServerMessage, { type: "permissions" }>, "type" | "revision">>
): ServerMessage => ({ type: "permissions", revision, added: [], removed: [], ...change })

class FakeServer {
  readonly connections: Array<FakeConnection> = []
  /** The first frame of each connection; undefined sends none. */
  hello: (connection: FakeConnection) => ServerMessage | undefined = () => hello("5")
  onMessage: (connection: FakeConnection, message: ClientMessage) => void = (connection, message) => {
    if (message.type === "ping") connection.send({ type: "pong" })
  }
  ticketCalls = 0

  private constructor(readonly wss: WebSocketServer) {
    wss.on("connection", (socket, request) => {
      const connection: FakeConnection = {
        url: new URL(request.url ?? "/", "ws://fake"),
        socket,
        received: [],
        send: (message) => socket.send(encodeServerMessage(message))
      }
      this.connections.push(connection)
      socket.on("message", (data) => {
        const decoded = decodeClientMessage(data.toString("utf8"))
        if (Either.isLeft(decoded)) throw new Error(`the client sent an invalid frame: ${data.toString("utf8")}`)
        connection.received.push(decoded.right)
        this.onMessage(connection, decoded.right)
      })
      const first = this.hello(connection)
      if (first !== undefined) connection.send(first)
    })
  }

  /** `refuse`: answer every upgrade with this HTTP status, as the real server does for a bad ticket. */
  static start(refuse?: number): Promise<FakeServer> {
    return new Promise((resolve) => {
      const wss: WebSocketServer = new WebSocketServer(
        {
          host: "127.0.0.1",
          port: 0,
          path: "/ws",
          ...(refuse === undefined ? {} : { verifyClient: (_info, callback) => callback(false, refuse, "refused") })
        },
        () => resolve(new FakeServer(wss))
      )
    })
  }

  get port(): number {
    return (this.wss.address() as AddressInfo).port
  }

  /** What the app's `POST /v1/realtime/tickets` call would answer: a fresh ticket each time. */
  readonly getTicket = async () => {
    this.ticketCalls++
    const ticket = `ticket-${this.ticketCalls}`
    return { ticket, url: `ws://127.0.0.1:${this.port}/ws?ticket=${ticket}`, expiresIn: 30 }
  }

  get last(): FakeConnection {
    const connection = this.connections.at(-1)
    if (connection === undefined) throw new Error("no connection yet")
    return connection
  }

  stop(): Promise<void> {
    for (const socket of this.wss.clients) socket.terminate()
    return new Promise((resolve) => this.wss.close(() => resolve()))
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const waitFor = async (condition: () => boolean, what: string, timeoutMs = 3_000) => {
  const start = Date.now()
  while (!condition()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

const errorCode = (promise: Promise<unknown>) =>
  promise.then(
    () => "resolved",
    (error: { code?: string }) => error.code ?? String(error)
  )

// --- Tests -------------------------------------------------------------------------------------------

let server: FakeServer
const clients: Array<LiveClient> = []

const connect = async (options: Partial<ConnectOptions> = {}) => {
  const client = await LiveClient.connect({
    getTicket: server.getTicket,
    WebSocket,
    backoff: { initialMs: 10, maxMs: 40 },
    ...options
  })
  clients.push(client)
  return client
}

beforeEach(async () => {
  server = await FakeServer.start()
})

afterEach(async () => {
  for (const client of clients.splice(0)) client.close()
  await server.stop()
})

describe("LiveClient", () => {
  it("resolves connect once hello arrived and holds its state", async () => {
    const client = await connect()

    expect(client.status).toBe("open")
    expect(client.connected).toBe(true)
    expect(client.sessionId).toBe("session-1")
    expect(client.userId).toBe("user-1")
    expect(client.organizationId).toBe("org-1")
    expect(client.roles).toEqual(["editor"])
    expect([...client.permissions].sort()).toEqual(["doc:read", "org:read"])
    expect(client.scoped).toEqual({ "doc/1": ["doc:edit"] })
    expect(client.revision).toBe("5")
    expect(server.last.url.searchParams.get("ticket")).toBe("ticket-1")
    expect(server.last.url.searchParams.has("revision")).toBe(false)
  })

  it("applies diffs and ignores frames behind its revision (compared as integers) or that do not decode", async () => {
    server.hello = () => hello("9")
    const client = await connect()
    const changes: Array<LiveChange> = []
    const errors: Array<string> = []
    client.onChange((change) => changes.push(change))
    client.onError((error) => errors.push(error.code))

    const connection = server.last
    connection.send(
      diff("10", {
        added: ["doc:write"],
        removed: ["org:read"],
        scopedAdded: { "doc/2": ["doc:edit"] },
        scopedRemoved: { "doc/1": ["doc:edit"] }
      })
    )
    connection.send(diff("9", { added: ["stale:diff"] })) // "9" > "10" as strings: must still be ignored
    connection.send(hello("8", { permissions: [] }))
    connection.socket.send("not json")
    connection.socket.send(JSON.stringify({ type: "permissions", revision: "abc", added: ["bad"], removed: [] }))
    connection.send(diff("18446744073709551617", { added: ["big"] }))
    connection.send(diff("18446744073709551616", { removed: ["big"] }))
    connection.send(diff("18446744073709551618", { added: ["last"] }))
    await waitFor(() => client.revision === "18446744073709551618", "the last diff")

    expect([...client.permissions].sort()).toEqual(["big", "doc:read", "doc:write", "last"])
    expect(client.scoped).toEqual({ "doc/2": ["doc:edit"] })
    expect(errors).toEqual(["invalid_frame", "invalid_frame"])
    expect(changes.map((change) => change.revision)).toEqual(["10", "18446744073709551617", "18446744073709551618"])
    expect(changes[0]).toEqual({
      source: "permissions",
      revision: "10",
      added: ["doc:write"],
      removed: ["org:read"],
      scopedAdded: { "doc/2": ["doc:edit"] },
      scopedRemoved: { "doc/1": ["doc:edit"] },
      scopedDeniedAdded: {},
      scopedDeniedRemoved: {}
    })
  })

  it("takes the role names a diff carries, with its keys, and keeps them when a diff carries none", async () => {
    server.hello = () => hello("4")
    const client = await connect()
    const seen: Array<ReadonlyArray<string>> = []
    client.onChange(() => seen.push(client.roles))
    server.last.send(diff("5", { added: ["doc:write"], roles: ["editor", "writer"] }))
    await waitFor(() => client.revision === "5", "the diff with roles")
    expect(client.roles).toEqual(["editor", "writer"])
    expect(client.can("doc:write")).toBe(true)
    server.last.send(diff("6", { removed: ["doc:write"] }))
    await waitFor(() => client.revision === "6", "the diff without roles")
    expect(client.roles).toEqual(["editor", "writer"])
    // A rename changes no key: the frame carries only the names.
    server.last.send(diff("7", { roles: ["author", "editor"] }))
    await waitFor(() => client.revision === "7", "the rename")
    expect(client.roles).toEqual(["author", "editor"])
    // A listener sees the new names when it is told of the change.
    expect(seen).toEqual([
      ["editor", "writer"],
      ["editor", "writer"],
      ["author", "editor"]
    ])
  })

  it("answers can() from the org-wide set, the resource's scoped keys and its scoped denies", async () => {
    server.hello = () => hello("3", { scopedDenied: { "doc/9": ["doc:read"] } })
    const client = await connect()

    expect(client.can("doc:read")).toBe(true)
    expect(client.can("doc:read", { type: "doc", id: "7" })).toBe(true)
    expect(client.can("doc:edit")).toBe(false)
    expect(client.can("doc:edit", { type: "doc", id: "1" })).toBe(true)
    expect(client.can("doc:edit", { type: "doc", id: "2" })).toBe(false)
    expect(client.can("doc:edit", { type: "folder", id: "1" })).toBe(false)
    // Allowed organization-wide, denied on doc/9 by a role assigned there.
    expect(client.can("doc:read", { type: "doc", id: "9" })).toBe(false)
    expect(client.can("org:read", { type: "doc", id: "9" })).toBe(true)
    expect(client.scopedDenied).toEqual({ "doc/9": ["doc:read"] })

    // The deny moves from doc/9 to doc/7 in one diff.
    const changes: Array<LiveChange> = []
    client.onChange((change) => changes.push(change))
    server.last.send(
      diff("4", { scopedDeniedAdded: { "doc/7": ["doc:read"] }, scopedDeniedRemoved: { "doc/9": ["doc:read"] } })
    )
    await waitFor(() => client.revision === "4", "the diff")
    expect(client.can("doc:read", { type: "doc", id: "9" })).toBe(true)
    expect(client.can("doc:read", { type: "doc", id: "7" })).toBe(false)
    expect(client.scopedDenied).toEqual({ "doc/7": ["doc:read"] })
    expect(changes[0]).toMatchObject({
      scopedDeniedAdded: { "doc/7": ["doc:read"] },
      scopedDeniedRemoved: { "doc/9": ["doc:read"] }
    })
  })

  it("round-trips check and rejects on an error with its id", async () => {
    server.onMessage = (connection, message) => {
      if (message.type !== "check" || message.permission === "doc:slow") return
      connection.send(
        message.permission === "doc:edit"
          ? { type: "check.result", id: message.id, allowed: true, reason: "role editor", revision: "5" }
          : { type: "error", code: "unavailable", message: "cannot decide", id: message.id }
      )
    }
    const client = await connect({ checkTimeoutMs: 50 })

    const answer = await client.check("doc:edit", { type: "doc", id: "3", attributes: { owner: "user-1" } })
    expect(answer).toEqual({ allowed: true, reason: "role editor", revision: "5" })
    expect(server.last.received[0]).toMatchObject({
      type: "check",
      permission: "doc:edit",
      resource: { type: "doc", id: "3", attributes: { owner: "user-1" } }
    })
    expect(await errorCode(client.check("doc:delete"))).toBe("unavailable")
    // Checked against the schema before sending: the server never sees it.
    expect(await errorCode(client.check(""))).toBe("invalid_argument")
    expect(await errorCode(client.check("doc:slow"))).toBe("timeout")
    expect(server.last.received.filter((message) => message.type === "check")).toHaveLength(3)
  })

  it("awaitRevision resolves at once, after a diff, or via awaited; rejects on revision_not_reached and timeout", async () => {
    const awaits: Array<{ id: string; revision: string }> = []
    server.onMessage = (connection, message) => {
      if (message.type !== "await") return
      awaits.push(message)
      if (message.revision === "9") connection.send({ type: "awaited", id: message.id, revision: "9" })
      if (message.revision === "100") {
        connection.send({ type: "error", code: "revision_not_reached", message: "never reached", id: message.id })
      }
    }
    const client = await connect()

    expect(await client.awaitRevision("3")).toBe("5")
    expect(await client.awaitRevision("5")).toBe("5")
    expect(awaits).toEqual([])

    const afterDiff = client.awaitRevision("7")
    await waitFor(() => awaits.length === 1, "the await message")
    expect(awaits[0]?.revision).toBe("7")
    server.last.send(diff("7", { added: ["doc:write"] }))
    expect(await afterDiff).toBe("7")
    expect(client.can("doc:write")).toBe(true)

    // Nothing changed for this session at 9: only the server's `awaited` can answer.
    expect(await client.awaitRevision("9")).toBe("9")
    expect(await errorCode(client.awaitRevision("100"))).toBe("revision_not_reached")
    expect(await errorCode(client.awaitRevision("200", { timeoutMs: 50 }))).toBe("timeout")
    expect(await errorCode(client.awaitRevision("x1"))).toBe("invalid_argument")
  })

  it("reconnects after the server drops the socket, with a fresh ticket and its last revision", async () => {
    server.onMessage = () => {} // never answers: a pending check must fail on disconnect
    server.hello = (connection) =>
      server.connections.length === 1
        ? hello("5")
        : connection.url.searchParams.get("revision") === "6"
          ? hello("8")
          : hello("12", { scoped: { "doc/2": ["doc:edit"] } })
    const client = await connect()
    const statuses: Array<LiveStatus> = []
    const changes: Array<LiveChange> = []
    client.onStatus((status) => statuses.push(status))
    client.onChange((change) => changes.push(change))
    server.last.send(diff("6", { added: ["doc:write"] }))
    await waitFor(() => client.revision === "6", "the diff")

    const pending = errorCode(client.check("doc:edit"))
    await waitFor(() => server.last.received.length === 1, "the check")
    server.last.socket.terminate() // no close frame: 1006 on the client
    expect(await pending).toBe("disconnected")
    expect(client.connected).toBe(false)
    // While disconnected, can() denies: a revocation may have happened meanwhile (R4).
    expect(client.can("doc:write")).toBe(false)

    await waitFor(() => client.revision === "8", "the second hello")
    expect(client.connected).toBe(true)
    expect(server.ticketCalls).toBe(2)
    expect(server.connections[1]?.url.searchParams.get("ticket")).toBe("ticket-2")
    expect(server.connections[1]?.url.searchParams.get("revision")).toBe("6")
    // The new snapshot replaced the set: what the diff had added is gone, and the change says so.
    expect(client.can("doc:write")).toBe(false)
    expect(changes.at(-1)).toEqual({
      source: "hello",
      revision: "8",
      added: [],
      removed: ["doc:write"],
      scopedAdded: {},
      scopedRemoved: {},
      scopedDeniedAdded: {},
      scopedDeniedRemoved: {}
    })

    server.last.socket.close(CloseCode.goingAway, "server shutting down")
    await waitFor(() => client.revision === "12", "the third hello")
    expect(server.ticketCalls).toBe(3)
    expect(server.connections[2]?.url.searchParams.get("ticket")).toBe("ticket-3")
    expect(server.connections[2]?.url.searchParams.get("revision")).toBe("8")
    expect(changes.at(-1)).toMatchObject({
      revision: "12",
      scopedAdded: { "doc/2": ["doc:edit"] },
      scopedRemoved: { "doc/1": ["doc:edit"] }
    })
    expect(statuses).toEqual(["reconnecting", "open", "reconnecting", "open"])
  })

  it("takes the server's set when a resume is answered at a lower revision, without reconnecting again", async () => {
    // The organization never reached the revision the client resumes at (a restored database, say):
    // the server answers with its current set, and that is the truth, revision included.
    server.hello = () =>
      server.connections.length === 1
        ? hello("50", { permissions: ["doc:read", "doc:write"] })
        : hello("7", { permissions: ["doc:read"] })
    const client = await connect()
    const changes: Array<LiveChange> = []
    client.onChange((change) => changes.push(change))
    server.last.socket.terminate()

    await waitFor(() => client.revision === "7", "the hello at the lower revision")
    expect(client.connected).toBe(true)
    expect(server.connections[1]?.url.searchParams.get("revision")).toBe("50")
    expect([...client.permissions]).toEqual(["doc:read"])
    expect(client.can("doc:write")).toBe(false)
    expect(changes.at(-1)).toMatchObject({ source: "hello", revision: "7", added: [], removed: ["doc:write"] })
    // Diffs from there on apply; an older hello on the same socket is still ignored.
    server.last.send(diff("8", { added: ["doc:share"] }))
    server.last.send(hello("6", { permissions: [] }))
    await waitFor(() => client.revision === "8", "the next diff")
    await sleep(100)
    expect(client.can("doc:share")).toBe(true)
    expect(client.can("doc:read")).toBe(true)
    expect(server.ticketCalls).toBe(2)
    expect(server.connections).toHaveLength(2)
  })

  it("resends a pending await on the new socket after a reconnect", async () => {
    server.onMessage = (connection, message) => {
      if (message.type === "await" && server.connections.length === 2) {
        connection.send({ type: "awaited", id: message.id, revision: message.revision })
      }
    }
    const client = await connect()
    const awaited = client.awaitRevision("40")
    await waitFor(() => server.last.received.length === 1, "the first await")
    server.last.socket.terminate()

    expect(await awaited).toBe("40")
    expect(server.connections[1]?.received).toEqual([server.connections[0]?.received[0]])
  })

  it("on revoked and close 4001: empties the set, tells onRevoked, and never reconnects", async () => {
    const client = await connect()
    const reasons: Array<string | undefined> = []
    const changes: Array<LiveChange> = []
    client.onRevoked((reason) => reasons.push(reason))
    client.onChange((change) => changes.push(change))
    const pending = errorCode(client.awaitRevision("50"))

    server.last.send({ type: "revoked", reason: "password_changed" })
    server.last.socket.close(CloseCode.revoked, "revoked")
    await waitFor(() => client.status === "revoked", "revocation")

    expect(reasons).toEqual(["password_changed"])
    expect(client.revocationReason).toBe("password_changed")
    expect(client.connected).toBe(false)
    expect(client.permissions.size).toBe(0)
    expect(client.scoped).toEqual({})
    expect(client.can("doc:read")).toBe(false)
    expect(client.can("doc:edit", { type: "doc", id: "1" })).toBe(false)
    expect(changes).toMatchObject([{ source: "revoked", removed: ["doc:read", "org:read"] }])
    expect(await pending).toBe("revoked")
    expect(await errorCode(client.check("doc:read"))).toBe("revoked")

    await sleep(150) // several backoff ceilings
    expect(server.ticketCalls).toBe(1)
    expect(server.connections).toHaveLength(1)
  })

  it("treats close 4001 without a revoked frame as revoked too", async () => {
    const client = await connect()
    server.last.socket.close(CloseCode.revoked)
    await waitFor(() => client.status === "revoked", "revocation")

    expect(client.permissions.size).toBe(0)
    expect(client.revocationReason).toBeUndefined()
    await sleep(100)
    expect(server.connections).toHaveLength(1)
  })

  it("close() stops for good and rejects pending calls", async () => {
    server.onMessage = () => {}
    const client = await connect()
    const check = errorCode(client.check("doc:edit"))
    const awaited = errorCode(client.awaitRevision("99"))
    const serverSawClose = new Promise<number>((resolve) => server.last.socket.on("close", resolve))

    client.close()

    expect(await check).toBe("closed")
    expect(await awaited).toBe("closed")
    expect(await serverSawClose).toBe(1000)
    expect(client.status).toBe("closed")
    expect(await errorCode(client.check("doc:read"))).toBe("closed")
    await sleep(100)
    expect(server.ticketCalls).toBe(1)
    expect(server.connections).toHaveLength(1)
  })

  it("LiveClient.scoped closes the client with its scope", async () => {
    const serverSawClose = new Promise<number>((resolve) =>
      server.wss.once("connection", (socket) => socket.on("close", resolve))
    )
    const revision = await Effect.runPromise(
      Effect.scoped(
        LiveClient.scoped({ getTicket: server.getTicket, WebSocket }).pipe(Effect.map((client) => client.revision))
      )
    )

    expect(revision).toBe("5")
    expect(await serverSawClose).toBe(1000)
  })

  it("sends pings and reconnects when the server goes silent", async () => {
    let answerPings = true
    server.onMessage = (connection, message) => {
      if (message.type === "ping" && (answerPings || server.connections.length > 1)) connection.send({ type: "pong" })
    }
    const client = await connect({ heartbeat: { intervalMs: 20, timeoutMs: 120 } })

    await sleep(200) // longer than the idle timeout: pongs keep the socket up
    expect(server.connections).toHaveLength(1)
    expect(server.last.received.filter((message) => message.type === "ping").length).toBeGreaterThanOrEqual(3)

    answerPings = false
    await waitFor(() => server.connections.length === 2 && client.connected, "a reconnect")
    expect(server.ticketCalls).toBe(2)
  })

  it("connects anyway when the server drops the socket right after the upgrade, before hello (1006)", async () => {
    server.hello = (connection) => {
      if (server.connections.length === 1) {
        connection.socket.terminate()
        return undefined
      }
      return hello("7")
    }
    const client = await connect()
    expect(client.revision).toBe("7")
    expect(server.ticketCalls).toBe(2)
    expect(server.connections[1]?.url.searchParams.get("ticket")).toBe("ticket-2")

    // Dropped that way every time: connect gives up after the third attempt.
    server.hello = (connection) => {
      connection.socket.terminate()
      return undefined
    }
    const calls = server.ticketCalls
    expect(await errorCode(connect())).toBe("connect_failed")
    expect(server.ticketCalls - calls).toBe(3)
  })

  it("rejects connect when the first attempt fails, without retrying", async () => {
    await server.stop()
    server = await FakeServer.start(401)
    expect(await errorCode(connect())).toBe("connect_failed")

    const failingTicket = () => Promise.reject(new Error("401 from the ticket endpoint"))
    expect(await errorCode(connect({ getTicket: failingTicket }))).toBe("connect_failed")
    await sleep(80)
    expect(server.ticketCalls).toBe(1)
  })
})
