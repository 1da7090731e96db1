/**
 * Adding a driver is a folder plus one registry line: a toy driver written into a temporary folder, with its own
 * settings schema, is registered on a registry, and a node is bound to it through the registry alone (the config
 * loader validates the node's `bmc` with the toy's schema; the core passes the settings through untouched).
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfigWithWarnings } from '../../agent/config/load.js';
import { SecretFiles } from '../../agent/config/secrets.js';
import { RegistryBmcProvider } from '../../agent/bmc-provider.js';
import { systemClock } from '../../agent/ports.js';
import { createDefaultRegistry, DriverRegistry } from '../../drivers/registry.js';
import type { DriverFactory } from '../../drivers/types.js';
import { makeNode } from '../agent/api/stub-service.js';

const REPO = resolve(import.meta.dirname, '../..');

/** The toy driver's folder: its settings (a required `shelf` 1..9, a secret `token_file`) and a power capability. */
const TOY_SOURCE = (settingsModule: string) => `
import { Type } from '@sinclair/typebox';
import { driverSettings, FilePath } from ${JSON.stringify(settingsModule)};

export const seen = [];

export const toyDriver = {
  name: 'toy',
  capabilities: ['power'],
  settings: driverSettings({
    shelf: Type.Integer({ minimum: 1, maximum: 9 }),
    token_file: Type.Optional(FilePath(true)),
  }),
  check(settings, report) {
    if (settings.shelf === 7) report.error('shelf', 'shelf 7 is reserved');
  },
  create(target, ports) {
    let power = 'off';
    return {
      name: 'toy',
      capabilities: ['power'],
      power: {
        getPower: async () => power,
        setPower: async (action) => {
          seen.push({ shelf: target.settings.shelf, token: await target.secret('token_file'), at: ports.clock.now() });
          power = action === 'on' ? 'on' : 'off';
        },
        supportedPowerActions: () => ['on', 'off'],
      },
    };
  },
};
`;

interface ToyModule {
  toyDriver: DriverFactory;
  seen: { shelf: unknown; token: string | null; at: number }[];
}

let dir: string;
let toy: ToyModule;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'metald-toy-driver-'));
  // The folder resolves its packages like a folder under drivers/ would.
  symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'));
  mkdirSync(join(dir, 'toy'));
  writeFileSync(join(dir, 'toy/index.ts'), TOY_SOURCE(join(REPO, 'drivers/settings.ts')));
  toy = (await import(pathToFileURL(join(dir, 'toy/index.ts')).href)) as ToyModule;
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The one registry line. */
const registryWithToy = (): DriverRegistry => createDefaultRegistry({ allowFake: false }).register(toy.toyDriver);

const NODE_ID = '1b8c5f0e-0000-4000-8000-000000000077';
const yaml = (bmc: string) => `
power_poll: [5ms]
timeouts: {power: 2s}
bmc: {min_gap: 0ms}
nodes:
  - {id: ${NODE_ID}, name: toy-1, bmc: {driver: toy, ${bmc}}}
`;

function errorsOf(text: string, drivers: DriverRegistry): string[] {
  try {
    parseConfigWithWarnings(text, { drivers, baseDir: dir });
  } catch (e) {
    if (e instanceof ConfigError) return e.errors;
    throw e;
  }
  return [];
}

describe('a driver from its own folder', () => {
  it('the config loader validates a node with the toy driver settings schema and rules', () => {
    const r = registryWithToy();
    expect(errorsOf(yaml('address: toy://a, shelf: 12'), r)).toEqual(['nodes[0].bmc.shelf: must be at most 9']);
    expect(errorsOf(yaml('address: toy://a'), r)).toEqual(['nodes[0].bmc.shelf: is required']);
    expect(errorsOf(yaml('address: toy://a, shelf: 7'), r)).toEqual(['nodes[0].bmc.shelf: shelf 7 is reserved']);
    expect(errorsOf(yaml('address: toy://a, shelf: 2, drawer: 1'), r)).toEqual([
      expect.stringMatching(/^nodes\[0\]\.bmc\.drawer: unknown key \(allowed here: .*shelf, token_file/),
    ]);
    // Without the registry line the name is unknown.
    expect(errorsOf(yaml('address: toy://a, shelf: 2'), createDefaultRegistry({ allowFake: false }))).toEqual([
      'nodes[0].bmc.driver: unknown driver "toy" (known: ipmi, redfish, fake)',
    ]);
  });

  it('binds a configured node to the toy through the registry alone, with its settings and secret', async () => {
    const r = registryWithToy();
    writeFileSync(join(dir, 'toy.token'), 'toy-secret\n', { mode: 0o600 });
    const { config, warnings } = parseConfigWithWarnings(yaml('address: toy://a, shelf: 3, token_file: toy.token, cipher_suite: 3'), {
      drivers: r,
      baseDir: dir,
    });
    // A key only another driver uses is accepted with a warning, as for the shipped drivers.
    expect(warnings).toContain('nodes[0].bmc.cipher_suite: only the ipmi driver uses it');
    const nc = config.nodes[0]!;
    expect(nc.bmc).toEqual({
      drivers: ['toy'],
      address: 'toy://a',
      shelf: 3,
      token_file: join(dir, 'toy.token'),
      cipher_suite: 3,
      insecure: false,
    });

    const provider = new RegistryBmcProvider(r, new SecretFiles(), () => config, systemClock);
    const bmc = provider.forNode(makeNode({ id: nc.id, bmc: nc.bmc }));
    expect(bmc.supports('power', 'on')).toBe(true);
    const res = await bmc.setPower('on');
    expect(res).toMatchObject({ power: 'on', succeeded: 'toy' });
    expect(toy.seen.at(-1)).toMatchObject({ shelf: 3, token: 'toy-secret' });
    await provider.invalidate();
  });

  it('a driver reads only the secrets its schema marks x-secret', async () => {
    let seen: Parameters<DriverFactory['create']>[0] | undefined;
    const r = new DriverRegistry().register({
      ...toy.toyDriver,
      create: (t, ports) => {
        seen = t;
        return toy.toyDriver.create(t, ports);
      },
    });
    r.bindAll(['toy'], { nodeId: 'n-secret', settings: { address: 'toy://a', shelf: 1 }, secret: (key) => Promise.resolve(`content of ${key}`) });
    await expect(seen!.secret('token_file')).resolves.toBe('content of token_file');
    await expect(seen!.secret('address')).rejects.toThrow(/address is not a secret setting of the toy driver/);
  });

  it('settings that do not fit the schema are refused at binding (nothing is created)', () => {
    const r = registryWithToy();
    expect(() => r.bindAll(['toy'], { nodeId: 'n-bad', settings: { address: 'toy://a', shelf: 'three' }, secret: () => Promise.resolve(null) })).toThrow(
      /BMC settings of node n-bad do not fit toy: shelf: /,
    );
  });
});
