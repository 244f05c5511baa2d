/**
 * The claimed bodies' cache (store/common.ts): one canonicalization and one string per event
 * while its deliveries are in flight, bounded by size however large or many the events are.
 */
import { describe, expect, it } from "vitest";
import { BodyCache } from "../../src/store/common.js";

describe("BodyCache", () => {
  it("canonicalizes each event once and hands every delivery of it the same body", () => {
    const seen: string[] = [];
    const cache = new BodyCache((s) => {
      seen.push(s);
      return s.toUpperCase();
    });
    expect(cache.body("evt_1", "a")).toBe("A");
    expect(cache.body("evt_1", "a")).toBe("A");
    expect(cache.body("evt_2", "b")).toBe("B");
    expect(seen).toEqual(["a", "b"]);
  });

  it("does not cache a body without an event row (a test send)", () => {
    let calls = 0;
    const cache = new BodyCache((s) => {
      calls++;
      return s;
    });
    cache.body(null, "x");
    cache.body(null, "x");
    expect(calls).toBe(2);
    expect(cache.size).toBe(0);
  });

  it("stays within its size, dropping the oldest events first, and never keeps one larger than all of it", () => {
    const cache = new BodyCache((s) => s, 10);
    cache.body("evt_1", "1234");
    cache.body("evt_2", "5678");
    cache.body("evt_3", "90ab"); // 12 > 10: evt_1 goes
    expect(cache.size).toBe(2);
    let calls = 0;
    const counting = new BodyCache((s) => {
      calls++;
      return s;
    }, 10);
    counting.body("evt_big", "x".repeat(11));
    counting.body("evt_big", "x".repeat(11));
    expect(calls).toBe(2);
    expect(counting.size).toBe(0);
  });
});
