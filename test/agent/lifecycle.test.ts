/** The lifecycle: components start in order and stop in reverse; a failed start stops what was started. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { buildAgent } from '../../agent/build-agent.js';
import { Lifecycle, LifecycleError, type Component } from '../../agent/lifecycle.js';
import { base, NODE_ID, parseObj } from './config/helpers.js';

function recorder(): { log: string[]; component(name: string, fail?: { start?: boolean; stop?: boolean }): Component } {
  const log: string[] = [];
  return {
    log,
    component: (name, fail = {}) => ({
      name,
      start: async () => {
        await Promise.resolve();
        if (fail.start) throw new Error(`${name} cannot start`);
        log.push(`start ${name}`);
      },
      stop: () => {
        log.push(`stop ${name}`);
        if (fail.stop) throw new Error(`${name} cannot stop`);
      },
    }),
  };
}

describe('Lifecycle', () => {
  it('starts the components in order and stops them in reverse, once', async () => {
    const r = recorder();
    const lc = new Lifecycle(['a', 'b', 'c'].map((n) => r.component(n)));
    await lc.start();
    expect(r.log).toEqual(['start a', 'start b', 'start c']);
    await lc.stop();
    await lc.stop();
    expect(r.log).toEqual(['start a', 'start b', 'start c', 'stop c', 'stop b', 'stop a']);
  });

  it('a component whose start fails stops the ones already started, in reverse, and is named in the error', async () => {
    const r = recorder();
    const lc = new Lifecycle([r.component('a'), r.component('b'), r.component('c', { start: true }), r.component('d')]);
    const err = await lc.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LifecycleError);
    expect((err as LifecycleError).component).toBe('c');
    expect((err as LifecycleError).message).toBe('c: c cannot start');
    expect(r.log).toEqual(['start a', 'start b', 'stop b', 'stop a']);
    await lc.stop();
    expect(r.log).toEqual(['start a', 'start b', 'stop b', 'stop a']);
  });

  it('a failing stop does not keep the others running; the first failure is thrown', async () => {
    const r = recorder();
    const lc = new Lifecycle([r.component('a'), r.component('b', { stop: true }), r.component('c')]);
    await lc.start();
    await expect(lc.stop()).rejects.toThrow('b: b cannot stop');
    expect(r.log.slice(3)).toEqual(['stop c', 'stop b', 'stop a']);
  });

  it('refuses a component listed twice', () => {
    const r = recorder();
    expect(() => new Lifecycle([r.component('a'), r.component('a')])).toThrow('lifecycle component a is listed twice');
  });
});

describe("the agent's components", () => {
  let dir: string | null = null;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = null;
  });

  async function agent() {
    dir = mkdtempSync(join(tmpdir(), 'metald-lifecycle-'));
    const doc = base();
    doc.state_dir = join(dir, 'state');
    doc.api.tokens = [];
    doc.nodes = [];
    return buildAgent(parseObj(doc).config, { log: pino({ level: 'silent' }) });
  }

  it('the list: the API listens before recovery (mutations refused until ready); in reverse the store closes last', async () => {
    const a = await agent();
    expect(a.components).toEqual(['store', 'operations', 'api', 'recovery', 'liveness', 'upstream', 'retention']);
    let readyWhenListening: boolean | null = null;
    await a.start({ listen: () => ((readyWhenListening = a.engine.ready().ready), Promise.resolve()) });
    expect(readyWhenListening).toBe(false);
    expect(a.engine.ready().ready).toBe(true);
    await a.stop();
    expect(() => a.store.listInstances()).toThrow();
  });

  it('the config\'s nodes are enrolled before the API listens (their one transaction holds the loop when no request can wait)', async () => {
    dir = mkdtempSync(join(tmpdir(), 'metald-lifecycle-'));
    const doc = base();
    doc.state_dir = join(dir, 'state');
    doc.api.tokens = [];
    doc.allow_fake_drivers = true;
    doc.nodes[0].bmc = { driver: 'fake', address: 'fake://node-01' };
    const a = await buildAgent(parseObj(doc).config, { log: pino({ level: 'silent' }) });
    let atListen: string[] | null = null;
    await a.start({ listen: () => ((atListen = a.store.listNodes().map((n) => n.id)), Promise.resolve()) });
    expect(atListen).toEqual([NODE_ID(1)]);
    await a.stop();
  });

  it('an API that cannot listen: nothing after it starts, the store is closed, the error names the API', async () => {
    const a = await agent();
    const err = await a.start({ listen: () => Promise.reject(new Error('EADDRINUSE')) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LifecycleError);
    expect((err as LifecycleError).component).toBe('api');
    expect(a.engine.ready()).toEqual({ ready: false, reasons: ['stopping'] });
    expect(() => a.store.listInstances()).toThrow();
  });
});
