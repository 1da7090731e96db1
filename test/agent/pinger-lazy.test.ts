/**
 * The fping engine's module (and execa with it) is loaded only by an agent whose liveness engine is fping.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { buildAgent, type Agent } from '../../agent/build-agent.js';
import { base, parseObj } from './config/helpers.js';

const loaded = vi.hoisted(() => ({ fping: 0 }));
vi.mock('../../agent/pinger/fping.js', async (importOriginal) => {
  loaded.fping += 1;
  return importOriginal();
});

let dir: string | null = null;
let agent: Agent | null = null;
afterEach(async () => {
  await agent?.stop();
  agent = null;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = null;
});

async function build(engine: 'fake' | 'fping'): Promise<Agent> {
  dir = mkdtempSync(join(tmpdir(), 'metald-pinger-'));
  const doc = base();
  doc.state_dir = join(dir, 'state');
  doc.api.tokens = [];
  doc.allow_fake_drivers = true;
  doc.liveness = { engine, interval: '30s', timeout: '100ms', retries: 0 };
  agent = await buildAgent(parseObj(doc).config, { log: pino({ level: 'silent' }) });
  return agent;
}

describe('the fping engine module', () => {
  // One file, in this order: the first build must see the module never loaded before.
  it('is not loaded by an agent whose liveness engine is fake', async () => {
    await build('fake');
    expect(loaded.fping).toBe(0);
  });

  it('is loaded by an agent whose liveness engine is fping', async () => {
    await build('fping');
    expect(loaded.fping).toBe(1);
  });
});
