/** The fakes are wired by agent/fakes.ts alone, which an agent built without allow_fake_drivers never loads. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { buildAgent, type Agent } from '../../agent/build-agent.js';
import { base, parseObj } from './config/helpers.js';

const loaded = vi.hoisted(() => ({ fakes: 0, fakeDriver: 0, fakeLab: 0 }));
// Counts evaluations of agent/fakes.ts and of the fake driver's code (the factory runs when something imports the
// module), then gives the real module. drivers/registry.ts knows the fake by its settings only (drivers/fake/settings.ts).
vi.mock('../../agent/fakes.js', async (importOriginal) => {
  loaded.fakes += 1;
  return importOriginal();
});
vi.mock('../../drivers/fake/index.js', async (importOriginal) => {
  loaded.fakeDriver += 1;
  return importOriginal();
});
vi.mock('../../drivers/fake/lab.js', async (importOriginal) => {
  loaded.fakeLab += 1;
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

async function build(allowFake: boolean): Promise<Agent> {
  dir = mkdtempSync(join(tmpdir(), 'metald-fakes-'));
  const doc = base();
  doc.state_dir = join(dir, 'state');
  doc.api.tokens = [];
  doc.allow_fake_drivers = allowFake;
  agent = await buildAgent(parseObj(doc).config, { log: pino({ level: 'silent' }) });
  return agent;
}

describe('fakes in one place', () => {
  // One file, in this order: the first build must see the module never loaded before.
  it('an agent built with allow_fake_drivers off does not load agent/fakes.ts and has no lab nor fake-faults route', async () => {
    const a = await build(false);
    expect(loaded.fakes).toBe(0);
    expect(loaded.fakeDriver, 'drivers/fake/index.ts loaded without allow_fake_drivers').toBe(0);
    expect(loaded.fakeLab, 'drivers/fake/lab.ts loaded without allow_fake_drivers').toBe(0);
    expect(a.lab).toBeNull();
    expect(a.api.hasRoute({ method: 'PUT', url: '/v1/nodes/:id/fake-faults' })).toBe(false);
  });

  it('with allow_fake_drivers on it is loaded and wires the lab and the fake-faults route', async () => {
    const a = await build(true);
    expect(loaded.fakes).toBe(1);
    expect(loaded.fakeDriver).toBe(1);
    expect(loaded.fakeLab).toBe(1);
    expect(a.lab).not.toBeNull();
    expect(a.api.hasRoute({ method: 'PUT', url: '/v1/nodes/:id/fake-faults' })).toBe(true);
  });
});
