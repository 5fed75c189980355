/** What the Postgres layers share for raw statements. */
import { Effect, Schema } from "effect"

/**
 * The rows of a statement decoded by `schema`: SQL errors stay failures (a transaction may mean
 * something by them); rows that do not decode are a defect (the schema and the table disagree).
 */
export const decodeRows = <A, I>(schema: Schema.Schema<A, I, never>) => {
  const decode = Schema.decodeUnknown(Schema.Array(schema))
  return <E, R>(statement: Effect.Effect<ReadonlyArray<unknown>, E, R>): Effect.Effect<ReadonlyArray<A>, E, R> =>
    Effect.flatMap(statement, (rows) => Effect.orDie(decode(rows)))
}
