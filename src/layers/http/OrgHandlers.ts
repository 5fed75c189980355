/** Thin adapters from both doors to the Organizations service. */
import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { Api } from "../../rpc/Api.ts"
import { OrgRpcs, OrgsRpcs } from "../../rpc/Orgs.ts"
import { CurrentMember, CurrentUser } from "../../rpc/Security.ts"
import { Organizations } from "../../services/Organizations.ts"
import { httpMeta as meta, withRevisionHeader } from "./HandlerSupport.ts"
import { requestMeta } from "./RequestMeta.ts"

export const OrgsHttpLive = HttpApiBuilder.group(Api, "orgs", (handlers) =>
  Effect.map(Organizations, (orgs) =>
    handlers
      .handle("create", ({ payload }) =>
        Effect.all([CurrentUser, meta]).pipe(
          Effect.flatMap(([user, m]) => orgs.create(user, payload, m)),
          Effect.flatMap(withRevisionHeader)
        )
      )
      .handle("list", () => Effect.flatMap(CurrentUser, orgs.list))
  )
)

export const OrgHttpLive = HttpApiBuilder.group(Api, "org", (handlers) =>
  Effect.map(Organizations, (orgs) =>
    handlers
      .handle("get", () => Effect.flatMap(CurrentMember, orgs.get))
      .handle("update", ({ payload }) =>
        Effect.all([CurrentMember, meta]).pipe(
          Effect.flatMap(([member, m]) => orgs.update(member, payload, m)),
          Effect.flatMap(withRevisionHeader)
        )
      )
      .handle("delete", () =>
        Effect.all([CurrentMember, meta]).pipe(Effect.flatMap(([member, m]) => orgs.remove(member, m)))
      )
  )
)

export const OrgsRpcLive = OrgsRpcs.toLayer(
  Effect.map(Organizations, (orgs) =>
    OrgsRpcs.of({
      "orgs.create": (payload, { headers }) =>
        Effect.flatMap(CurrentUser, (user) => orgs.create(user, payload, requestMeta(headers))),
      "orgs.list": () => Effect.flatMap(CurrentUser, orgs.list)
    })
  )
)

export const OrgRpcLive = OrgRpcs.toLayer(
  Effect.map(Organizations, (orgs) =>
    OrgRpcs.of({
      "orgs.get": () => Effect.flatMap(CurrentMember, orgs.get),
      "orgs.update": ({ name }, { headers }) =>
        Effect.flatMap(CurrentMember, (member) => orgs.update(member, { name }, requestMeta(headers))),
      "orgs.delete": (_, { headers }) =>
        Effect.flatMap(CurrentMember, (member) => orgs.remove(member, requestMeta(headers)))
    })
  )
)
