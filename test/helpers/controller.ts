/**
 * The reference controller (scripts/controller/, docs/controller.md) as a child process (dist/, built by
 * `npm run build`): its JSON lines collected, waited for, its stdin written, killed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** From the sources (test/helpers/) or from the build (dist/test/helpers/, when scripts/demo.ts uses this). */
export const CONTROLLER_MAIN = [resolve(import.meta.dirname, '../../dist/scripts/controller/main.js'), resolve(import.meta.dirname, '../../scripts/controller/main.js')].find((p) => existsSync(p)) ?? resolve(import.meta.dirname, '../../dist/scripts/controller/main.js');

export type Line = Record<string, unknown> & { what: string };

export class Ctl {
  readonly lines: Line[] = [];
  port = 0;
  private buf = '';
  private exited = false;
  constructor(readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      this.buf += d;
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        this.lines.push(JSON.parse(this.buf.slice(0, i)) as Line);
        this.buf = this.buf.slice(i + 1);
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => process.stderr.write(`[controller] ${d}`));
    child.on('exit', () => (this.exited = true));
  }
  of(what: string): Line[] {
    return this.lines.filter((l) => l.what === what);
  }
  async waitFor(what: string, pred: (l: Line) => boolean = () => true, ms = 5000): Promise<Line> {
    const end = Date.now() + ms;
    for (;;) {
      const l = this.lines.find((x) => x.what === what && pred(x));
      if (l !== undefined) return l;
      if (this.exited) throw new Error(`controller exited before printing ${what}`);
      if (Date.now() > end) throw new Error(`no '${what}' line in ${ms} ms; got: ${JSON.stringify(this.lines.slice(-10))}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  input(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.exited) return;
    const done = new Promise((r) => this.child.once('exit', r));
    this.child.kill(signal);
    await done;
  }
}


export interface ControllerStart {
  db: string;
  tokenFile: string;
  /** Further options (`--generation 3`, `--tls-cert ...`). */
  extra?: string[];
  /** host:port to listen on; default 127.0.0.1:0 (a free port, read from the `listening` line). */
  listen?: string;
}

export async function startController(o: ControllerStart): Promise<Ctl> {
  if (!existsSync(CONTROLLER_MAIN)) throw new Error(`${CONTROLLER_MAIN} is missing: run \`npm run build\` first (npm test does)`);
  const child = spawn(process.execPath, [CONTROLLER_MAIN, '--listen', o.listen ?? '127.0.0.1:0', '--db', o.db, '--token-file', o.tokenFile, ...(o.extra ?? [])], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const c = new Ctl(child);
  c.port = (await c.waitFor('listening')).port as number;
  return c;
}

/** A reference controller that takes one agent's token, and the `upstream:` config line of a metald that reports to it. */
export async function startUpstream(work: string, token: string, agent = 'test-agent'): Promise<{ ctl: Ctl; yaml: string }> {
  writeFileSync(join(work, 'ctl.tokens'), `${token} ${agent}\n`);
  writeFileSync(join(work, 'upstream.token'), `${token}\n`, { mode: 0o600 });
  const ctl = await startController({ db: join(work, 'ctl.db'), tokenFile: join(work, 'ctl.tokens') });
  return { ctl, yaml: `upstream: {url: "ws://127.0.0.1:${ctl.port}/v1/agents", token_file: ${join(work, 'upstream.token')}}` };
}

/**
 * Sends a command to `agent` through the controller's stdin and waits for its result (accepted or not).
 * @returns the command-result line.
 */
export async function command(ctl: Ctl, op: string, body: Record<string, unknown>, agent = 'test-agent'): Promise<Line> {
  const before = ctl.of('command-sent').length;
  ctl.input(`command ${agent} ${op} ${JSON.stringify(body)}`);
  const sent = await ctl.waitFor('command-sent', (l) => l.op === op && l.resend !== true && ctl.of('command-sent').indexOf(l) >= before, 10_000);
  return ctl.waitFor('command-result', (l) => l.command_id === sent.command_id, 20_000);
}

/** Waits until the controller has received an `instance.operation_state` event of `value` for the instance. */
export function operationStateSeen(ctl: Ctl, instanceId: string, value: string, ms = 60_000): Promise<Line> {
  return ctl.waitFor('event', (l) => l.kind === 'instance.operation_state' && l.instance_id === instanceId && (l.data as { operation_state?: string }).operation_state === value, ms);
}
