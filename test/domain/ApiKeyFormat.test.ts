import { randomBytes } from "node:crypto"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  API_KEY_LENGTH,
  API_KEY_PREFIX,
  crc32,
  displayedPart,
  formatApiKey,
  isApiKey
} from "../../src/domain/ApiKeyFormat.ts"

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

describe("API key format", () => {
  it("computes the standard CRC-32", () => {
    expect(crc32("123456789")).toBe(0xcbf43926)
    expect(crc32("")).toBe(0)
  })

  it("gives every 32 random bytes a key of one length that a scanner recognises, different bytes different keys", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        (a, b) => {
          const key = formatApiKey(a)
          expect(key.startsWith(API_KEY_PREFIX)).toBe(true)
          expect(key).toHaveLength(API_KEY_LENGTH)
          expect(isApiKey(key)).toBe(true)
          expect(formatApiKey(b) === key).toBe(Buffer.from(a).equals(Buffer.from(b)))
        }
      )
    )
    expect(isApiKey(formatApiKey(new Uint8Array(32)))).toBe(true)
    expect(isApiKey(formatApiKey(new Uint8Array(32).fill(255)))).toBe(true)
    expect(() => formatApiKey(new Uint8Array(31))).toThrow(RangeError)
  })

  it("refuses a key with any one character changed, and text of the wrong shape", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.nat(),
        fc.integer({ min: 1, max: 61 }),
        (bytes, at, shift) => {
          const key = formatApiKey(bytes)
          const i = API_KEY_PREFIX.length + (at % (API_KEY_LENGTH - API_KEY_PREFIX.length))
          const changed = ALPHABET[(ALPHABET.indexOf(key[i]!) + shift) % 62]!
          expect(isApiKey(key.slice(0, i) + changed + key.slice(i + 1))).toBe(false)
        }
      )
    )
    const key = formatApiKey(randomBytes(32))
    for (const noise of [
      "",
      key.slice(1),
      `${key}x`,
      key.replace(API_KEY_PREFIX, "lps_test_"),
      `${key.slice(0, -1)}-`
    ]) {
      expect(isApiKey(noise)).toBe(false)
    }
  })

  it("shows only the prefix and four characters in listings", () => {
    const key = formatApiKey(randomBytes(32))
    expect(displayedPart(key)).toBe(`${key.slice(0, API_KEY_PREFIX.length + 4)}…`)
  })
})
