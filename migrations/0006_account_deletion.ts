import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * An account deleted in the database (by an operator: the API disables accounts, it does not delete
 * them) takes its sessions with it (ON DELETE CASCADE), so nothing would tell the nodes that its
 * access tokens are dead. Before the row goes, this records the one `sessions.revoked` event for the
 * sessions still open, in the same transaction, as the Sessions service does for every other
 * ending: the relay delivers it, each node's Revocations refuses those tokens from then on and its
 * LiveRouter closes their sockets. The signed-in guard needs no read of the account per request.
 */
export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE OR REPLACE FUNCTION end_sessions_of_deleted_user() RETURNS trigger AS $$
    BEGIN
      INSERT INTO outbox (organization_id, revision, event_type, payload)
      SELECT NULL, NULL, 'sessions.revoked',
        jsonb_build_object('userId', OLD.id::text, 'sessionIds', jsonb_agg(s.id::text), 'reason', 'account_deleted')
      FROM sessions s WHERE s.user_id = OLD.id AND s.revoked_at IS NULL
      HAVING count(*) > 0;
      RETURN OLD;
    END
    $$ LANGUAGE plpgsql`
  yield* sql`DROP TRIGGER IF EXISTS users_end_sessions_on_delete ON users`
  yield* sql`
    CREATE TRIGGER users_end_sessions_on_delete BEFORE DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION end_sessions_of_deleted_user()`
})
