/**
 * The real ProcessRunner (drivers/ports.ts), on execa: no shell, stdin ignored unless given, an environment of PATH
 * plus what the caller passes (the daemon's own environment is not handed to a BMC tool), and a deadline.
 * The child runs in a process group of its own; at the deadline or on abort the whole group gets SIGKILL, so a hung
 * ipmitool (and anything it started) never outlives its call. The result then has `code: null`.
 */
import { execa } from 'execa';
import type { ProcessResult, ProcessRunner } from './ports.js';

export class ExecaProcessRunner implements ProcessRunner {
  /** @throws Error when the program cannot be started (not found, not executable): then nothing ran. */
  async run(
    file: string,
    args: readonly string[],
    opts: { stdin?: string; env?: Record<string, string>; timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<ProcessResult> {
    if (opts.signal?.aborted) throw new Error(`${file} not started: the call was aborted`);
    const child = execa(file, args, {
      ...(opts.stdin !== undefined ? { input: opts.stdin } : { stdin: 'ignore' as const }),
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...opts.env },
      extendEnv: false,
      detached: true,
      reject: false,
      stripFinalNewline: false,
      encoding: 'utf8',
    });
    let killed = false;
    const killGroup = () => {
      killed = true;
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = opts.timeoutMs !== undefined ? setTimeout(killGroup, opts.timeoutMs) : undefined;
    opts.signal?.addEventListener('abort', killGroup, { once: true });
    try {
      const r = await child;
      if (r.failed && r.exitCode === undefined && !killed && r.signal === undefined) {
        throw new Error(`${file} could not be started: ${r.originalMessage ?? r.shortMessage}`);
      }
      return { code: killed || r.exitCode === undefined ? null : r.exitCode, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
    } finally {
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener('abort', killGroup);
    }
  }
}
