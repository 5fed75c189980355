/** Members (being built). */
import { Context } from "effect"

export type MembersShape = {}

export class Members extends Context.Tag("app/Members")<Members, MembersShape>() {}
