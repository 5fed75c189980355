/**
 * The shape of an API key's secret, as a leaked-secret scanner sees it: `lps_live_`, 43 characters
 * of base62 carrying 256 random bits, and a 6-character base62 CRC-32 of those 43 characters, so a
 * scanner can tell a real key from noise without asking us (the scheme GitHub's tokens use).
 *
 * Pure: the random bytes come from the caller; storing and checking keys is the layers' business
 * (only a hash of the secret is kept).
 */

export const API_KEY_PREFIX = "lps_live_"
const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
const BODY_LENGTH = 43
const CHECKSUM_LENGTH = 6
export const API_KEY_LENGTH = API_KEY_PREFIX.length + BODY_LENGTH + CHECKSUM_LENGTH
const SHAPE = new RegExp(`^${API_KEY_PREFIX}[0-9A-Za-z]{${BODY_LENGTH + CHECKSUM_LENGTH}}$`)

const CRC_TABLE = (() => {
  const table = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    table[n] = c >>> 0
  }
  return table
})()

/** CRC-32 (IEEE) of an ASCII string. */
export const crc32 = (text: string) => {
  let crc = 0xffffffff
  for (let i = 0; i < text.length; i++) crc = CRC_TABLE[(crc ^ text.charCodeAt(i)) & 0xff]! ^ (crc >>> 8)
  return (crc ^ 0xffffffff) >>> 0
}

/** `value` in base62, left-padded with zeros to `width` digits. */
const base62 = (value: bigint, width: number) => {
  let out = ""
  let rest = value
  while (rest > 0n) {
    out = ALPHABET[Number(rest % 62n)]! + out
    rest /= 62n
  }
  return out.padStart(width, "0")
}

const checksumOf = (body: string) => base62(BigInt(crc32(body)), CHECKSUM_LENGTH)

/** A key's secret from 32 random bytes (more are ignored, fewer refused). */
export const formatApiKey = (random: Uint8Array): string => {
  if (random.length < 32) throw new RangeError("an API key needs 32 random bytes")
  let value = 0n
  for (let i = 0; i < 32; i++) value = (value << 8n) | BigInt(random[i]!)
  const body = base62(value, BODY_LENGTH)
  return `${API_KEY_PREFIX}${body}${checksumOf(body)}`
}

/** Whether `text` has a key's shape and its checksum holds: true for every key we issue, rarely for noise. */
export const isApiKey = (text: string): boolean => {
  if (!SHAPE.test(text)) return false
  const body = text.slice(API_KEY_PREFIX.length, API_KEY_PREFIX.length + BODY_LENGTH)
  return text.endsWith(checksumOf(body))
}

/** What a listing shows of a key: its prefix and the first characters, never enough to use it. */
export const displayedPart = (key: string) => `${key.slice(0, API_KEY_PREFIX.length + 4)}…`
