import { Layer } from "effect"
import { Admin } from "../services/Admin.ts"

export const AdminLive = Layer.succeed(Admin, Admin.of({}))
