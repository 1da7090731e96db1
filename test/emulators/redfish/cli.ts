/**
 * The standalone emulator's command line (main.ts runs it; `node dist/test/emulators/redfish/main.js --help`).
 * When listening it prints ONE JSON line: {"event":"listening","url",...,"credentials":FILE,"caFile"}. The password
 * is never in argv or on stdout: it is read from --password-file or generated, and written to the credentials file
 * (mode 0600) as {"username","password"}.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseFaults, parseProfile, type Faults, type SystemProfile } from './model.js';
import { startRedfishEmulator, type RedfishEmulator } from './server.js';
import { makeTestPki } from './tls.js';

export const USAGE = `Usage: redfish-emulator [options]
  --systems N             systems served (default 1)
  --port P                port (default 0: a free one), --host H (default 127.0.0.1)
  --tls-dir DIR           serve HTTPS with DIR/server.pem + server.key, made with a test CA (DIR/ca.pem) if absent
  --state-dir DIR         where the credentials file goes (default: --tls-dir, else a new temp folder)
  --user NAME             account name (default admin)
  --password-file FILE    read the password from FILE (default: a random one)
  --id-prefix P           system ids are P1, P2, ... (default sys-)
  --power On|Off          initial power of every system (default Off)
  --power-delay-ms MS     how long a reset takes before PowerState changes (default 200)
  --reset-types LIST      ResetType@Redfish.AllowableValues of every system, comma-separated
  --tasks                 resets answer 202 + a TaskService task monitor
  --require-if-match      PATCH without If-Match answers 428
  --profile JSON          settings of every system (resetTypes, bootTargets, powerDelayMs, tasks, requireIfMatch, vmediaUnder)
  --system ID=JSON        settings of one system (repeatable), e.g. --system 'sys-2={"resetTypes":["On","ForceOff"]}'
  --faults JSON           initial faults (see docs/emulators.md)`;

export class UsageError extends Error {}

export interface EmulatorCliOptions {
  systems: number;
  port: number;
  host: string;
  tlsDir: string | null;
  stateDir: string | null;
  user: string;
  passwordFile: string | null;
  idPrefix: string;
  power: 'On' | 'Off';
  profile: Partial<SystemProfile>;
  overrides: Record<string, Partial<SystemProfile>>;
  faults: Faults;
  help: boolean;
}

function int(name: string, v: string | undefined, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got "${v}"`);
  return Number(v);
}

function json(name: string, v: string): unknown {
  try {
    return JSON.parse(v);
  } catch {
    throw new UsageError(`--${name} is not valid JSON`);
  }
}

/** @throws UsageError with a message naming the bad option. */
export function parseEmulatorArgs(argv: string[]): EmulatorCliOptions {
  let a;
  try {
    a = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        systems: { type: 'string' }, port: { type: 'string' }, host: { type: 'string' }, 'tls-dir': { type: 'string' }, 'state-dir': { type: 'string' },
        user: { type: 'string' }, 'password-file': { type: 'string' }, 'id-prefix': { type: 'string' }, power: { type: 'string' },
        'power-delay-ms': { type: 'string' }, 'reset-types': { type: 'string' }, tasks: { type: 'boolean' }, 'require-if-match': { type: 'boolean' },
        profile: { type: 'string' }, system: { type: 'string', multiple: true }, faults: { type: 'string' }, help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const wrap = <T>(f: () => T): T => {
    try {
      return f();
    } catch (e) {
      throw e instanceof UsageError ? e : new UsageError((e as Error).message);
    }
  };
  const profile: Partial<SystemProfile> = wrap(() => parseProfile(a.profile === undefined ? {} : json('profile', a.profile)));
  if (a['power-delay-ms'] !== undefined) profile.powerDelayMs = int('power-delay-ms', a['power-delay-ms'], 0, 0, 3_600_000);
  if (a['reset-types'] !== undefined) Object.assign(profile, wrap(() => parseProfile({ resetTypes: a['reset-types']!.split(',').map((s) => s.trim()).filter((s) => s) })));
  if (a.tasks) profile.tasks = true;
  if (a['require-if-match']) profile.requireIfMatch = true;
  const overrides: Record<string, Partial<SystemProfile>> = {};
  for (const item of a.system ?? []) {
    const i = item.indexOf('=');
    if (i < 1) throw new UsageError(`--system must be ID=JSON, got "${item}"`);
    overrides[item.slice(0, i)] = wrap(() => parseProfile(json('system', item.slice(i + 1))));
  }
  const power = a.power ?? 'Off';
  if (power !== 'On' && power !== 'Off') throw new UsageError(`--power must be On or Off, got "${power}"`);
  const idPrefix = a['id-prefix'] ?? 'sys-';
  if (!/^[A-Za-z0-9._-]*$/.test(idPrefix)) throw new UsageError('--id-prefix may hold only letters, digits, ".", "_" and "-"');
  const user = a.user ?? 'admin';
  if (!/^[A-Za-z0-9._-]{1,32}$/.test(user)) throw new UsageError('--user must be 1-32 letters, digits, ".", "_" or "-"');
  return {
    systems: int('systems', a.systems, 1, 1, 100_000),
    port: int('port', a.port, 0, 0, 65_535),
    host: a.host ?? '127.0.0.1',
    tlsDir: a['tls-dir'] ?? null,
    stateDir: a['state-dir'] ?? null,
    user,
    passwordFile: a['password-file'] ?? null,
    idPrefix,
    power,
    profile,
    overrides,
    faults: a.faults === undefined ? {} : wrap(() => parseFaults(json('faults', a.faults!))),
    help: a.help ?? false,
  };
}

/** Starts the emulator from parsed options; writes the credentials file. */
export async function startFromCli(o: EmulatorCliOptions): Promise<{ emulator: RedfishEmulator; line: Record<string, unknown> }> {
  const pki = o.tlsDir ? makeTestPki(o.tlsDir) : null;
  const stateDir = o.stateDir ?? o.tlsDir ?? mkdtempSync(join(tmpdir(), 'redfish-emu-'));
  const password = o.passwordFile ? readFileSync(o.passwordFile, 'utf8').trim() : randomBytes(12).toString('base64url');
  if (password === '') throw new UsageError(`--password-file ${o.passwordFile} is empty`);
  const credentials = join(stateDir, 'credentials.json');
  writeFileSync(credentials, JSON.stringify({ username: o.user, password }) + '\n', { mode: 0o600 });
  const emulator = await startRedfishEmulator({
    systems: o.systems, idPrefix: o.idPrefix, power: o.power, profile: o.profile, overrides: o.overrides, faults: o.faults,
    port: o.port, host: o.host, username: o.user, password, ...(pki ? { tls: { key: pki.key, cert: pki.cert } } : {}),
  });
  const line = { event: 'listening', url: emulator.url, credentials, caFile: pki?.caFile ?? null, systems: o.systems, firstSystem: `/redfish/v1/Systems/${o.idPrefix}1`, pid: process.pid };
  return { emulator, line };
}

/** The process entry: exit 2 on a usage error, 0 after SIGTERM/SIGINT. */
export async function runEmulatorCli(argv: string[]): Promise<void> {
  let o: EmulatorCliOptions;
  try {
    o = parseEmulatorArgs(argv);
  } catch (e) {
    console.error(`redfish-emulator: ${(e as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  if (o.help) {
    console.log(USAGE);
    return;
  }
  let started;
  try {
    started = await startFromCli(o);
  } catch (e) {
    console.error(`redfish-emulator: ${(e as Error).message}`);
    process.exit(e instanceof UsageError ? 2 : 1);
  }
  const stop = (): void => {
    void started.emulator.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  console.log(JSON.stringify(started.line));
}
