/**
 * The load generator for bench:http, run as its own process so it does not share an event loop
 * (or, on 2 cores, a core) with the server. Runs autocannon's programmatic API and prints two JSON
 * lines on stdout: `{"event":"start"}` just before the first request, then `{"event":"done",...}`
 * with the summary and this process's own CPU time.
 *
 *   node --import tsx bench/load.ts URL CONNECTIONS DURATION_SECONDS [REQUEST_JSON]
 */
import { createRequire } from "node:module"

interface Histogram {
  readonly average: number
  readonly total: number
  readonly p50: number
  readonly p99: number
}

export interface LoadResult {
  readonly requests: Histogram
  readonly latency: Histogram
  readonly throughput: Histogram
  readonly errors: number
  readonly timeouts: number
  readonly non2xx: number
  readonly statusCodeStats: Record<string, { count: number }>
  readonly duration: number
}

/** What each request sends; by default a plain GET. */
export interface LoadRequest {
  readonly method?: string
  readonly headers?: Record<string, string>
  readonly body?: string
}

export interface LoadReport {
  readonly event: "done"
  readonly result: LoadResult
  readonly cpuUs: number
}

type Autocannon = (
  options: { url: string; connections: number; duration: number; pipelining: number } & LoadRequest
) => Promise<LoadResult>

const autocannon = createRequire(import.meta.url)("autocannon") as Autocannon

const [url, connections, duration, request = "{}"] = process.argv.slice(2)
if (url === undefined || connections === undefined || duration === undefined) {
  console.error("usage: load.ts URL CONNECTIONS DURATION_SECONDS [REQUEST_JSON]")
  process.exit(2)
}

console.log(JSON.stringify({ event: "start" }))
const cpu = process.cpuUsage()
const result = await autocannon({
  url,
  connections: Number(connections),
  duration: Number(duration),
  pipelining: 1,
  ...(JSON.parse(request) as LoadRequest)
})
const used = process.cpuUsage(cpu)
const { requests, latency, throughput, errors, timeouts, non2xx, statusCodeStats } = result
const report: LoadReport = {
  event: "done",
  result: { requests, latency, throughput, errors, timeouts, non2xx, statusCodeStats, duration: result.duration },
  cpuUs: used.user + used.system
}
console.log(JSON.stringify(report))
