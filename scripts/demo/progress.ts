/**
 * The demo's live view of installs: one progress bar per operation, redrawn in place on a terminal; on anything else
 * (a pipe, a CI log) plain lines, one when an operation's step changes or its progress passes a quarter.
 */

export interface OperationView {
  label: string;
  /** The step running now (the action's last event), or its outcome once over. */
  step: string;
  /** 0-100, null before the installer reported. */
  progress: number | null;
  done: boolean;
  failed: boolean;
}

export interface ProgressOut {
  isTTY?: boolean | undefined;
  write(s: string): unknown;
}

const WIDTH = 30;

export function bar(p: number | null): string {
  const filled = Math.round(((p ?? 0) / 100) * WIDTH);
  return `[${'#'.repeat(filled)}${'.'.repeat(WIDTH - filled)}] ${p === null ? '  -' : String(p).padStart(3)}%`;
}

export function line(v: OperationView): string {
  const mark = v.failed ? 'FAILED' : v.done ? 'done' : v.step;
  return `${v.label.padEnd(22)} ${bar(v.done && !v.failed ? 100 : v.progress)}  ${mark}`;
}

/** Renders successive views of the same operations (same order, same count). */
export class ProgressBoard {
  private drawn = 0;
  private readonly last = new Map<string, { step: string; quarter: number; done: boolean }>();
  constructor(private readonly out: ProgressOut) {}

  render(views: readonly OperationView[]): void {
    if (this.out.isTTY) {
      // Back to the first bar's line, then every bar again (each line cleared first).
      if (this.drawn > 0) this.out.write(`\x1b[${this.drawn}A`);
      for (const v of views) this.out.write(`\x1b[2K${line(v)}\n`);
      this.drawn = views.length;
      return;
    }
    for (const v of views) {
      const quarter = Math.floor((v.progress ?? 0) / 25);
      const before = this.last.get(v.label);
      if (before && before.step === v.step && before.quarter === quarter && before.done === v.done) continue;
      this.last.set(v.label, { step: v.step, quarter, done: v.done });
      this.out.write(`${line(v)}\n`);
    }
  }
}
