import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { INSTANCE_ID, NODE_ID, PROJECT, instanceView, nodeView, serverView } from './fixtures.js';
import { cli } from './helpers.js';
import { startStub, type RecordedRequest, type Stub, type StubAnswer } from './stub-server.js';

interface Step {
  status: { state: string; operation_state: string | null; error: unknown } | 404;
  states?: { power_state: string | null; target_power_state: string | null };
  progress?: number;
}

/** A stub whose instance walks through `steps`, one per status poll (the last one repeats). */
function scripted(steps: Step[], accept: StubAnswer): (req: RecordedRequest) => StubAnswer | undefined {
  let i = -1;
  const cur = (): Step => steps[Math.min(i, steps.length - 1)] as Step;
  return (req) => {
    const base = `/v1/${PROJECT}/instances/${INSTANCE_ID}`;
    if (req.method === 'GET' && req.url === `${base}/status`) {
      i += 1;
      const s = cur().status;
      return s === 404 ? { status: 404, body: { error_code: 'AGENT_ERR_NOT_FOUND', error_msg: 'gone' } } : { status: 200, body: s };
    }
    if (req.method === 'GET' && req.url === `/v1/instances/${INSTANCE_ID}/states`) {
      return { status: 200, body: cur().states ?? { power_state: 'power on', target_power_state: null } };
    }
    if (req.method === 'GET' && req.url === `/v2/${PROJECT}/servers/${INSTANCE_ID}`) {
      return { status: 200, body: serverView(cur().progress ?? 0) };
    }
    if (req.method !== 'GET') return accept;
    return undefined;
  };
}

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
const accepted: StubAnswer = { status: 202, body: { request_id: 'req-3293a3f1-b44c-4609-b8d2-d81b105636b8' } };

describe('--wait', () => {
  it('create --wait polls until install-succeed, progress on stderr, exit 0', async () => {
    stub.route = scripted(
      [
        { status: { state: 'pending', operation_state: 'install-processing', error: null }, states: { power_state: 'power off', target_power_state: null }, progress: 0 },
        { status: { state: 'pending', operation_state: 'install-processing', error: null }, states: { power_state: 'power on', target_power_state: null }, progress: 40 },
        { status: { state: 'pending', operation_state: 'install-processing', error: null }, states: { power_state: 'power on', target_power_state: null }, progress: 40 },
        { status: { state: 'running', operation_state: 'install-succeed', error: null }, states: { power_state: 'power on', target_power_state: null }, progress: 100 },
      ],
      created,
    );
    const r = await cli(stub.url, ['instance', 'create', '--name', 'a', '--image', 'img', '--wait', ...P]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^status\s+pending$/m);
    const lines = r.stderr.trimEnd().split('\n');
    // one line per change (the repeated observation is not printed again), then the verdict
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^\[\s+\d+s\] cbce6087-\S+: state=pending operation_state=install-processing power=power off target=- progress=0%$/);
    expect(lines[1]).toContain('power=power on target=- progress=40%');
    expect(lines[2]).toContain('state=running operation_state=install-succeed power=power on target=- progress=100%');
    expect(lines[3]).toMatch(/: done \(state=running /);
    const polls = stub.requests.filter((q) => q.url.endsWith('/status'));
    expect(polls).toHaveLength(4);
  });

  it('create --wait that ends in install-failed prints the error and exits 1', async () => {
    stub.route = scripted(
      [
        { status: { state: 'pending', operation_state: 'install-processing', error: null } },
        {
          status: {
            state: 'error',
            operation_state: 'install-failed',
            error: { error_code: 'BMC_ERR_BOOT_FLAGS_IGNORED', error_msg: 'set_boot_device: the BMC ignored the boot override', error_type: 'install_error' },
          },
          states: { power_state: 'power off', target_power_state: null },
        },
      ],
      created,
    );
    const r = await cli(stub.url, ['instance', 'create', '--name', 'a', '--image', 'img', '--wait', ...P]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      'error: cbce6087-6156-453c-a512-60bf3d75d69f ended in error: set_boot_device: the BMC ignored the boot override (install_error, BMC_ERR_BOOT_FLAGS_IGNORED); state=error operation_state=install-failed',
    );
  });

  it('power off --wait waits for target_power_state to clear', async () => {
    stub.route = scripted(
      [
        { status: { state: 'running', operation_state: 'install-succeed', error: null }, states: { power_state: 'power on', target_power_state: 'power off' } },
        { status: { state: 'running', operation_state: 'install-succeed', error: null }, states: { power_state: 'power on', target_power_state: 'power off' } },
        { status: { state: 'stopped', operation_state: 'install-succeed', error: null }, states: { power_state: 'power off', target_power_state: null } },
      ],
      { status: 202 },
    );
    const r = await cli(stub.url, ['instance', 'power', INSTANCE_ID, 'off', '--wait', ...P]);
    expect(r.code).toBe(0);
    expect(stub.requests.filter((q) => q.url.endsWith('/status'))).toHaveLength(3);
    expect(r.stderr).toMatch(/done \(state=stopped .*power=power off target=-/);
  });

  it('power on --wait that fails (power unchanged, error set) exits 1', async () => {
    stub.route = scripted(
      [
        { status: { state: 'stopped', operation_state: null, error: null }, states: { power_state: 'power off', target_power_state: 'power on' } },
        {
          status: { state: 'stopped', operation_state: null, error: { error_code: 'BMC_ERR_UNREACHABLE', error_msg: 'BMC 10.0.1.21 does not answer', error_type: 'power_on_error' } },
          states: { power_state: 'power off', target_power_state: null },
        },
      ],
      { status: 202 },
    );
    const r = await cli(stub.url, ['instance', 'power', INSTANCE_ID, 'on', '--wait', ...P]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ended in error: BMC 10.0.1.21 does not answer (power_on_error, BMC_ERR_UNREACHABLE)');
  });

  it('reinstall --wait ignores an older operation outcome until its own shows', async () => {
    stub.route = scripted(
      [
        { status: { state: 'running', operation_state: 'install-succeed', error: null } },
        { status: { state: 'stopped', operation_state: 'reinstall-processing', error: null }, progress: 10 },
        { status: { state: 'running', operation_state: 'reinstall-succeed', error: null }, progress: 100 },
      ],
      accepted,
    );
    const r = await cli(stub.url, ['instance', 'reinstall', INSTANCE_ID, '--wait', ...P]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('accepted (request req-3293a3f1');
    expect(r.stderr).toMatch(/done \(state=running operation_state=reinstall-succeed/);
  });

  it('delete --wait ends when the instance is terminated or gone', async () => {
    stub.route = scripted(
      [{ status: { state: 'shutting-down', operation_state: null, error: null } }, { status: { state: 'terminated', operation_state: null, error: null } }],
      { status: 202 },
    );
    let r = await cli(stub.url, ['instance', 'delete', INSTANCE_ID, '--wait', ...P]);
    expect(r.code).toBe(0);
    stub.route = scripted([{ status: { state: 'shutting-down', operation_state: null, error: null } }, { status: 404 }], { status: 202 });
    r = await cli(stub.url, ['instance', 'delete', INSTANCE_ID, '--wait', ...P]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('done (deleted)');
  });

  it('transient poll failures are retried', async () => {
    const inner = scripted([{ status: { state: 'running', operation_state: 'uninstall-succeed', error: null } }], accepted);
    let n = 0;
    stub.route = (req) => {
      if (req.url.endsWith('/status') && n++ < 2) return { status: 503, body: { error_code: 'AGENT_ERR_UNAVAILABLE', error_msg: 'starting' } };
      return inner(req);
    };
    const r = await cli(stub.url, ['instance', 'uninstall', INSTANCE_ID, '--wait', ...P]);
    expect(r.code).toBe(0);
    expect(r.stderr.match(/poll failed: starting; retrying/g)).toHaveLength(1);
  });

  it('--wait-timeout gives up with exit 3', async () => {
    stub.route = scripted([{ status: { state: 'pending', operation_state: 'install-processing', error: null }, progress: 5 }], accepted);
    const r = await cli(stub.url, ['instance', 'retry', INSTANCE_ID, '--wait', '--wait-timeout', '0.2', ...P]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/error: gave up waiting for cbce6087-\S+ after 0.2 s \(state=pending operation_state=install-processing .*progress=5%\); the operation goes on in metald/);
  });

  it('--wait polls a last time at --wait-timeout: an operation that ends between the last interval and the deadline is seen', async () => {
    const t0 = Date.now();
    const inner = {
      before: scripted([{ status: { state: 'pending', operation_state: 'install-processing', error: null }, progress: 5 }], accepted),
      after: scripted([{ status: { state: 'running', operation_state: 'install-succeed', error: null } }], accepted),
    };
    // Polls at 0 and ~0.5 s see the retry running; the one at the deadline (0.7 s) sees it ended.
    stub.route = (req) => (Date.now() - t0 >= 600 ? inner.after(req) : inner.before(req));
    const r = await cli(stub.url, ['instance', 'retry', INSTANCE_ID, '--wait', '--wait-timeout', '0.7', '--project', PROJECT, '--poll-interval', '0.5']);
    expect(r.stderr).toMatch(/: done \(state=running operation_state=install-succeed /);
    expect(r.code).toBe(0);
    expect(stub.requests.filter((q) => q.url.endsWith('/status'))).toHaveLength(3);
  });

  it('power --wait needs a project', async () => {
    const r = await cli(stub.url, ['instance', 'power', INSTANCE_ID, 'on', '--wait']);
    expect(r.code).toBe(2);
    expect(stub.requests).toHaveLength(0);
  });

  it('node power --wait: until the node reports the target power', async () => {
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
});
