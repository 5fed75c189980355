/** Thin adapters from both doors to the Roles service (roles and the permission catalog). */
import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { Api } from "../../rpc/Api.ts"
import { RolesRpcs } from "../../rpc/Roles.ts"
import { CurrentMember, type Member } from "../../rpc/Security.ts"
import type { RequestMeta } from "../../services/AuditLog.ts"
import { Roles } from "../../services/Roles.ts"
import { httpMeta, withRevisionHeader } from "./HandlerSupport.ts"
import { requestMeta } from "./RequestMeta.ts"

/** An HTTP write: the guarded caller and the request's meta in, the revision out in a header too. */
const write = <A extends { readonly revision: string }, E, R>(
  change: (member: Member, meta: RequestMeta) => Effect.Effect<A, E, R>
) =>
  Effect.all([CurrentMember, httpMeta]).pipe(
    Effect.flatMap(([member, meta]) => change(member, meta)),
    Effect.flatMap(withRevisionHeader)
  )

export const RolesHttpLive = HttpApiBuilder.group(Api, "roles", (handlers) =>
  Effect.map(Roles, (roles) =>
    handlers
      .handle("listPermissions", () => Effect.flatMap(CurrentMember, roles.permissions))
      .handle("createPermission", ({ payload }) =>
        write((member, meta) => roles.createPermission(member, payload, meta))
      )
      .handle("list", () => Effect.flatMap(CurrentMember, roles.list))
      .handle("create", ({ payload }) => write((member, meta) => roles.create(member, payload, meta)))
      .handle("get", ({ path }) => Effect.flatMap(CurrentMember, (member) => roles.get(member, path.roleId)))
      .handle("update", ({ path, payload }) =>
        write((member, meta) => roles.update(member, path.roleId, payload, meta))
      )
      .handle("delete", ({ path }) => write((member, meta) => roles.remove(member, path.roleId, meta)))
      .handle("setParents", ({ path, payload }) =>
        write((member, meta) => roles.setParents(member, path.roleId, payload.parentIds, meta))
      )
      .handle("setGrants", ({ path, payload }) =>
        write((member, meta) => roles.setGrants(member, path.roleId, payload.grants, meta))
      )
  )
)

export const RolesRpcLive = RolesRpcs.toLayer(
  Effect.map(Roles, (roles) =>
    RolesRpcs.of({
      "permissions.list": () => Effect.flatMap(CurrentMember, roles.permissions),
      "permissions.create": ({ key, description }, { headers }) =>
        Effect.flatMap(CurrentMember, (member) =>
          roles.createPermission(member, { key, description }, requestMeta(headers))
        ),
      "roles.list": () => Effect.flatMap(CurrentMember, roles.list),
      "roles.create": ({ name, description, parentIds, grants }, { headers }) =>
        Effect.flatMap(CurrentMember, (member) =>
          roles.create(member, { name, description, parentIds, grants }, requestMeta(headers))
        ),
      "roles.get": ({ roleId }) => Effect.flatMap(CurrentMember, (member) => roles.get(member, roleId)),
      "roles.update": ({ roleId, name, description }, { headers }) =>
        Effect.flatMap(CurrentMember, (member) =>
          roles.update(member, roleId, { name, description }, requestMeta(headers))
        ),
      "roles.delete": ({ roleId }, { headers }) =>
        Effect.flatMap(CurrentMember, (member) => roles.remove(member, roleId, requestMeta(headers))),
      "roles.setParents": ({ roleId, parentIds }, { headers }) =>
        Effect.flatMap(CurrentMember, (member) => roles.setParents(member, roleId, parentIds, requestMeta(headers))),
      "roles.setGrants": ({ roleId, grants }, { headers }) =>
        Effect.flatMap(CurrentMember, (member) => roles.setGrants(member, roleId, grants, requestMeta(headers)))
    })
  )
)
