/**
 * metalctl's `--wait`: follows an accepted operation until it ends, with progress lines on stderr, through the one
 * wait loop (`waitFor`, drivers/wait.ts). Exit codes: 0 success, 1 ended in error, 3 gave up after --wait-timeout.
 */
import { ApiError, ConnectionError, type InstanceStatus, type MetalClient, type NodeView, type StatusError } from './client.js';
import { realSleep } from '../../drivers/bmc-lock.js';
import { waitFor, type WaitClock, type WaitPolicy } from '../../drivers/wait.js';
import type { IronicPower } from '../vocab.js';
import type { WaitOpts } from './args.js';
import { EXIT_ERROR, EXIT_OK, EXIT_WAIT_TIMEOUT, type Ctx } from './context.js';
import { escapeControl, formatCell } from './format.js';
import { lastErrorText } from './views.js';

type WaitKind = 'create' | 'delete' | 'power' | 'os';

export interface WaitSpec {
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
export async function waitForInstance(ctx: Ctx, client: MetalClient, project: string, id: string, spec: WaitSpec, w: WaitOpts): Promise<number> {
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
export async function waitForNode(ctx: Ctx, client: MetalClient, id: string, finalPower: string, initialError: string, w: WaitOpts): Promise<number> {
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
