/**
 * Roles and the permission catalog of an organization, on both doors: the catalog (built-in keys
 * plus the organization's own), roles with their parents (the inheritance DAG) and their grants,
 * conditions included. Each operation declares the permission it requires; the organization guard
 * enforces it before a handler runs.
 */
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import { ParseResult, Schema } from "effect"
import { type Condition as ConditionType, GRANT_PATTERN, PERMISSION_KEY } from "../domain/Decision.ts"
import { Conflict, Forbidden, NotFound, ServiceUnavailable } from "./Errors.ts"
import { canonicalId } from "./Ids.ts"
import { operations, rpcsOf } from "./Operation.ts"
import { OrganizationId, Revision } from "./Orgs.ts"
import { OrgAuthorization } from "./Security.ts"
import { storable } from "./Text.ts"

export const RoleId = canonicalId("RoleId")

const Name = Schema.Trim.pipe(storable(), Schema.minLength(1), Schema.maxLength(200))
const Description = Schema.Trim.pipe(storable(), Schema.maxLength(1000))

export const PermissionKey = Schema.String.pipe(
  Schema.maxLength(200),
  Schema.pattern(PERMISSION_KEY, { message: () => "must be a lowercase `resource:action` key" })
).annotations({ identifier: "PermissionKey" })

export const GrantPattern = Schema.String.pipe(
  Schema.maxLength(200),
  Schema.pattern(GRANT_PATTERN, { message: () => "must be `*`, `resource:*` or a `resource:action` key" })
).annotations({ identifier: "GrantPattern" })

// Conditions: data, never code. Each node has exactly one operator; anything else is refused.
export const CONDITION_MAX_DEPTH = 8
export const CONDITION_MAX_NODES = 64

const strict = { parseOptions: { onExcessProperty: "error" } } as const

const Literal = Schema.Union(
  Schema.String.pipe(storable(), Schema.maxLength(1000)),
  Schema.Number,
  Schema.Boolean,
  Schema.Null
)

const VAR_PATH =
  /^(subject\.id|resource\.id|resource\.type|(subject|resource)\.attributes(\.[A-Za-z_][\w-]{0,63}){1,8})$/
const VarPath = Schema.String.pipe(
  Schema.pattern(VAR_PATH, {
    message: () =>
      "must be subject.id, subject.attributes.<name>, resource.id, resource.type or resource.attributes.<name>"
  })
)

const Operand = Schema.Union(Literal, Schema.Array(Literal), Schema.Struct({ var: VarPath }).annotations(strict))
const Operands = Schema.Tuple(Operand, Operand)

const Tree: Schema.Schema<ConditionType> = Schema.Union(
  Schema.Struct({ eq: Operands }).annotations(strict),
  Schema.Struct({ ne: Operands }).annotations(strict),
  Schema.Struct({ in: Operands }).annotations(strict),
  Schema.Struct({ and: Schema.Array(Schema.suspend(() => Tree)) }).annotations(strict),
  Schema.Struct({ or: Schema.Array(Schema.suspend(() => Tree)) }).annotations(strict),
  Schema.Struct({ not: Schema.suspend(() => Tree) }).annotations(strict)
)

const operandNodes = (operand: unknown) => (Array.isArray(operand) ? 1 + operand.length : 1)

/** Condition objects plus operands (a list counts one more per item). */
export const conditionNodes = (condition: ConditionType): number => {
  if ("and" in condition) return 1 + condition.and.reduce((sum, c) => sum + conditionNodes(c), 0)
  if ("or" in condition) return 1 + condition.or.reduce((sum, c) => sum + conditionNodes(c), 0)
  if ("not" in condition) return 1 + conditionNodes(condition.not)
  const [a, b] = "eq" in condition ? condition.eq : "ne" in condition ? condition.ne : condition.in
  return 1 + operandNodes(a) + operandNodes(b)
}

/** A comparison is one level; and, or and not add one. */
export const conditionDepth = (condition: ConditionType): number => {
  if ("and" in condition) return 1 + Math.max(0, ...condition.and.map(conditionDepth))
  if ("or" in condition) return 1 + Math.max(0, ...condition.or.map(conditionDepth))
  if ("not" in condition) return 1 + conditionDepth(condition.not)
  return 1
}

const Limited = Tree.pipe(
  Schema.filter((condition) =>
    conditionDepth(condition) > CONDITION_MAX_DEPTH
      ? `is nested more than ${CONDITION_MAX_DEPTH} levels deep`
      : conditionNodes(condition) > CONDITION_MAX_NODES
        ? `has more than ${CONDITION_MAX_NODES} nodes`
        : true
  )
)

// JSON nesting and size any valid condition stays within (each level is an object and an array).
const RAW_MAX_DEPTH = 2 * CONDITION_MAX_DEPTH + 2
const RAW_MAX_VALUES = 4 * CONDITION_MAX_NODES

/**
 * Measures the raw JSON without recursion and stops early, before the recursive decoder (or the
 * error formatter, which prints what it got) walks a body nested thousands of levels deep.
 */
const withinBounds = (input: unknown) => {
  const stack: Array<readonly [unknown, number]> = [[input, 1]]
  let values = 0
  while (stack.length > 0) {
    const [value, depth] = stack.pop()!
    values += 1
    if (values > RAW_MAX_VALUES || depth > RAW_MAX_DEPTH) return false
    if (typeof value === "object" && value !== null) {
      for (const child of Object.values(value)) stack.push([child, depth + 1])
    }
  }
  return true
}

const tooLarge = `is larger than a condition may be (${CONDITION_MAX_DEPTH} levels, ${CONDITION_MAX_NODES} nodes)`

// The OpenAPI 3.1 description of the recursive shape (a declared schema carries its own).
const literalJson = [{ type: "string", maxLength: 1000 }, { type: "number" }, { type: "boolean" }, { type: "null" }]
const operandJson = {
  anyOf: [
    ...literalJson,
    { type: "array", items: { anyOf: literalJson } },
    {
      type: "object",
      required: ["var"],
      properties: { var: { type: "string", pattern: VAR_PATH.source } },
      additionalProperties: false
    }
  ]
}
const only = (key: string, schema: object) => ({
  type: "object",
  required: [key],
  properties: { [key]: schema },
  additionalProperties: false
})
const pairJson = {
  type: "array",
  prefixItems: [operandJson, operandJson],
  items: operandJson,
  minItems: 2,
  maxItems: 2
}
const selfJson = { $ref: "#/components/schemas/Condition" }

export const Condition = Schema.declare<ConditionType, ConditionType, []>(
  [],
  {
    decode: () => (input, options, ast) =>
      withinBounds(input)
        ? ParseResult.decodeUnknown(Limited)(input, options)
        : ParseResult.fail(new ParseResult.Type(ast, input, tooLarge)),
    encode: () => (input, options) => ParseResult.encodeUnknown(Limited)(input, options)
  },
  {
    identifier: "Condition",
    arbitrary: () => (fc) =>
      fc.constantFrom<ConditionType>(
        { eq: [{ var: "resource.attributes.ownerId" }, { var: "subject.id" }] },
        { in: [{ var: "resource.type" }, ["project", "document"]] }
      ),
    description:
      "eq/ne/in over two operands, and/or over a list, not over one condition; operands are literals, " +
      'lists of literals or `{"var": "subject.id" | "subject.attributes.x" | "resource.id" | "resource.type" | ' +
      `"resource.attributes.x"}\`. At most ${CONDITION_MAX_DEPTH} levels deep and ${CONDITION_MAX_NODES} nodes.`,
    jsonSchema: {
      anyOf: [
        only("eq", pairJson),
        only("ne", pairJson),
        only("in", pairJson),
        only("and", { type: "array", items: selfJson }),
        only("or", { type: "array", items: selfJson }),
        only("not", selfJson)
      ]
    }
  }
)

export const Grant = Schema.Struct({
  permission: GrantPattern,
  effect: Schema.Literal("allow", "deny"),
  condition: Schema.optionalWith(Condition, { exact: true })
}).annotations({ identifier: "Grant" })
export type Grant = typeof Grant.Type

const Grants = Schema.Array(Grant).pipe(Schema.maxItems(200))
const ParentIds = Schema.Array(RoleId).pipe(Schema.maxItems(50))

export const CreatePermission = Schema.Struct({ key: PermissionKey, description: Schema.optional(Description) })
export const CreateRole = Schema.Struct({
  name: Name,
  description: Schema.optional(Description),
  parentIds: Schema.optional(ParentIds),
  grants: Schema.optional(Grants)
})
export const UpdateRole = Schema.Struct({ name: Schema.optional(Name), description: Schema.optional(Description) })
export const SetParents = Schema.Struct({ parentIds: ParentIds })
export const SetGrants = Schema.Struct({ grants: Grants })

export class Permission extends Schema.Class<Permission>("Permission")({
  key: Schema.String,
  description: Schema.String,
  builtIn: Schema.Boolean
}) {}

export class PermissionCreated extends Schema.Class<PermissionCreated>("PermissionCreated")({
  permission: Permission,
  revision: Revision
}) {}

export class Role extends Schema.Class<Role>("Role")({
  id: Schema.String,
  name: Schema.String,
  description: Schema.String,
  isSystem: Schema.Boolean,
  parentIds: Schema.Array(Schema.String),
  grants: Schema.Array(Grant),
  createdAt: Schema.DateTimeUtc,
  updatedAt: Schema.DateTimeUtc
}) {}

export class RoleChanged extends Schema.Class<RoleChanged>("RoleChanged")({ role: Role, revision: Revision }) {}

export class RoleDeleted extends Schema.Class<RoleDeleted>("RoleDeleted")({
  deleted: Schema.Literal(true),
  revision: Revision
}) {}

const inOrg = operations({
  prefix: "/v1/orgs/:organizationId",
  params: { organizationId: OrganizationId, roleId: RoleId },
  guard: OrgAuthorization
})
const writeErrors = [NotFound, Forbidden, Conflict, ServiceUnavailable] as const

export class PermissionsApi extends HttpApiGroup.make("permissions")
  .add(inOrg.get("list", "/permissions", Schema.Array(Permission), { requires: "permissions:read" }))
  .add(
    inOrg.post("create", "/permissions", PermissionCreated, {
      payload: CreatePermission,
      status: 201,
      errors: [Conflict],
      requires: "permissions:create"
    })
  )
  .annotate(OpenApi.Title, "Permission catalog") {}

export class RolesApi extends HttpApiGroup.make("roles")
  .add(inOrg.get("list", "/roles", Schema.Array(Role), { requires: "roles:read" }))
  .add(
    inOrg.post("create", "/roles", RoleChanged, {
      payload: CreateRole,
      status: 201,
      errors: writeErrors,
      requires: "roles:create"
    })
  )
  .add(inOrg.get("get", "/roles/:roleId", Role, { errors: [NotFound], requires: "roles:read" }))
  .add(
    inOrg.patch("update", "/roles/:roleId", RoleChanged, {
      payload: UpdateRole,
      errors: [NotFound, Conflict],
      requires: "roles:update"
    })
  )
  .add(inOrg.del("delete", "/roles/:roleId", RoleDeleted, { errors: [NotFound, Conflict], requires: "roles:delete" }))
  .add(
    inOrg.put("setParents", "/roles/:roleId/parents", RoleChanged, {
      payload: SetParents,
      errors: writeErrors,
      requires: "roles:update"
    })
  )
  .add(
    inOrg.put("setGrants", "/roles/:roleId/grants", RoleChanged, {
      payload: SetGrants,
      errors: writeErrors,
      requires: "roles:update"
    })
  )
  .annotate(OpenApi.Title, "Roles") {}

export const PermissionsRpcs = rpcsOf(PermissionsApi)
export const RolesRpcs = rpcsOf(RolesApi)
