import { Layer } from "effect"
import { Roles } from "../services/Roles.ts"

export const RolesLive = Layer.succeed(Roles, Roles.of({}))
