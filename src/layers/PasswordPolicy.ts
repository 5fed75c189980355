import { readFileSync } from "node:fs"

/**
 * The rules a new password must meet beyond its length (checked by the schema): not one of the
 * 10,000 most common passwords of 8+ characters (case-insensitive).
 */
const common = new Set(
  readFileSync(new URL("./data/common-passwords.txt", import.meta.url), "utf8")
    .split("\n")
    .filter((line) => line.length > 0 && !line.startsWith("#"))
)

export const commonPasswordCount = common.size

export const isCommonPassword = (password: string) => common.has(password.toLowerCase())
