/**
 * The hot paths: the requests a busy deployment makes most, answered on Node's request callback
 * from this node's memory when everything they need is there, without the HttpApi pipeline:
 *
 *  - `GET /v1/me`: a token verified before (AccessTokens), not revoked under this node's revocation
 *    lease (Revocations), the profile held and followed (ProfileCache);
 *  - `POST /v1/orgs/{org}/check` and `…/check/batch` with `consistency: "cached"`: the same token,
 *    then the guard, the "about others" rule and the checks from memory at the watermark (or a
 *    `minRevision` it has reached), exactly as OrgAuthorization.ts and AuthzHandlers.ts decide them;
 *  - `POST /v1/realtime/tickets`, for a session that had one before on this node (a reconnect): the
 *    membership at the watermark (Realtime.issueTicketNow), then the ticket's write to the store.
 *
 * Every other case — a token not seen before, a check that must wait or read, a body the schema
 * refuses, a 404, any error — goes to the route unchanged (a body already read goes with it), so
 * what a client sees is the route's answer in every case: the same schemas encode the same values,
 * and the front door (FrontDoor.ts) gives both the same headers and log line. Off when spans are
 * exported, so that traced deployments see every request.
 */
import type { IncomingMessage, ServerResponse } from "node:http"
import { PassThrough } from "node:stream"
import { Effect, Either, FiberSet, Option, Schema } from "effect"
import { Me } from "../../rpc/Auth.ts"
import { BatchCheckRequest, type BatchCheckResult, CheckRequest, type CheckResult } from "../../rpc/Authz.ts"
import { Id } from "../../rpc/Ids.ts"
import { type Ticket, TicketRequest } from "../../rpc/Realtime.ts"
import type { Member, SignedIn } from "../../rpc/Security.ts"
import { AccessTokens } from "../../services/AccessTokens.ts"
import { PermissionStore } from "../../services/PermissionStore.ts"
import { Realtime } from "../../services/Realtime.ts"
import { Revocations } from "../../services/Revocations.ts"
import { ProfileCache } from "../auth/ProfileCache.ts"
import { Settings } from "../Settings.ts"
import { batchQuestions, checkQuestion } from "./AuthzHandlers.ts"
import { admitted, type Declared, declaredPermissions, othersIn } from "./OrgAuthorization.ts"
import { bearerToken } from "./RequestMeta.ts"

/** Hands a request (its body replayed, if it was read) to the HttpApi routes. */
export type HandOver = (request: IncomingMessage) => void

/** Takes the request (and answers it or hands it over) or leaves it to the routes (false). */
export type HotPaths = (request: IncomingMessage, response: ServerResponse, handOver: HandOver) => boolean

const ORGS = "/v1/orgs/"
const JSON_TYPE = /^application\/json\s*(;\s*charset=utf-8\s*)?$/i

type Route =
  | { readonly kind: "me" }
  | { readonly kind: "ticket" }
  | { readonly kind: "check"; readonly org: string }
  | { readonly kind: "batch"; readonly org: string }

const routeOf = (method: string | undefined, url: string | undefined): Route | undefined => {
  if (url === undefined) return undefined
  if (method === "GET") return url === "/v1/me" ? { kind: "me" } : undefined
  if (method === "POST" && url === "/v1/realtime/tickets") return { kind: "ticket" }
  if (method !== "POST" || !url.startsWith(ORGS)) return undefined
  const rest = url.slice(ORGS.length)
  const slash = rest.indexOf("/")
  if (slash <= 0) return undefined
  const tail = rest.slice(slash)
  const org = rest.slice(0, slash)
  return tail === "/check" ? { kind: "check", org } : tail === "/check/batch" ? { kind: "batch", org } : undefined
}

/** The request as the routes would read it: its own headers and socket, the body from memory. */
const replayed = (request: IncomingMessage, body: Buffer): IncomingMessage => {
  const copy = new PassThrough()
  copy.end(body)
  return Object.assign(copy, {
    method: request.method,
    url: request.url,
    headers: request.headers,
    rawHeaders: request.rawHeaders,
    httpVersion: request.httpVersion,
    socket: request.socket
  }) as unknown as IncomingMessage
}

const decodeCheck = Schema.decodeUnknownEither(CheckRequest)
const decodeBatch = Schema.decodeUnknownEither(BatchCheckRequest)
const decodeTicket = Schema.decodeUnknownEither(TicketRequest)
const encodeMe = Schema.encodeSync(Me)
const canonicalId = Schema.decodeUnknownOption(Id)

/**
 * What a hot path answers (200, JSON), with the revision it was decided at; undefined to hand over.
 * Check results are written in their encoded form directly (booleans and strings: the schema
 * transforms nothing; HotPaths.test.ts holds the two forms equal), the profile through its schema.
 */
interface Answer {
  readonly status?: number
  readonly body: unknown
  readonly revision?: string
}

export const makeHotPaths = Effect.gen(function* () {
  const tokens = yield* AccessTokens
  const revocations = yield* Revocations
  const profiles = yield* ProfileCache
  const store = yield* PermissionStore
  const realtime = yield* Realtime
  const maxBodySize = yield* Settings.maxBodySize
  // Ticket writes run as fibers of this scope: a shutdown interrupts the ones in flight.
  const runFork = yield* FiberSet.makeRuntime<never>()
  const declared = declaredPermissions()
  const checkGuard = declared.get("POST /v1/orgs/:organizationId/check")
  const batchGuard = declared.get("POST /v1/orgs/:organizationId/check/batch")

  /** SignIn.authenticate, from memory. */
  const signedIn = (request: IncomingMessage): SignedIn | undefined => {
    const token = bearerToken(request.headers as Record<string, string | undefined>)
    if (Option.isNone(token) || token.value === "") return undefined
    const claims = tokens.verifiedNow(token.value)
    if (claims === undefined || revocations.revokedNow(claims.sessionId) !== false) return undefined
    return { userId: claims.userId, sessionId: claims.sessionId }
  }

  /** OrgAuthorization's guard, from memory; undefined for a refusal too (the route says which). */
  const guard = (user: SignedIn, org: string, declaration: Declared | undefined, cached: boolean) => {
    const organizationId = canonicalId(org)
    if (declaration === undefined || Option.isNone(organizationId)) return undefined
    const answer = store.checkNow({
      organizationId: organizationId.value,
      userId: user.userId,
      permission: declaration.permission,
      consistency: cached ? "cached" : undefined
    })
    if (answer === undefined) return undefined
    return Either.getOrUndefined(admitted(user, organizationId.value, declaration, answer))
  }

  /** The guard's second half (`actingFor`): asking about someone else needs the declared permission. */
  const mayAskAbout = (member: Member, userIds: ReadonlyArray<string | undefined>) => {
    if (othersIn(member, userIds).length === 0) return true
    if (member.aboutOthers === undefined) return false
    const { organizationId, userId, aboutOthers: permission, revision: minRevision } = member
    return store.checkNow({ organizationId, userId, permission, minRevision })?.allowed === true
  }

  const check = (user: SignedIn, org: string, body: unknown): Answer | undefined => {
    const decoded = decodeCheck(body)
    if (Either.isLeft(decoded)) return undefined
    const request = decoded.right
    const member = guard(user, org, checkGuard, request.consistency === "cached")
    if (member === undefined || !mayAskAbout(member, [request.userId])) return undefined
    const answer = store.checkNow(checkQuestion(member, request))
    if (answer === undefined || !answer.member) return undefined
    const { allowed, reason, revision } = answer
    return { body: { allowed, reason, revision } satisfies typeof CheckResult.Encoded, revision }
  }

  const batch = (user: SignedIn, org: string, body: unknown): Answer | undefined => {
    const decoded = decodeBatch(body)
    if (Either.isLeft(decoded)) return undefined
    const request = decoded.right
    const member = guard(user, org, batchGuard, request.consistency === "cached")
    if (
      member === undefined ||
      !mayAskAbout(
        member,
        request.checks.map((c) => c.userId)
      )
    )
      return undefined
    const answers = store.checkManyNow(...batchQuestions(member, request))
    if (answers === undefined || answers.some((answer) => !answer.member)) return undefined
    const revision = answers[0]?.revision ?? "0"
    const results = answers.map(({ allowed, reason }) => ({ allowed, reason }))
    return { body: { revision, results } satisfies typeof BatchCheckResult.Encoded, revision }
  }

  /** A live ticket: from memory but for the store's write, which this waits for. */
  const ticket = (user: SignedIn, body: unknown, reply: (found: Answer | undefined) => void) => {
    const decoded = decodeTicket(body)
    const issuing = Either.isLeft(decoded) ? undefined : realtime.issueTicketNow(user, decoded.right.organizationId)
    if (issuing === undefined) return reply(undefined)
    runFork(
      Effect.match(issuing, {
        onFailure: () => reply(undefined),
        onSuccess: (issued) => reply({ status: 201, body: issued satisfies typeof Ticket.Encoded })
      })
    )
  }

  const me = (user: SignedIn): Answer | undefined => {
    const profile = profiles.profileNow(user.userId)
    return profile === undefined ? undefined : { body: encodeMe(profile) }
  }

  /** The front door (FrontDoor.ts) has set the common headers and the log line; this adds the answer's. */
  const answer = (response: ServerResponse, found: Answer) => {
    const body = JSON.stringify(found.body)
    response.writeHead(found.status ?? 200, {
      ...(found.revision === undefined ? {} : { "x-permission-revision": found.revision }),
      "content-type": "application/json",
      "content-length": Buffer.byteLength(body)
    })
    response.end(body)
  }

  /** The body (Node holds it to Content-Length, itself at most MAX_BODY_SIZE), then `done`. */
  const readBody = (request: IncomingMessage, length: number, done: (body: Buffer) => void) => {
    const chunks: Array<Buffer> = []
    let size = 0
    request.on("data", (chunk: Buffer) => {
      size += chunk.length
      chunks.push(chunk)
    })
    request.once("end", () => done(chunks.length === 1 && size === length ? chunks[0]! : Buffer.concat(chunks, size)))
  }

  const parse = (body: Buffer): unknown => {
    try {
      return JSON.parse(body.toString("utf8"))
    } catch {
      return undefined
    }
  }

  return ((request, response, handOver) => {
    const route = routeOf(request.method, request.url)
    if (route === undefined || request.headers.origin?.includes(",")) return false
    const user = signedIn(request)
    if (user === undefined) return false
    if (route.kind === "me") {
      const found = me(user)
      if (found === undefined) return false
      answer(response, found)
      return true
    }
    const length = Number(request.headers["content-length"])
    if (
      !(length > 0 && length <= maxBodySize) ||
      request.headers["transfer-encoding"] !== undefined ||
      !JSON_TYPE.test(request.headers["content-type"] ?? "")
    ) {
      return false
    }
    readBody(request, length, (body) => {
      const reply = (found: Answer | undefined) => {
        try {
          if (found === undefined) handOver(replayed(request, body))
          else answer(response, found)
        } catch {
          response.destroy()
        }
      }
      try {
        const json = parse(body)
        if (route.kind === "ticket") return ticket(user, json, reply)
        reply(route.kind === "check" ? check(user, route.org, json) : batch(user, route.org, json))
      } catch {
        reply(undefined)
      }
    })
    return true
  }) satisfies HotPaths
})
