/**
 * bench:http-uws — does serving @effect/platform on uWebSockets.js (src/layers/http/UwsHttpServer.ts)
 * make a request cheaper than NodeHttpServer? Now a subset of bench:http (which measures the same
 * and more in one run): the same HttpApi app (GET /health/live, bench/servers/effect-http.ts) on both
 * servers, beside bare node:http and bare uWS as floors, in interleaved rounds (bench/rounds.ts).
 *
 *   yarn bench:http-uws        # BENCH_ROUNDS=4 BENCH_DURATION=5 BENCH_CONNECTIONS=50: about 2 minutes
 */
process.env.BENCH_VARIANTS ??= "HttpApi on NodeHttpServer,HttpApi on UwsHttpServer,node:http,uWS bare"
await import("./http.ts")
