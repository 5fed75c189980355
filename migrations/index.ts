/** Every migration, in order. Add new ones here as `NNNN_name`. */
import core from "./0001_core.ts"
import auth from "./0002_auth.ts"
import rbac from "./0003_rbac.ts"
import rbacRuntime from "./0004_rbac_runtime.ts"
import builtinPermissions from "./0005_builtin_permissions.ts"
import accountDeletion from "./0006_account_deletion.ts"
import emailNfc from "./0007_email_nfc.ts"
import outboxNotify from "./0008_outbox_notify.ts"

export const migrations = {
  "0001_core": core,
  "0002_auth": auth,
  "0003_rbac": rbac,
  "0004_rbac_runtime": rbacRuntime,
  "0005_builtin_permissions": builtinPermissions,
  "0006_account_deletion": accountDeletion,
  "0007_email_nfc": emailNfc,
  "0008_outbox_notify": outboxNotify
}
