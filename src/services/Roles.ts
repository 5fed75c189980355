/** Roles (being built). */
import { Context } from "effect"

export type RolesShape = {}

export class Roles extends Context.Tag("app/Roles")<Roles, RolesShape>() {}
