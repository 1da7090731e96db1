/**
 * sd_notify: the service manager's notification socket (systemd's `Type=notify`, sd_notify(3)). A narrow port,
 * `Notifier`, with three implementations chosen from the environment agent/main.ts passes in:
 *
 * - no `NOTIFY_SOCKET`: `NullNotifier`, which sends nothing (metald run by hand, by tests, by another supervisor);
 * - an absolute path (what systemd gives a service: /run/systemd/notify): one AF_UNIX datagram socket of the
 *   `unix-dgram` package (Node has none), non-blocking: a datagram the socket cannot take at once is dropped, not
 *   queued, so the event loop never waits on the manager;
 * - an abstract name (`@name`, given by some containers and supervisors): `unix-dgram` always passes the whole
 *   `sockaddr_un` as the address length, which names another abstract socket than `@name`, so each message is sent by
 *   a `systemd-notify` child process (spawned, never waited for on the loop). Its sender is that child: a manager
 *   that checks senders needs `NotifyAccess=all` (systemd's own socket is a path, so the unit needs nothing).
 *
 * Also used when `unix-dgram` cannot be loaded (its native build is missing).
 * Errors never throw out of `notify`: they go to `onError` (the daemon logs them at warn level, once per kind).
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';

/** Sends notification lines (`READY=1`, `STATUS=...`); never blocks, never throws. */
export interface Notifier {
  /** Whether a socket was given (`NOTIFY_SOCKET`): when false, `notify` does nothing. */
  readonly enabled: boolean;
  /** One datagram holding `lines` (each `KEY=value`, no newline inside). */
  notify(...lines: string[]): void;
  /** Releases the socket (after the last message): the event loop may end. */
  close(): void;
}

export type NotifyErrorHandler = (err: Error) => void;

export class NullNotifier implements Notifier {
  readonly enabled = false;
  notify(): void {}
  close(): void {}
}

/** The part of the `unix-dgram` package used here. */
interface UnixDgramSocket {
  on(event: 'error', listener: (err: Error) => void): unknown;
  send(buf: Buffer, offset: number, length: number, path: string, callback?: (err?: Error) => void): void;
  close(): void;
}
interface UnixDgramModule {
  createSocket(type: 'unix_dgram'): UnixDgramSocket;
}

/** The message of sd_notify: lines joined by newlines; a line holding a newline is refused (it would be two). */
export function formatMessage(lines: readonly string[]): string {
  for (const l of lines) {
    if (!/^[A-Z_][A-Z0-9_]*=/.test(l)) throw new Error(`sd_notify: "${l.split('\n')[0]}" is not KEY=value`);
    if (l.includes('\n')) throw new Error('sd_notify: a value cannot hold a newline');
  }
  return lines.join('\n');
}

/** One STATUS= line: newlines (and other control characters) become spaces; at most 400 characters. */
export function statusLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return `STATUS=${clean.length > 400 ? `${clean.slice(0, 399)}…` : clean}`;
}

/** Datagrams to a socket path through `unix-dgram`. */
export class DatagramNotifier implements Notifier {
  readonly enabled = true;
  #socket: UnixDgramSocket | null;

  constructor(
    mod: UnixDgramModule,
    private readonly path: string,
    private readonly onError: NotifyErrorHandler,
  ) {
    this.#socket = mod.createSocket('unix_dgram');
    this.#socket.on('error', (e) => this.onError(e));
  }

  notify(...lines: string[]): void {
    if (!this.#socket) return;
    let buf: Buffer;
    try {
      buf = Buffer.from(formatMessage(lines), 'utf8');
    } catch (e) {
      this.onError(e as Error);
      return;
    }
    // sendmsg(2) on a non-blocking socket: done, or failed at once (EAGAIN: the manager is behind; dropped).
    this.#socket.send(buf, 0, buf.length, this.path, (err) => {
      if (err) this.onError(new Error(`sd_notify to ${this.path}: ${err.message}`));
    });
  }

  close(): void {
    const s = this.#socket;
    this.#socket = null;
    try {
      s?.close();
    } catch {
      // already closed
    }
  }
}

/** Each message through a `systemd-notify` child (abstract socket names; no `unix-dgram`). */
export class ProcessNotifier implements Notifier {
  readonly enabled = true;
  #closed = false;

  constructor(
    private readonly socket: string,
    private readonly onError: NotifyErrorHandler,
    private readonly binary = 'systemd-notify',
  ) {}

  notify(...lines: string[]): void {
    if (this.#closed) return;
    try {
      formatMessage(lines);
    } catch (e) {
      this.onError(e as Error);
      return;
    }
    const child = spawn(this.binary, lines, {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', NOTIFY_SOCKET: this.socket },
    });
    let err = '';
    child.stderr?.on('data', (d: Buffer) => {
      if (err.length < 2000) err += d.toString();
    });
    child.on('error', (e) => this.onError(new Error(`${this.binary}: ${e.message}`)));
    child.on('exit', (code) => {
      if (code !== 0 && code !== null) this.onError(new Error(`${this.binary} exited with ${code}: ${err.trim()}`));
    });
  }

  close(): void {
    this.#closed = true;
  }
}

/** Loads `unix-dgram` (a native addon, outside the bundle); null when it cannot be loaded. */
function loadUnixDgram(): UnixDgramModule | null {
  try {
    return createRequire(import.meta.url)('unix-dgram') as UnixDgramModule;
  } catch {
    return null;
  }
}

/**
 * The notifier for `NOTIFY_SOCKET` in `env`.
 * @throws Error when NOTIFY_SOCKET is set but is neither an absolute path nor an `@` name.
 */
export function notifierFromEnv(
  env: Readonly<Record<string, string | undefined>>,
  onError: NotifyErrorHandler,
  load: () => UnixDgramModule | null = loadUnixDgram,
): Notifier {
  const socket = env['NOTIFY_SOCKET'];
  if (!socket) return new NullNotifier();
  if (socket.startsWith('@')) return new ProcessNotifier(socket, onError);
  if (!socket.startsWith('/')) throw new Error(`NOTIFY_SOCKET=${socket} is neither an absolute path nor an @abstract name`);
  const mod = load();
  if (!mod) {
    onError(new Error('the unix-dgram package could not be loaded: notifying through systemd-notify (needs NotifyAccess=all)'));
    return new ProcessNotifier(socket, onError);
  }
  return new DatagramNotifier(mod, socket, onError);
}

/**
 * The watchdog's ping period in ms: half of `WATCHDOG_USEC` (sd_watchdog_enabled(3)), or null when no watchdog is
 * asked of this process (unset, not a positive integer, or `WATCHDOG_PID` names another process).
 */
export function watchdogPeriodMs(env: Readonly<Record<string, string | undefined>>, pid: number): number | null {
  const usec = env['WATCHDOG_USEC'];
  if (!usec || !/^[0-9]+$/.test(usec) || Number(usec) <= 0) return null;
  const forPid = env['WATCHDOG_PID'];
  if (forPid !== undefined && forPid !== '' && Number(forPid) !== pid) return null;
  return Math.max(1, Math.floor(Number(usec) / 2000));
}

/** `MONOTONIC_USEC=` of CLOCK_MONOTONIC now (RELOADING=1 carries it: systemd 253's Type=notify-reload wants it). */
export function monotonicUsecLine(): string {
  return `MONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`;
}

/**
 * The daemon's conversation with its manager: READY once it serves, STATUS as it changes, WATCHDOG pings from the
 * event loop (a blocked loop stops them, and the manager restarts the daemon), STOPPING, RELOADING.
 */
export class ServiceNotifier {
  #watchdog: NodeJS.Timeout | null = null;

  constructor(
    private readonly n: Notifier,
    private readonly watchdogMs: number | null,
  ) {}

  get enabled(): boolean {
    return this.n.enabled;
  }

  status(text: string): void {
    this.n.notify(statusLine(text));
  }

  /** READY=1 (after start-up recovery, the API listening) and the first watchdog ping; then pings every period. */
  ready(text: string): void {
    this.n.notify('READY=1', statusLine(text));
    if (this.watchdogMs !== null && this.#watchdog === null) {
      this.n.notify('WATCHDOG=1');
      this.#watchdog = setInterval(() => this.n.notify('WATCHDOG=1'), this.watchdogMs);
    }
  }

  reloading(): void {
    this.n.notify('RELOADING=1', monotonicUsecLine());
  }

  reloaded(text: string): void {
    this.n.notify('READY=1', statusLine(text));
  }

  /** STOPPING=1: the pings end (the manager's stop timeout bounds the stop from here). */
  stopping(text: string): void {
    this.stopWatchdog();
    this.n.notify('STOPPING=1', statusLine(text));
  }

  stopWatchdog(): void {
    if (this.#watchdog) clearInterval(this.#watchdog);
    this.#watchdog = null;
  }

  /** The last message was sent: the socket is released. */
  close(): void {
    this.stopWatchdog();
    this.n.close();
  }
}
