/** A raw live-socket client for tests, on the `ws` package as a Node service would use it. */
import WebSocket from "ws"

export interface Frame {
  readonly type: string
  readonly [key: string]: unknown
}

export interface TestSocket {
  readonly ws: WebSocket
  /** Every frame received so far, in order. */
  readonly frames: Array<Frame>
  /** The next frame (of this type, if given) not yet taken, waiting up to `timeoutMs`. */
  readonly next: (type?: string, timeoutMs?: number) => Promise<Frame>
  readonly send: (message: unknown) => void
  readonly closed: Promise<{ code: number; reason: string }>
  /** Settles when the first frame arrives or the socket closes, whichever comes first. */
  readonly settled: Promise<"frame" | "closed">
  readonly close: () => void
}

export const openSocket = (url: string, headers: Record<string, string> = {}, localAddress?: string) =>
  new Promise<TestSocket>((resolve, reject) => {
    const ws = new WebSocket(url, { headers, ...(localAddress === undefined ? {} : { localAddress }) })
    const frames: Array<Frame> = []
    let taken = 0
    const waiters: Array<() => void> = []
    let settle: (outcome: "frame" | "closed") => void = () => {}
    const settled = new Promise<"frame" | "closed">((done) => {
      settle = done
    })
    ws.on("message", (data) => {
      settle("frame")
      frames.push(JSON.parse(data.toString()) as Frame)
      for (const waiter of waiters.splice(0)) waiter()
    })
    const closed = new Promise<{ code: number; reason: string }>((done) =>
      ws.on("close", (code, reason) => {
        settle("closed")
        done({ code, reason: reason.toString() })
        for (const waiter of waiters.splice(0)) waiter()
      })
    )
    const next = async (type?: string, timeoutMs = 5_000) => {
      const deadline = Date.now() + timeoutMs
      while (true) {
        for (let i = taken; i < frames.length; i++) {
          if (type === undefined || frames[i]!.type === type) {
            const frame = frames[i]!
            frames.splice(i, 1)
            frames.splice(taken, 0, frame)
            taken += 1
            return frame
          }
        }
        const left = deadline - Date.now()
        if (left <= 0) {
          throw new Error(`no ${type ?? "frame"} within ${timeoutMs} ms; got ${JSON.stringify(frames.slice(taken))}`)
        }
        await new Promise<void>((wake) => {
          const timer = setTimeout(wake, left)
          waiters.push(() => {
            clearTimeout(timer)
            wake()
          })
        })
      }
    }
    ws.once("open", () =>
      resolve({
        ws,
        frames,
        next,
        send: (message) => ws.send(typeof message === "string" ? message : JSON.stringify(message)),
        closed,
        settled,
        close: () => ws.close()
      })
    )
    ws.once("unexpected-response", (_request, response) => reject(new Refused(response.statusCode ?? 0)))
    ws.once("error", reject)
  })

export class Refused extends Error {
  constructor(readonly status: number) {
    super(`upgrade refused with ${status}`)
  }
}

/** The HTTP status an upgrade is refused with, or 101 when it is accepted (the socket is closed again). */
export const upgradeStatus = async (url: string, headers: Record<string, string> = {}) => {
  try {
    const socket = await openSocket(url, headers)
    socket.close()
    return 101
  } catch (error) {
    if (error instanceof Refused) return error.status
    throw error
  }
}

/**
 * A live session as a client holds one: a socket opened with a fresh ticket URL from `ticketUrl`,
 * once its first frame has arrived (or it closed with a code of the server's). The pinned
 * uWebSockets.js now and then drops a socket it has just upgraded asynchronously, with 1006 and no
 * frame (uNetworking/uWebSockets#1929, fixed in builds this machine cannot load): a client then
 * reconnects with a new ticket, as LiveClient does. So does this, twice at most; a third drop is
 * returned as is, for the test to fail on.
 */
export const liveSession = async (
  ticketUrl: () => Promise<string>,
  headers: Record<string, string> = {}
): Promise<TestSocket> => {
  for (let attempt = 1; ; attempt++) {
    const socket = await openSocket(await ticketUrl(), headers)
    const outcome = await socket.settled
    const dropped = outcome === "closed" && socket.frames.length === 0 && (await socket.closed).code === 1006
    if (!dropped || attempt === 3) return socket
  }
}
