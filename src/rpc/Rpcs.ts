/** The RPC API: one group served at POST /rpc, used by `client.ts`. */
import { AuthRpcs, SessionRpcs } from "./Auth.ts"
import { HealthRpcs } from "./Health.ts"
import { OrgRpcs, OrgsRpcs } from "./Orgs.ts"

export class Rpcs extends HealthRpcs.merge(AuthRpcs, SessionRpcs, OrgsRpcs, OrgRpcs) {}
