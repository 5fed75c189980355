import list from "./data/common-passwords.json" with { type: "json" }

/**
 * The rules a new password must meet beyond its length (checked by the schema): not one of the
 * 10,000 most common passwords of 8+ characters (case-insensitive).
 */
const common = new Set(list.passwords)

export const commonPasswordCount = common.size

export const isCommonPassword = (password: string) => common.has(password.toLowerCase())
