/**
 * Helpers of the fault tests: metald (a child process, test/helpers/daemon.ts) on a config whose nodes are adopted
 * instances on REAL peers (ipmi_sim BMCs, the Redfish emulator), and the checks every fault case makes: the action
 * ends within its deadline with the typed error, the API answers during the fault, no ipmitool outlives its call.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { waitFor, type Daemon } from '../../helpers/daemon.js';
import { ADMIN_PROJECT, ADMIN_TOKEN, PROJECT, nodeId, writeConfig } from '../../helpers/harness.js';

/** The instance id of the adopted node `i` (1-based). */
export function instanceId(i: number): string {
  return `cbce6087-6156-453c-a512-${String(i).padStart(12, '0')}`;
}

/**
 * A config (harness.ts's writeConfig: tokens, catalogue, short policies) whose nodes are `bmcs`, each adopted as
 * instance `instanceId(i)` of PROJECT. `timeouts` replaces the harness's timeouts line: the short policies of these
 * tests (the real ones live in config, docs/config.md: `timeouts.power`, `timeouts.bmc_call`, `power_poll`).
 */
export function faultConfig(bmcs: string[], timeouts = '{bmc_call: 1s, power: 1500ms, deploy: 5s, soft_power: 1500ms}'): { dir: string; configPath: string } {
  const nodes = bmcs.map((bmc, k) => {
    const i = k + 1;
    return `  - id: ${nodeId(i)}
    name: node-${String(i).padStart(2, '0')}
    type: small
    macs: [{mac: "fa:16:3e:00:01:${String(i).padStart(2, '0')}", pxe: true}]
    bmc: ${bmc}
    adopt: {instance_id: ${instanceId(i)}, project_id: ${PROJECT}, user_id: f5a98f28f61e4fd19622f9016c481d48, name: vm-${i}, image_uuid: 1fd5ab9b-1769-4dd5-b0bd-e075614cc866}`;
  });
  return writeConfig({
    nodes: 0,
    editConfig: (yaml) =>
      yaml
        .replace(/^timeouts: .*$/m, `timeouts: ${timeouts}`)
        .replace(/^power_poll: .*$/m, 'power_poll: [20ms, 50ms, 100ms]')
        .replace(/\nnodes:\n[\s\S]*$/, `\nnodes:\n${nodes.join('\n')}\n`),
  });
}

export interface Status {
  state: string;
  operation_state: string | null;
  error: { error_code: string; error_msg: string; error_type: string } | null;
}

export async function statusOf(d: Daemon, i: number): Promise<Status> {
  const r = await d.call('GET', `/v1/${ADMIN_PROJECT}/instances/${instanceId(i)}/status`, ADMIN_TOKEN);
  if (r.status !== 200) throw new Error(`GET status of instance ${i}: ${r.status} ${r.text}`);
  return r.body as Status;
}

/** Waits until every adopted instance exists (adoption reads power through the real drivers first). */
export async function waitAdopted(d: Daemon, count: number): Promise<void> {
  await waitFor(
    async () => {
      for (let i = 1; i <= count; i++) {
        if ((await d.call('GET', `/v1/${ADMIN_PROJECT}/instances/${instanceId(i)}/status`, ADMIN_TOKEN)).status !== 200) return false;
      }
      return true;
    },
    15_000,
    `${count} adopted instances`,
  ).catch((e: Error) => {
    throw new Error(`${e.message}:\n${d.stdout().slice(-4000)}\n${d.stderr()}`);
  });
}

export interface ActionEvent {
  event: string;
  start_time: string;
  finish_time: string | null;
  result: string | null;
  traceback: string | null;
  [k: string]: unknown;
}

export interface FinishedAction {
  requestId: string;
  action: string;
  message: string | null;
  events: ActionEvent[];
  /** ms from the call's start to the moment the finish was seen. */
  tookMs: number;
}

/**
 * Sends `method path body` (a PUT power or an OS action), expects 202, and while its action runs checks that the API
 * keeps answering (a GET of the status and /healthz, each within `answerMs`); resolves once the action finished.
 * @throws when the request is not accepted, a GET is slow or fails, or the action is not finished by `withinMs`.
 */
export async function runAction(d: Daemon, i: number, method: string, path: string, body: unknown, withinMs: number, answerMs = 500): Promise<FinishedAction> {
  const t0 = performance.now();
  const r = await d.call(method, path, ADMIN_TOKEN, body);
  if (r.status !== 202) throw new Error(`${method} ${path}: expected 202, got ${r.status} ${r.text}`);
  const rid = r.headers.get('x-compute-request-id');
  if (!rid) throw new Error(`${method} ${path}: no X-Compute-Request-Id`);
  let served = 0;
  for (;;) {
    for (const p of [`/v1/${ADMIN_PROJECT}/instances/${instanceId(i)}/status`, '/healthz']) {
      const g0 = performance.now();
      const g = await d.call('GET', p, ADMIN_TOKEN);
      const took = performance.now() - g0;
      if (g.status !== 200 || took > answerMs) throw new Error(`the API did not serve GET ${p} during the fault: ${g.status} in ${Math.round(took)} ms`);
      served += 1;
    }
    const a = await d.call('GET', `/v2/${ADMIN_PROJECT}/servers/${instanceId(i)}/os-instance-actions/${rid}`, ADMIN_TOKEN);
    if (a.status !== 200) throw new Error(`GET action ${rid}: ${a.status} ${a.text}`);
    if (a.headers.get('x-metald-action-finished')) {
      if (served < 2) throw new Error('the action finished before the API was checked');
      const act = (a.body as { instanceAction: Omit<FinishedAction, 'tookMs' | 'requestId'> }).instanceAction;
      return { ...act, requestId: rid, tookMs: performance.now() - t0 };
    }
    if (performance.now() - t0 > withinMs) throw new Error(`action ${rid} not finished within ${withinMs} ms: ${a.text}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

/** PUT /v1/instances/{id}/states/power of instance `i`, run as runAction. */
export function powerAction(d: Daemon, i: number, target: string, withinMs: number): Promise<FinishedAction> {
  return runAction(d, i, 'PUT', `/v1/instances/${instanceId(i)}/states/power`, { target }, withinMs);
}

/** The live ipmitool processes whose parent is `pid` (the daemon), read from /proc now (zombies excluded). */
export function ipmitoolChildrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${p}/stat`, 'utf8');
    } catch {
      continue;
    }
    // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (comm === 'ipmitool' && Number(ppid) === pid && state !== 'Z') out.push(Number(p));
  }
  return out;
}
