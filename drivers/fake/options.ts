/**
 * The fake driver's options of one simulated server (the node's free-form `fake` mapping) and its faults: their
 * types and validation. Every problem is reported at once, as `key: message`.
 */
import path from 'node:path';
import type { BootMode, Inventory, PowerReading } from '../types.js';

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

export const FLAG_FAULTS = ['unreachable', 'auth', 'hang', 'ignore_boot_flags'] as const;
export const COUNT_FAULTS = ['fail_power_on', 'fail_power_off', 'fail_reboot', 'ignore_power', 'lose_reply', 'fail_install'] as const;
export type FlagFault = (typeof FLAG_FAULTS)[number];
export type CountFault = (typeof COUNT_FAULTS)[number];

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
  /**
   * How long the installed OS takes to boot before it answers pings, ms after the server boots. Option `os_boot`.
   * Default 0.
   */
  osBootMs: number;
  /**
   * How many commands the server's command log keeps (the newest; in memory and in `state_file`). Option
   * `command_log`: a whole number >= 1. Default 1,000 (DEFAULT_COMMAND_LOG).
   */
  commandLogMax: number;
}

/** The default bound of a fake server's command log. */
export const DEFAULT_COMMAND_LOG = 1_000;

const OPTION_KEYS = ['power_delay', 'install', 'supports_soft', 'initial_power', 'os_installed', 'boot_mode', 'inventory', 'faults', 'state_file', 'os_boot', 'command_log'];
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
  const osBootMs = o.os_boot === undefined ? 0 : attempt(() => parseDuration(o.os_boot, 'os_boot'), 0);
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
  let commandLogMax = DEFAULT_COMMAND_LOG;
  if (o.command_log !== undefined) {
    if (typeof o.command_log === 'number' && Number.isInteger(o.command_log) && o.command_log >= 1) commandLogMax = o.command_log;
    else problems.push(`command_log: expected a whole number >= 1, got ${JSON.stringify(o.command_log)}`);
  }
  if (problems.length > 0) throw new Error(`${where}: ${problems.join('; ')}`);
  return { powerDelayMs, installMs, supportsSoft, initialPower, osInstalled, bootMode, inventory, faults, stateFile, osBootMs, commandLogMax };
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
