import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * Addresses are decoded to one key, lower case and Unicode NFC (S49, rpc/Auth.ts). Rows written
 * before that rule may hold another form of the same address (`e` + combining acute instead of
 * `é`): without this, their owner could no longer sign in or accept an invitation. Each is rewritten
 * to its key, unless another account already holds that key: then both are left as they are for an
 * operator to merge. Running it again changes nothing.
 */
export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    UPDATE users u SET email = normalize(lower(u.email), NFC), updated_at = now()
    WHERE u.email <> normalize(lower(u.email), NFC)
      AND NOT EXISTS (
        SELECT 1 FROM users o WHERE o.id <> u.id AND lower(o.email) = normalize(lower(u.email), NFC)
      )`
  yield* sql`
    UPDATE invitations SET email = normalize(lower(email), NFC)
    WHERE accepted_at IS NULL AND email <> normalize(lower(email), NFC)`
})
