/** The RPC API: one group served at POST /rpc, used by `client.ts`. */
import { AuthRpcs, SessionRpcs } from "./Auth.ts"
import { HealthRpcs } from "./Health.ts"

export class Rpcs extends HealthRpcs.merge(AuthRpcs, SessionRpcs) {}
