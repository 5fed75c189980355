import { HttpApiBuilder } from "@effect/platform"
import { Api } from "./Api.ts"
import { MembersRpcs } from "./Members.ts"
import { InvitationsRpcs } from "./Invitations.ts"

export const MembersHttpLive = HttpApiBuilder.group(Api, "members", (handlers) => handlers)
export const MembersRpcLive = MembersRpcs.toLayer({})

export const InvitationsHttpLive = HttpApiBuilder.group(Api, "invitations", (handlers) => handlers)
export const InvitationsRpcLive = InvitationsRpcs.toLayer({})
