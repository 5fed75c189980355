/** A small fetch-based client for the REST door, as a browser or a service would use it. */
export interface Reply<A = Record<string, unknown>> {
  readonly status: number
  readonly body: A
  readonly headers: Headers
}

export interface TokenPairBody {
  readonly accessToken: string
  readonly refreshToken: string
  readonly tokenType: string
  readonly expiresIn: number
  readonly sessionId: string
}

let nextIp = 1
/** A fresh client address per call site (the servers under test trust one proxy hop). */
export const freshIp = () => {
  nextIp += 1
  return `10.${(nextIp >> 16) & 255}.${(nextIp >> 8) & 255}.${nextIp & 255}`
}

export const rest = (base: string) => {
  const call = async <A = Record<string, unknown>>(
    method: string,
    path: string,
    options: { body?: unknown; token?: string; ip?: string; headers?: Record<string, string> } = {}
  ): Promise<Reply<A>> => {
    const headers: Record<string, string> = { "x-forwarded-for": options.ip ?? freshIp(), ...options.headers }
    if (options.body !== undefined) headers["content-type"] = "application/json"
    if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`
    const response = await fetch(`${base}${path}`, {
      method,
      headers,
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) })
    })
    const text = await response.text()
    return { status: response.status, body: (text === "" ? {} : JSON.parse(text)) as A, headers: response.headers }
  }
  return {
    call,
    register: (email: string, password: string, name = "Test User", ip?: string) =>
      call("POST", "/v1/auth/register", { body: { email, password, name }, ...(ip ? { ip } : {}) }),
    login: (email: string, password: string, ip?: string) =>
      call<TokenPairBody & { mfaRequired?: boolean; mfaToken?: string; code?: string }>("POST", "/v1/auth/login", {
        body: { email, password },
        ...(ip ? { ip } : {})
      }),
    refresh: (refreshToken: string) =>
      call<TokenPairBody & { code?: string }>("POST", "/v1/auth/refresh", { body: { refreshToken } }),
    me: (token: string) => call("GET", "/v1/me", { token })
  }
}

/** The REST client of one node. */
export type Rest = ReturnType<typeof rest>

let counter = 0
export const uniqueEmail = (label: string) => {
  counter += 1
  return `${label}-${Date.now().toString(36)}-${counter}@example.com`
}

export const STRONG_PASSWORD = "correct horse battery staple"
