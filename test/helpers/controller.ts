/**
 * The reference controller (scripts/controller/, docs/controller.md) as a child process (dist/, built by
 * `npm run build`): its JSON lines collected, waited for, its stdin written, killed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

export const CONTROLLER_MAIN = resolve(import.meta.dirname, '../../dist/scripts/controller/main.js');

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
