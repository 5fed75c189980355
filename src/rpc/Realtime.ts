/**
 * Live session tickets: a signed-in member asks for a single-use ticket and opens the live socket
 * with it (docs/live-protocol.md).
 */
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import { Schema } from "effect"
import { NotFound, ServiceUnavailable } from "./Errors.ts"
import { operations, rpcsOf } from "./Operation.ts"
import { OrganizationId } from "./Orgs.ts"
import { Authentication } from "./Security.ts"

export const TicketRequest = Schema.Struct({ organizationId: OrganizationId })

export class Ticket extends Schema.Class<Ticket>("Ticket")({
  /** Single use, valid for `expiresIn` seconds, bound to this session and organization. */
  ticket: Schema.String,
  /** The WebSocket URL to open, ticket included. */
  url: Schema.String,
  expiresIn: Schema.Int
}) {}

export class RealtimeApi extends HttpApiGroup.make("realtime")
  .add(
    operations({ guard: Authentication }).post("ticket", "/v1/realtime/tickets", Ticket, {
      payload: TicketRequest,
      status: 201,
      errors: [NotFound, ServiceUnavailable]
    })
  )
  .annotate(OpenApi.Title, "Live sessions") {}

export const RealtimeRpcs = rpcsOf(RealtimeApi)
