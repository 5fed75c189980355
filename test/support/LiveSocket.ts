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
  readonly close: () => void
}

export const openSocket = (url: string, headers: Record<string, string> = {}, localAddress?: string) =>
  new Promise<TestSocket>((resolve, reject) => {
    const ws = new WebSocket(url, { headers, ...(localAddress === undefined ? {} : { localAddress }) })
    const frames: Array<Frame> = []
    let taken = 0
    const waiters: Array<() => void> = []
    ws.on("message", (data) => {
      frames.push(JSON.parse(data.toString()) as Frame)
      for (const waiter of waiters.splice(0)) waiter()
    })
    const closed = new Promise<{ code: number; reason: string }>((done) =>
      ws.on("close", (code, reason) => {
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
