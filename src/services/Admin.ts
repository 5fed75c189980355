/** Admin (being built). */
import { Context } from "effect"

export type AdminShape = {}

export class Admin extends Context.Tag("app/Admin")<Admin, AdminShape>() {}
