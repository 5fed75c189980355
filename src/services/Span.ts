import { Effect, type Tracer } from "effect"
import type { YieldWrap } from "effect/Utils"

/** The tracer Effect runs with when none is installed: it keeps spans for nobody. */
const builtInTracer = Effect.runSync(Effect.tracer)

/** Whether a tracer that exports spans is installed (OpenTelemetry, or a test's recorder). */
export const exportsSpans: Effect.Effect<boolean> = Effect.tracerWith((tracer) =>
  Effect.succeed(tracer !== builtInTracer)
)

/**
 * `effect` in a span `name` when a tracer that exports spans is installed (OpenTelemetry, or a
 * test's recorder); as it is otherwise.
 *
 * Why: a span is not free in Effect. Each one copies the fiber's context (a request's holds some
 * fifty services) to set the parent span, and compares it with the old one; Effect.fn also captures
 * a stack trace on every call. On the dozen nested service calls of one `POST …/check` or
 * `GET /v1/me` that was a third of the server's CPU time per request (bench:check, BENCHMARKS.md),
 * for spans no one collected. Requests still get their HTTP and SQL spans from the platform.
 */
const traced = (name: string) => {
  const span = Effect.withSpan(name, { captureStackTrace: false })
  return <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, Exclude<R, Tracer.ParentSpan>> =>
    Effect.tracerWith((tracer) => (tracer === builtInTracer ? effect : span(effect))) as never
}

/**
 * A service method with a span `name` on every call that a tracer collects, as `Effect.fn(name)`
 * gives, but without Effect.fn's call-site stack capture and, with no exporting tracer, without
 * the span (see `traced`). For methods called per request or per message: token verification,
 * revocation and permission checks, key-value reads and writes, rate limits, event stream appends
 * and reads, a live session's recomputation. Elsewhere `Effect.fn` is the rule.
 */
export const spanned = <Args extends ReadonlyArray<unknown>, A, E, R>(
  name: string,
  body: (...args: Args) => Effect.Effect<A, E, R>
): ((...args: Args) => Effect.Effect<A, E, Exclude<R, Tracer.ParentSpan>>) => {
  const span = traced(name)
  return (...args) => span(body(...args))
}

type ErrorOf<Eff> = [Eff] extends [never]
  ? never
  : [Eff] extends [YieldWrap<Effect.Effect<infer _A, infer E, infer _R>>]
    ? E
    : never
type ContextOf<Eff> = [Eff] extends [never]
  ? never
  : [Eff] extends [YieldWrap<Effect.Effect<infer _A, infer _E, infer R>>]
    ? R
    : never

/**
 * `spanned` for a generator body, as `Effect.fn(name)(function* (...) {...}, then)` takes, with
 * `then` applied to the body's effect inside the span.
 */
export function spannedGen<
  Args extends ReadonlyArray<unknown>,
  Eff extends YieldWrap<Effect.Effect<unknown, unknown, unknown>>,
  A
>(
  name: string,
  body: (...args: Args) => Generator<Eff, A, never>
): (...args: Args) => Effect.Effect<A, ErrorOf<Eff>, Exclude<ContextOf<Eff>, Tracer.ParentSpan>>
export function spannedGen<
  Args extends ReadonlyArray<unknown>,
  Eff extends YieldWrap<Effect.Effect<unknown, unknown, unknown>>,
  A,
  A2,
  E2,
  R2
>(
  name: string,
  body: (...args: Args) => Generator<Eff, A, never>,
  then: (effect: Effect.Effect<A, ErrorOf<Eff>, ContextOf<Eff>>) => Effect.Effect<A2, E2, R2>
): (...args: Args) => Effect.Effect<A2, E2, Exclude<R2, Tracer.ParentSpan>>
export function spannedGen(
  name: string,
  body: (
    ...args: ReadonlyArray<unknown>
  ) => Generator<YieldWrap<Effect.Effect<unknown, unknown, unknown>>, unknown, never>,
  then: (effect: Effect.Effect<unknown, unknown, unknown>) => Effect.Effect<unknown, unknown, unknown> = (e) => e
) {
  const span = traced(name)
  return (...args: ReadonlyArray<unknown>) => span(then(Effect.gen(() => body(...args))))
}

/**
 * Each job a work queue worker runs is a trace of its own (a root span), not one more child of the
 * `WorkQueue.consume` call that started the worker when the node started.
 */
export const jobSpan = (queue: string, job: { readonly id: string; readonly attempt: number }) =>
  Effect.withSpan("WorkQueue.job", {
    root: true,
    captureStackTrace: false,
    attributes: { queue, job: job.id, attempt: job.attempt }
  })
