/**
 * The /docs page (Scalar). Its script is 3.4 MB, held three times over (source text, string
 * constant, encoded body): this module is imported on the first request for the page, not at start.
 * The page runs only its own inline scripts (allowed by hash in its Content-Security-Policy), talks
 * only to this server, and cannot be framed.
 */
import { createHash } from "node:crypto"
import * as HttpApiScalar from "@effect/platform/HttpApiScalar"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect, Layer } from "effect"
import { servedApi } from "../../rpc/Api.ts"

const INLINE_SCRIPT = /<script(?:\s[^>]*)?>([\s\S]*?)<\/script>/g

/** The page's policy: its inline scripts by hash, Scalar's styles and fonts, requests to this server only. */
export const docsPolicy = (html: string, publicUrl: string) => {
  const hashes = [...html.matchAll(INLINE_SCRIPT)]
    .map((match) => match[1]!)
    .filter((script) => script.trim() !== "")
    .map((script) => `'sha256-${createHash("sha256").update(script).digest("base64")}'`)
  return [
    "default-src 'none'",
    `script-src ${hashes.join(" ")}`,
    "style-src 'unsafe-inline'",
    "font-src https://fonts.scalar.com data:",
    "img-src 'self' data:",
    `connect-src 'self' ${new URL(publicUrl).origin}`,
    "worker-src blob:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'"
  ].join("; ")
}

/** The page as an app, on a router of its own (a fresh memo map keeps it apart from the server's). */
export const docsApp = (publicUrl: string) =>
  HttpLayerRouter.toHttpEffect(HttpApiScalar.layerHttpLayerRouter({ api: servedApi(publicUrl), path: "/docs" })).pipe(
    Effect.provideServiceEffect(Layer.CurrentMemoMap, Layer.makeMemoMap),
    Effect.map((app) => {
      let policy: string | undefined
      return Effect.map(app, (response) => {
        if (policy === undefined && response.body._tag === "Uint8Array") {
          policy = docsPolicy(new TextDecoder().decode(response.body.body), publicUrl)
        }
        return policy === undefined
          ? response
          : HttpServerResponse.setHeader(response, "content-security-policy", policy)
      })
    })
  )
