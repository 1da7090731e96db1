/**
 * A writer process SIGKILLed at an arbitrary moment loses nothing it reported committed, and no transaction is ever
 * half there. The child uses better-sqlite3 directly (the store's TS is not loadable by a plain node child) but opens
 * the file exactly as the store does (CONNECTION_PRAGMAS) and writes what appendJournal writes, plus a meta row in
 * the same transaction to check atomicity.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { CONNECTION_PRAGMAS, DB_FILE_NAME, openStore } from '../../../agent/store/sqlite.js';

const CHILD = `
import { createRequire } from 'node:module';
import fs from 'node:fs';
const require = createRequire(process.env.BETTER_SQLITE3_ENTRY);
const Database = require('better-sqlite3');
const db = new Database(process.env.DB_FILE);
for (const p of JSON.parse(process.env.PRAGMAS)) db.pragma(p);
const agent = process.env.AGENT_ID;
const lastSeq = db.prepare(\`SELECT MAX(COALESCE((SELECT last_seq FROM journal_seq WHERE agent_id = ?), 0),
  COALESCE((SELECT MAX(seq) FROM journal WHERE agent_id = ?), 0)) AS last_seq\`);
const ins = db.prepare(\`INSERT INTO journal (agent_id, seq, at, kind, instance_id, node_id, cause, data)
  VALUES (?, ?, ?, 'instance.alive', NULL, NULL, 'crash-test', ?)\`);
const meta = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)');
const pad = 'x'.repeat(2000);
const step = db.transaction(() => {
  const seq = lastSeq.get(agent, agent).last_seq + 1;
  ins.run(agent, seq, new Date().toISOString(), JSON.stringify({ seq, pad }));
  meta.run('crash:' + seq, String(seq));
  return seq;
});
fs.writeSync(1, 'ready\\n');
for (;;) {
  const seq = step.immediate();
  fs.writeSync(1, 'committed ' + seq + '\\n');
}
`;

let dir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metald-crash-'));
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

async function runAndKill(killAfter: number): Promise<number> {
  const script = path.join(dir, 'writer.mjs');
  fs.writeFileSync(script, CHILD);
  const require = createRequire(fileURLToPath(import.meta.url));
  const child = spawn(process.execPath, [script], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      BETTER_SQLITE3_ENTRY: require.resolve('better-sqlite3'),
      DB_FILE: path.join(dir, DB_FILE_NAME),
      PRAGMAS: JSON.stringify(CONNECTION_PRAGMAS),
      AGENT_ID: 'agent-crash',
    },
  });
  let out = '';
  let err = '';
  let lastCommitted = 0;
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    for (const m of out.matchAll(/committed (\d+)\n/g)) lastCommitted = Math.max(lastCommitted, Number(m[1]));
    out = out.slice(out.lastIndexOf('\n') + 1);
    if (lastCommitted >= killAfter) child.kill('SIGKILL');
  });
  const signal = await exited;
  expect(err).toBe('');
  expect(signal).toBe('SIGKILL');
  return lastCommitted;
}

it('a SIGKILLed writer loses nothing committed and leaves no partial transaction', async () => {
  // Schema created by the real store; some prior state that must survive too.
  const s = openStore({ dir, agentId: 'agent-crash' });
  s.appendJournal({ kind: 'node.enrolled', node_id: 'n1', cause: 'config', data: {} });
  s.setMeta('crash:1', '1');
  s.close();

  const lastReported = await runAndKill(150);
  expect(lastReported).toBeGreaterThanOrEqual(150);

  // Killed without a checkpoint: the commits live in the WAL file, which the store must recover from.
  expect(fs.statSync(path.join(dir, `${DB_FILE_NAME}-wal`)).size).toBeGreaterThan(0);
  const reopened = openStore({ dir, agentId: 'agent-crash' });
  try {
    const last = reopened.lastSeq();
    expect(last).toBeGreaterThanOrEqual(lastReported);
    const entries = reopened.readJournal(0, 1_000_000);
    // contiguous 1..last: nothing lost in the middle, the counter and the rows agree
    expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: last }, (_, i) => i + 1));
    // atomicity: every journalled step has its meta row and no meta row exists without its journal entry
    for (let seq = 1; seq <= last; seq++) expect(reopened.getMeta(`crash:${seq}`)).toBe(String(seq));
    expect(reopened.getMeta(`crash:${last + 1}`)).toBeNull();
    // and the store goes on from there
    expect(reopened.appendJournal({ kind: 'instance.alive', cause: 'poll', data: {} }).seq).toBe(last + 1);
  } finally {
    reopened.close();
  }
});
