/** The real ProcessRunner (drivers/process.ts): no shell, stdin ignored, a small environment, the group killed at the deadline. */
import { describe, expect, it } from 'vitest';
import { ExecaProcessRunner } from '../../drivers/process.js';
import { isAlive } from './ipmi/helpers.js';

const runner = new ExecaProcessRunner();

describe('ExecaProcessRunner', () => {
  it('runs without a shell, with stdin ignored and only PATH plus the given environment', async () => {
    const r = await runner.run('/bin/sh', ['-c', 'read x; echo "rc=$? [$x] $SECRET_X [$HOME] $0"', 'a;b'], { env: { SECRET_X: 'v1' } });
    expect(r).toEqual({ code: 0, stdout: 'rc=1 [] v1 [] a;b\n', stderr: '' });
    expect((await runner.run('/bin/sh', ['-c', 'exit 3'])).code).toBe(3);
    expect((await runner.run('/bin/cat', [], { stdin: 'given' })).stdout).toBe('given');
  });

  it('kills the whole process group at the deadline: code null, no grandchild left', async () => {
    const t0 = performance.now();
    const r = await runner.run('/bin/sh', ['-c', 'sleep 30 & echo $!; wait'], { timeoutMs: 300 });
    expect(r.code).toBeNull();
    expect(performance.now() - t0).toBeLessThan(2_000);
    const grandchild = Number(r.stdout.trim());
    expect(grandchild).toBeGreaterThan(0);
    const until = performance.now() + 1_000;
    while (isAlive(grandchild) && performance.now() < until) await new Promise((res) => setTimeout(res, 10));
    expect(isAlive(grandchild)).toBe(false);
  });

  it('an abort kills the group too; a program that cannot start throws', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    expect((await runner.run('/bin/sleep', ['30'], { signal: ac.signal })).code).toBeNull();
    await expect(runner.run('/nonexistent/ipmitool', [])).rejects.toThrow(/could not be started/);
  });
});
