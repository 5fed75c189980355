/**
 * The live client's calls (`check`, `await`) matched with their answers by id, each with its
 * timeout. Sending is the connection's (LiveConnection.ts); this only keeps the books.
 */
import { Either, Schema } from "effect"
import { type CheckAnswer, LiveClientError, type Resource } from "./LiveClientTypes.ts"
import { Check, type ClientMessage, type ServerMessage } from "./LiveProtocol.ts"

interface Pending<A> {
  readonly resolve: (value: A) => void
  readonly reject: (error: LiveClientError) => void
  readonly timer: ReturnType<typeof setTimeout>
}

interface PendingAwait extends Pending<string> {
  readonly target: bigint
  readonly revision: string
}

type Answer = Extract<ServerMessage, { type: "check.result" | "awaited" | "error" }>

const validateCheck = Schema.validateEither(Check)

export class LiveCalls {
  private nextId = 0
  private readonly checks = new Map<string, Pending<CheckAnswer>>()
  private readonly awaits = new Map<string, PendingAwait>()

  constructor(
    private readonly checkTimeoutMs: number,
    /** Sends on the open socket; the reason it could not, if it could not. */
    private readonly send: (message: ClientMessage) => LiveClientError | undefined
  ) {}

  /** Rejects with `unusable` when given (no open socket), or with `invalid_argument` before sending. */
  check(
    permission: string,
    resource: (Resource & { readonly attributes?: Readonly<Record<string, unknown>> }) | undefined,
    unusable: LiveClientError | undefined
  ): Promise<CheckAnswer> {
    const id = `c${++this.nextId}`
    const message: ClientMessage =
      resource === undefined ? { type: "check", id, permission } : { type: "check", id, permission, resource }
    const valid = validateCheck(message)
    if (Either.isLeft(valid)) return Promise.reject(new LiveClientError("invalid_argument", valid.left.message))
    if (unusable !== undefined) return Promise.reject(unusable)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.checks.delete(id)
        reject(new LiveClientError("timeout", `No answer to the check of ${permission}`))
      }, this.checkTimeoutMs)
      this.checks.set(id, { resolve, reject, timer })
      const failure = this.send(message)
      if (failure !== undefined) {
        this.checks.delete(id)
        clearTimeout(timer)
        reject(failure)
      }
    })
  }

  /** Waits for `revision`: asked now when `open`, and again on each new socket until settled. */
  awaitRevision(revision: string, timeoutMs: number, open: boolean): Promise<string> {
    const id = `a${++this.nextId}`
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.awaits.delete(id)
        reject(new LiveClientError("timeout", `Revision ${revision} not reached in time`))
      }, timeoutMs)
      this.awaits.set(id, { target: BigInt(revision), revision, resolve, reject, timer })
      if (open) this.send({ type: "await", id, revision })
    })
  }

  /** The local set moved to `revision`: settles the awaits it satisfies with `value`. */
  reached(revision: bigint, value: string): void {
    for (const [id, pending] of this.awaits) {
      if (revision < pending.target) continue
      this.awaits.delete(id)
      clearTimeout(pending.timer)
      pending.resolve(value)
    }
  }

  /** Asks the pending awaits again, on a new socket. */
  resendAwaits(): void {
    for (const [id, pending] of this.awaits) this.send({ type: "await", id, revision: pending.revision })
  }

  /** Settles the call an answer is for; false when it is for none (an error not tied to a call). */
  answer(message: Answer): boolean {
    switch (message.type) {
      case "check.result": {
        const { allowed, reason, revision } = message
        return this.settle(this.checks, message.id, (pending) => pending.resolve({ allowed, reason, revision }))
      }
      case "awaited":
        return this.settle(this.awaits, message.id, (pending) => pending.resolve(message.revision))
      case "error": {
        const failure = new LiveClientError(message.code, message.message)
        const id = message.id
        if (id === undefined) return false
        const reject = (pending: Pending<never>) => pending.reject(failure)
        return this.settle(this.checks, id, reject) || this.settle(this.awaits, id, reject)
      }
    }
  }

  /** The socket dropped: checks fail (awaits wait for the next socket). */
  failChecks(error: LiveClientError): void {
    this.fail(this.checks, error)
  }

  failAll(error: LiveClientError): void {
    this.fail(this.checks, error)
    this.fail(this.awaits, error)
  }

  private fail(calls: Map<string, Pending<never>>, error: LiveClientError): void {
    for (const [id, pending] of calls) {
      calls.delete(id)
      clearTimeout(pending.timer)
      pending.reject(error)
    }
  }

  private settle<P extends Pending<never>>(calls: Map<string, P>, id: string, settle: (pending: P) => void): boolean {
    const pending = calls.get(id)
    if (pending === undefined) return false
    calls.delete(id)
    clearTimeout(pending.timer)
    settle(pending)
    return true
  }
}
