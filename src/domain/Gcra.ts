/**
 * The GCRA arithmetic shared by every RateLimiter implementation (the Redis one runs the same
 * steps in Lua). Times are milliseconds; `tat` is the theoretical arrival time of the next request.
 */
export interface GcraStep {
  readonly allowed: boolean
  readonly remaining: number
  readonly retryAfterMs: number
  /** The new theoretical arrival time to store when allowed. */
  readonly tat: number
}

export const gcra = (now: number, storedTat: number | undefined, limit: number, windowMs: number): GcraStep => {
  const interval = windowMs / limit
  const tat = Math.max(storedTat ?? now, now)
  const newTat = tat + interval
  const allowAt = newTat - windowMs
  if (now < allowAt) {
    return { allowed: false, remaining: 0, retryAfterMs: Math.ceil(allowAt - now), tat }
  }
  return { allowed: true, remaining: Math.floor((now - allowAt) / interval), retryAfterMs: 0, tat: newTat }
}
