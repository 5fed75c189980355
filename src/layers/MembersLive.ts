import { Layer } from "effect"
import { Members } from "../services/Members.ts"

export const MembersLive = Layer.succeed(Members, Members.of({}))
