/** The mails that tell a person what happened to their account. */
import { Effect, Option } from "effect"
import { Mailer } from "../../services/Mailer.ts"
import type { Users } from "./Users.ts"

export const makeNotices = (users: Users) =>
  Effect.map(Mailer, (mailer) => {
    const mail = (to: string, subject: string, text: string) => mailer.send({ to, subject, text })
    return {
      mail,
      /** Mails the account's address, if the account still exists. */
      notify: (userId: string, subject: string, text: string) =>
        users
          .byId(userId)
          .pipe(
            Effect.flatMap(Option.match({ onNone: () => Effect.void, onSome: (u) => mail(u.email, subject, text) }))
          )
    }
  })

export type Notices = Effect.Effect.Success<ReturnType<typeof makeNotices>>
