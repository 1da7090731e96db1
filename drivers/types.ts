/**
 * Driver capability interfaces. A driver is a folder under drivers/ with one file per capability and declares the
 * capabilities it implements; drivers/registry.ts builds, per node, the ordered list of drivers for each capability.
 * drivers/ never imports agent/.
 */
import type { TObject } from '@sinclair/typebox';
import type { DriverPorts } from './ports.js';
import type { DriverSettings, SettingsContext, SettingsReport } from './settings.js';

import type { PowerAction, PowerReading } from './power.js';
import type { WaitPolicy } from './wait.js';

/** The power words are drivers/power.ts's; re-exported here for the capability interfaces' users. */
export type { PowerAction, PowerReading } from './power.js';
export type BootDevice = 'pxe' | 'disk' | 'cdrom';
export type BootMode = 'uefi' | 'legacy';

export interface BootSettings {
  device: BootDevice;
  /** false: next boot only. */
  persistent: boolean;
  mode: BootMode;
}

export type Capability = 'power' | 'boot' | 'media' | 'inventory';

export interface CallOptions {
  /** Aborts the call; a hung call is abandoned (and its process killed). */
  signal?: AbortSignal | undefined;
  /** Deadline for this one call in ms. */
  timeoutMs?: number | undefined;
}

/**
 * What a driver needs to reach one BMC: the node's settings as its schema validated them (passed through by the core
 * untouched), and a way to read the secrets they name. A secret is read at call time, so a rotated file is picked up.
 */
export interface BmcTarget {
  /** Node id, for logs and the fake lab. */
  nodeId: string;
  /** The node's `bmc` settings (every key but `driver`), valid for the driver's `settings` schema. */
  settings: DriverSettings;
  /**
   * The content of the file named by setting `key`, or null when the setting is absent. Only for keys the driver's
   * schema marks `x-secret`; never logged. @throws Error when the key is not a secret setting or the file is unreadable.
   */
  secret(key: string): Promise<string | null>;
}

/**
 * Power. `setPower('on')` succeeds if already on; `setPower('off')` succeeds if already off; reboot of an off server
 * is the driver's choice and documented per driver. A driver's `setPower` only sends; verification is done by the
 * caller (drivers/bmc.ts) by polling `getPower`.
 */
export interface PowerDriver {
  getPower(opts?: CallOptions): Promise<PowerReading>;
  setPower(action: PowerAction, opts?: CallOptions): Promise<void>;
  /** Which actions this BMC supports (soft-off, soft-reboot may be missing). */
  supportedPowerActions(): readonly PowerAction[];
}

/**
 * Boot device. Setting the same device again succeeds. `getBoot` reads back what the BMC will do: null when it holds
 * no override (it follows the server's own boot order). `clearBoot` drops any override; clearing none succeeds.
 */
export interface BootDriver {
  /**
   * false: the BMC keeps a boot device for the next boot only (the operator said so: the ipmi driver's
   * `persistent_boot: false`); a persistent request is set for the next boot only and verified as such.
   */
  readonly keepsPersistent?: boolean;
  setBoot(settings: BootSettings, opts?: CallOptions): Promise<void>;
  getBoot(opts?: CallOptions): Promise<BootSettings | null>;
  clearBoot(opts?: CallOptions): Promise<void>;
}

/** Virtual media. Inserting the same image again succeeds; ejecting empty media succeeds. */
export interface MediaDriver {
  insertMedia(url: string, opts?: CallOptions): Promise<void>;
  ejectMedia(opts?: CallOptions): Promise<void>;
}

export interface Inventory {
  manufacturer: string | null;
  model: string | null;
  serial: string | null;
  macs: string[];
  cpus: number | null;
  memory_mib: number | null;
}

export interface InventoryDriver {
  getInventory(opts?: CallOptions): Promise<Inventory>;
}

/** One driver bound to one BMC. */
export interface BoundDriver {
  readonly name: string;
  readonly capabilities: readonly Capability[];
  power?: PowerDriver;
  boot?: BootDriver;
  media?: MediaDriver;
  inventory?: InventoryDriver;
  /** Release sessions and connections. */
  close?(): Promise<void>;
}

/**
 * What a driver module declares: its name, its capabilities and the TypeBox schema of its settings (secret fields
 * marked `x-secret`, see drivers/settings.ts). `check` adds rules a schema cannot say (e.g. "needs an https://
 * address"); it runs on every node naming the driver, with the settings as given.
 */
export interface DriverDefinition {
  readonly name: string;
  readonly capabilities: readonly Capability[];
  readonly settings: TObject;
  /** For tests and the demo only: refused unless `allow_fake_drivers: true`. */
  readonly testOnly?: boolean;
  check?(settings: DriverSettings, report: SettingsReport, ctx: SettingsContext): void;
}

/** A driver that can be bound: `create` binds it to one BMC with the ports it may use. */
export interface DriverFactory extends DriverDefinition {
  create(target: BmcTarget, ports: DriverPorts): BoundDriver;
}

/** Waiting policy for verification (drivers/wait.ts): the delays between read-backs; the last repeats until the deadline. */
export type { WaitPolicy } from './wait.js';

/** Which drivers were tried for a call and which succeeded: recorded in the action's events. */
export interface CallRecord {
  tried: string[];
  succeeded: string | null;
}

/**
 * The one handle the agent uses for a node's BMC (drivers/bmc.ts): walks the node's ordered drivers per
 * capability (falling through only on errors that prove nothing was sent), holds one lock per BMC with a minimum gap
 * between commands, and verifies every change by reading back. After a timeout it reads power back before anything
 * else, so a reset never runs twice.
 */
/** Options of a verified power change. */
export interface SetPowerOptions extends CallOptions {
  wait?: WaitPolicy;
  /**
   * Called each time a power command is about to be handed to a driver (after the wait for the BMC's turn, under the
   * BMC's lock and the command's deadline): from then on the command may have reached the BMC. The engine records it,
   * so a restart knows whether to verify the change instead of sending it again. A returned promise is awaited: the
   * command is sent only once it resolves (the record is on disk); if it rejects, nothing is sent and the call fails
   * with that error (BMC_ERR_COMMAND_FAILED, not nothingSent: no other driver is tried).
   */
  onSending?: (action: PowerAction) => void | Promise<void> | null;
}

export interface Bmc {
  readonly nodeId: string;
  supports(capability: Capability, action?: PowerAction): boolean;
  /** @throws BmcError */
  readPower(opts?: CallOptions): Promise<{ power: PowerReading } & CallRecord>;
  /**
   * Sends the action and polls until the power reads as expected (on for on, off for off/soft-off) under the waiting
   * policy. A reboot is carried out as a verified off then a verified on (soft-reboot: soft-off then on), never as
   * the BMC's reset verified by "reads on", which an ignored reset would pass.
   * @throws BmcError BMC_ERR_VERIFY_FAILED when the read-back never matches.
   */
  setPower(action: PowerAction, opts?: SetPowerOptions): Promise<{ power: PowerReading } & CallRecord>;
  /** Sets and re-reads the boot override. @throws BmcError BMC_ERR_BOOT_FLAGS_IGNORED on a mismatch. */
  setBoot(settings: BootSettings, opts?: CallOptions): Promise<CallRecord>;
  /** Drops the boot override and re-reads it. @throws BmcError BMC_ERR_BOOT_FLAGS_IGNORED when one is still held. */
  clearBoot(opts?: CallOptions): Promise<CallRecord>;
  insertMedia(url: string, opts?: CallOptions): Promise<CallRecord>;
  ejectMedia(opts?: CallOptions): Promise<CallRecord>;
  close(): Promise<void>;
}
