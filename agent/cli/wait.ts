/**
 * metalctl's `--wait`, through the one wait loop (`waitFor`, drivers/wait.ts). Exit codes: 0 success, 1 ended in
 * error, 3 gave up after --wait-timeout (the operation goes on in metald).
 *
 * An instance operation is followed by its action record, not by re-deriving "done" from status fields: the
 * accepted request's `X-Compute-Request-Id` is the request_id of the action it recorded, and
 * `GET .../os-instance-actions/{request_id}` shows its events as they start and finish and, once it is over, the
 * header `X-Metald-Action-Finished` (docs/api.md); the outcome is the action's `message` (null: success).
 */
import { ApiError, ConnectionError, type ApiResponse, type InstanceActionEvent, type MetalClient, type NodeView } from './client.js';
import { realSleep } from '../../drivers/bmc-lock.js';
import { waitFor, type ProbeResult, type WaitClock, type WaitPolicy } from '../../drivers/wait.js';
import type { WaitOpts } from './args.js';
import { EXIT_ERROR, EXIT_OK, EXIT_WAIT_TIMEOUT, type Ctx } from './context.js';
import { escapeControl, formatCell } from './format.js';
import { lastErrorText } from './views.js';

/** Set by metald on an action's answer once the action is finished (its ISO finish time); absent while in flight. */
export const ACTION_FINISHED_HEADER = 'x-metald-action-finished';

/** Actions that install an OS: their instance's `progress` (seed 002) is shown while they run. */
const INSTALLS: ReadonlySet<string> = new Set(['create', 'reinstall', 'switch-install', 'retry']);

export interface ActionWait {
  /** `power`: a 404 for the action before it was ever read means none was recorded (already there, nothing sent).
   * `delete`: a 404 with the instance itself gone means done. */
  kind: 'create' | 'delete' | 'power' | 'os';
  project: string;
  instanceId: string;
  /** The accepted request's X-Compute-Request-Id: the request_id of the action it recorded. */
  requestId: string | null;
}

/** What the last read of the action showed (quoted when the wait gives up). */
interface ActionSeen {
  action: string;
  events: InstanceActionEvent[];
  progress: number | null;
}

/** The request id naming an accepted request's action: its X-Compute-Request-Id, else the body's `request_id`. */
export function actionIdOf(res: ApiResponse<unknown>): string | null {
  if (res.requestId !== null) return res.requestId;
  const rid = (res.body as { request_id?: unknown } | undefined)?.request_id;
  return typeof rid === 'string' ? rid : null;
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

const isNotFound = (err: unknown): boolean => err instanceof ApiError && err.status === 404;

function describeSeen(rid: string, s: ActionSeen): string {
  const last = s.events[s.events.length - 1];
  const step = last === undefined ? 'no step yet' : `step ${formatCell(last.event)} ${last.finish_time === null ? 'running' : formatCell(last.result)}`;
  return `${formatCell(s.action)} ${rid}: ${step}${s.progress === null ? '' : ` progress=${s.progress}%`}`;
}

/**
 * Follows the action of an accepted instance operation until metald marks it finished. Each event is printed to
 * stderr as it starts and as it finishes (with its result), and an install's progress as it changes.
 * @returns 0 the action succeeded (message null), 1 it failed (its message is printed), 3 gave up.
 * @throws ApiError / ConnectionError for an answer that is neither transient nor an expected 404.
 */
export async function waitForAction(ctx: Ctx, client: MetalClient, spec: ActionWait, w: WaitOpts): Promise<number> {
  const { project, instanceId: id, requestId } = spec;
  const label = escapeControl(id);
  if (requestId === null) {
    ctx.err(`error: metald named no request id for the operation on ${label}: there is no action to follow\n`);
    return EXIT_ERROR;
  }
  const rid = escapeControl(requestId);
  const started = Date.now();
  const say = (text: string): void => void ctx.err(`[${String(Math.round((Date.now() - started) / 1000)).padStart(4)}s] ${label}: ${text}\n`);
  /** Per event index: 1 its start was printed, 2 its finish too. */
  const shown: number[] = [];
  let progress: number | null = null;
  let readOnce = false;
  let lastTransient = '';
  let exit: number | undefined;
  const finish = (code: number, line: string): ProbeResult<ActionSeen> => {
    ctx.err(line);
    exit = code;
    return { done: true };
  };
  const retry = (err: unknown): ProbeResult<ActionSeen> => {
    if (!isTransient(err)) throw err;
    const msg = (err as Error).message;
    if (msg !== lastTransient) ctx.err(`${label}: poll failed: ${escapeControl(msg)}; retrying\n`);
    lastTransient = msg;
    return { done: false };
  };
  /** A 404 for the action: expected for a power request that recorded none, or a deleted instance that is gone. */
  const notFound = async (err: unknown): Promise<ProbeResult<ActionSeen>> => {
    if (spec.kind === 'power' && !readOnce) {
      return finish(EXIT_OK, `${label}: already in the target state: metald recorded no action and sent nothing (request ${rid})\n`);
    }
    if (spec.kind === 'delete') {
      try {
        await client.getStatus(project, id);
      } catch (e) {
        return isNotFound(e) ? finish(EXIT_OK, `${label}: done (deleted)\n`) : retry(e);
      }
    }
    throw err;
  };

  const waited = await waitFor<ActionSeen>(
    pollPolicy(w),
    async () => {
      let res;
      try {
        res = await client.getAction(project, id, requestId);
      } catch (err) {
        return isNotFound(err) ? notFound(err) : retry(err);
      }
      lastTransient = '';
      readOnce = true;
      const a = res.body?.instanceAction ?? { action: null, events: [], message: null };
      const events = Array.isArray(a.events) ? a.events : [];
      events.forEach((e, i) => {
        if (shown[i] === undefined) {
          say(`${formatCell(e.event)} started`);
          shown[i] = 1;
        }
        if (e.finish_time !== null && shown[i] !== 2) {
          say(`${formatCell(e.event)} ${formatCell(e.result)}`);
          shown[i] = 2;
        }
      });
      const finishedAt = res.headers.get(ACTION_FINISHED_HEADER);
      if (INSTALLS.has(String(a.action)) && finishedAt === null) {
        const p = await readProgress(client, project, id);
        if (p !== null && p !== progress) say(`progress ${p}%`);
        progress = p ?? progress;
      }
      const seen: ActionSeen = { action: String(a.action), events, progress };
      if (finishedAt === null) return { done: false, seen };
      const what = `${formatCell(a.action)} ${rid}`;
      if (a.message === null) return finish(EXIT_OK, `${label}: done (${what} finished ${escapeControl(finishedAt)})\n`);
      return finish(EXIT_ERROR, `error: ${label} ended in error: ${formatCell(a.message)} (${what})\n`);
    },
    { clock: waitClock(ctx) },
  );
  if (exit !== undefined) return exit;
  const where = waited.last ? ` (${describeSeen(rid, waited.last)})` : '';
  ctx.err(`error: gave up waiting for ${label} after ${w.waitTimeout} s${where}; the operation goes on in metald\n`);
  return EXIT_WAIT_TIMEOUT;
}

/** The installer's progress from the server view (seed 002), for display only: null when it cannot be read. */
async function readProgress(client: MetalClient, project: string, id: string): Promise<number | null> {
  try {
    const p = (await client.getServer(project, id)).body?.server?.progress;
    return typeof p === 'number' ? p : null;
  } catch {
    return null;
  }
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
