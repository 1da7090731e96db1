import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ACTION_ID, INSTANCE_ID, NODE_ID, PROJECT, instanceView, nodeView, serverView } from './fixtures.js';
import { cli } from './helpers.js';
import { actionAnswer, startStub, type ActionSnapshot, type RecordedRequest, type Stub, type StubAnswer, type StubEvent } from './stub-server.js';

/** One poll's view: the action as metald shows it (or a 404), and the install's progress for display. */
interface Step {
  action: ActionSnapshot | 404;
  progress?: number;
}

interface Script {
  /** The action's name (seed 001). */
  name: string;
  steps: Step[];
  /** What the mutating request answers; its X-Compute-Request-Id is set to ACTION_ID (the action it recorded). */
  accept: StubAnswer;
  /** GET .../status: a status that says the opposite of the action, to prove it is not what decides; 404 = gone. */
  status?: Record<string, unknown> | 404;
}

const ACTION_URL = `/v2/${PROJECT}/servers/${INSTANCE_ID}/os-instance-actions/${ACTION_ID}`;

/** A stub whose action walks through `steps`, one per action read (the last one repeats). */
function scripted(s: Script): (req: RecordedRequest) => StubAnswer | undefined {
  let i = -1;
  const cur = (): Step => s.steps[Math.min(Math.max(i, 0), s.steps.length - 1)] as Step;
  const meta = { action: s.name, request_id: ACTION_ID, instance_uuid: INSTANCE_ID, project_id: PROJECT };
  return (req) => {
    if (req.method !== 'GET') return { ...s.accept, headers: { 'X-Compute-Request-Id': ACTION_ID, ...s.accept.headers } };
    if (req.url === ACTION_URL) {
      i += 1;
      const a = cur().action;
      return a === 404 ? { status: 404, body: { itemNotFound: { message: `Action ${ACTION_ID} could not be found.`, code: 404 } } } : actionAnswer(meta, a);
    }
    if (req.url === `/v2/${PROJECT}/servers/${INSTANCE_ID}`) return { status: 200, body: serverView(cur().progress ?? 0) };
    if (req.url === `/v1/${PROJECT}/instances/${INSTANCE_ID}/status`) {
      const st = s.status ?? { state: 'error', operation_state: 'install-failed', error: null };
      return st === 404 ? { status: 404, body: { error_code: 'AGENT_ERR_NOT_FOUND', error_msg: 'gone' } } : { status: 200, body: st };
    }
    return undefined;
  };
}

const T = (s: number): string => `2026-06-08T10:00:${String(s).padStart(2, '0')}.000000`;
const started = (event: string, at: number): StubEvent => ({ event, start_time: T(at), finish_time: null, result: null });
const ok = (event: string, at: number, end: number): StubEvent => ({ event, start_time: T(at), finish_time: T(end), result: 'Success' });
const failed = (event: string, at: number, end: number): StubEvent => ({ event, start_time: T(at), finish_time: T(end), result: 'Error' });
const FINISHED = '2026-06-08T10:05:12.000Z';

let stub: Stub;
beforeAll(async () => {
  stub = await startStub(() => undefined);
});
afterAll(async () => {
  await stub.close();
});
beforeEach(() => {
  stub.requests.length = 0;
});

const P = ['--project', PROJECT, '--poll-interval', '0.01'];
const created: StubAnswer = { status: 201, body: instanceView({ status: 'pending', power_state: null }) };
const accepted: StubAnswer = { status: 202, body: { request_id: ACTION_ID } };
const actionReads = (): RecordedRequest[] => stub.requests.filter((q) => q.url.includes('/os-instance-actions/'));

describe('--wait follows the action record', () => {
  it('create --wait prints each step as it starts and finishes, the progress, and ends on the finish header, exit 0', async () => {
    stub.route = scripted({
      name: 'create',
      accept: created,
      // The status says "failed" throughout: only the action decides.
      steps: [
        { action: { events: [started('set_boot_device', 1)] }, progress: 0 },
        { action: { events: [ok('set_boot_device', 1, 2), started('install_os', 2)] }, progress: 40 },
        // Every event finished but no finish header yet: still in flight.
        { action: { events: [ok('set_boot_device', 1, 2), ok('install_os', 2, 9)] }, progress: 90 },
        { action: { events: [ok('set_boot_device', 1, 2), ok('install_os', 2, 9), ok('confirm_alive', 9, 12)], finished: FINISHED, message: null }, progress: 100 },
      ],
    });
    const r = await cli(stub.url, ['instance', 'create', '--name', 'a', '--image', 'img', '--wait', ...P]);
    expect(r.stderr).toMatch(new RegExp(`: done \\(create ${ACTION_ID} finished ${FINISHED}\\)$`, 'm'));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^status\s+pending$/m);
    const lines = r.stderr.trimEnd().split('\n').map((l) => l.replace(/^\[\s+\d+s\] /, ''));
    expect(lines).toEqual([
      `${INSTANCE_ID}: set_boot_device started`,
      `${INSTANCE_ID}: progress 0%`,
      `${INSTANCE_ID}: set_boot_device Success`,
      `${INSTANCE_ID}: install_os started`,
      `${INSTANCE_ID}: progress 40%`,
      `${INSTANCE_ID}: install_os Success`,
      `${INSTANCE_ID}: progress 90%`,
      `${INSTANCE_ID}: confirm_alive started`,
      `${INSTANCE_ID}: confirm_alive Success`,
      `${INSTANCE_ID}: done (create ${ACTION_ID} finished ${FINISHED})`,
    ]);
    expect(r.stderr).toMatch(/^\[\s+\d+s\] cbce6087-\S+: set_boot_device started$/m);
    expect(actionReads()).toHaveLength(4);
    expect(stub.requests.some((q) => q.url.endsWith('/status') || q.url.endsWith('/states'))).toBe(false);
  });

  it('create --wait whose action ends with a message prints it and exits 1, whatever the status says', async () => {
    stub.route = scripted({
      name: 'create',
      accept: created,
      status: { state: 'running', operation_state: 'install-succeed', error: null },
      steps: [
        { action: { events: [started('set_boot_device', 1)] } },
        {
          action: {
            events: [failed('set_boot_device', 1, 3)],
            finished: FINISHED,
            message: "step 'set_boot_device' failed: the BMC ignored the boot override",
          },
        },
      ],
    });
    const r = await cli(stub.url, ['instance', 'create', '--name', 'a', '--image', 'img', '--wait', ...P]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${INSTANCE_ID}: set_boot_device Error`);
    expect(r.stderr).toContain(
      `error: ${INSTANCE_ID} ended in error: step 'set_boot_device' failed: the BMC ignored the boot override (create ${ACTION_ID})`,
    );
  });

  it('power off --wait follows the action named by the 202 X-Compute-Request-Id until it is finished', async () => {
    stub.route = scripted({
      name: 'stop',
      accept: { status: 202 },
      steps: [
        { action: { events: [started('power_off', 1)] } },
        { action: { events: [started('power_off', 1)] } },
        { action: { events: [ok('power_off', 1, 4)], finished: FINISHED, message: null } },
      ],
    });
    const r = await cli(stub.url, ['instance', 'power', INSTANCE_ID, 'off', '--wait', ...P]);
    expect(r.code).toBe(0);
    expect(actionReads()).toHaveLength(3);
    expect(r.stdout).toContain(`accepted (request ${ACTION_ID})`);
    expect(r.stderr).toContain(`${INSTANCE_ID}: done (stop ${ACTION_ID} finished ${FINISHED})`);
    // A power action shows no progress: the server view is not read.
    expect(stub.requests.some((q) => q.url === `/v2/${PROJECT}/servers/${INSTANCE_ID}`)).toBe(false);
  });

  it('power on --wait whose action fails exits 1 with its message', async () => {
    stub.route = scripted({
      name: 'start',
      accept: { status: 202 },
      steps: [
        { action: { events: [started('power_on', 1)] } },
        { action: { events: [failed('power_on', 1, 9)], finished: FINISHED, message: 'BMC 10.0.1.21 does not answer' } },
      ],
    });
    const r = await cli(stub.url, ['instance', 'power', INSTANCE_ID, 'on', '--wait', ...P]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`ended in error: BMC 10.0.1.21 does not answer (start ${ACTION_ID})`);
  });

  it('power --wait: a 404 for the action right after the 202 means none was recorded (already there): exit 0', async () => {
    stub.route = scripted({ name: 'stop', accept: { status: 202 }, steps: [{ action: 404 }] });
    const r = await cli(stub.url, ['instance', 'power', INSTANCE_ID, 'off', '--wait', ...P]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`${INSTANCE_ID}: already in the target state: metald recorded no action and sent nothing (request ${ACTION_ID})`);
    expect(actionReads()).toHaveLength(1);
  });

  it('a 404 for the action after it was read is an error, not "already there"', async () => {
    stub.route = scripted({ name: 'stop', accept: { status: 202 }, steps: [{ action: { events: [started('power_off', 1)] } }, { action: 404 }] });
    const r = await cli(stub.url, ['instance', 'power', INSTANCE_ID, 'off', '--wait', ...P]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: Action req-\S+ could not be found\. \(HTTP 404/m);
  });

  it('reinstall --wait follows its own action: another, older finished action is not taken for it', async () => {
    const older = 'req-00000000-0000-4000-8000-0000000000aa';
    const inner = scripted({
      name: 'reinstall',
      accept: accepted,
      steps: [
        { action: { events: [started('power_off', 1)] }, progress: 0 },
        { action: { events: [ok('power_off', 1, 2), ok('install_os', 2, 8)], finished: FINISHED, message: null }, progress: 100 },
      ],
    });
    stub.route = (req) =>
      req.url.endsWith(older)
        ? actionAnswer({ action: 'create', request_id: older, instance_uuid: INSTANCE_ID, project_id: PROJECT }, { events: [], finished: FINISHED, message: 'old failure' })
        : inner(req);
    const r = await cli(stub.url, ['instance', 'reinstall', INSTANCE_ID, '--wait', ...P]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('accepted (request req-3293a3f1');
    expect(r.stderr).toContain(`done (reinstall ${ACTION_ID} finished`);
    expect(actionReads().map((q) => q.url)).toEqual([ACTION_URL, ACTION_URL]);
  });

  it('delete --wait ends when its action is finished, or when the instance is gone', async () => {
    stub.route = scripted({
      name: 'delete',
      accept: { status: 202 },
      steps: [{ action: { events: [started('power_off', 1)] } }, { action: { events: [ok('power_off', 1, 2), ok('wipe', 2, 5)], finished: FINISHED, message: null } }],
    });
    let r = await cli(stub.url, ['instance', 'delete', INSTANCE_ID, '--wait', ...P]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`done (delete ${ACTION_ID} finished`);

    stub.route = scripted({ name: 'delete', accept: { status: 202 }, status: 404, steps: [{ action: { events: [started('power_off', 1)] } }, { action: 404 }] });
    r = await cli(stub.url, ['instance', 'delete', INSTANCE_ID, '--wait', ...P]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('done (deleted)');

    // The action 404s but the instance is still there: not "deleted".
    stub.route = scripted({ name: 'delete', accept: { status: 202 }, status: { state: 'shutting-down', operation_state: null, error: null }, steps: [{ action: 404 }] });
    r = await cli(stub.url, ['instance', 'delete', INSTANCE_ID, '--wait', ...P]);
    expect(r.code).toBe(1);
    expect(r.stderr).not.toContain('done (deleted)');
  });

  it('delete --wait whose action fails exits 1', async () => {
    stub.route = scripted({
      name: 'delete',
      accept: { status: 202 },
      steps: [{ action: { events: [failed('wipe', 1, 3)], finished: FINISHED, message: "step 'wipe' failed" } }],
    });
    const r = await cli(stub.url, ['instance', 'delete', INSTANCE_ID, '--wait', ...P]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`ended in error: step 'wipe' failed (delete ${ACTION_ID})`);
  });

  it('transient poll failures are retried', async () => {
    const inner = scripted({ name: 'uninstall', accept: accepted, steps: [{ action: { events: [ok('wipe', 1, 2)], finished: FINISHED, message: null } }] });
    let n = 0;
    stub.route = (req) => {
      if (req.url === ACTION_URL && n++ < 2) return { status: 503, body: { error_code: 'AGENT_ERR_UNAVAILABLE', error_msg: 'starting' } };
      return inner(req);
    };
    const r = await cli(stub.url, ['instance', 'uninstall', INSTANCE_ID, '--wait', ...P]);
    expect(r.code).toBe(0);
    expect(r.stderr.match(/poll failed: starting; retrying/g)).toHaveLength(1);
    expect(actionReads()).toHaveLength(3);
  });

  it('--wait-timeout gives up with exit 3', async () => {
    stub.route = scripted({ name: 'retry', accept: accepted, steps: [{ action: { events: [ok('power_off', 1, 2), started('install_os', 2)] }, progress: 5 }] });
    const r = await cli(stub.url, ['instance', 'retry', INSTANCE_ID, '--wait', '--wait-timeout', '0.2', ...P]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(
      /error: gave up waiting for cbce6087-\S+ after 0.2 s \(retry req-3293a3f1-\S+: step install_os running progress=5%\); the operation goes on in metald/,
    );
  });

  it('--wait polls a last time at --wait-timeout: an action that ends between the last interval and the deadline is seen', async () => {
    const t0 = Date.now();
    const inner = {
      before: scripted({ name: 'retry', accept: accepted, steps: [{ action: { events: [started('install_os', 1)] }, progress: 5 }] }),
      after: scripted({ name: 'retry', accept: accepted, steps: [{ action: { events: [ok('install_os', 1, 9)], finished: FINISHED, message: null } }] }),
    };
    // Polls at 0 and ~0.5 s see the retry running; the one at the deadline (0.7 s) sees it ended.
    stub.route = (req) => (Date.now() - t0 >= 600 ? inner.after(req) : inner.before(req));
    const r = await cli(stub.url, ['instance', 'retry', INSTANCE_ID, '--wait', '--wait-timeout', '0.7', '--project', PROJECT, '--poll-interval', '0.5']);
    expect(r.stderr).toMatch(/: done \(retry req-3293a3f1-\S+ finished /);
    expect(r.code).toBe(0);
    expect(actionReads()).toHaveLength(3);
  });

  it('power --wait needs a project', async () => {
    const r = await cli(stub.url, ['instance', 'power', INSTANCE_ID, 'on', '--wait']);
    expect(r.code).toBe(2);
    expect(stub.requests).toHaveLength(0);
  });

  it('node power --wait on a node without an instance: until the node reports the target power', async () => {
    let polls = 0;
    stub.route = (req) => {
      if (req.method === 'PUT') return { status: 202 };
      polls += 1;
      const free = { instance_uuid: null };
      if (polls <= 2) return { status: 200, body: nodeView({ ...free, power_state: 'power on', target_power_state: polls === 1 ? null : 'power off' }) };
      return { status: 200, body: nodeView({ ...free, power_state: 'power off', target_power_state: null }) };
    };
    const r = await cli(stub.url, ['node', 'power', NODE_ID, 'off', '--wait', '--poll-interval', '0.01', '--project', PROJECT]);
    expect(r.code).toBe(0);
    expect(stub.requests.map((q) => q.method)).toEqual(['GET', 'PUT', 'GET', 'GET']);
    expect(r.stderr).toContain(`node ${NODE_ID}: done (power=power off target=- last_error=-)`);
  });

  it('node power --wait without a project polls the node, as before', async () => {
    let polls = 0;
    stub.route = (req) => {
      if (req.method === 'PUT') return { status: 202 };
      polls += 1;
      if (polls <= 2) return { status: 200, body: nodeView({ power_state: 'power on', target_power_state: polls === 1 ? null : 'power off' }) };
      return { status: 200, body: nodeView({ power_state: 'power off', target_power_state: null }) };
    };
    const r = await cli(stub.url, ['node', 'power', NODE_ID, 'off', '--wait', '--poll-interval', '0.01']);
    expect(r.code).toBe(0);
    expect(stub.requests.map((q) => q.method)).toEqual(['GET', 'PUT', 'GET', 'GET']);
    expect(r.stderr).toContain(`node ${NODE_ID}: done (power=power off target=- last_error=-)`);
  });

  it("node power --wait on a node with an instance (and a project) follows the instance's action", async () => {
    const inner = scripted({ name: 'stop', accept: { status: 202 }, steps: [{ action: { events: [ok('power_off', 1, 3)], finished: FINISHED, message: null } }] });
    stub.route = (req) => (req.url === `/v1/nodes/${NODE_ID}` && req.method === 'GET' ? { status: 200, body: nodeView() } : inner(req));
    const r = await cli(stub.url, ['node', 'power', NODE_ID, 'off', '--wait', ...P]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`${INSTANCE_ID}: done (stop ${ACTION_ID} finished`);
    expect(stub.requests.map((q) => `${q.method} ${q.url}`)).toEqual([`GET /v1/nodes/${NODE_ID}`, `PUT /v1/nodes/${NODE_ID}/states/power`, `GET ${ACTION_URL}`]);
  });
});
