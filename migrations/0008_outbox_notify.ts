import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * Every statement that writes outbox rows notifies `outbox_committed` (delivered at commit, once
 * per transaction; the payload is not empty, which some clients drop), so the relays of every node
 * (LISTEN) publish events committed anywhere, by a node, the admin command or a trigger, at once
 * instead of at their next poll.
 */
export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE OR REPLACE FUNCTION notify_outbox_committed() RETURNS trigger AS $$
    BEGIN
      PERFORM pg_notify('outbox_committed', 'outbox');
      RETURN NULL;
    END
    $$ LANGUAGE plpgsql`
  yield* sql`DROP TRIGGER IF EXISTS outbox_notify ON outbox`
  yield* sql`
    CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox_committed()`
})
