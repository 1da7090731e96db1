/** drivers/wait.ts: the one wait loop (BMC read-back, ICMP confirmation, recovery power poll, metalctl --wait). */
import { describe, expect, it } from 'vitest';
import { waitFor, type ProbeResult, type WaitOutcome, type WaitPolicy } from '../../drivers/wait.js';
import { ManualClock, flush } from '../helpers/manual-clock.js';

/** Runs `waitFor` on a manual clock, moving time only when every promise chain waits; records when each probe ran. */
async function run(
  policy: WaitPolicy,
  answer: (attempt: number) => ProbeResult<string>,
  opts: { immediate?: boolean; signal?: AbortSignal; onProbe?: (attempt: number) => void } = {},
): Promise<{ outcome: WaitOutcome<string>; at: number[] }> {
  const clock = new ManualClock(1_000_000);
  const t0 = clock.now();
  const at: number[] = [];
  let settled = false;
  const p = waitFor<string>(
    policy,
    async (attempt) => {
      at.push(clock.now() - t0);
      opts.onProbe?.(attempt);
      return answer(attempt);
    },
    { clock, signal: opts.signal, immediate: opts.immediate },
  ).finally(() => {
    settled = true;
  });
  for (let guard = 0; !settled && guard < 1000; guard++) {
    await flush();
    if (!settled) clock.next();
  }
  return { outcome: await p, at };
}

const never = (attempt: number): ProbeResult<string> => ({ done: false, seen: `read ${attempt}` });

describe('waitFor', () => {
  it('waits each delay in order before each probe, the last delay repeating, until a probe says done', async () => {
    const { outcome, at } = await run({ delaysMs: [10, 20, 30], deadlineMs: 10_000 }, (i) => ({ done: i === 5, seen: `read ${i}` }));
    expect(at).toEqual([10, 30, 60, 90, 120, 150]);
    expect(outcome).toEqual({ status: 'done', last: 'read 5', probes: 6 });
  });

  it('immediate: the first probe at once, then the delays from the second on', async () => {
    const { outcome, at } = await run({ delaysMs: [10, 20], deadlineMs: 10_000 }, (i) => ({ done: i === 3 }), { immediate: true });
    expect(at).toEqual([0, 20, 40, 60]);
    expect(outcome.status).toBe('done');
    expect(outcome.last).toBeUndefined();
  });

  it('a zero delay does not sleep: [0, ...delays] probes at once, then waits the delays in order', async () => {
    const { at } = await run({ delaysMs: [0, 10, 25], deadlineMs: 10_000 }, (i) => ({ done: i === 3 }));
    expect(at).toEqual([0, 10, 35, 60]);
  });

  it('the last wait is cut to the deadline: a final probe at the deadline, then nothing; the last observation is kept', async () => {
    const { outcome, at } = await run({ delaysMs: [30], deadlineMs: 100 }, (i) => (i === 3 ? { done: false } : never(i)));
    expect(at).toEqual([30, 60, 90, 100]);
    expect(outcome).toEqual({ status: 'deadline', last: 'read 2', probes: 4 });
  });

  it('the first probe always happens, even with a deadline of 0', async () => {
    const { outcome, at } = await run({ delaysMs: [50], deadlineMs: 0 }, never);
    expect(at).toEqual([0]);
    expect(outcome).toEqual({ status: 'deadline', last: 'read 0', probes: 1 });
  });

  it('an abort while waiting ends the wait with the reason and the last observation; no probe follows', async () => {
    const ctl = new AbortController();
    const reason = new Error('stop');
    const { outcome, at } = await run({ delaysMs: [10], deadlineMs: 10_000 }, never, {
      signal: ctl.signal,
      onProbe: (i) => {
        if (i === 1) ctl.abort(reason);
      },
    });
    expect(at).toEqual([10, 20]);
    expect(outcome).toEqual({ status: 'aborted', last: 'read 1', probes: 2, reason });
  });

  it("a probe's error ends the wait with that error; a policy that cannot be followed is refused", async () => {
    const clock = new ManualClock();
    const boom = new Error('read failed for good');
    await expect(waitFor({ delaysMs: [0], deadlineMs: 100 }, () => Promise.reject(boom), { clock })).rejects.toBe(boom);
    await expect(waitFor({ delaysMs: [], deadlineMs: 100 }, () => Promise.resolve({ done: true }), { clock })).rejects.toThrow(/delaysMs must not be empty/);
    await expect(waitFor({ delaysMs: [-1], deadlineMs: 100 }, () => Promise.resolve({ done: true }), { clock })).rejects.toThrow(/>= 0 ms/);
    await expect(waitFor({ delaysMs: [1], deadlineMs: -5 }, () => Promise.resolve({ done: true }), { clock })).rejects.toThrow(/deadlineMs/);
  });
});
