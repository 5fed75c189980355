/**
 * Readiness: whether this node can serve traffic, checked against each dependency it needs.
 * Owns the list of checks and their time limits; does not own restarting anything.
 */
import { Context, type Effect } from "effect"

export type CheckStatus = "up" | "down"

export interface ReadinessReport {
  readonly ready: boolean
  readonly checks: { readonly database: CheckStatus; readonly events: CheckStatus }
}

export interface ReadinessShape {
  readonly check: Effect.Effect<ReadinessReport>
}

export class Readiness extends Context.Tag("app/Readiness")<Readiness, ReadinessShape>() {}
