/** The RPC API: one group served at POST /rpc, used by `client.ts`. */
import { HealthRpcs } from "./Health.ts"

export class Rpcs extends HealthRpcs {}
