import { Option } from "effect"
import type { RequestMeta } from "../../services/AuditLog.ts"

/**
 * The HTTP middleware resolves the client address once (TRUST_PROXY decides whether
 * X-Forwarded-For counts) and writes it into this header of the request, overwriting anything a
 * client sent; HttpApi handlers and RPC handlers both read it from there.
 */
export const CLIENT_IP_HEADER = "x-client-ip"

export const requestMeta = (headers: Readonly<Record<string, string | undefined>>): RequestMeta => ({
  ip: headers[CLIENT_IP_HEADER] ?? "unknown",
  userAgent: headers["user-agent"]?.slice(0, 512) ?? null,
  requestId: headers["x-request-id"] ?? "unknown"
})

/** The bearer token of an `Authorization` header, as RPC middleware sees the request headers. */
export const bearerToken = (headers: Readonly<Record<string, string | undefined>>): Option.Option<string> => {
  const header = headers.authorization
  return header?.startsWith("Bearer ") ? Option.some(header.slice(7).trim()) : Option.none()
}
