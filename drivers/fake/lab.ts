/**
 * The fake lab: simulated servers and their BMCs, in memory, for tests and the demo only (the daemon refuses the
 * `fake` driver unless `allow_fake_drivers: true`). One `FakeServer` per node id, created on first use.
 *
 * Model of one server:
 * - power is `on`/`off`; a power change becomes visible to `getPower` after `power_delay` (lab clock, evaluated
 *   lazily on every access, so no timer is left behind). A boot happens when the server comes on or is reset.
 * - boot override: a persistent setting plus an optional next-boot-only one, consumed by the next boot. A boot picks
 *   the override's device (cdrom without media falls back to disk) and records it as `bootedFrom`.
 * - virtual media (one URL or none), an inventory, an installed OS marker.
 * - an installer job (installer.ts), at most one, running on the server: started by `deploy`, it goes on whether or
 *   not anyone waits for it, and a deploy with the same job id attaches to it. Its end is evaluated lazily with power.
 * - faults, changeable at run time, for the whole BMC or for calls through one driver name only (`via`), so a test
 *   can make `redfish` unreachable while `ipmi` still works on the same server.
 * - a log of the commands the BMC received: the newest `command_log` (default 1,000), `seq` increasing across trims.
 *   Calls refused before reaching the BMC (unreachable, auth) are not in it: that is how tests prove "nothing was sent".
 * - optionally (`state_file`), its state kept in a file so it outlives the daemon, as a real BMC outlives a SIGKILL of
 *   the agent: power (and a change under way), boot settings, media, installed OS, the installer job (a ramdisk keeps
 *   installing when its agent dies), server-wide faults and the command log, written synchronously and atomically
 *   (temp file + rename) on every change, read back at creation.
 * Options and faults are parsed in options.ts.
 */
import { realSleep, type Sleep } from '../bmc-lock.js';
import { BmcError } from '../errors.js';
import { EXPECTED_POWER, isReboot, isSoft, POWER_ACTIONS } from '../power.js';
import type { BootDevice, BootSettings, Inventory, PowerAction, PowerReading } from '../types.js';
import {
  interruption,
  jobProgress,
  newJob,
  osAfter,
  ownOutcome,
  waitForJob,
  type FakeInstallerJob,
  type FakeInstallJob,
  type FakeInstallOptions,
  type InstallerHost,
} from './installer.js';
import { parseFakeFaults, parseFakeOptions, type CountFault, type FakeFaults, type FakeServerOptions, type FlagFault } from './options.js';
import { appendCommand, readStateFile, writeStateFile, type FakeCommand, type FakeOp } from './state-file.js';

export { parseDuration, parseFakeFaults, parseFakeOptions } from './options.js';
export type { FakeFaults, FakeServerOptions } from './options.js';
export type { FakeInstallerJob, FakeInstallJob, FakeInstallOptions, FakeInstallOutcome } from './installer.js';
export type { FakeCommand, FakeOp, FakeServerStateFile } from './state-file.js';

export interface FakeServerSnapshot {
  nodeId: string;
  power: PowerReading;
  /** A power change not yet visible. */
  pendingPower: PowerReading | null;
  /** What getBoot reports (null: no override). */
  boot: BootSettings | null;
  bootedFrom: BootDevice | null;
  boots: number;
  media: string | null;
  osInstalled: string | null;
  /** A job is running: its operation and progress (a server installing does not answer pings). */
  installing: { operation: string; progress: number } | null;
  /** The installed OS is up: the server is on, has an OS, runs no installer, and booted at least `os_boot` ago. */
  osUp: boolean;
  /** The installer job, running or the last one finished. */
  job: FakeInstallerJob | null;
  faults: FakeFaults;
  inventory: Inventory;
}

export interface FakeLabClock {
  /** ms. Default Date.now. */
  now?: () => number;
  /** Used by the installer's waits. */
  sleep?: Sleep;
}

/** Settles when `signal` aborts (rejecting with `err`); never, without a signal. */
function hangUntilAborted(signal: AbortSignal | undefined, err: () => Error): Promise<never> {
  return new Promise<never>((_, reject) => {
    if (!signal) return;
    if (signal.aborted) reject(err());
    else signal.addEventListener('abort', () => reject(err()), { once: true });
  });
}

/** One simulated server and its BMC. Driver calls go through the methods taking `via` (the driver name). */
export class FakeServer {
  readonly nodeId: string;
  readonly options: FakeServerOptions;
  private readonly now: () => number;
  private readonly sleep: Sleep;
  private power: PowerReading;
  private pending: { to: PowerReading; at: number; boots: boolean } | null = null;
  /** null: no override (cleared); the server's own boot order is its disk. */
  private persistentBoot: BootSettings | null;
  private nextBoot: BootSettings | null = null;
  private bootedFrom: BootDevice | null;
  private boots = 0;
  private bootedAt: number | null = null;
  private media: string | null = null;
  private osInstalled: string | null;
  /** The installer job, running or the last one finished (a new one replaces a finished one). */
  private job: FakeInstallerJob | null = null;
  private serverFaults: FakeFaults;
  private readonly viaFaults = new Map<string, FakeFaults>();
  private readonly log: FakeCommand[] = [];

  constructor(nodeId: string, options: FakeServerOptions, clock: FakeLabClock = {}) {
    this.nodeId = nodeId;
    this.options = options;
    this.now = clock.now ?? Date.now;
    this.sleep = clock.sleep ?? realSleep;
    this.power = options.initialPower;
    this.persistentBoot = { device: 'disk', persistent: true, mode: options.bootMode };
    this.bootedFrom = options.initialPower === 'on' ? 'disk' : null;
    this.osInstalled = options.osInstalled;
    this.serverFaults = { ...options.faults };
    if (options.stateFile) this.load(options.stateFile);
  }

  /** Takes the state kept in `file`, if there is one (a fresh server otherwise). @throws Error on a corrupt file. */
  private load(file: string): void {
    const st = readStateFile(file);
    if (!st) return;
    this.power = st.power;
    this.pending = st.pending;
    this.persistentBoot = st.persistentBoot;
    this.nextBoot = st.nextBoot;
    this.bootedFrom = st.bootedFrom;
    this.boots = st.boots;
    this.bootedAt = st.bootedAt ?? null;
    this.media = st.media;
    this.osInstalled = st.osInstalled;
    this.job = st.job;
    this.serverFaults = parseFakeFaults(st.faults);
    this.log.push(...st.log.slice(-this.options.commandLogMax));
  }

  /** Writes the state to `state_file` (synchronously, atomically); nothing without one. */
  private persist(): void {
    const file = this.options.stateFile;
    if (!file) return;
    writeStateFile(file, {
      version: 2,
      power: this.power,
      pending: this.pending,
      persistentBoot: this.persistentBoot,
      nextBoot: this.nextBoot,
      bootedFrom: this.bootedFrom,
      boots: this.boots,
      bootedAt: this.bootedAt,
      media: this.media,
      osInstalled: this.osInstalled,
      job: this.job,
      faults: this.serverFaults,
      log: this.log,
    });
  }

  // ---- faults and introspection ----------------------------------------------------------------------------------

  /** Replaces the faults: server-wide, or only for calls through the driver named `via`. `{}` clears them. */
  setFaults(faults: FakeFaults, via?: string): void {
    const parsed = parseFakeFaults(faults);
    if (via === undefined) this.serverFaults = parsed;
    else this.viaFaults.set(via, parsed);
    this.persist();
  }

  faults(via?: string): FakeFaults {
    return { ...(via === undefined ? this.serverFaults : (this.viaFaults.get(via) ?? {})) };
  }

  commands(): readonly FakeCommand[] {
    return this.log.map((c) => ({ ...c }));
  }

  snapshot(): FakeServerSnapshot {
    this.settle();
    return {
      nodeId: this.nodeId,
      power: this.power,
      pendingPower: this.pending?.to ?? null,
      boot: this.heldBoot(),
      bootedFrom: this.bootedFrom,
      boots: this.boots,
      media: this.media,
      osInstalled: this.osInstalled,
      installing: this.job && this.job.outcome === null ? { operation: this.job.operation, progress: jobProgress(this.job, this.options.installMs, this.now()) } : null,
      osUp:
        this.power === 'on' &&
        this.osInstalled !== null &&
        (this.job === null || this.job.outcome !== null) &&
        this.now() - (this.bootedAt ?? -Infinity) >= this.options.osBootMs,
      job: this.job ? { ...this.job, outcome: this.job.outcome ? { ...this.job.outcome } : null } : null,
      faults: { ...this.serverFaults },
      inventory: { ...this.options.inventory, macs: [...this.options.inventory.macs] },
    };
  }

  /** Clears the installed OS (a disk wipe). */
  wipe(): void {
    this.osInstalled = null;
    this.persist();
  }

  // ---- the BMC ---------------------------------------------------------------------------------------------------

  supportedPowerActions(): readonly PowerAction[] {
    return this.options.supportsSoft ? POWER_ACTIONS : POWER_ACTIONS.filter((a) => !isSoft(a));
  }

  getPower(via: string, signal?: AbortSignal): Promise<PowerReading> {
    return this.command(via, 'power.get', null, signal, () => {
      this.settle();
      return this.power;
    });
  }

  /**
   * on/off succeed when already there. reboot and soft-reboot of an off server power it on (documented choice: the
   * caller asked for a server that runs afterwards); of an on server they reset it after `power_delay`, power
   * reading on throughout. soft-off takes `power_delay` like off.
   */
  setPower(via: string, action: PowerAction, signal?: AbortSignal): Promise<void> {
    return this.command(via, 'power.set', action, signal, (entry) => {
      if (!this.supportedPowerActions().includes(action)) {
        throw new BmcError('BMC_ERR_UNSUPPORTED', via, `fake BMC of node ${this.nodeId} does not support power ${action} (supports_soft: false)`);
      }
      const counter: CountFault = isReboot(action) ? 'fail_reboot' : EXPECTED_POWER[action] === 'on' ? 'fail_power_on' : 'fail_power_off';
      if (this.take(via, counter)) {
        throw new BmcError('BMC_ERR_COMMAND_FAILED', via, `fake BMC of node ${this.nodeId} rejected power ${action} (fault ${counter})`);
      }
      if (this.take(via, 'ignore_power')) {
        entry.outcome = 'ignored';
        return;
      }
      this.applyPower(action);
    });
  }

  getBoot(via: string, signal?: AbortSignal): Promise<BootSettings | null> {
    return this.command(via, 'boot.get', null, signal, () => this.heldBoot());
  }

  clearBoot(via: string, signal?: AbortSignal): Promise<void> {
    return this.command(via, 'boot.clear', null, signal, () => void (this.nextBoot = this.persistentBoot = null));
  }

  private heldBoot(): BootSettings | null {
    const held = this.nextBoot ?? this.persistentBoot;
    return held && { ...held };
  }

  setBoot(via: string, settings: BootSettings, signal?: AbortSignal): Promise<void> {
    const arg = `${settings.device} ${settings.persistent ? 'persistent' : 'once'} ${settings.mode}`;
    return this.command(via, 'boot.set', arg, signal, () => {
      // NOTE(vendor): ipmi_sim (OpenIPMI) keeps the device only: next boot only, legacy.
      const s: BootSettings = this.flag(via, 'ignore_boot_flags')
        ? { device: settings.device, persistent: false, mode: 'legacy' }
        : { ...settings };
      if (s.persistent) {
        this.persistentBoot = s;
        this.nextBoot = null;
      } else {
        this.nextBoot = s;
      }
    });
  }

  insertMedia(via: string, url: string, signal?: AbortSignal): Promise<void> {
    return this.command(via, 'media.insert', url, signal, () => {
      this.media = url;
    });
  }

  ejectMedia(via: string, signal?: AbortSignal): Promise<void> {
    return this.command(via, 'media.eject', null, signal, () => {
      this.media = null;
    });
  }

  getInventory(via: string, signal?: AbortSignal): Promise<Inventory> {
    return this.command(via, 'inventory.get', null, signal, () => ({ ...this.options.inventory, macs: [...this.options.inventory.macs] }));
  }

  // ---- the installer ---------------------------------------------------------------------------------------------

  /**
   * Hands the deploy ramdisk's installer a job, or attaches to the one it holds with this id, and waits for it.
   * A new job needs the server on, booted from pxe (or cdrom with media) and no other job running; it takes `install`
   * in 5 steps reporting 0, 20, ..., 100 and on success install-like operations install `imageName`, `uninstall`
   * clears the OS, others keep it. Attaching reports the job's current progress, then waits; a job already over
   * reports its outcome at once, until the server boots again (the job was the previous ramdisk's). The job runs on the server: an abort or the deadline ends the wait, not the job.
   * @throws Error 'server is powered off', 'the server did not boot the deploy ramdisk: boot device is X',
   *   'an installer is already running (<operation>)', the job's failure ('installer reported failure: disk write
   *   error' with the fault fail_install, power off or reboot during the job), 'installer aborted',
   *   'installer did not finish by <ISO time> ...'.
   */
  async deploy(jobId: string, job: FakeInstallJob, opts: FakeInstallOptions = {}): Promise<void> {
    if (typeof jobId !== 'string' || jobId === '') throw new Error(`installer job id: expected a non-empty string, got ${JSON.stringify(jobId)}`);
    if (opts.deadlineAt !== undefined && !Number.isFinite(opts.deadlineAt)) {
      throw new Error(`installer deadline: expected ms since the epoch, got ${String(opts.deadlineAt)}`);
    }
    if (opts.signal?.aborted) throw new Error('installer aborted', { cause: opts.signal.reason });
    this.settle();
    // The job lives in the ramdisk that ran it: once the server booted again, a new ramdisk knows no job (and a
    // deploy with the same id, handed to it again, starts it afresh).
    const held = this.job !== null && this.job.bootsAtStart === this.boots ? this.job : null;
    if (held?.id === jobId) return waitForJob(this.installerHost, held, opts);
    if (held && held.outcome === null) throw new Error(`an installer is already running (${held.operation})`);
    if (this.power === 'off') throw new Error('server is powered off');
    if (this.bootedFrom !== 'pxe' && this.bootedFrom !== 'cdrom') {
      throw new Error(`the server did not boot the deploy ramdisk: boot device is ${this.bootedFrom ?? 'none'}`);
    }
    const started = newJob(jobId, job, this.now(), this.boots, this.take('', 'fail_install'));
    this.job = started;
    this.persist();
    return waitForJob(this.installerHost, started, opts);
  }

  /** What a waiter needs of this server: its install duration, its clock, and settle(). */
  private get installerHost(): InstallerHost {
    return { installMs: this.options.installMs, now: this.now, sleep: this.sleep, settle: () => this.settle() };
  }

  // ---- internals -------------------------------------------------------------------------------------------------

  /** The BMC's front door: refusals that prove nothing was sent, the command log, hangs and lost replies. */
  private async command<T>(via: string, op: FakeOp, arg: string | null, signal: AbortSignal | undefined, apply: (entry: FakeCommand) => T): Promise<T> {
    if (signal?.aborted) {
      throw new BmcError('BMC_ERR_ABORTED', via, `${op} to the fake BMC of node ${this.nodeId}: aborted before it was sent`);
    }
    if (this.flag(via, 'unreachable')) {
      throw new BmcError('BMC_ERR_UNREACHABLE', via, `fake BMC of node ${this.nodeId} is unreachable (fault unreachable)`);
    }
    if (this.flag(via, 'auth')) {
      throw new BmcError('BMC_ERR_AUTH', via, `fake BMC of node ${this.nodeId} refused the credentials (fault auth)`);
    }
    const entry = appendCommand(this.log, { at: this.now(), via, op, arg, outcome: 'ok' }, this.options.commandLogMax);
    const noAnswer = () => new BmcError('BMC_ERR_TIMEOUT', via, `fake BMC of node ${this.nodeId} did not answer ${op}`);
    if (this.flag(via, 'hang')) {
      entry.outcome = 'hung';
      this.persist();
      return hangUntilAborted(signal, noAnswer);
    }
    let result: T;
    try {
      result = apply(entry);
    } catch (e) {
      entry.outcome = 'failed';
      this.persist();
      throw e;
    }
    const lost = this.take(via, 'lose_reply');
    if (lost) entry.outcome = 'reply-lost';
    this.persist();
    if (lost) return hangUntilAborted(signal, noAnswer);
    return result;
  }

  private flag(via: string, f: FlagFault): boolean {
    return this.viaFaults.get(via)?.[f] === true || this.serverFaults[f] === true;
  }

  /** Consumes one unit of a counter fault, the driver-specific one first. */
  private take(via: string, f: CountFault): boolean {
    for (const faults of [this.viaFaults.get(via), this.serverFaults]) {
      const n = faults?.[f] ?? 0;
      if (faults && n > 0) {
        faults[f] = n - 1;
        return true;
      }
    }
    return false;
  }

  private applyPower(action: PowerAction): void {
    this.settle();
    const at = this.now() + this.options.powerDelayMs;
    const target = this.pending?.to ?? this.power;
    switch (action) {
      case 'on':
        if (target !== 'on') this.pending = { to: 'on', at, boots: true };
        break;
      case 'off':
      case 'soft-off':
        if (target !== 'off') this.pending = { to: 'off', at, boots: false };
        break;
      case 'reboot':
      case 'soft-reboot':
        this.pending = { to: 'on', at, boots: true };
        break;
    }
    this.settle();
  }

  /**
   * Brings the server up to now: ends the installer job if it reached its own end, makes a due power change visible,
   * then ends the job if that change interrupts it. The job's own end counts first when it came before the change.
   */
  private settle(): void {
    const now = this.now();
    const due = this.pending !== null && this.pending.at <= now ? this.pending : null;
    let changed = this.endJob(ownOutcome, due?.at ?? now);
    if (due) {
      this.pending = null;
      this.power = due.to;
      if (due.to === 'off') this.bootedFrom = null;
      if (due.boots) {
        this.boot();
        this.bootedAt = due.at;
      }
      this.endJob((job) => interruption(job, this.power, this.boots), now);
      changed = true;
    }
    if (changed) this.persist();
  }

  /** Records the outcome `decide` gives the running job, if any (and the OS a success leaves); true if it ended. */
  private endJob(decide: (job: FakeInstallerJob, installMs: number, at: number) => FakeInstallerJob['outcome'], at: number): boolean {
    const job = this.job;
    if (!job || job.outcome !== null) return false;
    const outcome = decide(job, this.options.installMs, at);
    if (!outcome) return false;
    job.outcome = outcome;
    if (outcome.ok) this.osInstalled = osAfter(job, this.osInstalled);
    return true;
  }

  private boot(): void {
    const device = (this.nextBoot ?? this.persistentBoot)?.device ?? 'disk';
    this.nextBoot = null;
    this.bootedFrom = device === 'cdrom' && this.media === null ? 'disk' : device;
    this.boots++;
  }
}

/** All simulated servers of one test or demo, by node id. */
export class FakeLab {
  private readonly servers = new Map<string, FakeServer>();
  private readonly clock: FakeLabClock;

  constructor(clock: FakeLabClock = {}) {
    this.clock = clock;
  }

  /**
   * The server of `nodeId`, created with `options` on first use. Later calls return the same server and ignore
   * `options` (a re-bound driver must not reset a running simulation).
   * @throws Error listing every bad option.
   */
  server(nodeId: string, options?: Record<string, unknown>): FakeServer {
    let s = this.servers.get(nodeId);
    if (!s) {
      s = new FakeServer(nodeId, parseFakeOptions(options, nodeId), this.clock);
      this.servers.set(nodeId, s);
    }
    return s;
  }

  has(nodeId: string): boolean {
    return this.servers.has(nodeId);
  }

  nodeIds(): string[] {
    return [...this.servers.keys()];
  }

  /** @throws Error when no server of that node exists yet. */
  get(nodeId: string): FakeServer {
    const s = this.servers.get(nodeId);
    if (!s) throw new Error(`fake lab: no server for node ${nodeId}`);
    return s;
  }

  /** Replaces the faults of a server (or of calls through one driver name: `via`). */
  setFaults(nodeId: string, faults: FakeFaults, via?: string): void {
    this.get(nodeId).setFaults(faults, via);
  }

  faults(nodeId: string, via?: string): FakeFaults {
    return this.get(nodeId).faults(via);
  }

  commands(nodeId: string): readonly FakeCommand[] {
    return this.get(nodeId).commands();
  }

  snapshot(nodeId: string): FakeServerSnapshot {
    return this.get(nodeId).snapshot();
  }

  /** See FakeServer.deploy. @throws Error when no server of that node exists yet, or as FakeServer.deploy. */
  deploy(nodeId: string, jobId: string, job: FakeInstallJob, opts?: FakeInstallOptions): Promise<void> {
    return this.get(nodeId).deploy(jobId, job, opts);
  }

  wipe(nodeId: string): void {
    this.get(nodeId).wipe();
  }
}
