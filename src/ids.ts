import { monotonicFactory } from "ulid";

const next = monotonicFactory();

export type IdPrefix = "whk" | "dlv" | "evt" | "key";

/** Prefixed ULIDs: sortable by creation time, so they double as stable pagination cursors. */
export function newId(prefix: IdPrefix, now: number = Date.now()): string {
  return `${prefix}_${next(now)}`;
}

const ID_SHAPE = /^(whk|dlv|evt|key)_[0-9A-HJKMNP-TV-Z]{26}$/;

export function isId(value: string, prefix?: IdPrefix): boolean {
  const m = ID_SHAPE.exec(value);
  return m !== null && (prefix === undefined || m[1] === prefix);
}
