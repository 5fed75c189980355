import { existsSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"

export interface Mail {
  readonly to: string
  readonly subject: string
  readonly text: string
  readonly raw: string
}

const decodeQuotedPrintable = (text: string) =>
  text
    .replace(/=\r?\n/g, "")
    .replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)))

const parse = (raw: string): Mail => {
  const [head = "", ...rest] = raw.split(/\r?\n\r?\n/)
  const header = (name: string) => head.match(new RegExp(`^${name}: (.*)$`, "im"))?.[1]?.trim() ?? ""
  const body = rest.join("\n\n")
  const text = /quoted-printable/i.test(head) ? decodeQuotedPrintable(body) : body
  return { to: header("To"), subject: header("Subject"), text, raw }
}

/** The `.eml` files the server's file mail sink wrote under DATA_DIR/mail, oldest first. */
export const readMailbox = (dataDir: string): ReadonlyArray<Mail> => {
  const dir = join(dataDir, "mail")
  if (!existsSync(dir)) return []
  return readdirSync(dir)
    .filter((file) => file.endsWith(".eml"))
    .sort()
    .map((file) => parse(readFileSync(join(dir, file), "utf8")))
}

export const waitForMail = async (
  dataDir: string,
  match: (mail: Mail) => boolean,
  timeoutMs = 10_000
): Promise<Mail> => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const found = readMailbox(dataDir).find(match)
    if (found !== undefined) return found
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(
    `no matching mail within ${timeoutMs} ms; mailbox has: ${readMailbox(dataDir)
      .map((m) => `${m.to}: ${m.subject}`)
      .join(" | ")}`
  )
}

/** The first 256-bit token (43 base64url characters on a line of its own) in a mail. */
export const tokenIn = (mail: Mail) => {
  const token = mail.text.match(/^([A-Za-z0-9_-]{43})\s*$/m)?.[1]
  if (token === undefined) throw new Error(`no token in mail "${mail.subject}"`)
  return token
}
