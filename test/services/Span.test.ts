import { Effect, Option, Tracer } from "effect"
import { describe, expect, it } from "vitest"
import { spanned, spannedGen } from "../../src/services/Span.ts"

const inner = spanned("Test.inner", (n: number) =>
  Effect.map(Effect.option(Effect.currentSpan), (span) => ({ n, span: Option.map(span, (s) => s.name) }))
)
const outer = spannedGen("Test.outer", function* (n: number) {
  const here = yield* Effect.option(Effect.currentSpan)
  return { here: Option.map(here, (s) => s.name), inner: yield* inner(n + 1) }
})

/** A tracer that records each span's name and its parent's, made on top of Effect's own. */
const recording = () => {
  const builtIn = Effect.runSync(Effect.tracer)
  const spans: Array<{ name: string; parent: string | undefined }> = []
  const tracer = Tracer.make({
    span: (name, parent, context, links, startTime, kind, options) => {
      spans.push({
        name,
        parent: Option.getOrUndefined(Option.map(parent, (p) => (p._tag === "Span" ? p.name : p.spanId)))
      })
      return builtIn.span(name, parent, context, links, startTime, kind, options)
    },
    context: (f) => f()
  })
  return { spans, tracer }
}

describe("spanned service methods", () => {
  it("are spans, nested as called, when a tracer that collects them is installed", () => {
    const { spans, tracer } = recording()
    const result = Effect.runSync(outer(1).pipe(Effect.withTracer(tracer)))
    expect(result).toEqual({ here: Option.some("Test.outer"), inner: { n: 2, span: Option.some("Test.inner") } })
    expect(spans).toEqual([
      { name: "Test.outer", parent: undefined },
      { name: "Test.inner", parent: "Test.outer" }
    ])
  })

  it("run as they are, with the same answer and no span, under Effect's built-in tracer", () => {
    const result = Effect.runSync(outer(1))
    expect(result).toEqual({ here: Option.none(), inner: { n: 2, span: Option.none() } })
    // Inside a span of the caller's, they stay in the caller's.
    const within = Effect.runSync(outer(1).pipe(Effect.withSpan("Caller")))
    expect(within).toEqual({ here: Option.some("Caller"), inner: { n: 2, span: Option.some("Caller") } })
  })

  it("keep failures and the value of the body's pipe", () => {
    const failing = spannedGen(
      "Test.failing",
      function* (message: string) {
        return yield* Effect.fail(new Error(message))
      },
      Effect.catchAll((error) => Effect.succeed(`caught ${error.message}`))
    )
    expect(Effect.runSync(failing("boom"))).toBe("caught boom")
    const { tracer } = recording()
    expect(Effect.runSync(failing("boom").pipe(Effect.withTracer(tracer)))).toBe("caught boom")
  })
})
