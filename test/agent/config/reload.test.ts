import { describe, expect, it } from 'vitest';
import { deepEqual, diffConfig, mergeForReload } from '../../../agent/config/reload.js';
import type { Config } from '../../../agent/config/types.js';
import { NODE_ID, UUID, base, parseObj, type Doc } from './helpers.js';

function config(f: (d: Doc) => void = () => {}): Config {
  const d = base();
  d.boot = { listen: '0.0.0.0:8081', public_url: 'http://10.0.0.1:8081' };
  d.nodes.push({
    id: NODE_ID(2),
    name: 'node-02',
    bmc: { driver: 'redfish', address: 'https://10.0.1.22', username: 'a', password_file: '/p2' },
  });
  f(d);
  return parseObj(d, { hostname: 'h' }).config;
}

describe('diffConfig', () => {
  it('no change, nothing to do', () => {
    expect(diffConfig(config(), config())).toEqual({ apply: [], restartRequired: [] });
  });

  it('outbox bounds apply at once (the store takes them live: Store.setOutboxBounds)', () => {
    const next = config((d) => (d.outbox = { max_events: 5000 }));
    const diff = diffConfig(config(), next);
    expect(diff.restartRequired).toEqual([]);
    expect(diff.apply).toEqual([expect.stringMatching(/^outbox: .*"max_events":1000000.* -> .*"max_events":5000/)]);
    expect(mergeForReload(config(), next).outbox).toEqual({ max_events: 5000, max_bytes: 512 * 1024 * 1024 });
  });

  it('applies logging, limits, tokens, timers, liveness and catalogues', () => {
    const next = config((d) => {
      d.log_level = 'debug';
      d.api.rate_limit = { per_token_per_s: 5, burst: 10 };
      d.api.tokens.push({ token_file: '/t2', project_id: 'p2', user_id: 'u2' });
      d.power_sync = { interval: '10s' };
      d.timeouts = { power: '60s' };
      d.liveness = { interval: '10s' };
      d.power_poll = ['1s'];
      d.bmc = { min_gap: '50ms' };
      d.on_failure = 'leave';
      d.images.push({ uuid: UUID(90), name: 'new', url: 'http://x/y', sha256: 'b'.repeat(64), os: 'linux' });
      d.instance_types = [];
      d.networks[0].dns = ['10.0.0.53'];
      d.boot.public_url = 'http://10.0.0.2:8081';
    });
    const diff = diffConfig(config(), next);
    expect(diff.restartRequired).toEqual([]);
    expect(diff.apply).toEqual([
      'boot.public_url: http://10.0.0.1:8081 -> http://10.0.0.2:8081',
      'log_level: info -> debug',
      'on_failure: power_off -> leave',
      'api.rate_limit: {"per_token_per_s":20,"burst":40} -> {"per_token_per_s":5,"burst":10}',
      'api.tokens: changed',
      expect.stringMatching(/^power_sync: /),
      expect.stringMatching(/^timeouts: /),
      'power_poll_ms: [1000,2000,2000,4000,6000,8000,12000] -> [1000]',
      'bmc.min_gap_ms: 200 -> 50',
      expect.stringMatching(/^liveness: /),
      'images: 1 added',
      'instance_types: 1 removed',
      'networks: 1 changed',
    ]);
  });

  it('restart required: state_dir, api.listen, boot.listen, agent_id, upstream, body limit', () => {
    const next = config((d) => {
      d.state_dir = '/srv/metald';
      d.agent_id = 'other';
      d.api.listen = '[::1]:7000';
      d.api.max_body_bytes = 4096;
      d.boot.listen = '0.0.0.0:9000';
      d.upstream = { url: 'wss://c.example', token_file: '/u' };
    });
    expect(diffConfig(config(), next)).toEqual({
      apply: [],
      restartRequired: [
        'agent_id: test-agent -> other',
        'state_dir: /var/lib/metald -> /srv/metald',
        'api.listen: 127.0.0.1:0 -> [::1]:7000',
        'api.max_body_bytes: 65536 -> 4096',
        'boot.listen: 0.0.0.0:8081 -> 0.0.0.0:9000',
        'upstream: added',
      ],
    });
    expect(diffConfig(config(), config((d) => (d.boot = null))).restartRequired).toEqual(['boot: removed']);
  });

  it('liveness.engine and liveness.fping_path need a restart (the engine opens at start); its other knobs apply', () => {
    const next = config((d) => {
      d.liveness = { engine: 'fping', fping_path: '/opt/fping', interval: '10s' };
    });
    const diff = diffConfig(config(), next);
    expect(diff.restartRequired).toEqual(['liveness.engine: auto -> fping', 'liveness.fping_path: /usr/bin/fping -> /opt/fping']);
    expect(diff.apply).toHaveLength(1);
    expect(diff.apply[0]).toMatch(/^liveness: .*"interval_ms":30000.* -> .*"interval_ms":10000/);
    const merged = mergeForReload(config(), next);
    expect(merged.liveness).toMatchObject({ engine: 'auto', fping_path: '/usr/bin/fping', interval_ms: 10_000 });
    // Only the engine changed: nothing is applied.
    expect(diffConfig(config(), config((d) => (d.liveness = { engine: 'raw' }))).apply).toEqual([]);
  });

  it('nodes: new nodes and setting changes apply; removed nodes need a restart', () => {
    const next = config((d) => {
      d.nodes[0].maintenance = true;
      d.nodes[0].bmc.address = '10.0.1.99';
      d.nodes[0].enforce_power = true;
      d.nodes.splice(1, 1);
      d.nodes.push({
        id: NODE_ID(3),
        name: 'node-03',
        bmc: { driver: 'ipmi', address: '10.0.1.23', username: 'a', password_file: '/p3' },
      });
    });
    expect(diffConfig(config(), next)).toEqual({
      apply: [
        'nodes[node-01].bmc: changed',
        'nodes[node-01].maintenance: false -> true',
        'nodes[node-01].enforce_power: false -> true',
        'nodes[node-03]: added',
      ],
      restartRequired: ['nodes[node-02]: removed (the node stays managed until a restart)'],
    });
  });

  it('is pure: its inputs are not modified', () => {
    const a = config();
    const b = config((d) => (d.log_level = 'trace'));
    const snapshot = JSON.stringify([a, b]);
    diffConfig(a, b);
    mergeForReload(a, b);
    expect(JSON.stringify([a, b])).toBe(snapshot);
  });
});

describe('mergeForReload', () => {
  it('keeps the running value of restart-required settings and removed nodes', () => {
    const old = config();
    const next = config((d) => {
      d.state_dir = '/srv/metald';
      d.api.listen = '127.0.0.1:7000';
      d.log_level = 'debug';
      d.nodes.splice(1, 1);
      d.nodes[0].maintenance = true;
      d.boot.listen = '0.0.0.0:9000';
      d.boot.public_url = 'http://10.0.0.9:9000';
    });
    const m = mergeForReload(old, next);
    expect(m.state_dir).toBe(old.state_dir);
    expect(m.api.listen).toEqual(old.api.listen);
    expect(m.log_level).toBe('debug');
    expect(m.boot?.listen).toEqual(old.boot?.listen);
    expect(m.boot?.public_url).toBe('http://10.0.0.9:9000');
    expect(m.nodes.map((n) => [n.name, n.maintenance])).toEqual([
      ['node-01', true],
      ['node-02', false],
    ]);
    // After the merge, only restart-required differences remain against the new file.
    expect(diffConfig(m, next).apply).toEqual([]);
  });
});

describe('deepEqual', () => {
  it('treats absent and undefined keys alike', () => {
    expect(deepEqual({ a: 1, b: undefined }, { a: 1 })).toBe(true);
    expect(deepEqual([1, { x: [2] }], [1, { x: [2] }])).toBe(true);
    expect(deepEqual([1], [1, 2])).toBe(false);
    expect(deepEqual({ a: null }, { a: undefined })).toBe(false);
  });
});
