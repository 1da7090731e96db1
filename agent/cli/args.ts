/**
 * metalctl's argument handling: option parsers, the files that carry secrets and long inputs (password hash, SSH
 * keys, user data), OS-operation parameters, power targets, and the option sets commands share.
 */
import { type Command, InvalidArgumentError } from 'commander';
import type { OsParams, PowerBody } from './client.js';
import { EXPECTED_POWER, isSoft, POWER_ACTIONS, SOFT_POWER_ACTIONS, type PowerAction } from '../../drivers/power.js';
import { IRONIC_POWER_TARGET, ironicPower, type IronicPower } from '../vocab.js';
import { readInputFile, UsageError } from './context.js';

export interface WaitOpts {
  wait?: boolean;
  pollInterval: number;
  waitTimeout: number;
}

/** metalctl's power words (the internal ones, drivers/power.ts) and Ironic's (seed 004) -> the action asked for. */
const POWER_TARGETS: Readonly<Record<string, PowerAction>> = Object.fromEntries(
  POWER_ACTIONS.flatMap((a) => [
    [a, a],
    [IRONIC_POWER_TARGET[a], a],
  ]),
);

/** The power state (Ironic's words) an accepted target ends in. */
export function finalPower(target: PowerAction): NonNullable<IronicPower> {
  return ironicPower(EXPECTED_POWER[target]) as NonNullable<IronicPower>;
}

export function positiveSeconds(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number of seconds');
  return n;
}

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive whole number');
  return n;
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function parseCreateNetwork(spec: string): { uuid: string; port_type?: string } {
  const i = spec.indexOf(':');
  const uuid = i < 0 ? spec : spec.slice(0, i);
  const portType = i < 0 ? undefined : spec.slice(i + 1);
  if (uuid === '' || portType === '') throw new UsageError(`--network '${spec}': expected UUID[:port_type]`);
  return portType === undefined ? { uuid } : { uuid, port_type: portType };
}

export function parseModifyNetwork(spec: string): { uuid: string; port_type?: string; fixed_ip?: string } {
  const eq = spec.indexOf('=');
  const left = eq < 0 ? spec : spec.slice(0, eq);
  const fixedIp = eq < 0 ? undefined : spec.slice(eq + 1);
  if (fixedIp === '') throw new UsageError(`--network '${spec}': expected UUID[:port_type][=fixed_ip]`);
  const net: { uuid: string; port_type?: string; fixed_ip?: string } = parseCreateNetwork(left);
  if (fixedIp !== undefined) net.fixed_ip = fixedIp;
  return net;
}

export function parseMetadata(specs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const spec of specs) {
    const i = spec.indexOf('=');
    if (i <= 0) throw new UsageError(`--metadata '${spec}': expected KEY=VALUE`);
    out[spec.slice(0, i)] = spec.slice(i + 1);
  }
  return out;
}

export async function readPasswordHash(path: string): Promise<string> {
  const hash = (await readInputFile(path, '--password-hash-file')).trim();
  if (hash === '') throw new UsageError(`--password-hash-file '${path}' is empty`);
  if (/\s/.test(hash)) throw new UsageError(`--password-hash-file '${path}' must hold one crypt(3) hash on one line`);
  return hash;
}

/** SSH public keys, one per non-empty, non-comment line (authorized_keys style). */
export async function readSshKeys(paths: string[]): Promise<string[]> {
  const keys: string[] = [];
  for (const path of paths) {
    const lines = (await readInputFile(path, '--ssh-key-file')).split(/\r?\n/).map((l) => l.trim());
    const found = lines.filter((l) => l !== '' && !l.startsWith('#'));
    if (found.length === 0) throw new UsageError(`--ssh-key-file '${path}' holds no key`);
    keys.push(...found);
  }
  return keys;
}

export function addWaitOptions(cmd: Command): Command {
  return cmd
    .option('--wait', 'wait until the operation ends, with progress on stderr; exit 1 if it ended in error')
    .option('--poll-interval <seconds>', 'seconds between polls while waiting', positiveSeconds, 1)
    .option('--wait-timeout <seconds>', 'give up waiting after this many seconds (exit 3)', positiveSeconds, 3600);
}

export function addOsParamOptions(cmd: Command): Command {
  return cmd
    .option('--hostname <name>', 'host name of the installed OS')
    .option('--ssh-key-file <file>', 'SSH public key file, one key per line (repeatable)', collect)
    .option('--password-hash-file <file>', 'file holding a crypt(3) password hash (e.g. from mkpasswd -m sha-512)')
    .option('--user-data-file <file>', 'file holding user data (e.g. cloud-init)');
}

export interface OsParamOpts {
  image?: string;
  hostname?: string;
  sshKeyFile?: string[];
  passwordHashFile?: string;
  userDataFile?: string;
}

export async function osParams(o: OsParamOpts): Promise<OsParams> {
  const p: OsParams = {};
  if (o.image !== undefined) p.image_uuid = o.image;
  if (o.hostname !== undefined) p.hostname = o.hostname;
  if (o.sshKeyFile && o.sshKeyFile.length > 0) p.ssh_keys = await readSshKeys(o.sshKeyFile);
  if (o.passwordHashFile !== undefined) p.password_hash = await readPasswordHash(o.passwordHashFile);
  if (o.userDataFile !== undefined) p.user_data = await readInputFile(o.userDataFile, '--user-data-file');
  return p;
}

export function powerBody(targetWord: string, timeoutS: number | undefined): { body: PowerBody; action: PowerAction } {
  const action = Object.prototype.hasOwnProperty.call(POWER_TARGETS, targetWord) ? POWER_TARGETS[targetWord] : undefined;
  if (action === undefined) throw new UsageError(`power target '${targetWord}': expected ${POWER_ACTIONS.slice(0, -1).join(', ')} or ${POWER_ACTIONS[POWER_ACTIONS.length - 1]}`);
  const body: PowerBody = { target: IRONIC_POWER_TARGET[action] };
  if (timeoutS !== undefined) {
    if (!isSoft(action)) throw new UsageError(`--timeout-s applies to ${SOFT_POWER_ACTIONS.join(' and ')} only`);
    body.timeout = timeoutS;
  }
  return { body, action };
}
