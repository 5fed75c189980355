/** Small pieces every HTTP handler module shares. */
import { HttpApp, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect } from "effect"
import { requestMeta } from "./RequestMeta.ts"

/** The caller's ip, user agent and request id, for audit entries. */
export const httpMeta = Effect.map(HttpServerRequest.HttpServerRequest, (request) => requestMeta(request.headers))

/**
 * Write responses carry the organization's new revision in `X-Permission-Revision` as well as in
 * the body: pass the body through this before returning it.
 */
export const withRevisionHeader = <A extends { readonly revision: string }>(body: A) =>
  HttpApp.appendPreResponseHandler((_request, response) =>
    Effect.succeed(HttpServerResponse.setHeader(response, "x-permission-revision", body.revision))
  ).pipe(Effect.as(body))
