import { describe, expect, it } from "vitest"
import { isLoopback } from "../../src/layers/live/LiveSocketServer.ts"

/** Without METRICS_TOKEN, `/metrics` on the socket port answers loopback clients only (S52). */
const address = (...bytes: Array<number>) => new Uint8Array(bytes).buffer

describe("the socket port's metrics without a token (S52)", () => {
  it("counts 127.0.0.0/8, ::1 and IPv4-mapped loopback as loopback", () => {
    expect(isLoopback(address(127, 0, 0, 1))).toBe(true)
    expect(isLoopback(address(127, 12, 0, 9))).toBe(true)
    expect(isLoopback(address(...Array(15).fill(0), 1))).toBe(true)
    expect(isLoopback(address(...Array(10).fill(0), 0xff, 0xff, 127, 0, 0, 1))).toBe(true)
  })

  it("refuses every other address, mapped or not", () => {
    expect(isLoopback(address(10, 0, 0, 1))).toBe(false)
    expect(isLoopback(address(192, 168, 1, 127))).toBe(false)
    expect(isLoopback(address(...Array(10).fill(0), 0xff, 0xff, 10, 0, 0, 1))).toBe(false)
    expect(isLoopback(address(0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), 1))).toBe(false)
    expect(isLoopback(address(...Array(16).fill(0)))).toBe(false)
    expect(isLoopback(address())).toBe(false)
  })
})
