/**
 * Type=notify against a notification socket the test itself created (PID 1 here is not systemd): the real daemon
 * (dist/agent/main.js) says READY=1 only once its API answers and it is ready, pings WATCHDOG=1 every
 * WATCHDOG_USEC/2, says RELOADING=1 ... READY=1 around SIGHUP, STOPPING=1 at SIGTERM, then exits. Also through an
 * abstract `@name` socket (sent by systemd-notify), and the environment rules of agent/sd-notify.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NullNotifier, ProcessNotifier, formatMessage, notifierFromEnv, statusLine, watchdogPeriodMs } from '../../agent/sd-notify.js';
import { MAIN, requireBuild } from '../helpers/daemon.js';
import { writeConfig } from '../helpers/harness.js';
import { freeTcpPort, missingPeers } from '../helpers/peers.js';
import { bindNotifyAbstract, bindNotifyPath, type NotifySocket } from './notify-socket.js';

const WATCHDOG_USEC = 400_000;

let cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.reverse()) f();
  cleanup = [];
});

interface Run {
  child: ChildProcess;
  url: string;
  exited: Promise<number | null>;
  stdout(): string;
}

async function startWithNotify(sock: NotifySocket, env: Record<string, string> = {}): Promise<Run> {
  requireBuild();
  const port = await freeTcpPort();
  const cfg = writeConfig({ listenPort: port });
  cleanup.push(() => rmSync(cfg.dir, { recursive: true, force: true }));
  const child = spawn(process.execPath, [MAIN, '--config', cfg.configPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NOTIFY_SOCKET: sock.address, WATCHDOG_USEC: String(WATCHDOG_USEC), ...env },
  });
  cleanup.push(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, url: `http://127.0.0.1:${port}`, exited, stdout: () => out };
}

describe('sd_notify: the daemon and a notification socket of the test', () => {
  it('READY=1 once the API answers ready, WATCHDOG=1 every WATCHDOG_USEC/2, RELOADING=1 on SIGHUP, STOPPING=1 on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'metald-notify-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const sock = bindNotifyPath(join(dir, 'notify.sock'));
    cleanup.push(() => sock.close());
    const run = await startWithNotify(sock);
    // At the moment READY=1 arrives, the API must already answer and say it is ready.
    let readyzAtReady: Promise<number> | null = null;
    sock.onMessage((d) => {
      if (d.lines.includes('READY=1') && !readyzAtReady) readyzAtReady = fetch(`${run.url}/readyz`).then((r) => r.status, () => -1);
    });
    const ready = await sock.next('READY=1', 20_000);
    expect(await readyzAtReady!, run.stdout()).toBe(200);
    expect(ready.lines.find((l) => l.startsWith('STATUS='))).toMatch(/^STATUS=ready: 3 nodes, API on http:\/\/127\.0\.0\.1:\d+$/);
    // A STATUS line said what the daemon was doing before it was ready.
    const before = sock.messages.slice(0, sock.messages.indexOf(ready));
    expect(before.some((m) => m.lines.some((l) => l.startsWith('STATUS=starting')))).toBe(true);

    // Watchdog pings: half of WATCHDOG_USEC apart (200 ms), from the event loop.
    const pingsFrom = sock.messages.length;
    await new Promise((r) => setTimeout(r, 1500));
    const pings = sock.messages.slice(pingsFrom).filter((m) => m.lines.includes('WATCHDOG=1')).map((m) => m.at);
    expect(pings.length, JSON.stringify(sock.messages.map((m) => m.lines))).toBeGreaterThanOrEqual(5);
    expect(pings.length).toBeLessThanOrEqual(9);
    const gaps = pings.slice(1).map((t, i) => t - pings[i]!).sort((a, b) => a - b);
    const median = gaps[Math.floor(gaps.length / 2)]!;
    expect(median).toBeGreaterThan(150);
    expect(median).toBeLessThan(260);

    // SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1 again.
    const hupFrom = sock.messages.length;
    run.child.kill('SIGHUP');
    const reloading = await sock.next('RELOADING=1', 5000, hupFrom);
    expect(reloading.lines.some((l) => /^MONOTONIC_USEC=\d+$/.test(l))).toBe(true);
    const reloaded = await sock.next('READY=1', 5000, sock.messages.indexOf(reloading) + 1);
    expect(reloaded.lines.find((l) => l.startsWith('STATUS='))).toMatch(/last reload: 0 applied, 0 need a restart, 0 errors/);

    // SIGTERM: STOPPING=1 first, no ping after it, then the exit (0).
    const termFrom = sock.messages.length;
    run.child.kill('SIGTERM');
    const stopping = await sock.next('STOPPING=1', 5000, termFrom);
    expect(stopping.lines.find((l) => l.startsWith('STATUS='))).toMatch(/^STATUS=stopping \(SIGTERM\)/);
    expect(await run.exited, run.stdout()).toBe(0);
    const after = sock.messages.slice(sock.messages.indexOf(stopping) + 1);
    expect(after.filter((m) => m.lines.includes('WATCHDOG=1'))).toEqual([]);
    expect(run.stdout()).toContain('"msg":"stopped"');
  }, 40_000);

  it('sends to an abstract @name socket too (through systemd-notify)', async () => {
    const why = missingPeers(null, ['python3', 'systemd-notify'], 'python3 systemd');
    if (why) throw new Error(`cannot test the abstract notification socket: ${why}`);
    const sock = await bindNotifyAbstract(`metald-test-${process.pid}-${Date.now()}`);
    cleanup.push(() => sock.close());
    const run = await startWithNotify(sock);
    const ready = await sock.next('READY=1', 20_000);
    expect(ready.lines.some((l) => l.startsWith('STATUS=ready'))).toBe(true);
    await sock.next('WATCHDOG=1', 3000);
    run.child.kill('SIGTERM');
    await sock.next('STOPPING=1', 5000);
    expect(await run.exited, run.stdout()).toBe(0);
  }, 40_000);
});

describe('agent/sd-notify.ts: the environment', () => {
  it('does nothing without NOTIFY_SOCKET, refuses a relative one', () => {
    const errors: Error[] = [];
    expect(notifierFromEnv({}, (e) => errors.push(e))).toBeInstanceOf(NullNotifier);
    expect(() => notifierFromEnv({ NOTIFY_SOCKET: 'run/notify' }, (e) => errors.push(e))).toThrow(/neither an absolute path nor an @abstract name/);
    expect(notifierFromEnv({ NOTIFY_SOCKET: '@x' }, (e) => errors.push(e))).toBeInstanceOf(ProcessNotifier);
    // Without the native package, a path socket is served by systemd-notify (and the operator is told).
    expect(notifierFromEnv({ NOTIFY_SOCKET: '/run/x' }, (e) => errors.push(e), () => null)).toBeInstanceOf(ProcessNotifier);
    expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(/unix-dgram package could not be loaded/)]);
  });

  it('pings at half of WATCHDOG_USEC, only for the process WATCHDOG_PID names', () => {
    expect(watchdogPeriodMs({}, 10)).toBeNull();
    expect(watchdogPeriodMs({ WATCHDOG_USEC: '30000000' }, 10)).toBe(15_000);
    expect(watchdogPeriodMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '10' }, 10)).toBe(15_000);
    expect(watchdogPeriodMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '11' }, 10)).toBeNull();
    expect(watchdogPeriodMs({ WATCHDOG_USEC: 'soon' }, 10)).toBeNull();
    expect(watchdogPeriodMs({ WATCHDOG_USEC: '0' }, 10)).toBeNull();
  });

  it('keeps each message to KEY=value lines', () => {
    expect(formatMessage(['READY=1', 'STATUS=ok'])).toBe('READY=1\nSTATUS=ok');
    expect(() => formatMessage(['ready'])).toThrow(/not KEY=value/);
    expect(statusLine('two\nlines')).toBe('STATUS=two lines');
    expect(statusLine('x'.repeat(1000))).toHaveLength('STATUS='.length + 400);
  });
});
