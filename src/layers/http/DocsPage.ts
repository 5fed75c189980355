/**
 * The /docs page (Scalar). Its script is 3.4 MB, held three times over (source text, string
 * constant, encoded body): this module is imported on the first request for the page, not at start.
 */
import * as HttpApiScalar from "@effect/platform/HttpApiScalar"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import { Effect, Layer } from "effect"
import { servedApi } from "../../rpc/Api.ts"

/** The page as an app, on a router of its own (a fresh memo map keeps it apart from the server's). */
export const docsApp = (publicUrl: string) =>
  HttpLayerRouter.toHttpEffect(HttpApiScalar.layerHttpLayerRouter({ api: servedApi(publicUrl), path: "/docs" })).pipe(
    Effect.provideServiceEffect(Layer.CurrentMemoMap, Layer.makeMemoMap)
  )
