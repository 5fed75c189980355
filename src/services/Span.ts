import { Effect, type Tracer } from "effect"

/**
 * A service method with a span `name` on every call, as `Effect.fn(name)` gives, but without the
 * call-site stack trace `Effect.fn` captures (a `new Error()` on each call, whether or not a span is
 * exported). For methods called per request or per message: key-value reads and writes, rate
 * limits, event stream appends and reads. Elsewhere `Effect.fn` is the rule.
 */
export const spanned = <Args extends ReadonlyArray<unknown>, A, E, R>(
  name: string,
  body: (...args: Args) => Effect.Effect<A, E, R>
): ((...args: Args) => Effect.Effect<A, E, Exclude<R, Tracer.ParentSpan>>) => {
  const span = Effect.withSpan(name, { captureStackTrace: false })
  return (...args) => span(body(...args))
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
