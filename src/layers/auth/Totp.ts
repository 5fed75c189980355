/**
 * TOTP (RFC 6238: SHA-1, 6 digits, 30 s) with otpauth, secrets sealed with AES-256-GCM, and
 * recovery codes.
 */

import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto"
import { Redacted } from "effect"
import { Secret, TOTP } from "otpauth"

const PERIOD = 30

export const newSecret = () => new Secret({ size: 20 }).base32

const totp = (secret: string, label = "account") =>
  new TOTP({ issuer: "Live Permission Server", label, algorithm: "SHA1", digits: 6, period: PERIOD, secret })

export const otpauthUrl = (secret: string, email: string) => totp(secret, email).toString()

/** The time step a code belongs to (±1 step of skew), or undefined when it matches none. */
export const matchingStep = (secret: string, code: string, now: number): number | undefined => {
  if (!/^\d{6}$/.test(code)) return undefined
  const delta = totp(secret).validate({ token: code, timestamp: now, window: 1 })
  return delta === null ? undefined : Math.floor(now / 1000 / PERIOD) + delta
}

export const codeAt = (secret: string, now: number) => totp(secret).generate({ timestamp: now })

export const seal = (key: Redacted.Redacted<Buffer>, plain: string) => {
  const iv = randomBytes(12)
  const cipher = createCipheriv("aes-256-gcm", Redacted.value(key), iv)
  const sealed = Buffer.concat([cipher.update(plain, "utf8"), cipher.final()])
  return ["v1", iv.toString("base64"), cipher.getAuthTag().toString("base64"), sealed.toString("base64")].join(".")
}

export const open = (key: Redacted.Redacted<Buffer>, sealed: string) => {
  const [version, iv, tag, data] = sealed.split(".")
  if (version !== "v1" || iv === undefined || tag === undefined || data === undefined) throw new Error("not sealed")
  const decipher = createDecipheriv("aes-256-gcm", Redacted.value(key), Buffer.from(iv, "base64"), {
    authTagLength: 16
  })
  decipher.setAuthTag(Buffer.from(tag, "base64"))
  return Buffer.concat([decipher.update(Buffer.from(data, "base64")), decipher.final()]).toString("utf8")
}

/**
 * Ten recovery codes like `3f9a-07c2-…` (7 groups of 4 hex digits): 112 random bits each, enough
 * for a plain SHA-256 at rest (ASVS 6.5.2); shown once.
 */
export const newRecoveryCodes = () =>
  Array.from({ length: 10 }, () => randomBytes(14).toString("hex").match(/.{4}/g)!.join("-"))

export const normalizeRecoveryCode = (code: string) =>
  code
    .trim()
    .toLowerCase()
    .replace(/[^0-9a-f]/g, "")
