import { describe, expect, it } from "vitest"
import { changesBetween, type RecordedEvent, unchangedSince } from "../../src/domain/PolicyHistory.ts"

const event = (revision: number, type: string, userId?: string): RecordedEvent => ({
  revision: BigInt(revision),
  type,
  userId
})

describe("what a run of events changed", () => {
  it("tells user changes from policy changes, revision by revision, oldest first", () => {
    const changes = changesBetween(
      [
        event(4, "member.added", "u2"),
        event(4, "assignment.added", "u2"),
        event(5, "role.grants_changed"),
        event(3, "assignment.removed", "u1")
      ],
      2n,
      5n
    )
    expect(changes).toEqual([
      { revision: 3n, all: false, users: new Set(["u1"]) },
      { revision: 4n, all: false, users: new Set(["u2"]) },
      { revision: 5n, all: true, users: new Set() }
    ])
  })

  it("counts an event it does not know, or a user event naming nobody, as a change for everyone", () => {
    expect(changesBetween([event(1, "something.new", "u1"), event(2, "assignment.added")], 0n, 2n)).toEqual([
      { revision: 1n, all: true, users: new Set() },
      { revision: 2n, all: true, users: new Set() }
    ])
  })

  it("knows nothing when a revision in between has no event, and ignores events outside the range", () => {
    expect(changesBetween([event(1, "role.created"), event(3, "role.created")], 0n, 3n)).toBeUndefined()
    expect(changesBetween([event(1, "role.created"), event(2, "role.created")], 1n, 2n)).toEqual([
      { revision: 2n, all: true, users: new Set() }
    ])
    expect(changesBetween([], 4n, 4n)).toEqual([])
  })
})

describe("whether a set computed at an older revision still holds", () => {
  const history = changesBetween(
    [event(11, "assignment.added", "u1"), event(12, "member.added", "u2"), event(13, "role.updated")],
    10n,
    13n
  )!

  it("holds when nothing since touched the user, and at the very revision", () => {
    expect(unchangedSince(history, 13n, 13n, "u1")).toBe(true)
    expect(unchangedSince(history.slice(0, 2), 12n, 11n, "u1")).toBe(true)
    expect(unchangedSince(history.slice(0, 2), 12n, 10n, "u3")).toBe(true)
  })

  it("does not hold when a change since names the user or everyone", () => {
    expect(unchangedSince(history.slice(0, 2), 12n, 10n, "u1")).toBe(false)
    expect(unchangedSince(history, 13n, 12n, "u3")).toBe(false)
  })

  it("does not hold when the history does not reach back far enough, or the set is from the future", () => {
    expect(unchangedSince(history, 13n, 8n, "u3")).toBe(false)
    expect(unchangedSince([], 13n, 12n, "u3")).toBe(false)
    expect(unchangedSince(history, 13n, 14n, "u3")).toBe(false)
  })
})
