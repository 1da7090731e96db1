/**
 * Runs of held addresses (`held_runs`, migration 4): the maximal ranges [first_key, last_key] of consecutive
 * addresses that something holds, kept next to `held_addresses` (./index-queries.ts) in the same transaction. They
 * make "the first free address of a pool" one index probe (the run containing the pool's first address ends just
 * before the answer) instead of a walk along every held address from the pool's start.
 *
 * Keys are ./index-queries.ts `ipKey`: the family digit and 32 hex digits, so text order is numeric order within a
 * family and families never touch (the key after a family's last address is past it, never another family's).
 */
import type Database from 'better-sqlite3';
import type { Ip } from '../net.js';

export interface Run {
  first_key: string;
  last_key: string;
}

/** Run rows with their keys. */
export const HELD_RUNS_DDL = `
  CREATE TABLE held_runs (
    first_key TEXT PRIMARY KEY NOT NULL,
    last_key  TEXT NOT NULL
  ) WITHOUT ROWID;
  CREATE UNIQUE INDEX held_runs_last ON held_runs(last_key);
`;

export function ipKey(ip: Ip): string {
  return `${ip.version}${ip.value.toString(16).padStart(32, '0')}`;
}

export function keyToIp(key: string): Ip {
  return { version: key[0] === '6' ? 6 : 4, value: BigInt(`0x${key.slice(1)}`) };
}

function step(key: string, by: 1n | -1n): string | null {
  const ip = keyToIp(key);
  return ip.value + by < 0n ? null : ipKey({ version: ip.version, value: ip.value + by });
}

export const nextKey = (key: string): string => step(key, 1n)!;

export class HeldRuns {
  private readonly s;

  constructor(db: Database.Database) {
    const q = <A extends unknown[], R = unknown>(sql: string) => db.prepare<A, R>(sql);
    this.s = {
      // The run starting at or before key; it holds key only if it also ends at or after it.
      atOrBefore: q<[string], Run>('SELECT first_key, last_key FROM held_runs WHERE first_key <= ? ORDER BY first_key DESC LIMIT 1'),
      endingAt: q<[string], Run>('SELECT first_key, last_key FROM held_runs WHERE last_key = ?'),
      startingAt: q<[string], Run>('SELECT first_key, last_key FROM held_runs WHERE first_key = ?'),
      insert: q<[string, string]>('INSERT INTO held_runs (first_key, last_key) VALUES (?, ?)'),
      setLast: q<[string, string]>('UPDATE held_runs SET last_key = ? WHERE first_key = ?'),
      remove: q<[string]>('DELETE FROM held_runs WHERE first_key = ?'),
    };
  }

  /** The run holding key, or null (key free). */
  containing(key: string): Run | null {
    const r = this.s.atOrBefore.get(key);
    return r && r.last_key >= key ? r : null;
  }

  /** key is held: make it part of a run, merging with the runs ending just before and starting just after it. */
  add(key: string): void {
    if (this.containing(key)) return;
    const before = step(key, -1n);
    const left = before === null ? undefined : this.s.endingAt.get(before);
    const right = this.s.startingAt.get(nextKey(key));
    if (right) this.s.remove.run(right.first_key);
    const last = right ? right.last_key : key;
    if (left) this.s.setLast.run(last, left.first_key);
    else this.s.insert.run(key, last);
  }

  /** Nothing holds key any more: take it out of its run, splitting it. */
  drop(key: string): void {
    const run = this.containing(key);
    if (!run) return;
    this.s.remove.run(run.first_key);
    if (run.first_key < key) this.s.insert.run(run.first_key, step(key, -1n)!);
    if (run.last_key > key) this.s.insert.run(nextKey(key), run.last_key);
  }
}
