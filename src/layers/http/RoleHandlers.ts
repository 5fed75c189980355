/** Roles and the permission catalog on both doors, from one implementation each. */
import { Effect } from "effect"
import { PermissionsApi, RolesApi } from "../../rpc/Roles.ts"
import { CurrentMember } from "../../rpc/Security.ts"
import { Roles } from "../../services/Roles.ts"
import { implement } from "./Implement.ts"

export const PermissionsHandlers = implement(
  PermissionsApi,
  Effect.map(Roles, (roles) => ({
    list: () => Effect.flatMap(CurrentMember, roles.permissions),
    create: ({ key, description }, { meta }) =>
      Effect.flatMap(CurrentMember, (member) => roles.createPermission(member, { key, description }, meta))
  }))
)

export const RolesHandlers = implement(
  RolesApi,
  Effect.map(Roles, (roles) => ({
    list: () => Effect.flatMap(CurrentMember, roles.list),
    create: ({ name, description, parentIds, grants }, { meta }) =>
      Effect.flatMap(CurrentMember, (member) => roles.create(member, { name, description, parentIds, grants }, meta)),
    get: ({ roleId }) => Effect.flatMap(CurrentMember, (member) => roles.get(member, roleId)),
    update: ({ roleId, name, description }, { meta }) =>
      Effect.flatMap(CurrentMember, (member) => roles.update(member, roleId, { name, description }, meta)),
    delete: ({ roleId }, { meta }) => Effect.flatMap(CurrentMember, (member) => roles.remove(member, roleId, meta)),
    setParents: ({ roleId, parentIds }, { meta }) =>
      Effect.flatMap(CurrentMember, (member) => roles.setParents(member, roleId, parentIds, meta)),
    setGrants: ({ roleId, grants }, { meta }) =>
      Effect.flatMap(CurrentMember, (member) => roles.setGrants(member, roleId, grants, meta))
  }))
)
