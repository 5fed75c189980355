import { randomBytes } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import { Redacted } from "effect"
import {
  codeAt,
  matchingStep,
  newRecoveryCodes,
  newSecret,
  normalizeRecoveryCode,
  open,
  seal
} from "../../src/layers/auth/Totp.ts"
import { newToken } from "../../src/layers/Secrets.ts"

// A fixed secret and an instant in the middle of a 30 s step keep the cases deterministic.
const SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
const NOW = 1_700_000_015_000
const STEP = Math.floor(NOW / 30_000)
const STEP_MS = 30_000

const key = () => Redacted.make(randomBytes(32))

describe("TOTP secrets", () => {
  it("a new secret is 160 random bits (32 base32 characters)", () => {
    const secrets = Array.from({ length: 20 }, newSecret)
    for (const secret of secrets) expect(secret).toMatch(/^[A-Z2-7]{32}$/)
    expect(new Set(secrets).size).toBe(secrets.length)
  })
})

describe("TOTP codes", () => {
  it("the code for now matches the current step", () => {
    expect(matchingStep(SECRET, codeAt(SECRET, NOW), NOW)).toBe(STEP)
    const fresh = newSecret()
    expect(matchingStep(fresh, codeAt(fresh, Date.now()), Date.now())).toBeDefined()
  })

  it("codes of the previous and the next step match, and report their own step", () => {
    expect(matchingStep(SECRET, codeAt(SECRET, NOW - STEP_MS), NOW)).toBe(STEP - 1)
    expect(matchingStep(SECRET, codeAt(SECRET, NOW + STEP_MS), NOW)).toBe(STEP + 1)
  })

  it("codes two or more steps away do not match", () => {
    for (const steps of [-10, -3, -2, 2, 3, 10]) {
      expect(matchingStep(SECRET, codeAt(SECRET, NOW + steps * STEP_MS), NOW)).toBeUndefined()
    }
  })

  it("input that is not exactly 6 ASCII digits never matches", () => {
    const code = codeAt(SECRET, NOW)
    const near = [` ${code}`, `${code} `, `${code}0`, code.slice(0, 5), `${code.slice(0, 3)} ${code.slice(3)}`]
    const fullWidth = code.replace(/\d/g, (digit) => String.fromCharCode(0xff10 + Number(digit)))
    for (const input of [...near, fullWidth, "", "abcdef", "12345a", "-12345", "1e5000"]) {
      expect(matchingStep(SECRET, input, NOW)).toBeUndefined()
    }
  })
})

describe("sealed TOTP secrets", () => {
  it("seal then open gives the secret back", () => {
    const k = key()
    expect(open(k, seal(k, SECRET))).toBe(SECRET)
  })

  it("the sealed text does not contain the secret and differs each time", () => {
    const k = key()
    const sealed = seal(k, SECRET)
    expect(sealed).not.toContain(SECRET)
    expect(sealed.toLowerCase()).not.toContain(SECRET.toLowerCase())
    expect(seal(k, SECRET)).not.toBe(sealed)
  })

  const tamper = (sealed: string, part: number, edit: (bytes: Buffer) => Buffer) => {
    const parts = sealed.split(".")
    parts[part] = edit(Buffer.from(parts[part]!, "base64")).toString("base64")
    return parts.join(".")
  }
  const flipFirstBit = (bytes: Buffer) => {
    const copy = Buffer.from(bytes)
    copy[0]! ^= 1
    return copy
  }

  it("a changed ciphertext, tag or nonce does not open", () => {
    const k = key()
    const sealed = seal(k, SECRET)
    for (const part of [1, 2, 3]) expect(() => open(k, tamper(sealed, part, flipFirstBit))).toThrow()
  })

  // Node accepts GCM tags of 4 to 16 bytes unless the length is fixed; a shortened tag leaves
  // 2^32 tries to forge a sealed secret instead of 2^128.
  it("a sealed secret with a shortened tag does not open", () => {
    const k = key()
    const sealed = seal(k, SECRET)
    const shortened = tamper(sealed, 2, (tag) => tag.subarray(0, 4))
    expect(() => open(k, shortened)).toThrow()
  })

  it("another key does not open it", () => {
    expect(() => open(key(), seal(key(), SECRET))).toThrow()
  })

  it("text that was never sealed does not open", () => {
    expect(() => open(key(), SECRET)).toThrow()
  })
})

describe("opaque tokens and recovery codes", () => {
  it("a new token is 256 random bits, URL-safe", () => {
    const tokens = Array.from({ length: 20 }, newToken)
    for (const token of tokens) {
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/)
      expect(Buffer.from(token, "base64url")).toHaveLength(32)
    }
    expect(new Set(tokens).size).toBe(tokens.length)
  })

  it("a user gets 10 distinct recovery codes", () => {
    const codes = newRecoveryCodes()
    expect(codes).toHaveLength(10)
    expect(new Set(codes.map(normalizeRecoveryCode)).size).toBe(10)
  })

  // They are stored as a plain SHA-256 (no salt, no slow hash), so ASVS 6.5.2 asks for 112 bits.
  it("each recovery code carries at least 112 random bits", () => {
    for (const code of newRecoveryCodes()) expect(normalizeRecoveryCode(code).length * 4).toBeGreaterThanOrEqual(112)
  })

  it("a recovery code is accepted whatever its case, dashes or surrounding spaces", () => {
    const [code] = newRecoveryCodes() as [string]
    const bare = code.replaceAll("-", "")
    for (const typed of [code.toUpperCase(), bare, ` ${bare.toUpperCase()} `, code.replaceAll("-", " ")]) {
      expect(normalizeRecoveryCode(typed)).toBe(normalizeRecoveryCode(code))
    }
    expect(normalizeRecoveryCode(newRecoveryCodes()[0]!)).not.toBe(normalizeRecoveryCode(code))
  })
})
