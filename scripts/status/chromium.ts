/**
 * Headless Chromium (Debian's `chromium`, never a downloaded browser) driven through the DevTools protocol over a
 * WebSocket (`ws`): the status page's browser test and scripts/status-screenshot.ts. One browser, one page (a target
 * attached with a flat session); `close()` ends the browser and removes its profile directory.
 *
 * The DevTools endpoint is read from chromium's stderr line `DevTools listening on ws://...` (it picks a free port:
 * `--remote-debugging-port=0`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';

export const CHROMIUM = process.env['METALD_CHROMIUM'] ?? 'chromium';

interface Pending {
  resolve(v: Record<string, unknown>): void;
  reject(e: Error): void;
}

export interface CdpEvent {
  method: string;
  params: Record<string, unknown>;
  sessionId?: string;
}

export class Chromium {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Set<(e: CdpEvent) => void>();
  /** Every event of the page's session, in order (Page.frameNavigated, Runtime.exceptionThrown, ...). */
  readonly events: CdpEvent[] = [];
  private session = '';

  private constructor(
    private readonly child: ChildProcess,
    private readonly ws: WebSocket,
    private readonly profile: string,
    readonly stderr: () => string,
  ) {
    ws.on('message', (raw: Buffer) => {
      const msg = JSON.parse(raw.toString()) as { id?: number; result?: Record<string, unknown>; error?: { message: string }; method?: string; params?: Record<string, unknown>; sessionId?: string };
      if (msg.id !== undefined) {
        const p = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        if (msg.error) p?.reject(new Error(`CDP: ${msg.error.message}`));
        else p?.resolve(msg.result ?? {});
      } else if (msg.method !== undefined) {
        const e: CdpEvent = { method: msg.method, params: msg.params ?? {}, ...(msg.sessionId ? { sessionId: msg.sessionId } : {}) };
        if (e.sessionId === this.session) this.events.push(e);
        for (const l of [...this.listeners]) l(e);
      }
    });
    ws.on('close', () => {
      for (const p of this.pending.values()) p.reject(new Error('the DevTools connection closed'));
      this.pending.clear();
    });
  }

  /** Starts chromium headless with a fresh profile and opens one page of width x height CSS pixels. */
  static async launch(opts: { width?: number; height?: number; timeoutMs?: number } = {}): Promise<Chromium> {
    const width = opts.width ?? 1280;
    const height = opts.height ?? 800;
    const profile = mkdtempSync(join(tmpdir(), 'metald-chromium-'));
    const child = spawn(
      CHROMIUM,
      [
        '--headless=new', '--no-sandbox', '--remote-debugging-port=0', `--user-data-dir=${profile}`, '--no-first-run',
        '--no-default-browser-check', '--disable-gpu', '--disable-dev-shm-usage', '--disable-extensions',
        '--disable-background-networking', '--disable-component-update', '--disable-sync', '--mute-audio',
        '--hide-scrollbars', `--window-size=${width},${height}`, 'about:blank',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], detached: true },
    );
    let err = '';
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`chromium did not open its DevTools port in ${opts.timeoutMs ?? 20_000} ms:\n${err}`)), opts.timeoutMs ?? 20_000);
        child.stderr!.setEncoding('utf8');
        child.stderr!.on('data', (d: string) => {
          err += d;
          const m = /DevTools listening on (ws:\/\/\S+)/.exec(err);
          if (m) {
            clearTimeout(timer);
            resolve(m[1]!);
          }
        });
        child.on('error', (e) => {
          clearTimeout(timer);
          reject(new Error(`${CHROMIUM} could not start (${e.message}); install it: apt-get install chromium`));
        });
        child.on('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`chromium exited with ${code} before DevTools listened:\n${err}`));
        });
      });
      const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      const c = new Chromium(child, ws, profile, () => err);
      const { targetId } = (await c.send('Target.createTarget', { url: 'about:blank' })) as { targetId: string };
      const { sessionId } = (await c.send('Target.attachToTarget', { targetId, flatten: true })) as { sessionId: string };
      c.session = sessionId;
      await c.page('Page.enable');
      await c.page('Runtime.enable');
      await c.page('Emulation.setDeviceMetricsOverride', { width, height, deviceScaleFactor: 1, mobile: false });
      return c;
    } catch (e) {
      killTree(child);
      rmSync(profile, { recursive: true, force: true });
      throw e;
    }
  }

  /** A browser-level command. */
  send(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    });
  }

  /** A command to the page. */
  page(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    return this.send(method, params, this.session);
  }

  /** The next page event named `method` (after now) matching `match`. */
  waitEvent(method: string, timeoutMs = 10_000, match: (p: Record<string, unknown>) => boolean = () => true): Promise<CdpEvent> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.listeners.delete(on);
        reject(new Error(`no ${method} in ${timeoutMs} ms`));
      }, timeoutMs);
      const on = (e: CdpEvent) => {
        if (e.sessionId !== this.session || e.method !== method || !match(e.params)) return;
        clearTimeout(timer);
        this.listeners.delete(on);
        resolve(e);
      };
      this.listeners.add(on);
    });
  }

  /** Loads url and waits for its load event. */
  async navigate(url: string): Promise<void> {
    const loaded = this.waitEvent('Page.loadEventFired', 20_000);
    const r = (await this.page('Page.navigate', { url })) as { errorText?: string };
    if (r.errorText) throw new Error(`navigation to ${url} failed: ${r.errorText}`);
    await loaded;
  }

  /** Evaluates a JS expression in the page (promises awaited) and returns its value. @throws Error with the page's exception. */
  async evaluate<T>(expression: string): Promise<T> {
    const r = (await this.page('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true })) as {
      result: { value?: T };
      exceptionDetails?: { text: string; exception?: { description?: string } };
    };
    if (r.exceptionDetails) throw new Error(`page: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
    return r.result.value as T;
  }

  /** Polls `expression` until it is truthy; returns its last value. */
  async waitFor<T>(expression: string, timeoutMs: number, what: string): Promise<T> {
    const end = Date.now() + timeoutMs;
    let last: T | undefined;
    for (;;) {
      last = await this.evaluate<T>(expression);
      if (last) return last;
      if (Date.now() > end) throw new Error(`timed out waiting in the page for ${what} (last: ${JSON.stringify(last)})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Types text into the focused element, as a keyboard would (Input.insertText). */
  async type(text: string): Promise<void> {
    await this.page('Input.insertText', { text });
  }

  /** A PNG of the whole page. */
  async screenshot(): Promise<Buffer> {
    const { data } = (await this.page('Page.captureScreenshot', { format: 'png', captureBeyondViewport: true })) as { data: string };
    return Buffer.from(data, 'base64');
  }

  /** Ends the browser (and every process it started) and removes its profile directory. */
  async close(): Promise<void> {
    const exited = new Promise<void>((r) => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) r();
      else this.child.once('exit', () => r());
    });
    try {
      await Promise.race([this.send('Browser.close'), new Promise((r) => setTimeout(r, 2000))]);
    } catch {
      // the connection went with the browser
    }
    this.ws.terminate();
    await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
    killTree(this.child);
    await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
    rmSync(this.profile, { recursive: true, force: true });
  }
}

/** SIGKILL to the process group chromium leads (started detached: its own group; its renderer and GPU helpers). */
function killTree(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // the group is gone already
  }
}
