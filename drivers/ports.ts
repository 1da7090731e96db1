/**
 * What a driver may use of the outside world, handed to `create` (drivers/ never imports agent/): a clock, a logger,
 * and, for drivers that need them, a process runner (ipmitool) and an HTTP client (Redfish). agent/build-agent.ts
 * supplies them at the registry's creation; the clock and the logger are always there. `run` and `http` are optional
 * until a driver needs them (the ipmi and redfish drivers of the drivers issue): a driver that needs a port that is
 * absent throws from `create`, which makes every call of that node fail with BMC_ERR_UNSUPPORTED (nothing is sent).
 */
import { realSleep } from './bmc-lock.js';

export interface DriverClock {
  /** Wall clock, ms since the epoch. */
  now(): number;
  /** Resolves after ms; rejects with the signal's reason when aborted. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** pino-shaped: a structured object, then a message. Never pass a secret (log.ts redacts as a safety net only). */
export interface DriverLogger {
  debug(obj: Record<string, unknown>, msg: string): void;
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
  error(obj: Record<string, unknown>, msg: string): void;
}

export interface ProcessResult {
  /** null when the process was killed (timeout, abort). */
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program without a shell. Secrets go through `stdin` or an environment entry, never `args`. */
export interface ProcessRunner {
  run(
    file: string,
    args: readonly string[],
    opts?: { stdin?: string; env?: Record<string, string>; timeoutMs?: number; signal?: AbortSignal },
  ): Promise<ProcessResult>;
}

export interface HttpRequest {
  method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
  url: string;
  headers?: Record<string, string>;
  body?: string;
  /** A CA bundle file for this request's TLS; `insecure` disables verification. */
  caFile?: string;
  insecure?: boolean;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface HttpClient {
  request(req: HttpRequest): Promise<HttpResponse>;
}

export interface DriverPorts {
  clock: DriverClock;
  log: DriverLogger;
  run?: ProcessRunner | undefined;
  http?: HttpClient | undefined;
  /**
   * A directory of the agent's own (`<state_dir>/drivers`, 0700) under which a driver may keep files it writes
   * itself (the ipmi driver: ipmitool's registry, ./ipmi/home.ts); absent, a driver writes nothing.
   */
  workDir?: string | undefined;
}

const silent = (): void => undefined;

/** Ports for a registry built without any (tests, the config loader): the system clock and a silent logger. */
export const defaultDriverPorts: DriverPorts = {
  clock: { now: () => Date.now(), sleep: realSleep },
  log: { debug: silent, info: silent, warn: silent, error: silent },
};
