/**
 * The stop's drain (agent/drain.ts) with real processes through the real process runner (drivers/process.ts): once
 * the drain has begun, an abort lets a command in flight finish (it is not killed) if it ends within the grace, and
 * cuts it at the grace's end otherwise; no new command starts after the abort; outside a stop an abort kills at once.
 */
import { describe, expect, it } from 'vitest';
import { BMC_DRAIN_MS, BmcDrain, STOP_LIMIT_MS } from '../../agent/drain.js';
import { ExecaProcessRunner } from '../../drivers/process.js';
import type { HttpRequest } from '../../drivers/ports.js';

const sh = (script: string) => ['-c', script] as const;

describe('BmcDrain', () => {
  it('a stop lets a command in flight finish within the grace: not killed, its output whole', async () => {
    const drain = new BmcDrain();
    const run = drain.runner(new ExecaProcessRunner());
    const ctl = new AbortController();
    const t0 = performance.now();
    const call = run.run('sh', sh('sleep 0.4; echo "Chassis Power Control: Up/On"'), { signal: ctl.signal, timeoutMs: 5000 });
    await new Promise((r) => setTimeout(r, 50));
    expect(drain.inFlight).toBe(1);
    drain.begin(2000);
    ctl.abort(new Error('the agent is stopping'));
    const r = await call;
    expect(r).toEqual({ code: 0, stdout: 'Chassis Power Control: Up/On\n', stderr: '' });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(390);
    expect(await drain.settled()).toEqual({ drained: 1, cut: 0 });
    // After the abort no new command leaves.
    await expect(run.run('sh', sh('echo sent'), { signal: ctl.signal })).rejects.toThrow(/not started: the call was aborted/);
  });

  it('a command still running at the end of the grace is cut (its process group killed)', async () => {
    const cuts: number[] = [];
    const drain = new BmcDrain((n) => cuts.push(n));
    const run = drain.runner(new ExecaProcessRunner());
    const ctl = new AbortController();
    const t0 = performance.now();
    const call = run.run('sh', sh('sleep 5; echo late'), { signal: ctl.signal, timeoutMs: 10_000 });
    await new Promise((r) => setTimeout(r, 50));
    drain.begin(300);
    ctl.abort(new Error('the agent is stopping'));
    const r = await call;
    const took = performance.now() - t0;
    expect(r.code).toBeNull();
    expect(r.stdout).toBe('');
    expect(took).toBeGreaterThanOrEqual(300);
    expect(took).toBeLessThan(2000);
    expect(await drain.settled()).toEqual({ drained: 0, cut: 1 });
    expect(cuts).toEqual([1]);
  });

  it('outside a stop, an abort (a preempting delete) kills the command at once', async () => {
    const drain = new BmcDrain();
    const run = drain.runner(new ExecaProcessRunner());
    const ctl = new AbortController();
    const t0 = performance.now();
    const call = run.run('sh', sh('sleep 5'), { signal: ctl.signal });
    await new Promise((r) => setTimeout(r, 50));
    ctl.abort(new Error('preempted'));
    expect((await call).code).toBeNull();
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it('holds an HTTP request the same way, and passes the request through unchanged but its signal', async () => {
    const drain = new BmcDrain();
    const seen: HttpRequest[] = [];
    const http = drain.http({
      request: async (req) => {
        seen.push(req);
        await new Promise<void>((resolve, reject) => {
          const t = setTimeout(resolve, 200);
          req.signal?.addEventListener('abort', () => {
            clearTimeout(t);
            reject(new Error('cut'));
          });
        });
        return { status: 204, headers: {}, body: '' };
      },
    });
    const ctl = new AbortController();
    const call = http.request({ method: 'POST', url: 'https://bmc.example/redfish/v1/Systems/1/Actions/ComputerSystem.Reset', body: '{}', signal: ctl.signal });
    drain.begin(1000);
    ctl.abort(new Error('stopping'));
    expect((await call).status).toBe(204);
    expect(seen[0]).toMatchObject({ method: 'POST', body: '{}' });
    expect(seen[0]!.signal).not.toBe(ctl.signal);
  });

  it('its bounds fit the unit: the drain within the stop limit, the stop limit within TimeoutStopSec=30s', () => {
    expect(BMC_DRAIN_MS).toBeLessThan(STOP_LIMIT_MS);
    expect(STOP_LIMIT_MS).toBeLessThan(30_000);
  });
});
