/**
 * Runs one ipmitool command for one BMC through the ProcessRunner port: the password read at call time and handed
 * through the child's environment (`-E`), never argv; the call's deadline and signal passed to the runner, which
 * kills the process group; failures classified by ipmitool.ts's table.
 *
 * A refused session without a reason ("Unable to establish IPMI v2 / RMCP+ session": ipmitool says the same for a
 * wrong password and a dead BMC) that came back before one retransmission timeout had passed means the BMC answered:
 * the command is run once more with `-v`, which names the reason (RAKP 2 HMAC invalid, unauthorized name, cipher
 * suite ...). A slow one is a BMC that did not answer (unreachable) and is not re-run. Neither sent a command.
 */
import { BmcError } from '../errors.js';
import type { DriverClock, DriverLogger, ProcessRunner } from '../ports.js';
import type { CallOptions } from '../types.js';
import { buildArgv, classifyFailure, DRIVER, isBareSessionFailure, PASSWORD_ENV, type IpmiCommand, type IpmiSession, type IpmitoolOutput } from './ipmitool.js';

/** Deadline of a call made without one (drivers/bmc.ts always gives one). */
export const DEFAULT_CALL_TIMEOUT_MS = 30_000;

export interface IpmitoolClientDeps {
  runner: ProcessRunner;
  clock: DriverClock;
  log: DriverLogger;
  /** The ipmitool binary. */
  binary: string;
  session: IpmiSession;
  /** The BMC password, read at each call (a rotated file is picked up); null when none is configured. */
  password(): Promise<string | null>;
  nodeId: string;
  /** ipmitool's HOME (./home.ts: a one-entry vendor registry, read instead of the system's); null: none given. */
  home?: string | null;
}

export class IpmitoolClient {
  constructor(private readonly deps: IpmitoolClientDeps) {}

  /**
   * Runs `command`; resolves with its output when it exited 0 and confirmed the command (ipmitool.ts `confirms`).
   * @throws BmcError the table's code (BMC_ERR_AUTH, _UNREACHABLE, _BUSY, _UNSUPPORTED, _COMMAND_FAILED ...);
   *   BMC_ERR_TIMEOUT when it was killed at the deadline.
   */
  async run(what: string, command: IpmiCommand, opts?: CallOptions): Promise<IpmitoolOutput> {
    const { clock, session } = this.deps;
    const password = await this.readPassword(what);
    const timeoutMs = opts?.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    const started = clock.now();
    const out = await this.exec(what, buildArgv(session, command), password, timeoutMs, opts?.signal);
    let failure = classifyFailure(what, command, out);
    if (failure === null) return out;
    const elapsed = clock.now() - started;
    const left = timeoutMs - elapsed;
    if (isBareSessionFailure(out.stderr) && elapsed < session.retryTimeoutS * 1000 && left > 0 && !opts?.signal?.aborted) {
      const verbose = await this.exec(what, buildArgv({ ...session, verbose: true }, command), password, left, opts?.signal);
      const why = classifyFailure(what, command, verbose);
      if (why && !isBareSessionFailure(verbose.stderr) && why.nothingSent) failure = why;
    }
    this.deps.log.debug({ node: this.deps.nodeId, code: failure.code, what }, 'ipmitool call failed');
    throw failure;
  }

  private async exec(what: string, argv: string[], password: string, timeoutMs: number, signal: AbortSignal | undefined): Promise<IpmitoolOutput> {
    try {
      return await this.deps.runner.run(this.deps.binary, argv, {
        env: { [PASSWORD_ENV]: password, ...(this.deps.home ? { HOME: this.deps.home } : {}) },
        timeoutMs,
        ...(signal ? { signal } : {}),
      });
    } catch (e) {
      throw new BmcError('BMC_ERR_UNSUPPORTED', DRIVER, `${what}: ${this.deps.binary} could not be run (nothing was sent): ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  private async readPassword(what: string): Promise<string> {
    let password: string | null;
    try {
      password = await this.deps.password();
    } catch (e) {
      throw new BmcError('BMC_ERR_AUTH', DRIVER, `${what}: the BMC password could not be read (nothing was sent): ${e instanceof Error ? e.message : String(e)}`);
    }
    if (password === null || password === '') throw new BmcError('BMC_ERR_AUTH', DRIVER, `${what}: no BMC password is configured (nothing was sent)`);
    return password;
  }
}
