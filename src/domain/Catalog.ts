/**
 * The built-in permission catalog and the system roles every organization starts with.
 * Every endpoint of the RBAC API names one of these keys as the permission it requires.
 */
import type { Grant } from "./Decision.ts"

export const BUILT_IN_PERMISSIONS = [
  ["org:read", "See the organization"],
  ["org:update", "Rename the organization"],
  ["org:delete", "Delete the organization"],
  ["members:read", "List members"],
  ["members:invite", "Invite people"],
  ["members:remove", "Remove members"],
  ["permissions:read", "See the permission catalog"],
  ["permissions:create", "Add permissions to the catalog"],
  ["roles:read", "See roles"],
  ["roles:create", "Create roles"],
  ["roles:update", "Change roles, their parents and grants"],
  ["roles:delete", "Delete roles"],
  ["assignments:read", "See who holds which role"],
  ["assignments:create", "Give roles"],
  ["assignments:delete", "Take roles away"],
  ["authz:check", "Check or explain another user's permissions"],
  ["audit:read", "Read the audit log"]
] as const satisfies ReadonlyArray<readonly [key: string, description: string]>

/** A built-in permission key: what an operation may declare as the permission it requires. */
export type CatalogKey = (typeof BUILT_IN_PERMISSIONS)[number][0]

export interface SystemRole {
  readonly name: "owner" | "admin" | "member" | "viewer"
  readonly description: string
  readonly grants: ReadonlyArray<Grant>
}

const allow = (permission: string): Grant => ({ permission, effect: "allow" })

/**
 * `admin` is everything but `org:delete`, written as allows (a deny would also bind an owner who
 * is an admin too, since deny wins).
 */
export const SYSTEM_ROLES: ReadonlyArray<SystemRole> = [
  { name: "owner", description: "Everything, including deleting the organization", grants: [allow("*")] },
  {
    name: "admin",
    description: "Everything but deleting the organization",
    grants: [
      "org:read",
      "org:update",
      "members:*",
      "permissions:*",
      "roles:*",
      "assignments:*",
      "authz:*",
      "audit:*"
    ].map(allow)
  },
  {
    name: "member",
    description: "Read the organization, its members and roles",
    grants: ["org:read", "members:read", "roles:read"].map(allow)
  },
  { name: "viewer", description: "See the organization", grants: [allow("org:read")] }
]
