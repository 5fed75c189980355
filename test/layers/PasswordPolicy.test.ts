import { randomBytes } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import { commonPasswordCount, isCommonPassword } from "../../src/domain/PasswordPolicy.ts"

describe("PasswordPolicy", () => {
  it("ships a list of at least 3000 common passwords", () => {
    expect(commonPasswordCount).toBeGreaterThanOrEqual(3000)
  })

  it("refuses common passwords whatever their case", () => {
    const common = ["password", "Password", "PASSWORD", "password123", "Password123", "qwertyuiop", "QwertyUiop"]
    for (const password of [...common, "iloveyou", "ILoveYou", "12345678"]) {
      expect(isCommonPassword(password), password).toBe(true)
    }
  })

  it("accepts a long random passphrase", () => {
    expect(isCommonPassword("violet tractor umbrella seventeen")).toBe(false)
    expect(isCommonPassword(randomBytes(24).toString("base64"))).toBe(false)
  })
})
