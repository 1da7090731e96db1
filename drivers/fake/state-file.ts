/**
 * The fake server's `state_file`: its whole state in one JSON file, written synchronously and atomically (temp file +
 * rename) so it outlives the process as a real BMC (and a running ramdisk) outlives a SIGKILL of the agent.
 */
import fs from 'node:fs';
import type { BootDevice, BootSettings, PowerReading } from '../types.js';
import type { FakeInstallerJob } from './installer.js';
import type { FakeFaults } from './options.js';

export type FakeOp = 'power.get' | 'power.set' | 'boot.get' | 'boot.set' | 'boot.clear' | 'media.insert' | 'media.eject' | 'inventory.get';

/** One command as the fake BMC received it. */
export interface FakeCommand {
  seq: number;
  /** Lab clock, ms. */
  at: number;
  /** The driver name it came through. */
  via: string;
  op: FakeOp;
  arg: string | null;
  /** ok; failed (an error answer); ignored (accepted, did nothing); hung (never answered); reply-lost (applied, never answered). */
  outcome: 'ok' | 'failed' | 'ignored' | 'hung' | 'reply-lost';
}

/**
 * Appends a command to `log` and drops the oldest past `max` (the newest `max` are kept). Its `seq` follows the last
 * entry's, so seq keeps increasing across trims and restarts: read a log from a point by seq, not by index.
 */
export function appendCommand(log: FakeCommand[], entry: Omit<FakeCommand, 'seq'>, max: number): FakeCommand {
  const cmd: FakeCommand = { seq: (log.at(-1)?.seq ?? 0) + 1, ...entry };
  log.push(cmd);
  if (log.length > max) log.splice(0, log.length - max);
  return cmd;
}

/** What `state_file` holds. Version 2 added `job`; a version 1 file is read as one without a job. */
export interface FakeServerStateFile {
  version: 2;
  power: PowerReading;
  pending: { to: PowerReading; at: number; boots: boolean } | null;
  /** null: no override (cleared): the server boots from its disk. */
  persistentBoot: BootSettings | null;
  nextBoot: BootSettings | null;
  bootedFrom: BootDevice | null;
  boots: number;
  /** Lab clock ms of the last boot (absent in older files: long ago). */
  bootedAt?: number | null;
  media: string | null;
  osInstalled: string | null;
  /** The installer job, running or the last one finished; null: none since the file was created. */
  job: FakeInstallerJob | null;
  faults: FakeFaults;
  log: FakeCommand[];
}

/** The state kept in `file`; null when there is none. A version 1 file reads as one without a job. @throws Error on a corrupt file or an unknown version. */
export function readStateFile(file: string): FakeServerStateFile | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  const st = JSON.parse(text) as Omit<FakeServerStateFile, 'version' | 'job'> & { version: unknown; job?: FakeInstallerJob | null };
  if (st.version === 2) return st as FakeServerStateFile;
  if (st.version === 1) return { ...st, version: 2, job: null };
  throw new Error(`fake BMC state file ${file}: unknown version ${String(st.version)}`);
}

export function writeStateFile(file: string, st: FakeServerStateFile): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(st));
  fs.renameSync(tmp, file);
}
