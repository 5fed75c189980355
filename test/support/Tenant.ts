/** Sets up organizations the way users do, through the public API: sign-ups, invitations by mail, roles, assignments. */
import { expect } from "vitest"
import { type rest, STRONG_PASSWORD, type TokenPairBody, uniqueEmail } from "./AuthClient.ts"
import { tokenIn, waitForMail } from "./Mailbox.ts"

type Api = ReturnType<typeof rest>

export interface User {
  readonly email: string
  readonly token: string
  readonly refreshToken: string
  readonly sessionId: string
  readonly userId: string
}

export const signUp = async (api: Api, label: string): Promise<User> => {
  const email = uniqueEmail(label)
  await api.register(email, STRONG_PASSWORD)
  const tokens = (await api.login(email, STRONG_PASSWORD)).body as TokenPairBody
  const userId = String((await api.me(tokens.accessToken)).body.id)
  return {
    email,
    token: tokens.accessToken,
    refreshToken: tokens.refreshToken,
    sessionId: tokens.sessionId,
    userId
  }
}

export const tenant = (api: Api, dataDir: string, owner: User, organizationId: string) => {
  const path = `/v1/orgs/${organizationId}`
  const roleIds = async () => {
    const listed = await api.call<Array<{ id: string; name: string }>>("GET", `${path}/roles`, { token: owner.token })
    return Object.fromEntries(listed.body.map((role) => [role.name, role.id]))
  }
  return {
    organizationId,
    path,
    roleIds,
    /** Invites `user` by mail and accepts as them. */
    join: async (user: User, roles: Array<string> = []) => {
      const ids = await roleIds()
      const invited = await api.call("POST", `${path}/invitations`, {
        token: owner.token,
        body: { email: user.email, roleIds: roles.map((name) => ids[name]) }
      })
      expect(invited.status).toBe(201)
      const mail = await waitForMail(dataDir, (m) => m.to.includes(user.email) && /invit/i.test(m.subject))
      const accepted = await api.call<{ revision: string }>("POST", "/v1/invitations/accept", {
        token: user.token,
        body: { token: tokenIn(mail) }
      })
      expect(accepted.status).toBe(200)
      return accepted.body.revision
    },
    createPermission: async (key: string) => {
      const created = await api.call("POST", `${path}/permissions`, { token: owner.token, body: { key } })
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
    ticket: async (user: User, node: Api = api) => {
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

export const createOrganization = async (api: Api, owner: User, label = "org") => {
  const created = await api.call<{ id: string; revision: string }>("POST", "/v1/orgs", {
    token: owner.token,
    body: { name: `Org ${label}`, slug: `${label}-${Date.now()}-${Math.floor(Math.random() * 1e6)}` }
  })
  expect(created.status).toBe(201)
  return created.body.id
}
