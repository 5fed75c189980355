/** Opaque secrets (refresh tokens, invitation, reset and ticket tokens): made random, stored hashed. */
import { createHash, randomBytes } from "node:crypto"

/** A 256-bit random token, URL-safe. */
export const newToken = () => randomBytes(32).toString("base64url")

/** What is stored of an opaque token: its SHA-256 (a 256-bit random token needs no slow hash). */
export const sha256 = (value: string) => createHash("sha256").update(value, "utf8").digest()
