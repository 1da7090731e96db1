#!/usr/bin/env node
/**
 * metalctl: the operator's command line of metald, a pure HTTP client of its local REST API (docs/cli.md).
 *
 * `run(argv, io)` is the whole program and returns the exit code, so every command is testable in-process; the
 * executable part at the bottom only wires it to `process`. Exit codes: 0 success, 1 API or connection error or an
 * operation that ended in error, 2 usage error, 3 `--wait` gave up (the operation goes on in metald).
 *
 * Secrets never come from argv (argv is readable by every user of the host through ps and /proc): the API token
 * comes from a file or the environment; password hashes, SSH keys and user data come from files.
 */
import { readFile, realpath } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import {
  ApiError,
  ConnectionError,
  MetalClient,
  type ActionBody,
  type ApiResponse,
  type CreateInstanceBody,
  type FetchLike,
  type InstanceStatus,
  type InstanceView,
  type NodeView,
  type OsParams,
  type PowerBody,
  type StatusError,
} from './client.js';
import { realSleep } from '../../drivers/bmc-lock.js';
import { EXPECTED_POWER, isSoft, POWER_ACTIONS, SOFT_POWER_ACTIONS, type PowerAction } from '../../drivers/power.js';
import { waitFor, type WaitClock, type WaitPolicy } from '../../drivers/wait.js';
import { IRONIC_POWER_TARGET, ironicPower, type IronicPower } from '../vocab.js';
import { escapeControl, flattenObject, formatCell, formatKeyValue, formatTable } from './format.js';

export interface CliIo {
  stdout: { write(chunk: string): unknown };
  stderr: { write(chunk: string): unknown };
  env: Record<string, string | undefined>;
  fetch?: FetchLike | undefined;
  /** Replaces the wait loop's sleep (tests). */
  sleep?: ((ms: number) => Promise<void>) | undefined;
}

export const DEFAULT_URL = 'http://127.0.0.1:6385';
export const EXIT_OK = 0;
export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;
export const EXIT_WAIT_TIMEOUT = 3;

/** A mistake in the invocation (exit 2). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

interface GlobalOpts {
  url?: string;
  tokenFile?: string;
  project?: string;
  json?: boolean;
  timeout: number;
}

interface WaitOpts {
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
function finalPower(target: PowerAction): NonNullable<IronicPower> {
  return ironicPower(EXPECTED_POWER[target]) as NonNullable<IronicPower>;
}

/** Options that would put a secret on argv: refused before parsing, without echoing the value. */
const SECRET_OPTIONS: Record<string, string> = {
  '--token': 'use --token-file PATH, METALCTL_TOKEN_FILE or METALCTL_TOKEN',
  '--auth-token': 'use --token-file PATH, METALCTL_TOKEN_FILE or METALCTL_TOKEN',
  '--os-token': 'use --token-file PATH, METALCTL_TOKEN_FILE or METALCTL_TOKEN',
  '--x-auth-token': 'use --token-file PATH, METALCTL_TOKEN_FILE or METALCTL_TOKEN',
  '--password': 'use --password-hash-file FILE',
  '--password-hash': 'use --password-hash-file FILE',
  '--user-data': 'use --user-data-file FILE',
};

const HELP_AFTER = `
Authentication:
  The API token is read from --token-file PATH, else from the file named by METALCTL_TOKEN_FILE, else from the
  environment variable METALCTL_TOKEN. There is deliberately no option that takes the token itself: a command line
  is visible to every user of the host (ps, /proc/PID/cmdline). Password hashes, SSH keys and user data are read
  from files for the same reason.

Environment:
  METALCTL_URL, METALCTL_PROJECT, METALCTL_TOKEN_FILE, METALCTL_TOKEN

Exit codes:
  0 success, 1 API or connection error or the awaited operation failed, 2 usage error, 3 --wait timed out
`;

// ---------------------------------------------------------------- option parsers

function positiveSeconds(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number of seconds');
  return n;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive whole number');
  return n;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function parseCreateNetwork(spec: string): { uuid: string; port_type?: string } {
  const i = spec.indexOf(':');
  const uuid = i < 0 ? spec : spec.slice(0, i);
  const portType = i < 0 ? undefined : spec.slice(i + 1);
  if (uuid === '' || portType === '') throw new UsageError(`--network '${spec}': expected UUID[:port_type]`);
  return portType === undefined ? { uuid } : { uuid, port_type: portType };
}

function parseModifyNetwork(spec: string): { uuid: string; port_type?: string; fixed_ip?: string } {
  const eq = spec.indexOf('=');
  const left = eq < 0 ? spec : spec.slice(0, eq);
  const fixedIp = eq < 0 ? undefined : spec.slice(eq + 1);
  if (fixedIp === '') throw new UsageError(`--network '${spec}': expected UUID[:port_type][=fixed_ip]`);
  const net: { uuid: string; port_type?: string; fixed_ip?: string } = parseCreateNetwork(left);
  if (fixedIp !== undefined) net.fixed_ip = fixedIp;
  return net;
}

function parseMetadata(specs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const spec of specs) {
    const i = spec.indexOf('=');
    if (i <= 0) throw new UsageError(`--metadata '${spec}': expected KEY=VALUE`);
    out[spec.slice(0, i)] = spec.slice(i + 1);
  }
  return out;
}

async function readInputFile(path: string, option: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as { code?: string }).code ?? 'unreadable';
    throw new UsageError(`cannot read ${option} '${path}': ${code}`);
  }
}

async function readPasswordHash(path: string): Promise<string> {
  const hash = (await readInputFile(path, '--password-hash-file')).trim();
  if (hash === '') throw new UsageError(`--password-hash-file '${path}' is empty`);
  if (/\s/.test(hash)) throw new UsageError(`--password-hash-file '${path}' must hold one crypt(3) hash on one line`);
  return hash;
}

/** SSH public keys, one per non-empty, non-comment line (authorized_keys style). */
async function readSshKeys(paths: string[]): Promise<string[]> {
  const keys: string[] = [];
  for (const path of paths) {
    const lines = (await readInputFile(path, '--ssh-key-file')).split(/\r?\n/).map((l) => l.trim());
    const found = lines.filter((l) => l !== '' && !l.startsWith('#'));
    if (found.length === 0) throw new UsageError(`--ssh-key-file '${path}' holds no key`);
    keys.push(...found);
  }
  return keys;
}

// ---------------------------------------------------------------- context

class Ctx {
  private clientCache: MetalClient | undefined;

  constructor(
    readonly io: CliIo,
    readonly opts: GlobalOpts,
  ) {}

  get json(): boolean {
    return this.opts.json === true;
  }

  out(text: string): void {
    this.io.stdout.write(text);
  }

  err(text: string): void {
    this.io.stderr.write(text);
  }

  /** Prints the API's JSON exactly as received (nothing for an empty body). */
  raw(res: ApiResponse<unknown>): void {
    if (res.text === '') return;
    this.out(res.text.endsWith('\n') ? res.text : res.text + '\n');
  }

  /** The project for a project-scoped command. @throws UsageError when neither --project nor METALCTL_PROJECT. */
  project(what: string): string {
    const p = this.opts.project ?? this.io.env.METALCTL_PROJECT;
    if (p === undefined || p === '') {
      throw new UsageError(`'${what}' needs a project: give --project ID or set METALCTL_PROJECT`);
    }
    return p;
  }

  async client(): Promise<MetalClient> {
    if (this.clientCache) return this.clientCache;
    const url = this.opts.url ?? this.io.env.METALCTL_URL ?? DEFAULT_URL;
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new UsageError(`--url '${url}' is not a URL`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UsageError(`--url '${url}': only http and https`);
    if (parsed.username !== '' || parsed.password !== '') throw new UsageError('--url must not carry credentials');
    const token = await this.token();
    this.clientCache = new MetalClient({ baseUrl: url, token, timeoutMs: this.opts.timeout * 1000, fetch: this.io.fetch });
    return this.clientCache;
  }

  private async token(): Promise<string> {
    const file = this.opts.tokenFile ?? nonEmpty(this.io.env.METALCTL_TOKEN_FILE);
    let token: string;
    let from: string;
    if (file !== undefined) {
      token = (await readInputFile(file, 'token file')).trim();
      from = `token file '${file}'`;
    } else if (nonEmpty(this.io.env.METALCTL_TOKEN) !== undefined) {
      token = (this.io.env.METALCTL_TOKEN as string).trim();
      from = 'METALCTL_TOKEN';
    } else {
      throw new UsageError('no API token: use --token-file PATH, METALCTL_TOKEN_FILE or METALCTL_TOKEN');
    }
    if (token === '') throw new UsageError(`${from} is empty`);
    if (!/^[\x21-\x7e]+$/.test(token)) throw new UsageError(`${from} holds characters a token cannot have`);
    return token;
  }
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s === '' ? undefined : s;
}

// ---------------------------------------------------------------- views

function addressesOf(inst: InstanceView): string {
  const ips: string[] = [];
  for (const net of Object.values(inst.network_info ?? {})) {
    for (const ip of net.fixed_ips ?? []) ips.push(ip.ip_address);
  }
  return ips.join(',');
}

function instanceTable(instances: InstanceView[]): string {
  const withNode = instances.some((i) => typeof i.node_id === 'string');
  const headers = ['ID', 'NAME', 'STATUS', 'POWER', ...(withNode ? ['NODE'] : []), 'ADDRESSES', 'CREATED'];
  const rows = instances.map((i) => [
    i.uuid,
    i.name,
    i.status,
    i.power_state,
    ...(withNode ? [i.node_id] : []),
    addressesOf(i),
    i.created_at,
  ]);
  return formatTable(headers, rows);
}

const INSTANCE_KEYS = [
  'uuid',
  'name',
  'description',
  'status',
  'power_state',
  'project_id',
  'user_id',
  'image_uuid',
  'instance_type_uuid',
  'availability_zone',
  'created_at',
  'updated_at',
] as const;

function instanceDetail(inst: InstanceView): string {
  const pairs: [string, unknown][] = INSTANCE_KEYS.map((k) => [k, inst[k]]);
  const rest = Object.fromEntries(
    Object.entries(inst).filter(([k]) => !(INSTANCE_KEYS as readonly string[]).includes(k) && k !== 'network_info' && k !== 'links'),
  );
  if (Object.keys(rest).length > 0) pairs.push(...flattenObject(rest));
  for (const [uuid, net] of Object.entries(inst.network_info ?? {})) {
    const ips = (net.fixed_ips ?? []).map((ip) => ip.ip_address).join(',');
    pairs.push([`network ${uuid}`, `${net.network ?? '-'} port_type=${formatCell(net.port_type)} mac=${formatCell(net.mac_address)} ips=${ips || '-'}`]);
  }
  return formatKeyValue(pairs);
}

function statusDetail(s: InstanceStatus): string {
  const pairs: [string, unknown][] = [
    ['state', s.state],
    ['operation_state', s.operation_state],
  ];
  if (s.error) {
    pairs.push(['error_type', s.error.error_type], ['error_code', s.error.error_code], ['error_msg', s.error.error_msg]);
  } else {
    pairs.push(['error', null]);
  }
  return formatKeyValue(pairs);
}

function lastErrorText(e: unknown): unknown {
  if (e !== null && typeof e === 'object' && typeof (e as StatusError).error_msg === 'string') return (e as StatusError).error_msg;
  return e;
}

function nodeTable(nodes: NodeView[]): string {
  return formatTable(
    ['ID', 'NAME', 'TYPE', 'POWER', 'MAINTENANCE', 'INSTANCE', 'LAST_ERROR'],
    nodes.map((n) => [
      n.uuid,
      n.name,
      n.type,
      n.power_state,
      n.maintenance ? (n.maintenance_reason ? `yes (${n.maintenance_reason})` : 'yes') : 'no',
      n.instance_uuid,
      lastErrorText(n.last_error),
    ]),
  );
}

function yesNo(b: unknown): string {
  return b === true ? 'yes' : b === false ? 'no' : formatCell(b);
}

// ---------------------------------------------------------------- waiting

type WaitKind = 'create' | 'delete' | 'power' | 'os';

interface WaitSpec {
  kind: WaitKind;
  /** For create/os: the operation whose operation_state must show (`install`, `reinstall`, ...), if any. */
  op?: string;
  /** For power: the power state the target ends in. */
  finalPower?: NonNullable<IronicPower>;
}

interface Observation {
  state: string;
  operation_state: string | null;
  error: StatusError | null;
  power_state: string | null;
  target_power_state: string | null;
  progress: number | null;
  /** nova's task_state: set while any operation holds the instance (a delete of a running instance, say). */
  task_state: string | null;
}

/** The wait loop's time: the wall clock and `io.sleep` (tests) or a timer. */
function waitClock(ctx: Ctx): WaitClock {
  const sleep = ctx.io.sleep ?? realSleep;
  return { now: () => Date.now(), sleep: (ms) => sleep(ms) };
}

/** Poll at once, then every --poll-interval, a last time at --wait-timeout (waitFor, drivers/wait.ts). */
function pollPolicy(w: WaitOpts): WaitPolicy {
  return { delaysMs: [0, w.pollInterval * 1000], deadlineMs: w.waitTimeout * 1000 };
}

/** An answer worth polling through: the agent restarting, overloaded, or briefly unreachable. */
function isTransient(err: unknown): boolean {
  if (err instanceof ConnectionError) return true;
  return err instanceof ApiError && (err.status === 429 || err.status === 502 || err.status === 503 || err.status === 504);
}

function describe(o: Observation): string {
  const progress = o.progress === null ? '-' : `${o.progress}%`;
  return (
    `state=${formatCell(o.state)} operation_state=${formatCell(o.operation_state)} ` +
    `power=${formatCell(o.power_state)} target=${formatCell(o.target_power_state)} progress=${progress}`
  );
}

function errorText(e: StatusError): string {
  return escapeControl(`${e.error_msg} (${e.error_type}, ${e.error_code})`);
}

/**
 * Polls an instance until its operation ends: operation_state no longer `-processing`, state neither `pending`
 * nor `shutting-down`, and no target_power_state. Progress lines go to stderr when something changes.
 * @returns the exit code: 0 success, 1 the operation ended in error, 3 gave up after --wait-timeout.
 */
async function waitForInstance(ctx: Ctx, client: MetalClient, project: string, id: string, spec: WaitSpec, w: WaitOpts): Promise<number> {
  const started = Date.now();
  let lastLine = '';
  let lastTransient = '';
  let exit: number | undefined;
  const label = escapeControl(id);
  const waited = await waitFor<Observation>(
    pollPolicy(w),
    async () => {
      let obs: Observation | 'gone';
      try {
        obs = await observe(client, project, id, spec);
        lastTransient = '';
      } catch (err) {
        if (!isTransient(err)) throw err;
        const msg = (err as Error).message;
        if (msg !== lastTransient) ctx.err(`${label}: poll failed: ${escapeControl(msg)}; retrying\n`);
        lastTransient = msg;
        return { done: false };
      }
      if (obs === 'gone') {
        ctx.err(`${label}: done (deleted)\n`);
        exit = EXIT_OK;
        return { done: true };
      }
      const line = describe(obs);
      if (line !== lastLine) {
        const secs = Math.round((Date.now() - started) / 1000);
        ctx.err(`[${String(secs).padStart(4)}s] ${label}: ${line}\n`);
        lastLine = line;
      }
      if (hasEnded(obs, spec)) exit = verdict(ctx, label, obs, spec);
      return { done: exit !== undefined, seen: obs };
    },
    { clock: waitClock(ctx) },
  );
  if (exit !== undefined) return exit;
  const where = waited.last ? ` (${describe(waited.last)})` : '';
  ctx.err(`error: gave up waiting for ${label} after ${w.waitTimeout} s${where}; the operation goes on in metald\n`);
  return EXIT_WAIT_TIMEOUT;
}

async function observe(client: MetalClient, project: string, id: string, spec: WaitSpec): Promise<Observation | 'gone'> {
  let status: InstanceStatus;
  try {
    status = (await client.getStatus(project, id)).body;
  } catch (err) {
    if (spec.kind === 'delete' && err instanceof ApiError && err.status === 404) return 'gone';
    throw err;
  }
  let power_state: string | null = null;
  let target_power_state: string | null = null;
  if (status.state !== 'terminated') {
    try {
      const states = (await client.getPowerStates(id)).body;
      power_state = states.power_state;
      target_power_state = states.target_power_state;
    } catch (err) {
      if (spec.kind === 'delete' && err instanceof ApiError && err.status === 404) return 'gone';
      throw err;
    }
  }
  let progress: number | null = null;
  let task_state: string | null = null;
  if (status.state !== 'terminated') {
    try {
      const server = (await client.getServer(project, id)).body.server;
      progress = typeof server.progress === 'number' ? server.progress : null;
      const t = server['OS-EXT-STS:task_state'];
      task_state = typeof t === 'string' ? t : null;
    } catch {
      // The v2 view is a nicety (progress, task): the status above decides.
    }
  }
  return { state: status.state, operation_state: status.operation_state ?? null, error: status.error ?? null, power_state, target_power_state, progress, task_state };
}

function hasEnded(o: Observation, spec: WaitSpec): boolean {
  if (o.operation_state?.endsWith('-processing')) return false;
  if (o.state === 'pending' || o.state === 'shutting-down') return false;
  if (o.target_power_state !== null) return false;
  if (o.task_state !== null) return false;
  // The operation's record is committed before 202, so its operation_state shows from the first poll; until it
  // does, what we see is an older operation's outcome.
  if (spec.op !== undefined && o.state !== 'error' && !o.operation_state?.startsWith(`${spec.op}-`)) return false;
  return true;
}

function verdict(ctx: Ctx, label: string, o: Observation, spec: WaitSpec): number {
  let failed: boolean;
  switch (spec.kind) {
    case 'delete':
      failed = o.state !== 'terminated';
      break;
    case 'power':
      failed = o.power_state !== spec.finalPower;
      break;
    default:
      failed = o.state === 'error' || o.operation_state?.endsWith('-failed') === true || o.error !== null;
  }
  if (!failed) {
    ctx.err(`${label}: done (${describe(o)})\n`);
    return EXIT_OK;
  }
  const why = o.error ? errorText(o.error) : spec.kind === 'power' ? `power is ${formatCell(o.power_state)}, expected ${spec.finalPower}` : 'no error reported';
  ctx.err(`error: ${label} ended in error: ${why}; ${describe(o)}\n`);
  return EXIT_ERROR;
}

/** Node power --wait: until no target remains and the power reached the target's end. */
async function waitForNode(ctx: Ctx, client: MetalClient, id: string, finalPower: string, initialError: string, w: WaitOpts): Promise<number> {
  const started = Date.now();
  const label = escapeControl(id);
  let lastLine = '';
  let exit: number | undefined;
  await waitFor(
    pollPolicy(w),
    async () => {
      let node: NodeView;
      try {
        node = (await client.getNode(id)).body;
      } catch (err) {
        if (!isTransient(err)) throw err;
        return { done: false };
      }
      const hasTarget = Object.prototype.hasOwnProperty.call(node, 'target_power_state');
      const target = node.target_power_state ?? null;
      const line = `power=${formatCell(node.power_state)} target=${formatCell(target)} last_error=${formatCell(lastErrorText(node.last_error))}`;
      if (line !== lastLine) {
        ctx.err(`[${String(Math.round((Date.now() - started) / 1000)).padStart(4)}s] node ${label}: ${line}\n`);
        lastLine = line;
      }
      const errNow = JSON.stringify(node.last_error ?? null);
      if (target === null && node.power_state === finalPower) {
        ctx.err(`node ${label}: done (${line})\n`);
        exit = EXIT_OK;
      } else if ((hasTarget && target === null) || errNow !== initialError) {
        ctx.err(`error: node ${label} did not reach ${finalPower}: ${line}\n`);
        exit = EXIT_ERROR;
      }
      return { done: exit !== undefined };
    },
    { clock: waitClock(ctx) },
  );
  if (exit !== undefined) return exit;
  ctx.err(`error: gave up waiting for node ${label} after ${w.waitTimeout} s; the request goes on in metald\n`);
  return EXIT_WAIT_TIMEOUT;
}

// ---------------------------------------------------------------- program

function addWaitOptions(cmd: Command): Command {
  return cmd
    .option('--wait', 'wait until the operation ends, with progress on stderr; exit 1 if it ended in error')
    .option('--poll-interval <seconds>', 'seconds between polls while waiting', positiveSeconds, 1)
    .option('--wait-timeout <seconds>', 'give up waiting after this many seconds (exit 3)', positiveSeconds, 3600);
}

function addOsParamOptions(cmd: Command): Command {
  return cmd
    .option('--hostname <name>', 'host name of the installed OS')
    .option('--ssh-key-file <file>', 'SSH public key file, one key per line (repeatable)', collect)
    .option('--password-hash-file <file>', 'file holding a crypt(3) password hash (e.g. from mkpasswd -m sha-512)')
    .option('--user-data-file <file>', 'file holding user data (e.g. cloud-init)');
}

interface OsParamOpts {
  image?: string;
  hostname?: string;
  sshKeyFile?: string[];
  passwordHashFile?: string;
  userDataFile?: string;
}

async function osParams(o: OsParamOpts): Promise<OsParams> {
  const p: OsParams = {};
  if (o.image !== undefined) p.image_uuid = o.image;
  if (o.hostname !== undefined) p.hostname = o.hostname;
  if (o.sshKeyFile && o.sshKeyFile.length > 0) p.ssh_keys = await readSshKeys(o.sshKeyFile);
  if (o.passwordHashFile !== undefined) p.password_hash = await readPasswordHash(o.passwordHashFile);
  if (o.userDataFile !== undefined) p.user_data = await readInputFile(o.userDataFile, '--user-data-file');
  return p;
}

function powerBody(targetWord: string, timeoutS: number | undefined): { body: PowerBody; action: PowerAction } {
  const action = Object.prototype.hasOwnProperty.call(POWER_TARGETS, targetWord) ? POWER_TARGETS[targetWord] : undefined;
  if (action === undefined) throw new UsageError(`power target '${targetWord}': expected ${POWER_ACTIONS.slice(0, -1).join(', ')} or ${POWER_ACTIONS[POWER_ACTIONS.length - 1]}`);
  const body: PowerBody = { target: IRONIC_POWER_TARGET[action] };
  if (timeoutS !== undefined) {
    if (!isSoft(action)) throw new UsageError(`--timeout-s applies to ${SOFT_POWER_ACTIONS.join(' and ')} only`);
    body.timeout = timeoutS;
  }
  return { body, action };
}

function accepted(ctx: Ctx, what: string, res: ApiResponse<unknown>): void {
  if (ctx.json) {
    ctx.raw(res);
    return;
  }
  const body = res.body as { request_id?: unknown } | undefined;
  const rid = typeof body?.request_id === 'string' ? body.request_id : res.requestId;
  ctx.out(`${escapeControl(what)} accepted${rid ? ` (request ${escapeControl(rid)})` : ''}\n`);
}

type Handler = (ctx: Ctx, args: string[], opts: Record<string, unknown>) => Promise<number>;

function buildProgram(io: CliIo, setExit: (code: number) => void): Command {
  const program = new Command('metalctl');
  program
    .description("metald's command line: instances, their power and OS operations, liveness, and nodes")
    .exitOverride()
    .configureOutput({
      writeOut: (s) => void io.stdout.write(s),
      writeErr: (s) => void io.stderr.write(s),
    })
    .showHelpAfterError('(add --help for usage)')
    .option('--url <url>', `API base URL (env METALCTL_URL; default ${DEFAULT_URL})`)
    .option('--token-file <path>', 'file holding the API token (env METALCTL_TOKEN_FILE, or the token in METALCTL_TOKEN); never on argv')
    .option('--project <id>', 'project id for project-scoped commands (env METALCTL_PROJECT)')
    .option('--json', "print the API's JSON as is, for scripts")
    .option('--timeout <seconds>', 'deadline of each HTTP request', positiveSeconds, 30)
    .addHelpText('after', HELP_AFTER);

  /** Wraps a handler as a commander action: positional args, then the command's options merged with the globals. */
  const action =
    (fn: Handler) =>
    async (...args: unknown[]): Promise<void> => {
      const cmd = args[args.length - 1] as Command;
      const opts = cmd.optsWithGlobals<GlobalOpts & Record<string, unknown>>();
      const positional = args.slice(0, -2).filter((a): a is string => typeof a === 'string');
      setExit(await fn(new Ctx(io, opts), positional, opts));
    };

  // ------------------------------------------------------------ instance
  const instance = program.command('instance').description('tenant instances (seeds 002, 003, 004)');

  instance
    .command('list')
    .description('list instances')
    .action(
      action(async (ctx) => {
        const res = await (await ctx.client()).listInstances(ctx.project('instance list'));
        if (ctx.json) ctx.raw(res);
        else ctx.out(instanceTable(res.body?.instances ?? []));
        return EXIT_OK;
      }),
    );

  instance
    .command('show')
    .argument('<id>', 'instance id')
    .description('show one instance')
    .action(
      action(async (ctx, [id]) => {
        const res = await (await ctx.client()).getInstance(ctx.project('instance show'), id as string);
        if (ctx.json) ctx.raw(res);
        else ctx.out(instanceDetail(res.body));
        return EXIT_OK;
      }),
    );

  instance
    .command('status')
    .argument('<id>', 'instance id')
    .description('state, operation_state and error (seed 003)')
    .action(
      action(async (ctx, [id]) => {
        const res = await (await ctx.client()).getStatus(ctx.project('instance status'), id as string);
        if (ctx.json) ctx.raw(res);
        else ctx.out(statusDetail(res.body));
        return EXIT_OK;
      }),
    );

  addOsParamOptions(
    addWaitOptions(
    instance
      .command('create')
      .description('create an instance on a free node and install its OS')
      .requiredOption('--name <name>', 'instance name')
      .requiredOption('--image <uuid>', 'image uuid (catalogue)')
      .option('--type <uuid>', 'instance type uuid (catalogue)')
      .option('--network <uuid[:port_type]>', 'network to attach (repeatable)', collect)
      .option('--node <uuid>', 'the node to install on (default: the first free node of the type)')
      .option('--metadata <key=value>', 'metadata item (repeatable)', collect)
      .option('--az <zone>', 'availability zone')
      .option('--description <text>', 'description'),
    ),
  ).action(
    action(async (ctx, _args, o) => {
      const project = ctx.project('instance create');
      const body: CreateInstanceBody = { name: o.name as string, image_uuid: o.image as string };
      if (o.description !== undefined) body.description = o.description as string;
      if (o.type !== undefined) body.instance_type_uuid = o.type as string;
      if (o.az !== undefined) body.availability_zone = o.az as string;
      const networks = (o.network as string[] | undefined) ?? [];
      if (networks.length > 0) body.networks = networks.map(parseCreateNetwork);
      const metadata = (o.metadata as string[] | undefined) ?? [];
      if (metadata.length > 0) body.metadata = parseMetadata(metadata);
      const { image_uuid: _image, ...extra } = await osParams({
        hostname: o.hostname as string | undefined,
        sshKeyFile: o.sshKeyFile as string[] | undefined,
        passwordHashFile: o.passwordHashFile as string | undefined,
        userDataFile: o.userDataFile as string | undefined,
      });
      const fullExtra: CreateInstanceBody['extra'] = { ...(o.node !== undefined ? { node_id: o.node as string } : {}), ...extra };
      if (Object.keys(fullExtra).length > 0) body.extra = fullExtra;
      const client = await ctx.client();
      const res = await client.createInstance(project, body);
      if (ctx.json) ctx.raw(res);
      else ctx.out(instanceDetail(res.body));
      const w = o as unknown as WaitOpts;
      if (!w.wait) return EXIT_OK;
      return waitForInstance(ctx, client, project, res.body.uuid, { kind: 'create', op: 'install' }, w);
    }),
  );

  addWaitOptions(instance.command('delete').argument('<id>', 'instance id').description('delete an instance (wipes and releases its node)')).action(
    action(async (ctx, [id], o) => {
      const project = ctx.project('instance delete');
      const client = await ctx.client();
      const res = await client.deleteInstance(project, id as string);
      accepted(ctx, `delete of ${id}`, res);
      const w = o as unknown as WaitOpts;
      return w.wait ? waitForInstance(ctx, client, project, id as string, { kind: 'delete' }, w) : EXIT_OK;
    }),
  );

  addWaitOptions(
    instance
      .command('power')
      .argument('<id>', 'instance id')
      .argument('<target>', POWER_ACTIONS.join(' | '))
      .option('--timeout-s <seconds>', 'soft-off/soft-reboot: seconds the OS gets before the request fails', positiveInt)
      .description("change an instance's power"),
  ).action(
    action(async (ctx, [id, target], o) => {
      const { body, action: powerAction } = powerBody(target as string, o.timeoutS as number | undefined);
      const w = o as unknown as WaitOpts;
      const project = w.wait ? ctx.project('instance power --wait') : '';
      const client = await ctx.client();
      const res = await client.setInstancePower(id as string, body);
      accepted(ctx, `${body.target} of ${id}`, res);
      if (!w.wait) return EXIT_OK;
      return waitForInstance(ctx, client, project, id as string, { kind: 'power', finalPower: finalPower(powerAction) }, w);
    }),
  );

  instance
    .command('states')
    .argument('<id>', 'instance id')
    .description('power_state and target_power_state (seed 004)')
    .action(
      action(async (ctx, [id]) => {
        const res = await (await ctx.client()).getPowerStates(id as string);
        if (ctx.json) ctx.raw(res);
        else ctx.out(formatKeyValue([['power_state', res.body.power_state], ['target_power_state', res.body.target_power_state]]));
        return EXIT_OK;
      }),
    );

  /** Registers one OS operation (POST .../actions with exactly one key). */
  const osCommand = (
    name: string,
    description: string,
    build: (o: Record<string, unknown>) => Promise<ActionBody>,
    spec: WaitSpec,
    configure: (c: Command) => Command = (c) => c,
  ): void => {
    const cmd = configure(instance.command(name).argument('<id>', 'instance id').description(description));
    addWaitOptions(cmd).action(
      action(async (ctx, [id], o) => {
        const project = ctx.project(`instance ${name}`);
        const body = await build(o);
        const client = await ctx.client();
        const res = await client.postAction(project, id as string, body);
        accepted(ctx, `${name} of ${id}`, res);
        const w = o as unknown as WaitOpts;
        return w.wait ? waitForInstance(ctx, client, project, id as string, spec, w) : EXIT_OK;
      }),
    );
  };

  osCommand(
    'reinstall',
    'reinstall the OS (same image unless --image)',
    async (o) => ({ reinstall: await osParams(o as OsParamOpts) }),
    { kind: 'os', op: 'reinstall' },
    (c) => addOsParamOptions(c.option('--image <uuid>', 'image uuid (default: the current one)')),
  );
  osCommand(
    'switch-install',
    'install another image',
    async (o) => ({ 'switch-install': { ...(await osParams(o as OsParamOpts)), image_uuid: o.image as string } }),
    { kind: 'os', op: 'switch-install' },
    (c) => addOsParamOptions(c.requiredOption('--image <uuid>', 'the new image uuid')),
  );
  osCommand(
    'modify-ip',
    "change the instance's networks and addresses",
    async (o) => ({ 'modify-ip': { networks: ((o.network as string[] | undefined) ?? []).map(parseModifyNetwork) } }),
    { kind: 'os', op: 'modify-ip' },
    (c) => c.requiredOption('--network <uuid[:port_type][=fixed_ip]>', 'network (repeatable); without =fixed_ip an address comes from the pool', collect),
  );
  osCommand('uninstall', 'wipe the OS (the instance stays, stopped)', async () => ({ uninstall: {} }), { kind: 'os', op: 'uninstall' });
  osCommand(
    'change-password',
    "change the OS's root password",
    async (o) => ({ 'change-password': { password_hash: await readPasswordHash(o.passwordHashFile as string) } }),
    { kind: 'os' },
    (c) => c.requiredOption('--password-hash-file <file>', 'file holding a crypt(3) password hash'),
  );
  osCommand('retry', 're-run the failed provisioning of an instance in error', async () => ({ retry: {} }), { kind: 'os' });

  instance
    .command('actions')
    .argument('<id>', 'instance id')
    .argument('[request-id]', 'one action with its events')
    .description('actions taken on an instance (seed 001)')
    .action(
      action(async (ctx, [id, requestId]) => {
        const project = ctx.project('instance actions');
        const client = await ctx.client();
        if (requestId === undefined) {
          const res = await client.listActions(project, id as string);
          if (ctx.json) ctx.raw(res);
          else
            ctx.out(
              formatTable(
                ['REQUEST_ID', 'ACTION', 'START_TIME', 'USER', 'MESSAGE'],
                (res.body?.instanceActions ?? []).map((a) => [a.request_id, a.action, a.start_time, a.user_id, a.message]),
              ),
            );
          return EXIT_OK;
        }
        const res = await client.getAction(project, id as string, requestId);
        if (ctx.json) {
          ctx.raw(res);
          return EXIT_OK;
        }
        const a = res.body.instanceAction;
        ctx.out(
          formatKeyValue([
            ['request_id', a.request_id],
            ['action', a.action],
            ['instance_uuid', a.instance_uuid],
            ['start_time', a.start_time],
            ['user_id', a.user_id],
            ['project_id', a.project_id],
            ['message', a.message],
          ]),
        );
        const events = a.events ?? [];
        ctx.out('\n' + formatTable(['EVENT', 'START_TIME', 'FINISH_TIME', 'RESULT'], events.map((e) => [e.event, e.start_time, e.finish_time, e.result])));
        for (const e of events) {
          if (typeof e.traceback === 'string' && e.traceback.trim() !== '') {
            const lines = e.traceback.replace(/\n+$/, '').split('\n').map((l) => '  ' + escapeControl(l));
            ctx.out(`\ntraceback of ${escapeControl(e.event)}:\n${lines.join('\n')}\n`);
          }
        }
        return EXIT_OK;
      }),
    );

  instance
    .command('ping')
    .argument('<id>', 'instance id')
    .description('is the instance alive (ICMP, seed 000)')
    .action(
      action(async (ctx, [id]) => {
        const res = await (await ctx.client()).ping(ctx.project('instance ping'), id as string);
        if (ctx.json) ctx.raw(res);
        else ctx.out(formatTable(['ID', 'PROJECT', 'ALIVE'], [[res.body.server.id, res.body.server.project_id, yesNo(res.body.server.alive)]]));
        return EXIT_OK;
      }),
    );

  instance
    .command('ping-all')
    .option('--all-tenants', "every project's instances (admin)")
    .description('liveness of all instances of the project')
    .action(
      action(async (ctx, _args, o) => {
        const res = await (await ctx.client()).pingAll(ctx.project('instance ping-all'), o.allTenants === true);
        if (ctx.json) ctx.raw(res);
        else ctx.out(formatTable(['ID', 'PROJECT', 'ALIVE'], (res.body?.servers ?? []).map((s) => [s.id, s.project_id, yesNo(s.alive)])));
        return EXIT_OK;
      }),
    );

  // ------------------------------------------------------------ node (admin)
  const node = program.command('node').description('physical servers (admin)');

  node
    .command('list')
    .description('list nodes')
    .action(
      action(async (ctx) => {
        const res = await (await ctx.client()).listNodes();
        if (ctx.json) ctx.raw(res);
        else ctx.out(nodeTable(res.body?.nodes ?? []));
        return EXIT_OK;
      }),
    );

  node
    .command('show')
    .argument('<id>', 'node id')
    .description('show one node')
    .action(
      action(async (ctx, [id]) => {
        const res = await (await ctx.client()).getNode(id as string);
        if (ctx.json) ctx.raw(res);
        else ctx.out(formatKeyValue(flattenObject(res.body)));
        return EXIT_OK;
      }),
    );

  addWaitOptions(
    node
      .command('power')
      .argument('<id>', 'node id')
      .argument('<target>', POWER_ACTIONS.join(' | '))
      .option('--timeout-s <seconds>', 'soft-off/soft-reboot: seconds the OS gets before the request fails', positiveInt)
      .description("change a node's power, whether or not an instance is on it"),
  ).action(
    action(async (ctx, [id, target], o) => {
      const { body, action: powerAction } = powerBody(target as string, o.timeoutS as number | undefined);
      const client = await ctx.client();
      const w = o as unknown as WaitOpts;
      const initialError = w.wait ? JSON.stringify((await client.getNode(id as string)).body.last_error ?? null) : '';
      const res = await client.setNodePower(id as string, body);
      accepted(ctx, `${body.target} of node ${id}`, res);
      return w.wait ? waitForNode(ctx, client, id as string, finalPower(powerAction), initialError, w) : EXIT_OK;
    }),
  );

  node
    .command('maintenance')
    .argument('<id>', 'node id')
    .argument('<on|off>', 'on: no operation touches the node; off: back in service')
    .option('--reason <text>', 'why (with on)')
    .description('put a node in or out of maintenance')
    .action(
      action(async (ctx, [id, onOff], o) => {
        if (onOff !== 'on' && onOff !== 'off') throw new UsageError(`maintenance '${onOff}': expected on or off`);
        if (onOff === 'off' && o.reason !== undefined) throw new UsageError('--reason goes with on only');
        const res = await (await ctx.client()).setMaintenance(id as string, onOff === 'on', o.reason as string | undefined);
        if (ctx.json) ctx.raw(res);
        else if (res.body !== undefined && res.body !== null && typeof res.body === 'object' && 'uuid' in res.body) ctx.out(formatKeyValue(flattenObject(res.body)));
        else accepted(ctx, `maintenance ${onOff} of node ${id}`, res);
        return EXIT_OK;
      }),
    );

  return program;
}

/** Refuses secrets on argv before anything is parsed, without echoing them. */
function checkNoSecretOnArgv(argv: string[]): string | undefined {
  for (const arg of argv) {
    if (arg === '--') return undefined;
    const name = arg.split('=', 1)[0] as string;
    const hint = SECRET_OPTIONS[name];
    if (hint !== undefined) {
      return `${name} is refused: secrets never go on the command line (any user can read it with ps); ${hint}`;
    }
  }
  return undefined;
}

/**
 * Runs metalctl with `argv` (without the node and script paths) against `io`.
 * @returns the process exit code (0 ok, 1 error, 2 usage, 3 wait timed out); never throws.
 */
export async function run(argv: string[], io: CliIo): Promise<number> {
  const secret = checkNoSecretOnArgv(argv);
  if (secret !== undefined) {
    io.stderr.write(`error: ${secret}\n`);
    return EXIT_USAGE;
  }
  let code = EXIT_OK;
  const program = buildProgram(io, (c) => {
    code = c;
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    if (err instanceof UsageError) {
      io.stderr.write(`error: ${escapeControl(err.message)}\n`);
      return EXIT_USAGE;
    }
    if (err instanceof ApiError) {
      const rid = err.requestId ? `, request ${escapeControl(err.requestId)}` : '';
      io.stderr.write(`error: ${escapeControl(err.message)} (HTTP ${err.status}${rid})\n`);
      return EXIT_ERROR;
    }
    if (err instanceof ConnectionError) {
      io.stderr.write(`error: ${escapeControl(err.message)}\n`);
      return EXIT_ERROR;
    }
    io.stderr.write(`error: ${escapeControl(err instanceof Error ? err.message : String(err))}\n`);
    return EXIT_ERROR;
  }
}

// ---------------------------------------------------------------- executable

async function isMain(): Promise<boolean> {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return (await realpath(entry)) === (await realpath(fileURLToPath(import.meta.url)));
  } catch {
    return false;
  }
}

if (await isMain()) {
  // `metalctl ... | head` closes stdout early: that is not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
  process.exitCode = await run(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env });
}
