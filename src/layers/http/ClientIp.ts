/**
 * The client address of a request. `X-Forwarded-For` is believed only for the number of proxy hops
 * that TRUST_PROXY names: with one trusted proxy, the entry that proxy appended is the client.
 * Entries further left are supplied by the client and can be spoofed.
 */
export const clientIp = (remoteAddress: string | undefined, forwardedFor: string | undefined, trustedHops: number) => {
  const remote = normalize(remoteAddress ?? "unknown")
  if (trustedHops === 0 || forwardedFor === undefined || forwardedFor.trim() === "") return remote
  const chain = forwardedFor
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part.length > 0)
  const index = Math.max(0, chain.length - trustedHops)
  return normalize(chain[index] ?? remote)
}

const normalize = (address: string) => (address.startsWith("::ffff:") ? address.slice(7) : address)
