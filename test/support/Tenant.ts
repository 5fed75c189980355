/** Sets up organizations the way users do, through the public API: sign-ups, invitations by mail, roles, assignments. */
import { expect } from "vitest"
import { type Rest, STRONG_PASSWORD, type TokenPairBody, uniqueEmail } from "./AuthClient.ts"
import { readMailbox, tokenIn } from "./Mailbox.ts"

export interface User {
  readonly email: string
  readonly password: string
  readonly token: string
  readonly refreshToken: string
  readonly sessionId: string
  readonly userId: string
  /** The token pair the sign-in answered with. */
  readonly tokens: TokenPairBody
}

/** Registers a new address, signs in and reads `/v1/me` for the user's id. */
export const signUp = async (api: Rest, label: string, password = STRONG_PASSWORD): Promise<User> => {
  const email = uniqueEmail(label)
  expect((await api.register(email, password)).status).toBe(202)
  const login = await api.login(email, password)
  expect(login.status).toBe(200)
  const tokens = login.body as TokenPairBody
  const userId = String((await api.me(tokens.accessToken)).body.id)
  return {
    email,
    password,
    token: tokens.accessToken,
    refreshToken: tokens.refreshToken,
    sessionId: tokens.sessionId,
    userId,
    tokens
  }
}

/** The invitation mails sent to `email` so far, oldest first. */
export const invitationMails = (dataDir: string, email: string) =>
  readMailbox(dataDir).filter((m) => m.to.includes(email) && m.subject.startsWith("Invitation"))

/** The token of the `nth` invitation mailed to `email` (1 = the first), waiting for it to arrive. */
export const invitationToken = async (dataDir: string, email: string, nth = 1) => {
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    const mail = invitationMails(dataDir, email)[nth - 1]
    if (mail !== undefined) return { token: tokenIn(mail), mail }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`no invitation mail #${nth} to ${email}`)
}

/** An organization seen by its owner: the set-up steps a suite takes in it. */
export const tenant = (api: Rest, dataDir: string, owner: User, organizationId: string) => {
  const path = `/v1/orgs/${organizationId}`
  const roleIds = async () => {
    const listed = await api.call<Array<{ id: string; name: string }>>("GET", `${path}/roles`, { token: owner.token })
    expect(listed.status).toBe(200)
    return Object.fromEntries(listed.body.map((role) => [role.name, role.id]))
  }
  return {
    organizationId,
    path,
    /** The organization's role ids by name. */
    roleIds,
    /** Invites `user` by mail with the named roles and accepts as them; the revision of the acceptance. */
    join: async (user: User, roles: ReadonlyArray<string> = []) => {
      const ids = await roleIds()
      const before = invitationMails(dataDir, user.email).length
      const invited = await api.call("POST", `${path}/invitations`, {
        token: owner.token,
        body: { email: user.email, roleIds: roles.map((name) => ids[name]) }
      })
      expect(invited.status).toBe(201)
      const { token } = await invitationToken(dataDir, user.email, before + 1)
      const accepted = await api.call<{ revision: string }>("POST", "/v1/invitations/accept", {
        token: user.token,
        body: { token }
      })
      expect(accepted.status).toBe(200)
      return accepted.body.revision
    },
    createPermission: async (key: string, description?: string) => {
      const created = await api.call("POST", `${path}/permissions`, {
        token: owner.token,
        body: description === undefined ? { key } : { key, description }
      })
      expect(created.status).toBe(201)
    },
    createRole: async (name: string, grants: Array<Record<string, unknown>>, parentIds: Array<string> = []) => {
      const created = await api.call<{ role: { id: string }; revision: string }>("POST", `${path}/roles`, {
        token: owner.token,
        body: { name, grants, parentIds }
      })
      expect(created.status).toBe(201)
      return created.body
    },
    setGrants: async (roleId: string, grants: Array<Record<string, unknown>>) => {
      const replaced = await api.call<{ revision: string }>("PUT", `${path}/roles/${roleId}/grants`, {
        token: owner.token,
        body: { grants }
      })
      expect(replaced.status).toBe(200)
      return replaced.body.revision
    },
    assign: async (body: Record<string, unknown>) => {
      const created = await api.call<{ assignment: { id: string }; revision: string }>("POST", `${path}/assignments`, {
        token: owner.token,
        body
      })
      expect(created.status).toBe(201)
      return created.body
    },
    unassign: async (assignmentId: string) => {
      const removed = await api.call<{ revision: string }>("DELETE", `${path}/assignments/${assignmentId}`, {
        token: owner.token
      })
      expect(removed.status).toBe(200)
      return removed.body.revision
    },
    ticket: async (user: User, node: Rest = api) => {
      const issued = await node.call<{ ticket: string; url: string; expiresIn: number }>(
        "POST",
        "/v1/realtime/tickets",
        {
          token: user.token,
          body: { organizationId }
        }
      )
      expect(issued.status).toBe(201)
      return issued.body
    }
  }
}

export type Tenant = ReturnType<typeof tenant>

export const createOrganization = async (api: Rest, owner: User, label = "org") => {
  const created = await api.call<{ id: string; revision: string }>("POST", "/v1/orgs", {
    token: owner.token,
    body: { name: `Org ${label}`, slug: `${label}-${Date.now()}-${Math.floor(Math.random() * 1e6)}` }
  })
  expect(created.status).toBe(201)
  return created.body.id
}
