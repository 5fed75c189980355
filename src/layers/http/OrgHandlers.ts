/** Organizations on both doors, from one implementation. */
import { Effect } from "effect"
import { OrgsApi } from "../../rpc/Orgs.ts"
import { CurrentMember, CurrentUser } from "../../rpc/Security.ts"
import { Organizations } from "../../services/Organizations.ts"
import { implement } from "./Implement.ts"

export const OrgsHandlers = implement(
  OrgsApi,
  Effect.map(Organizations, (orgs) => ({
    create: ({ name, slug }, { meta }) =>
      Effect.flatMap(CurrentUser, (user) => orgs.create(user, { name, slug }, meta)),
    list: () => Effect.flatMap(CurrentUser, orgs.list),
    get: () => Effect.flatMap(CurrentMember, orgs.get),
    update: ({ name }, { meta }) => Effect.flatMap(CurrentMember, (member) => orgs.update(member, { name }, meta)),
    delete: (_, { meta }) => Effect.flatMap(CurrentMember, (member) => orgs.remove(member, meta))
  }))
)
