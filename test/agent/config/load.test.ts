import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  loadConfigFile,
  loadConfigWithWarnings,
  parseConfig,
  parseConfigWithWarnings,
  parseDuration,
} from '../../../agent/config/load.js';
import { OUTBOX_MIN_BYTES, OUTBOX_MIN_EVENTS } from '../../../agent/config/schema.js';
import { MAX_MESSAGE_BYTES } from '../../../agent/upstream/protocol.js';
import { NODE_ID, UUID, base, errorsOf, errorsWith, parseObj, warningsWith } from './helpers.js';

const EXAMPLES = resolve(import.meta.dirname, '../../../examples');

describe('examples', () => {
  it('examples/metald.yaml is valid and has no warnings', () => {
    const { config, warnings } = loadConfigWithWarnings(join(EXAMPLES, 'metald.yaml'));
    expect(warnings).toEqual([]);
    expect(config.agent_id).toBe('rack-a12');
    expect(config.allow_fake_drivers).toBe(false);
    expect(config.nodes.map((n) => n.name)).toEqual(['node-01', 'node-02', 'node-03']);
    expect(config.nodes[0]?.bmc).toMatchObject({ drivers: ['ipmi'], address: '10.0.1.21', port: 623, cipher_suite: 17 });
    expect(config.nodes[1]?.bmc.drivers).toEqual(['redfish', 'ipmi']);
    expect(config.nodes[1]?.adopt?.addresses[0]).toEqual({
      addr: '10.0.0.2',
      mac: 'fa:16:3e:1c:d0:5b',
      version: 4,
      type: 'fixed',
      network: 'private',
    });
    expect(config.nodes[2]?.maintenance).toBe(true);
    expect(config.api.tokens.every((t) => t.token_file.startsWith('/run/credentials/metald.service/'))).toBe(true);
    expect(config.upstream?.url).toBe('wss://controller.example/v1/agents');
    expect(config.boot?.ramdisk.iso).toBe('/var/lib/metald/boot/ramdisk.iso');
    expect(config.networks[1]?.pool).toEqual({ first: 'fd00:a12::100', last: 'fd00:a12::1ff' });
  });

  it('examples/demo.yaml is valid, loopback only, with paths relative to examples/', () => {
    const { config, warnings } = loadConfigWithWarnings(join(EXAMPLES, 'demo.yaml'));
    expect(warnings).toEqual(['allow_fake_drivers: fake drivers are allowed: for tests and the demo only']);
    expect(config.allow_fake_drivers).toBe(true);
    expect(config.state_dir).toBe(join(EXAMPLES, 'demo-state'));
    expect(config.api.tokens.map((t) => t.token_file)).toEqual([
      join(EXAMPLES, 'demo-secrets/admin.token'),
      join(EXAMPLES, 'demo-secrets/member.token'),
    ]);
    expect(config.api.tokens.map((t) => t.roles)).toEqual([['admin'], ['member']]);
    expect(config.api.listen).toEqual({ host: '127.0.0.1', port: 6385 });
    expect(config.liveness.engine).toBe('fake');
    expect(config.nodes).toHaveLength(4);
    expect(new Set(config.nodes.map((n) => n.type))).toEqual(new Set(['small', 'large']));
    for (const n of config.nodes) {
      expect(n.bmc.drivers).toEqual(['fake']);
      expect(n.bmc.fake).toMatchObject({ power_delay: '300ms', install: '3s' });
    }
    // The adopted node's simulated server already runs the tenant's OS.
    expect(config.nodes.find((n) => n.adopt !== null)?.bmc.fake).toMatchObject({ initial_power: 'on', os_installed: 'debian-12' });
    expect(config.nodes.filter((n) => n.adopt !== null)).toHaveLength(1);
    expect(config.networks).toEqual([
      expect.objectContaining({ cidr: '127.0.1.0/24', pool: { first: '127.0.1.100', last: '127.0.1.199' } }),
    ]);
    expect(config.images.map((i) => i.url.startsWith('http://127.0.0.1:8081/images/'))).toEqual([true, true]);
  });
});

describe('defaults and units', () => {
  it('applies every default', () => {
    const config = parseConfig('nodes: []\n', { hostname: 'host-a' });
    expect(config).toEqual({
      agent_id: 'host-a',
      state_dir: '/var/lib/metald',
      log_level: 'info',
      on_failure: 'power_off',
      terminated_retention_ms: 7 * 86_400_000,
      api: {
        listen: { host: '127.0.0.1', port: 6385 },
        public_url: null,
        rate_limit: { per_token_per_s: 20, burst: 40 },
        max_body_bytes: 65536,
        page_size: { default: 1000, max: 1000 },
        tokens: [],
      },
      boot: null,
      upstream: null,
      outbox: { max_events: 1_000_000, max_bytes: 512 * 1024 * 1024 },
      allow_fake_drivers: false,
      power_sync: { interval_ms: 30_000, failures_before_unknown: 3, concurrency: 32 },
      timeouts: { bmc_call_ms: 30_000, power_ms: 120_000, deploy_ms: 3_600_000, soft_power_ms: 300_000 },
      power_poll_ms: [1000, 2000, 2000, 4000, 6000, 8000, 12000],
      bmc: { min_gap_ms: 200 },
      liveness: { engine: 'auto', fping_path: '/usr/bin/fping', interval_ms: 30_000, jitter: 0.1, timeout_ms: 500, retries: 1, backoff: 1.5, packet_interval_ms: 1, hysteresis: 2, batch: 128 },
      recovery: { concurrency: 16 },
      images: [],
      instance_types: [],
      networks: [],
      nodes: [],
    });
  });

  it('agent_id defaults to os.hostname()', async () => {
    const os = await import('node:os');
    expect(parseConfig('{}\n').agent_id).toBe(os.hostname());
  });

  it('applies node, token, image, boot and address defaults', () => {
    const d = base();
    delete d.nodes[0].type;
    d.api.tokens[0].roles = undefined;
    delete d.api.tokens[0].roles;
    d.nodes[0].adopt = {
      instance_id: UUID(9),
      project_id: 'p1',
      user_id: 'u',
      name: 'vm',
      addresses: [{ addr: '10.0.0.5', mac: 'FA-16-3E-1C-D0-5A', network: 'private' }],
    };
    d.boot = {};
    d.upstream = { url: 'wss://c.example/v1', token_file: 'up.token' };
    const { config } = parseObj(d, { baseDir: '/etc/metald' });
    const n = config.nodes[0];
    expect(n?.type).toBe('default');
    expect(n?.boot_mode).toBe('uefi');
    expect(n?.maintenance).toBe(false);
    expect(n?.enforce_power).toBe(false);
    expect(n?.bmc.insecure).toBe(false);
    expect(n?.adopt?.addresses).toEqual([
      { addr: '10.0.0.5', mac: 'fa:16:3e:1c:d0:5a', version: 4, type: 'fixed', network: 'private' },
    ]);
    expect(config.api.tokens[0]?.roles).toEqual(['member']);
    expect(config.images[0]?.boot_method).toBe('pxe');
    expect(config.boot).toEqual({
      listen: { host: '0.0.0.0', port: 8081 },
      public_url: null,
      ramdisk: { kernel: null, initrd: null, iso: null },
    });
    expect(config.upstream).toEqual({ url: 'wss://c.example/v1', token_file: '/etc/metald/up.token', ca_file: null });
  });

  it('parses durations in every unit and plain seconds', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('2h')).toBe(7_200_000);
    expect(parseDuration('7d')).toBe(604_800_000);
    expect(parseDuration(12)).toBe(12_000);
    expect(parseDuration(0.25)).toBe(250);
    expect(() => parseDuration('5 s')).toThrow(/duration/);
    expect(() => parseDuration('-1s')).toThrow(/duration/);
    const config = parseConfig(
      [
        'terminated_retention: 2h',
        'power_sync: {interval: 10, failures_before_unknown: 5}',
        'timeouts: {bmc_call: 500ms, power: 1m, deploy: 2h, soft_power: 45}',
        'power_poll: [100ms, 1, 1.5s]',
        'bmc: {min_gap: 0}',
        'liveness: {interval: 1m, timeout: 250ms, retries: 2}',
      ].join('\n'),
    );
    expect(config.terminated_retention_ms).toBe(7_200_000);
    expect(config.power_sync).toEqual({ interval_ms: 10_000, failures_before_unknown: 5, concurrency: 32 });
    expect(config.timeouts).toEqual({ bmc_call_ms: 500, power_ms: 60_000, deploy_ms: 7_200_000, soft_power_ms: 45_000 });
    expect(config.power_poll_ms).toEqual([100, 1000, 1500]);
    expect(config.bmc.min_gap_ms).toBe(0);
    expect(config.liveness).toMatchObject({ interval_ms: 60_000, timeout_ms: 250, retries: 2 });
  });

  it('parses listen addresses, IPv6 in brackets, port 0', () => {
    const l = (s: string) => parseConfig(`api: {listen: "${s}"}\n`).api.listen;
    expect(l('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 });
    expect(l('[::1]:6385')).toEqual({ host: '::1', port: 6385 });
    expect(l('localhost:8080')).toEqual({ host: 'localhost', port: 8080 });
    expect(l('0.0.0.0:65535')).toEqual({ host: '0.0.0.0', port: 65535 });
  });

  it('normalises MACs, uuids and sha256 to lower case', () => {
    const d = base();
    d.nodes[0].id = NODE_ID(1).toUpperCase();
    d.nodes[0].macs = [{ mac: 'FA:16:3E:1C:D0:5A', pxe: true }];
    d.images[0].sha256 = 'ABCDEF'.repeat(10) + 'ABCD';
    const { config } = parseObj(d);
    expect(config.nodes[0]?.id).toBe(NODE_ID(1));
    expect(config.nodes[0]?.macs).toEqual([{ mac: 'fa:16:3e:1c:d0:5a', pxe: true }]);
    expect(config.images[0]?.sha256).toBe(('ABCDEF'.repeat(10) + 'ABCD').toLowerCase());
  });

  it('a single driver name becomes a one-element list; a list keeps its order', () => {
    const d = base();
    d.nodes.push({
      id: NODE_ID(2),
      name: 'node-02',
      bmc: { driver: ['redfish', 'ipmi'], address: 'https://10.0.1.22', username: 'a', password_file: '/p' },
    });
    const { config } = parseObj(d);
    expect(config.nodes.map((n) => n.bmc.drivers)).toEqual([['ipmi'], ['redfish', 'ipmi']]);
  });
});

describe('errors', () => {
  const has = (errors: string[], path: string, re: RegExp | string): void => {
    const hit = errors.find((e) => e.startsWith(`${path}: `) && (typeof re === 'string' ? e.includes(re) : re.test(e)));
    expect(hit, `expected an error at ${path} matching ${String(re)} in:\n${errors.join('\n')}`).toBeDefined();
  };

  it('reports YAML syntax errors with line and column, without quoting the line', () => {
    const text = 'api:\n  listen: 127.0.0.1:1\nnodes: [\n  password: "hunter2\n';
    try {
      parseConfig(text);
      expect.fail('should throw');
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      const err = e as ConfigError;
      expect(err.errors.length).toBeGreaterThan(0);
      expect(err.errors[0]).toMatch(/^line \d+, column \d+: YAML syntax error: /);
      expect(err.message).not.toContain('hunter2');
    }
  });

  it('reports duplicate YAML keys', () => {
    expect(() => parseConfig('log_level: info\nlog_level: debug\n')).toThrow(/line 2, column 1: .*unique/);
  });

  it('refuses an empty file and a non-mapping', () => {
    expect(() => parseConfig('')).toThrow(/empty/);
    expect(() => parseConfig('- a\n- b\n')).toThrow(/\(root\): expected a mapping/);
  });

  it('unknown keys are errors everywhere, naming the allowed keys', () => {
    const errors = errorsWith((d) => {
      d.colour = 'blue';
      d.api.rate_limit = { per_token_per_s: 1, burstt: 2 };
      d.nodes[0].bmc.drivr = 'ipmi';
      d.nodes[0].macs[0].vlan = 3;
      d.networks[0].mtu = 9000;
    });
    has(errors, 'colour', 'unknown key');
    has(errors, 'api.rate_limit.burstt', 'allowed here: per_token_per_s, burst');
    has(errors, 'nodes[0].bmc.drivr', 'unknown key');
    has(errors, 'nodes[0].macs[0].vlan', 'unknown key');
    has(errors, 'networks[0].mtu', 'unknown key');
  });

  it('bmc.fake is free-form; adopt.metadata must be strings', () => {
    const d = base();
    d.allow_fake_drivers = true;
    d.nodes[0].bmc = { driver: 'fake', address: 'fake://n1', fake: { anything: { nested: [1, 2] }, faults: ['power_on'] } };
    expect(parseObj(d).config.nodes[0]?.bmc.fake).toEqual({ anything: { nested: [1, 2] }, faults: ['power_on'] });
    const errors = errorsWith((x) => {
      x.nodes[0].adopt = { instance_id: UUID(9), project_id: 'p', user_id: 'u', name: 'vm', metadata: { a: 1 } };
    });
    has(errors, 'nodes[0].adopt.metadata.a', 'expected a string');
  });

  it('missing required keys are reported once', () => {
    const errors = errorsWith((d) => {
      delete d.nodes[0].bmc.address;
      delete d.images[0].sha256;
    });
    expect(errors.filter((e) => e.startsWith('nodes[0].bmc.address: '))).toEqual(['nodes[0].bmc.address: is required']);
    expect(errors.filter((e) => e.startsWith('images[0].sha256: '))).toEqual(['images[0].sha256: is required']);
  });

  it('a password or token key tells the user to use a *_file key, and never shows the value', () => {
    const errors = errorsWith((d) => {
      d.nodes[0].bmc.password = 'hunter2-secret';
      d.api.tokens[0].token = 'tok-secret-value';
      d.upstream = { url: 'wss://c.example', token: 'up-secret', token_file: '/x' };
    });
    has(errors, 'nodes[0].bmc.password', 'password_file');
    has(errors, 'api.tokens[0].token', 'token_file');
    has(errors, 'upstream.token', 'token_file');
    expect(errors.filter((e) => e.startsWith('nodes[0].bmc.password: '))).toHaveLength(1);
    const all = errors.join('\n');
    for (const secret of ['hunter2-secret', 'tok-secret-value', 'up-secret']) expect(all).not.toContain(secret);
  });

  it('outbox bounds: integers, at least 1,000 entries and four maximal events (4 MiB), known keys only', () => {
    expect(OUTBOX_MIN_BYTES).toBe(4 * MAX_MESSAGE_BYTES);
    let errors = errorsWith((d) => (d.outbox = { max_events: 999, max_bytes: OUTBOX_MIN_BYTES - 1, every: 1 }));
    has(errors, 'outbox.max_events', 'must be at least 1000');
    has(errors, 'outbox.max_bytes', `must be at least ${4 * MAX_MESSAGE_BYTES}`);
    has(errors, 'outbox.every', 'allowed here: max_events, max_bytes');
    errors = errorsWith((d) => (d.outbox = { max_events: 1500.5, max_bytes: '1GiB' }));
    has(errors, 'outbox.max_events', 'expected an integer');
    has(errors, 'outbox.max_bytes', 'expected an integer');
    const ok = parseObj({ ...base(), outbox: { max_events: OUTBOX_MIN_EVENTS, max_bytes: OUTBOX_MIN_BYTES } }).config.outbox;
    expect(ok).toEqual({ max_events: 1000, max_bytes: 4 * 1024 * 1024 });
    expect(parseObj({ ...base(), outbox: { max_bytes: OUTBOX_MIN_BYTES } }).config.outbox.max_events).toBe(1_000_000);
  });

  it('durations: bad format, zero where a positive value is needed, beyond the timer limit', () => {
    const errors = errorsWith((d) => {
      d.timeouts = { power: '5x', deploy: 0, bmc_call: '25d' };
      d.power_sync = { interval: '-3s' };
      d.power_poll = [];
      d.liveness = { timeout: 'soon' };
    });
    has(errors, 'timeouts.power', 'expected a duration');
    has(errors, 'timeouts.deploy', 'greater than 0');
    has(errors, 'timeouts.bmc_call', 'at most 24d');
    has(errors, 'power_sync.interval', 'expected a duration');
    has(errors, 'power_poll', 'at least 1');
    has(errors, 'liveness.timeout', 'expected a duration');
  });

  it('enumerations name their values', () => {
    const errors = errorsWith((d) => {
      d.log_level = 'verbose';
      d.on_failure = 'explode';
      d.nodes[0].boot_mode = 'bios';
      d.images[0].boot_method = 'usb';
    });
    has(errors, 'log_level', 'fatal, error, warn, info, debug, trace');
    has(errors, 'on_failure', 'power_off, leave');
    has(errors, 'nodes[0].boot_mode', 'uefi, legacy');
    has(errors, 'images[0].boot_method', 'pxe, virtual-media');
  });

  it('listen addresses', () => {
    const errors = errorsWith((d) => {
      d.api.listen = '::1:6385';
      d.boot = { listen: '0.0.0.0:70000' };
    });
    has(errors, 'api.listen', 'brackets');
    has(errors, 'boot.listen', 'port');
    has(errorsWith((d) => (d.api.listen = '6385')), 'api.listen', 'host:port');
    has(errorsWith((d) => (d.api.listen = '[zz::1]:1')), 'api.listen', 'IPv6');
  });

  it('identifiers: uuids, project ids, MACs, sha256', () => {
    const errors = errorsWith((d) => {
      d.nodes[0].id = 'node-one';
      d.nodes[0].macs[0].mac = 'fa:16:3e:1c:d0';
      d.api.tokens[0].project_id = 'has space';
      d.images[0].sha256 = 'abc';
      d.images[0].uuid = '1234';
      d.nodes[0].adopt = {
        instance_id: 'x',
        project_id: 'p'.repeat(65),
        user_id: 'u',
        name: 'vm',
        addresses: [{ addr: '10.0.0.5', mac: 'zz:zz:zz:zz:zz:zz', network: 'private' }],
      };
    });
    has(errors, 'nodes[0].id', 'UUID');
    has(errors, 'nodes[0].macs[0].mac', 'MAC');
    has(errors, 'api.tokens[0].project_id', '1-64');
    has(errors, 'images[0].sha256', '64 hexadecimal');
    has(errors, 'images[0].uuid', 'UUID');
    has(errors, 'nodes[0].adopt.instance_id', 'UUID');
    has(errors, 'nodes[0].adopt.project_id', '1-64');
    has(errors, 'nodes[0].adopt.addresses[0].mac', 'MAC');
  });

  it('hints at quoting when YAML turned a value into a number', () => {
    const errors = errorsWith((d) => (d.api.tokens[0].user_id = 12345));
    has(errors, 'api.tokens[0].user_id', 'quote');
  });

  it('unique node ids, names and MACs (across nodes and within one)', () => {
    const errors = errorsWith((d) => {
      d.nodes.push({
        id: NODE_ID(1).toUpperCase(),
        name: 'node-01',
        macs: [
          { mac: 'FA:16:3E:1C:D0:5A', pxe: true },
          { mac: 'aa:aa:aa:aa:aa:aa', pxe: false },
          { mac: 'aa-aa-aa-aa-aa-aa', pxe: false },
        ],
        bmc: { driver: 'ipmi', address: 'bmc-2.example', username: 'a', password_file: '/p' },
      });
    });
    has(errors, 'nodes[1].id', 'duplicate node id (also nodes[0].id)');
    has(errors, 'nodes[1].name', 'duplicate node name');
    has(errors, 'nodes[1].macs[0].mac', 'also nodes[0].macs[0].mac');
    has(errors, 'nodes[1].macs[2].mac', 'also nodes[1].macs[1].mac');
  });

  it('exactly one pxe MAC when MACs are given', () => {
    has(errorsWith((d) => (d.nodes[0].macs = [{ mac: 'fa:16:3e:1c:d0:5a' }])), 'nodes[0].macs', 'found 0');
    has(
      errorsWith(
        (d) =>
          (d.nodes[0].macs = [
            { mac: 'fa:16:3e:1c:d0:5a', pxe: true },
            { mac: 'fa:16:3e:1c:d0:5b', pxe: true },
          ]),
      ),
      'nodes[0].macs',
      'found 2',
    );
    const d = base();
    delete d.nodes[0].macs;
    expect(parseObj(d).config.nodes[0]?.macs).toEqual([]);
  });

  it('networks: cidr, gateway, dns, pool (IPv4 and IPv6)', () => {
    const errors = errorsWith((d) => {
      d.networks = [
        { uuid: UUID(10), name: 'a', cidr: '10.0.0.0/33' },
        { uuid: UUID(11), name: 'b', cidr: '10.0.0.1/24' },
        { uuid: UUID(12), name: 'c', cidr: '10.0.0.0/24', gateway: '10.0.1.1', dns: ['8.8.8.300'], pool: '10.0.0.20-10.0.0.10' },
        { uuid: UUID(13), name: 'd', cidr: '10.0.0.0/24', pool: '10.0.0.10-10.0.1.10' },
        { uuid: UUID(14), name: 'e', cidr: 'fd00::/64', gateway: '10.0.0.1', pool: 'fd00::10' },
        { uuid: UUID(15), name: 'f', cidr: 'fd00:1::/64', gateway: 'fd00:1::1', pool: 'fd00:1::1-fd00:1::ff' },
        { uuid: UUID(16), name: 'g', cidr: 'not-a-cidr' },
        { uuid: UUID(17), name: 'h', cidr: 'fd00:2::/64', pool: 'fd00:2::10-10.0.0.1' },
      ];
      d.nodes[0].adopt = null;
    });
    has(errors, 'networks[0].cidr', 'longer than 32');
    has(errors, 'networks[1].cidr', 'host bits are set (the network is 10.0.0.0/24)');
    has(errors, 'networks[2].gateway', 'outside 10.0.0.0/24');
    has(errors, 'networks[2].dns[0]', 'not an IPv4 or IPv6');
    has(errors, 'networks[2].pool', 'first address is after the last');
    has(errors, 'networks[3].pool', 'last address is outside');
    has(errors, 'networks[4].gateway', 'IPv4 but the cidr is IPv6');
    has(errors, 'networks[4].pool', 'first-last');
    has(errors, 'networks[5].pool', 'contains the gateway');
    has(errors, 'networks[6].cidr', 'address/prefix');
    has(errors, 'networks[7].pool', 'different families');
  });

  it('valid IPv6 networks parse', () => {
    const d = base();
    d.networks.push({ uuid: UUID(20), name: 'v6', cidr: '2001:db8::/48', gateway: '2001:db8::1', pool: '2001:db8::100-2001:db8:0:ffff::1' });
    d.networks.push({ uuid: UUID(21), name: 'all', cidr: '0.0.0.0/0' });
    const { config } = parseObj(d);
    expect(config.networks[1]?.pool).toEqual({ first: '2001:db8::100', last: '2001:db8:0:ffff::1' });
    expect(config.networks[2]).toEqual({ uuid: UUID(21), name: 'all', cidr: '0.0.0.0/0', gateway: null, dns: [], pool: null });
  });

  it('catalogue uuids are unique; network names too (addresses refer to them)', () => {
    const errors = errorsWith((d) => {
      d.images.push({ ...d.images[0], name: 'other' });
      d.instance_types.push({ ...d.instance_types[0], uuid: d.instance_types[0].uuid.toUpperCase() });
      d.networks.push({ ...d.networks[0], uuid: UUID(30) });
    });
    has(errors, 'images[1].uuid', 'duplicate uuid (also images[0].uuid)');
    has(errors, 'instance_types[1].uuid', 'duplicate uuid');
    has(errors, 'networks[1].name', 'duplicate name');
  });

  it('adopt: network, image and instance type must exist; fixed addresses inside their network', () => {
    const errors = errorsWith((d) => {
      d.nodes[0].adopt = {
        instance_id: UUID(40),
        project_id: 'p1',
        user_id: 'u',
        name: 'vm',
        image_uuid: UUID(41),
        instance_type_uuid: UUID(42),
        addresses: [
          { addr: '10.0.0.5', mac: 'fa:16:3e:1c:d0:5a', network: 'public' },
          { addr: '192.168.0.5', mac: 'fa:16:3e:1c:d0:5a', network: 'private' },
          { addr: '10.0.0.6', mac: 'fa:16:3e:1c:d0:5a', network: 'private', version: 6 },
          { addr: '10.0.0.6', mac: 'fa:16:3e:1c:d0:5a', network: 'private' },
          { addr: '10.0.0.300', mac: 'fa:16:3e:1c:d0:5a', network: 'private' },
        ],
      };
    });
    has(errors, 'nodes[0].adopt.addresses[0].network', 'no network named "public"');
    has(errors, 'nodes[0].adopt.addresses[1].addr', 'outside network private');
    has(errors, 'nodes[0].adopt.addresses[2].version', 'IPv4');
    has(errors, 'nodes[0].adopt.addresses[3].addr', 'duplicate address');
    has(errors, 'nodes[0].adopt.addresses[4].addr', 'not an IPv4 or IPv6');
    has(errors, 'nodes[0].adopt.image_uuid', 'no image');
    has(errors, 'nodes[0].adopt.instance_type_uuid', 'no instance type');
  });

  it('api.page_size: default at most max, both 1..10000', () => {
    const d = base();
    d.api = { ...d.api, page_size: { default: 50, max: 20 } };
    expect(errorsOf(d)).toContain('api.page_size.default: must be at most api.page_size.max (20)');
    d.api.page_size = { default: 0, max: 10001 };
    const errors = errorsOf(d);
    expect(errors.some((e) => e.startsWith('api.page_size.default: '))).toBe(true);
    expect(errors.some((e) => e.startsWith('api.page_size.max: '))).toBe(true);
    d.api.page_size = { default: 20, max: 20 };
    expect(parseObj(d).config.api.page_size).toEqual({ default: 20, max: 20 });
  });

  it('adopt: floating addresses may be outside the network; instance ids are unique', () => {
    const d = base();
    const adopt = (id: string) => ({
      instance_id: id,
      project_id: 'p1',
      user_id: 'u',
      name: 'vm',
      addresses: [{ addr: '203.0.113.7', mac: 'fa:16:3e:1c:d0:5a', network: 'private', type: 'floating' }],
    });
    d.nodes[0].adopt = adopt(UUID(50));
    expect(parseObj(d).config.nodes[0]?.adopt?.addresses[0]?.type).toBe('floating');
    d.nodes.push({ id: NODE_ID(2), name: 'node-02', bmc: { ...d.nodes[0].bmc }, adopt: { ...adopt(UUID(50)), addresses: [] } });
    const errors = errorsOf(d);
    expect(errors).toContain('nodes[1].adopt.instance_id: duplicate instance id (also nodes[0].adopt.instance_id)');
  });

  it('drivers: known names only; fake needs allow_fake_drivers', () => {
    const errors = errorsWith((d) => {
      d.nodes[0].bmc.driver = ['ipmi', 'ilo'];
      d.nodes.push({ id: NODE_ID(2), name: 'node-02', bmc: { driver: 'fake', address: 'fake://2' } });
      d.nodes.push({ id: NODE_ID(3), name: 'node-03', bmc: { driver: [], address: 'x' } });
      d.nodes.push({ id: NODE_ID(4), name: 'node-04', bmc: { driver: ['ipmi', 'ipmi'], address: 'x', username: 'a', password_file: '/p' } });
    });
    has(errors, 'nodes[0].bmc.driver', 'unknown driver "ilo" (known: ipmi, redfish, fake)');
    expect(errors).toContain('nodes[1].bmc.driver: the fake driver requires allow_fake_drivers: true');
    has(errors, 'nodes[2].bmc.driver', 'non-empty list');
    has(errors, 'nodes[3].bmc.driver', 'distinct');
  });

  it('the fake liveness engine needs allow_fake_drivers', () => {
    has(errorsWith((d) => (d.liveness = { engine: 'fake' })), 'liveness.engine', 'allow_fake_drivers');
  });

  it('ipmi needs username and password_file; redfish needs an https:// address', () => {
    const errors = errorsWith((d) => {
      delete d.nodes[0].bmc.username;
      delete d.nodes[0].bmc.password_file;
      d.nodes.push({ id: NODE_ID(2), name: 'node-02', bmc: { driver: 'redfish', address: '10.0.1.22' } });
      d.nodes.push({ id: NODE_ID(3), name: 'node-03', bmc: { driver: 'redfish', address: 'http://10.0.1.23' } });
      d.nodes.push({ id: NODE_ID(4), name: 'node-04', bmc: { driver: 'redfish', address: 'https://10.0.1.24', username: 'a' } });
      d.nodes.push({ id: NODE_ID(5), name: 'node-05', bmc: { driver: 'ipmi', address: 'bad host!', username: 'a', password_file: '/p' } });
    });
    has(errors, 'nodes[0].bmc.username', 'ipmi driver needs username and password_file');
    has(errors, 'nodes[0].bmc.password_file', 'ipmi driver needs username and password_file');
    has(errors, 'nodes[1].bmc.address', 'https://');
    has(errors, 'nodes[2].bmc.address', 'insecure: true');
    has(errors, 'nodes[3].bmc.password_file', 'both username and password_file');
    has(errors, 'nodes[4].bmc.address', 'host name or an IP');
  });

  it('http:// redfish is accepted with insecure: true, which is reported', () => {
    const d = base();
    d.nodes[0].bmc = { driver: 'redfish', address: 'http://10.0.1.22', insecure: true, username: 'a', password_file: '/p' };
    const { config, warnings } = parseObj(d);
    expect(config.nodes[0]?.bmc.insecure).toBe(true);
    expect(warnings.some((w) => w.startsWith('nodes[0].bmc.insecure: ') && w.includes('node-01'))).toBe(true);
  });

  it('URLs: public_url, image url, upstream url', () => {
    const errors = errorsWith((d) => {
      d.api.public_url = 'not a url';
      d.images[0].url = 'ftp://images.example/x';
      d.upstream = { url: 'https://controller.example', token_file: '/t' };
      d.boot = { public_url: 'http://user:pw@10.0.0.1:8081' };
    });
    has(errors, 'api.public_url', 'not a valid URL');
    has(errors, 'images[0].url', 'http://');
    has(errors, 'upstream.url', 'wss://');
    has(errors, 'boot.public_url', 'credentials in a URL');
    expect(errors.join('\n')).not.toContain(':pw@');
  });

  it('several problems at once are all listed, sorted by path, and joined in the message', () => {
    const d = base();
    d.log_level = 'loud';
    d.nodes[0].macs[0].mac = 'nope';
    d.nodes[0].bmc.driver = 'fake';
    d.networks[0].pool = '10.0.0.1-10.0.0.9';
    d.images[0].sha256 = '0';
    try {
      parseObj(d);
      expect.fail('should throw');
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      const err = e as ConfigError;
      expect(err.errors.map((x) => x.slice(0, x.indexOf(': ')))).toEqual([
        'images[0].sha256',
        'log_level',
        'networks[0].pool',
        'nodes[0].bmc.driver',
        'nodes[0].macs[0].mac',
      ]);
      for (const line of err.errors) expect(err.message).toContain(line);
      expect(err.message).toMatch(/^invalid configuration \(5 problems\):/);
    }
  });

  it('every error line is `path: message`', () => {
    const errors = errorsWith((d) => {
      d.nodes[0] = { bogus: true };
      d.api = 'x';
      d.networks = {};
    });
    for (const e of errors) expect(e).toMatch(/^[A-Za-z0-9_.[\]()"-]+: \S/);
    has(errors, 'api', 'expected a mapping');
    has(errors, 'networks', 'expected a list');
    has(errors, 'nodes[0].id', 'is required');
    has(errors, 'nodes[0].bogus', 'unknown key');
  });
});

describe('warnings', () => {
  it('instance types whose node type no node has (a warning: nodes may be enrolled later)', () => {
    const w = warningsWith((d) => d.instance_types.push({ uuid: UUID(60), name: 'bm.huge', node_type: 'huge' }));
    expect(w).toEqual(['instance_types[1].node_type: no configured node has type huge (yet: nodes may be enrolled later)']);
  });

  it('no tokens, a public API listener, plain ws:// upstream, options of unused drivers', () => {
    const w = warningsWith((d) => {
      d.api = { listen: '0.0.0.0:6385' };
      d.upstream = { url: 'ws://controller.example/v1', token_file: '/t' };
      d.nodes[0].bmc.system_id = '/redfish/v1/Systems/1';
    });
    expect(w.some((x) => x.startsWith('api.tokens: '))).toBe(true);
    expect(w.some((x) => x.startsWith('api.listen: '))).toBe(true);
    expect(w.some((x) => x.startsWith('upstream.url: '))).toBe(true);
    expect(w.some((x) => x.startsWith('nodes[0].bmc.system_id: '))).toBe(true);
  });

  it('a valid minimal document has no warnings', () => {
    expect(parseObj(base()).warnings).toEqual([]);
  });
});

describe('files', () => {
  it('loadConfigFile resolves relative paths against the file directory', () => {
    const dir = mkdtempSync(join(tmpdir(), 'metald-config-'));
    const file = join(dir, 'metald.yaml');
    writeFileSync(
      file,
      [
        'state_dir: state',
        'allow_fake_drivers: true',
        'api: {tokens: [{token_file: secrets/a.token, project_id: p, user_id: u}]}',
        'boot: {ramdisk: {kernel: boot/vmlinuz, initrd: /abs/initrd.img}}',
        'upstream: {url: "wss://c.example", token_file: ../up.token, ca_file: ca.pem}',
        'nodes:',
        `  - {id: "${NODE_ID(1)}", name: n1, bmc: {driver: redfish, address: "https://b", ca_file: ca/bmc.pem, username: a, password_file: pw}}`,
      ].join('\n'),
    );
    const c = loadConfigFile(file);
    expect(c.state_dir).toBe(join(dir, 'state'));
    expect(c.api.tokens[0]?.token_file).toBe(join(dir, 'secrets/a.token'));
    expect(c.boot?.ramdisk).toEqual({ kernel: join(dir, 'boot/vmlinuz'), initrd: '/abs/initrd.img', iso: null });
    expect(c.upstream?.token_file).toBe(join(dir, '../up.token'));
    expect(c.upstream?.ca_file).toBe(join(dir, 'ca.pem'));
    expect(c.nodes[0]?.bmc.ca_file).toBe(join(dir, 'ca/bmc.pem'));
    expect(c.nodes[0]?.bmc.password_file).toBe(join(dir, 'pw'));
  });

  it('parseConfig resolves relative paths against baseDir', () => {
    expect(parseConfig('state_dir: s\n', { baseDir: '/srv/x' }).state_dir).toBe('/srv/x/s');
  });

  it('a missing file is a ConfigError naming it; errors of a file name it in the message', () => {
    expect(() => loadConfigFile('/nonexistent/metald.yaml')).toThrow(ConfigError);
    expect(() => loadConfigFile('/nonexistent/metald.yaml')).toThrow(/no such file/);
    const dir = mkdtempSync(join(tmpdir(), 'metald-config-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'log_level: loud\n');
    try {
      loadConfigFile(file);
      expect.fail('should throw');
    } catch (e) {
      expect((e as ConfigError).message).toContain(file);
      expect((e as ConfigError).errors).toEqual(['log_level: must be one of: fatal, error, warn, info, debug, trace']);
    }
  });

  it('parseConfigWithWarnings and parseConfig agree', () => {
    const text = 'nodes: []\n';
    expect(parseConfigWithWarnings(text, { hostname: 'h' }).config).toEqual(parseConfig(text, { hostname: 'h' }));
  });
});
