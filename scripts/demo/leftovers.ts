/**
 * What the demo leaves behind, found the same way by the demo's own Ctrl-C handler and by its test: every process
 * whose command line or environment names the demo's root folder (the demo sets TMPDIR to it before it starts
 * anything, so every child inherits it, and the node emulator's installers name their disk files under it), read
 * from /proc. A process of another user, or one that ended while it was read, is passed over.
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface Leftover {
  pid: number;
  cmd: string;
}

function read(path: string): string | null {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return null;
  }
}

/** Processes (other than this one) that name `root`. */
export function findLeftovers(root: string): Leftover[] {
  const found: Leftover[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    const cmdline = read(`/proc/${name}/cmdline`);
    if (cmdline === null || cmdline === '') continue; // gone, or a kernel thread
    const environ = read(`/proc/${name}/environ`) ?? '';
    if (cmdline.includes(root) || environ.split('\0').some((e) => e.includes(root))) found.push({ pid, cmd: cmdline.split('\0').join(' ').trim() });
  }
  return found;
}

/** SIGKILLs every leftover; returns what it found. */
export function killLeftovers(root: string): Leftover[] {
  const found = findLeftovers(root);
  for (const l of found) {
    try {
      process.kill(l.pid, 'SIGKILL');
    } catch {
      // ended meanwhile
    }
  }
  return found;
}
