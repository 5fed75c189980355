/**
 * The heap of a server process, read through the V8 inspector it was started with
 * (`--inspect=127.0.0.1:<port>`): no hook in the server itself. Used by the scale test and the
 * benchmarks.
 */
import WebSocket from "ws"

/**
 * The server's JavaScript heap in use right after a full garbage collection, asked through the V8
 * inspector the test started it with (`--inspect`): no hook in the server itself.
 */
export const heapAfterGc = async (inspectPort: number) => {
  const targets = (await (await fetch(`http://127.0.0.1:${inspectPort}/json/list`)).json()) as Array<{
    webSocketDebuggerUrl: string
  }>
  const ws = new WebSocket(targets[0]!.webSocketDebuggerUrl)
  await new Promise((done, fail) => ws.once("open", done).once("error", fail))
  let id = 0
  const call = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<Record<string, unknown>>((resolve) => {
      const mine = ++id
      const onMessage = (data: WebSocket.RawData) => {
        const message = JSON.parse(data.toString())
        if (message.id !== mine) return
        ws.off("message", onMessage)
        resolve(message.result)
      }
      ws.on("message", onMessage)
      ws.send(JSON.stringify({ id: mine, method, params }))
    })
  await call("HeapProfiler.collectGarbage")
  await call("HeapProfiler.collectGarbage")
  const used = await call("Runtime.evaluate", {
    expression: "process.memoryUsage().heapUsed",
    returnByValue: true
  })
  ws.close()
  return Number((used.result as { value: number }).value)
}
