/**
 * The fake lab: simulated servers and their BMCs, in memory, for tests and the demo only (the daemon refuses the
 * `fake` driver unless `allow_fake_drivers: true`). One `FakeServer` per node id, created on first use.
 *
 * Model of one server:
 * - power is `on`/`off`; a power change becomes visible to `getPower` after `power_delay` (lab clock, evaluated
 *   lazily on every access, so no timer is left behind). A boot happens when the server comes on or is reset.
 * - boot override: a persistent setting plus an optional next-boot-only one, consumed by the next boot. A boot picks
 *   the override's device (cdrom without media falls back to disk) and records it as `bootedFrom`.
 * - virtual media (one URL or none), an inventory, an installed OS marker, and an installer simulation.
 * - faults, changeable at run time, for the whole BMC or for calls through one driver name only (`via`), so a test
 *   can make `redfish` unreachable while `ipmi` still works on the same server.
 * - a log of every command the BMC received. Calls refused before reaching the BMC (unreachable, auth) are not in it:
 *   that is how tests prove "nothing was sent".
 * - optionally (`state_file`), its state kept in a file so it outlives the daemon, as a real BMC outlives a SIGKILL of
 *   the agent: power (and a change under way), boot settings, media, installed OS, server-wide faults and the command
 *   log, written synchronously and atomically (temp file + rename) on every change, read back at creation. A running
 *   installer is not kept: it dies with the process, as a ramdisk does when its deploy agent is gone.
 */
import fs from 'node:fs';
import path from 'node:path';
import { realSleep, type Sleep } from '../bmc-lock.js';
import { BmcError } from '../errors.js';
import { EXPECTED_POWER, isReboot, isSoft, POWER_ACTIONS } from '../power.js';
import type { BootDevice, BootMode, BootSettings, Inventory, PowerAction, PowerReading } from '../types.js';

/** Faults of one fake BMC. Counters are consumed one per matching command. */
export interface FakeFaults {
  /** Every call throws BMC_ERR_UNREACHABLE (nothing sent). */
  unreachable?: boolean;
  /** Every call throws BMC_ERR_AUTH (nothing sent). */
  auth?: boolean;
  /** The next N `on` commands fail with BMC_ERR_COMMAND_FAILED. */
  fail_power_on?: number;
  /** The next N `off`/`soft-off` commands fail. */
  fail_power_off?: number;
  /** The next N `reboot`/`soft-reboot` commands fail. */
  fail_reboot?: number;
  /** The next N power commands are accepted but do nothing (verification must notice). */
  ignore_power?: number;
  /** Calls are received but never answered, until aborted. Nothing is applied. */
  hang?: boolean;
  /** The next N commands of any kind are applied but their answer is lost (the call hangs until aborted). */
  lose_reply?: number;
  /** The next N installs fail with 'installer reported failure: disk write error'. Server-wide only. */
  fail_install?: number;
  /** setBoot keeps the device only, next boot only, legacy: what ipmi_sim does with efiboot/persistent flags. */
  ignore_boot_flags?: boolean;
}

const FLAG_FAULTS = ['unreachable', 'auth', 'hang', 'ignore_boot_flags'] as const;
const COUNT_FAULTS = ['fail_power_on', 'fail_power_off', 'fail_reboot', 'ignore_power', 'lose_reply', 'fail_install'] as const;
type FlagFault = (typeof FLAG_FAULTS)[number];
type CountFault = (typeof COUNT_FAULTS)[number];

/** Options of one simulated server, as validated from the config's free-form object. */
export interface FakeServerOptions {
  /** How long a power change takes to be visible, ms. Option `power_delay`: ms or "300ms"/"2s". Default 0. */
  powerDelayMs: number;
  /** How long an install takes, ms. Option `install`. Default 1 s. */
  installMs: number;
  /** Whether soft-off and soft-reboot are supported. Option `supports_soft`. Default true. */
  supportsSoft: boolean;
  /** Option `initial_power`. Default off. */
  initialPower: PowerReading;
  /** Option `os_installed`: image name or null. Default null. */
  osInstalled: string | null;
  /** Mode of the persistent boot setting before anyone sets it. Option `boot_mode`. Default uefi. */
  bootMode: BootMode;
  /** Option `inventory`: any of the Inventory fields. */
  inventory: Inventory;
  /** Option `faults`: the server-wide faults it starts with. */
  faults: FakeFaults;
  /** Option `state_file`: absolute path of the file that keeps the server's state across processes; null: memory only. */
  stateFile: string | null;
}

/** What `state_file` holds (version 1). */
export interface FakeServerStateFile {
  version: 1;
  power: PowerReading;
  pending: { to: PowerReading; at: number; boots: boolean } | null;
  persistentBoot: BootSettings;
  nextBoot: BootSettings | null;
  bootedFrom: BootDevice | null;
  boots: number;
  media: string | null;
  osInstalled: string | null;
  faults: FakeFaults;
  log: FakeCommand[];
}

export type FakeOp = 'power.get' | 'power.set' | 'boot.get' | 'boot.set' | 'media.insert' | 'media.eject' | 'inventory.get';

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

/** What the installer is asked to do (a subset of the agent's job document). */
export interface FakeInstallJob {
  operation: string;
  imageName: string | null;
}

export interface FakeInstallOptions {
  signal?: AbortSignal | undefined;
  onProgress?: ((percent: number) => void) | undefined;
  timeoutMs?: number | undefined;
}

export interface FakeServerSnapshot {
  nodeId: string;
  power: PowerReading;
  /** A power change not yet visible. */
  pendingPower: PowerReading | null;
  /** What getBoot reports. */
  boot: BootSettings;
  bootedFrom: BootDevice | null;
  boots: number;
  media: string | null;
  osInstalled: string | null;
  installing: { operation: string; progress: number } | null;
  faults: FakeFaults;
  inventory: Inventory;
}

export interface FakeLabClock {
  /** ms. Default Date.now. */
  now?: () => number;
  /** Used by the installer's steps. */
  sleep?: Sleep;
}

const OPTION_KEYS = ['power_delay', 'install', 'supports_soft', 'initial_power', 'os_installed', 'boot_mode', 'inventory', 'faults', 'state_file'];
const INVENTORY_KEYS = ['manufacturer', 'model', 'serial', 'macs', 'cpus', 'memory_mib'];

/**
 * A duration: a number of ms, or a string `<number><unit>` with unit ms, s, m or h (no unit: ms).
 * @throws Error naming `what` when it is neither.
 */
export function parseDuration(value: unknown, what: string): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value;
  if (typeof value === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(value);
    if (m) {
      const scale = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[(m[2] ?? 'ms') as 'ms' | 's' | 'm' | 'h'];
      return Number(m[1]) * scale;
    }
  }
  throw new Error(`${what}: expected a duration in ms or like "300ms", "2s", got ${JSON.stringify(value)}`);
}

/**
 * Validates a faults object. @throws Error listing every problem.
 */
export function parseFakeFaults(raw: unknown, where = 'faults'): FakeFaults {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${where}: expected an object, got ${JSON.stringify(raw)}`);
  const problems: string[] = [];
  const out: FakeFaults = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if ((FLAG_FAULTS as readonly string[]).includes(k)) {
      if (typeof v === 'boolean') out[k as FlagFault] = v;
      else problems.push(`${k}: expected true or false, got ${JSON.stringify(v)}`);
    } else if ((COUNT_FAULTS as readonly string[]).includes(k)) {
      if (typeof v === 'number' && Number.isInteger(v) && v >= 0) out[k as CountFault] = v;
      else problems.push(`${k}: expected a whole number >= 0, got ${JSON.stringify(v)}`);
    } else {
      problems.push(`${k}: unknown fault (known: ${[...FLAG_FAULTS, ...COUNT_FAULTS].join(', ')})`);
    }
  }
  if (problems.length > 0) throw new Error(`${where}: ${problems.join('; ')}`);
  return out;
}

/**
 * Validates the fake driver's options of one node (the config's free-form object).
 * @throws Error listing every problem, each as `key: message`.
 */
export function parseFakeOptions(raw: unknown, nodeId: string): FakeServerOptions {
  const where = `fake driver options of node ${nodeId}`;
  if (raw === undefined || raw === null) raw = {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${where}: expected an object, got ${JSON.stringify(raw)}`);
  const o = raw as Record<string, unknown>;
  const problems: string[] = [];
  const attempt = <T>(fn: () => T, fallback: T): T => {
    try {
      return fn();
    } catch (e) {
      problems.push((e as Error).message);
      return fallback;
    }
  };
  for (const k of Object.keys(o)) {
    if (!OPTION_KEYS.includes(k)) problems.push(`${k}: unknown option (known: ${OPTION_KEYS.join(', ')})`);
  }
  const powerDelayMs = o.power_delay === undefined ? 0 : attempt(() => parseDuration(o.power_delay, 'power_delay'), 0);
  const installMs = o.install === undefined ? 1_000 : attempt(() => parseDuration(o.install, 'install'), 0);
  let supportsSoft = true;
  if (o.supports_soft !== undefined) {
    if (typeof o.supports_soft === 'boolean') supportsSoft = o.supports_soft;
    else problems.push(`supports_soft: expected true or false, got ${JSON.stringify(o.supports_soft)}`);
  }
  let initialPower: PowerReading = 'off';
  if (o.initial_power !== undefined) {
    if (o.initial_power === 'on' || o.initial_power === 'off') initialPower = o.initial_power;
    else problems.push(`initial_power: expected "on" or "off", got ${JSON.stringify(o.initial_power)}`);
  }
  let osInstalled: string | null = null;
  if (o.os_installed !== undefined) {
    if (o.os_installed === null || (typeof o.os_installed === 'string' && o.os_installed !== '')) osInstalled = o.os_installed;
    else problems.push(`os_installed: expected an image name or null, got ${JSON.stringify(o.os_installed)}`);
  }
  let bootMode: BootMode = 'uefi';
  if (o.boot_mode !== undefined) {
    if (o.boot_mode === 'uefi' || o.boot_mode === 'legacy') bootMode = o.boot_mode;
    else problems.push(`boot_mode: expected "uefi" or "legacy", got ${JSON.stringify(o.boot_mode)}`);
  }
  const inventory = attempt(() => parseInventory(o.inventory, nodeId), defaultInventory(nodeId));
  const faults = attempt(() => parseFakeFaults(o.faults, 'faults'), {});
  let stateFile: string | null = null;
  if (o.state_file !== undefined) {
    if (typeof o.state_file === 'string' && path.isAbsolute(o.state_file)) stateFile = o.state_file;
    else problems.push(`state_file: expected an absolute path, got ${JSON.stringify(o.state_file)}`);
  }
  if (problems.length > 0) throw new Error(`${where}: ${problems.join('; ')}`);
  return { powerDelayMs, installMs, supportsSoft, initialPower, osInstalled, bootMode, inventory, faults, stateFile };
}

function defaultInventory(nodeId: string): Inventory {
  return { manufacturer: 'metald', model: 'fake-server', serial: `FAKE-${nodeId}`, macs: [], cpus: 8, memory_mib: 32_768 };
}

function parseInventory(raw: unknown, nodeId: string): Inventory {
  const inv = defaultInventory(nodeId);
  if (raw === undefined || raw === null) return inv;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`inventory: expected an object, got ${JSON.stringify(raw)}`);
  const problems: string[] = [];
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (!INVENTORY_KEYS.includes(k)) problems.push(`inventory.${k}: unknown field (known: ${INVENTORY_KEYS.join(', ')})`);
    else if (k === 'macs') {
      if (Array.isArray(v) && v.every((m) => typeof m === 'string')) inv.macs = v as string[];
      else problems.push(`inventory.macs: expected a list of strings`);
    } else if (k === 'cpus' || k === 'memory_mib') {
      if (v === null || (typeof v === 'number' && Number.isInteger(v) && v >= 0)) inv[k] = v;
      else problems.push(`inventory.${k}: expected a whole number or null, got ${JSON.stringify(v)}`);
    } else if (v === null || typeof v === 'string') {
      inv[k as 'manufacturer' | 'model' | 'serial'] = v;
    } else problems.push(`inventory.${k}: expected a string or null, got ${JSON.stringify(v)}`);
  }
  if (problems.length > 0) throw new Error(problems.join('; '));
  return inv;
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
  private persistentBoot: BootSettings;
  private nextBoot: BootSettings | null = null;
  private bootedFrom: BootDevice | null;
  private boots = 0;
  private media: string | null = null;
  private osInstalled: string | null;
  private installing: { operation: string; progress: number } | null = null;
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
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    const st = JSON.parse(text) as FakeServerStateFile;
    if (st.version !== 1) throw new Error(`fake BMC state file ${file}: unknown version ${String(st.version)}`);
    this.power = st.power;
    this.pending = st.pending;
    this.persistentBoot = st.persistentBoot;
    this.nextBoot = st.nextBoot;
    this.bootedFrom = st.bootedFrom;
    this.boots = st.boots;
    this.media = st.media;
    this.osInstalled = st.osInstalled;
    this.serverFaults = parseFakeFaults(st.faults);
    this.log.push(...st.log);
  }

  /** Writes the state to `state_file` (synchronously, atomically); nothing without one. */
  private persist(): void {
    const file = this.options.stateFile;
    if (!file) return;
    const st: FakeServerStateFile = {
      version: 1,
      power: this.power,
      pending: this.pending,
      persistentBoot: this.persistentBoot,
      nextBoot: this.nextBoot,
      bootedFrom: this.bootedFrom,
      boots: this.boots,
      media: this.media,
      osInstalled: this.osInstalled,
      faults: this.serverFaults,
      log: this.log,
    };
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(st));
    fs.renameSync(tmp, file);
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
      boot: { ...(this.nextBoot ?? this.persistentBoot) },
      bootedFrom: this.bootedFrom,
      boots: this.boots,
      media: this.media,
      osInstalled: this.osInstalled,
      installing: this.installing ? { ...this.installing } : null,
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

  getBoot(via: string, signal?: AbortSignal): Promise<BootSettings> {
    return this.command(via, 'boot.get', null, signal, () => ({ ...(this.nextBoot ?? this.persistentBoot) }));
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
   * Simulates the deploy ramdisk's installer: needs the server on and booted from pxe (or cdrom with media), takes
   * `install` in 5 steps reporting 0, 20, ..., 100, and records the result: install-like operations install
   * `imageName`, `uninstall` clears the OS, others keep it.
   * @throws Error 'server is powered off', 'the server did not boot the deploy ramdisk: boot device is X',
   *   'installer reported failure: disk write error' (fault fail_install), or on abort, timeout, power loss or reboot.
   */
  async runInstaller(job: FakeInstallJob, opts: FakeInstallOptions = {}): Promise<void> {
    this.settle();
    if (this.power === 'off') throw new Error('server is powered off');
    if (this.bootedFrom !== 'pxe' && this.bootedFrom !== 'cdrom') {
      throw new Error(`the server did not boot the deploy ramdisk: boot device is ${this.bootedFrom ?? 'none'}`);
    }
    if (this.installing) throw new Error(`an installer is already running (${this.installing.operation})`);
    const timeout = opts.timeoutMs === undefined ? undefined : AbortSignal.timeout(opts.timeoutMs);
    const signals = [opts.signal, timeout].filter((s): s is AbortSignal => s !== undefined);
    const signal = signals.length > 0 ? AbortSignal.any(signals) : undefined;
    const bootsAtStart = this.boots;
    const steps = 5;
    const failAt = this.take('', 'fail_install') ? 3 : -1;
    this.installing = { operation: job.operation, progress: 0 };
    try {
      opts.onProgress?.(0);
      for (let i = 1; i <= steps; i++) {
        await this.sleep(this.options.installMs / steps, signal);
        if (this.currentPower() === 'off') throw new Error('the server was powered off during the install');
        if (this.boots !== bootsAtStart) throw new Error('the server rebooted during the install');
        if (i === failAt) throw new Error('installer reported failure: disk write error');
        this.installing.progress = (i * 100) / steps;
        opts.onProgress?.(this.installing.progress);
      }
    } catch (e) {
      if (opts.signal?.aborted) throw new Error('installer aborted', { cause: e });
      if (timeout?.aborted) throw new Error(`installer did not finish within ${opts.timeoutMs} ms`, { cause: e });
      throw e;
    } finally {
      this.installing = null;
    }
    if (job.operation === 'uninstall') this.osInstalled = null;
    else if (job.imageName !== null && ['install', 'reinstall', 'switch-install'].includes(job.operation)) this.osInstalled = job.imageName;
    this.persist();
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
    const entry: FakeCommand = { seq: this.log.length + 1, at: this.now(), via, op, arg, outcome: 'ok' };
    this.log.push(entry);
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

  private currentPower(): PowerReading {
    this.settle();
    return this.power;
  }

  /** Makes a due power change visible. */
  private settle(): void {
    if (!this.pending || this.now() < this.pending.at) return;
    const p = this.pending;
    this.pending = null;
    this.power = p.to;
    if (p.to === 'off') this.bootedFrom = null;
    if (p.boots) this.boot();
    this.persist();
  }

  private boot(): void {
    const s = this.nextBoot ?? this.persistentBoot;
    this.nextBoot = null;
    this.bootedFrom = s.device === 'cdrom' && this.media === null ? 'disk' : s.device;
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

  runInstaller(nodeId: string, job: FakeInstallJob, opts?: FakeInstallOptions): Promise<void> {
    return this.get(nodeId).runInstaller(job, opts);
  }

  wipe(nodeId: string): void {
    this.get(nodeId).wipe();
  }
}
