/**
 * The Redfish emulator's state: many emulated systems (each with its BMC's manager and one virtual CD), their
 * asynchronous power transitions, boot overrides, virtual media, the fault knobs and the log of every command each
 * system received. No HTTP here (server.ts renders and routes); tests may drive this directly in-process.
 */
import { EmulatedNode, parseNodeSettings, type NodeSettings } from '../node/node.js';

export const RESET_TYPES = ['On', 'ForceOff', 'GracefulShutdown', 'GracefulRestart', 'ForceRestart', 'Nmi', 'ForceOn', 'PushPowerButton', 'PowerCycle'] as const;
export type ResetType = (typeof RESET_TYPES)[number];
export const BOOT_TARGETS = ['None', 'Pxe', 'Cd', 'Usb', 'Hdd', 'BiosSetup', 'UefiHttp'] as const;
export type BootTarget = (typeof BOOT_TARGETS)[number];
export const BOOT_ENABLED = ['Disabled', 'Once', 'Continuous'] as const;
export type BootEnabled = (typeof BOOT_ENABLED)[number];
export const BOOT_MODES = ['Legacy', 'UEFI'] as const;
export type BootMode = (typeof BOOT_MODES)[number];
/** DMTF ComputerSystem.PowerState values the emulator passes through. */
export type PowerState = 'On' | 'Off' | 'PoweringOn' | 'PoweringOff';

/** What a system's BMC offers; settable per system at start and through `PATCH /emulator/systems/{id}`. */
export interface SystemProfile {
  /** `ResetType@Redfish.AllowableValues`; a reset type not listed is refused with 400. */
  resetTypes: ResetType[];
  /** `BootSourceOverrideTarget@Redfish.AllowableValues`. */
  bootTargets: BootTarget[];
  /** How long a reset takes before PowerState changes (PoweringOn/PoweringOff meanwhile). */
  powerDelayMs: number;
  /** When true, a reset answers 202 + Location of a task that completes with the transition. */
  tasks: boolean;
  /** When true, a PATCH without If-Match is refused with 428 (as some BMCs do). */
  requireIfMatch: boolean;
  /** Where the virtual CD is linked: under the Manager (the usual place), the System, or both. */
  vmediaUnder: 'manager' | 'system' | 'both';
  /** The server behind the BMC (test/emulators/node/node.ts): it boots metald's installer or its disk. */
  node?: NodeSettings;
}

/**
 * Fault knobs (settable at start with `--faults JSON` and through `PUT /emulator/faults`). Request-level faults
 * (hang, unavailable, dropSession, dropConnection, delayMs) apply to every /redfish request, or only to the paths of
 * `systems` (Systems/{id}, Managers/{id}) when that list is given; the others apply to the systems listed (all when none).
 */
export interface Faults {
  /** Requests are held without an answer (until the fault is cleared or the emulator stops). */
  hang?: boolean;
  /** `true`: every request answers 503; a number: the next N requests do. */
  unavailable?: boolean | number;
  /** The next authenticated request finds every session gone (401), as a BMC that dropped its session table. */
  dropSession?: boolean;
  /** With dropSession: only the next authenticated request of this method drops it (`POST`: the reset itself, mid-call). */
  dropSessionOn?: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** The next request's connection is destroyed without an answer. */
  dropConnection?: boolean;
  /** Every answer is delayed this long. */
  delayMs?: number;
  /** A boot override set by PATCH goes back to what it was this long after. */
  revertBootAfterMs?: number;
  /** A power-on takes this long instead of the system's powerDelayMs (a slow POST). */
  powerOnDelayMs?: number;
  /** Every login and Basic auth is refused, the right password included. */
  rejectPassword?: boolean;
  /** `true`: every valid reset answers 500 InternalError (with its @Message.ExtendedInfo) and changes nothing; N: the next N do. */
  failReset?: boolean | number;
  systems?: string[];
}

const FAULT_KEYS: Record<keyof Faults, 'boolean' | 'number' | 'count' | 'list' | 'method'> = {
  hang: 'boolean', unavailable: 'count', dropSession: 'boolean', dropSessionOn: 'method', dropConnection: 'boolean', delayMs: 'number',
  revertBootAfterMs: 'number', powerOnDelayMs: 'number', rejectPassword: 'boolean', systems: 'list',
  failReset: 'count',
};

/** Validates a fault object from outside (CLI or control endpoint). @throws Error naming the bad key. */
export function parseFaults(input: unknown): Faults {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new Error('faults must be a JSON object');
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(input)) {
    const kind = FAULT_KEYS[k as keyof Faults];
    if (!kind) throw new Error(`unknown fault "${k}" (known: ${Object.keys(FAULT_KEYS).join(', ')})`);
    const ok =
      kind === 'boolean' ? typeof v === 'boolean'
      : kind === 'number' ? Number.isInteger(v) && (v as number) >= 0
      : kind === 'count' ? typeof v === 'boolean' || (Number.isInteger(v) && (v as number) >= 0)
      : kind === 'method' ? typeof v === 'string' && ['GET', 'POST', 'PATCH', 'DELETE'].includes(v)
      : Array.isArray(v) && v.every((s) => typeof s === 'string');
    if (!ok) throw new Error(`fault "${k}" must be ${kind === 'count' ? 'a boolean or a count' : kind === 'method' ? 'one of GET, POST, PATCH, DELETE' : kind === 'list' ? 'a list of system ids' : `a ${kind}${kind === 'number' ? ' (integer ms >= 0)' : ''}`}`);
    out[k] = v;
  }
  return out as Faults;
}

/** One command a system received (or did by itself, `by: 'emulator'`), in arrival order. */
export interface CommandRecord {
  seq: number;
  /** ms since the emulator started. */
  atMs: number;
  system: string;
  kind: 'reset' | 'boot-override' | 'boot-revert' | 'media-insert' | 'media-eject' | 'power-settled' | 'booted' | 'node';
  args: Record<string, unknown>;
  /** HTTP status answered (0 for the emulator's own events). */
  status: number;
  by: 'client' | 'emulator' | 'node';
}

/** A system's own state as `GET /emulator/systems/{id}` answers it. */
export interface SystemDump {
  id: string;
  powerState: PowerState;
  boot: BootOverride;
  media: Media;
  profile: SystemProfile;
  etag: string;
  reads: number;
  lastReadAtMs: number | null;
  boots: EmulatedSystem['boots'];
  commands: CommandRecord[];
}

export interface BootOverride {
  target: BootTarget;
  enabled: BootEnabled;
  mode: BootMode;
}

export interface Media {
  image: string | null;
  inserted: boolean;
  writeProtected: boolean;
}

export interface Task {
  id: string;
  state: 'Running' | 'Completed' | 'Exception';
  system: string;
  startTime: string;
  endTime: string | null;
  message: string;
}

/** A refused command: the HTTP status and the DMTF Base message id the server renders into @Message.ExtendedInfo. */
export class RedfishRefusal extends Error {
  constructor(
    readonly status: number,
    readonly messageId: string,
    message: string,
    readonly args: string[] = [],
  ) {
    super(message);
  }
}

export class EmulatedSystem {
  power: PowerState = 'Off';
  boot: BootOverride = { target: 'None', enabled: 'Disabled', mode: 'UEFI' };
  media: Media = { image: null, inserted: false, writeProtected: true };
  /** Bumped on every change of the System resource; the ETag is derived from it. */
  version = 1;
  mediaVersion = 1;
  /** Each boot the system did (power-on or restart), with the device it booted from. */
  boots: { atMs: number; device: BootTarget; mode: BootMode }[] = [];
  commands: CommandRecord[] = [];
  /** GETs of the System resource (what a power sync reads). */
  reads = 0;
  lastReadAtMs: number | null = null;
  timer: NodeJS.Timeout | null = null;
  revertTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly id: string,
    public profile: SystemProfile,
  ) {}

  etag(): string {
    return `"${this.id}-${this.version}"`;
  }

  mediaEtag(): string {
    return `"${this.id}-cd-${this.mediaVersion}"`;
  }
}

export interface ModelOptions {
  systems: number;
  /** System ids are `${idPrefix}${n}`, n from 1. */
  idPrefix?: string;
  profile?: Partial<SystemProfile>;
  /** Per-system profile overrides, by id. */
  overrides?: Record<string, Partial<SystemProfile>>;
  /** Initial power state of every system. */
  power?: 'On' | 'Off';
  faults?: Faults;
  now?: () => number;
}

export const DEFAULT_PROFILE: SystemProfile = {
  resetTypes: ['On', 'ForceOff', 'GracefulShutdown', 'GracefulRestart', 'ForceRestart', 'Nmi', 'PushPowerButton', 'PowerCycle'],
  bootTargets: ['None', 'Pxe', 'Cd', 'Hdd', 'BiosSetup', 'UefiHttp'],
  powerDelayMs: 200,
  tasks: false,
  requireIfMatch: false,
  vmediaUnder: 'manager',
};

/** Validates a partial profile from outside. @throws Error naming the bad key. */
export function parseProfile(input: unknown): Partial<SystemProfile> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new Error('a system profile must be a JSON object');
  const o = input as Record<string, unknown>;
  const out: Partial<SystemProfile> = {};
  for (const [k, v] of Object.entries(o)) {
    if (k === 'resetTypes' || k === 'bootTargets') {
      const allowed: readonly string[] = k === 'resetTypes' ? RESET_TYPES : BOOT_TARGETS;
      if (!Array.isArray(v) || !v.every((s) => typeof s === 'string' && allowed.includes(s))) throw new Error(`${k} must be a list of ${allowed.join('|')}`);
      (out as Record<string, unknown>)[k] = [...v];
    } else if (k === 'powerDelayMs') {
      if (!Number.isInteger(v) || (v as number) < 0) throw new Error('powerDelayMs must be an integer >= 0');
      out.powerDelayMs = v as number;
    } else if (k === 'tasks' || k === 'requireIfMatch') {
      if (typeof v !== 'boolean') throw new Error(`${k} must be a boolean`);
      out[k] = v;
    } else if (k === 'node') {
      out.node = parseNodeSettings(v);
    } else if (k === 'vmediaUnder') {
      if (v !== 'manager' && v !== 'system' && v !== 'both') throw new Error('vmediaUnder must be manager|system|both');
      out.vmediaUnder = v;
    } else throw new Error(`unknown system setting "${k}"`);
  }
  return out;
}

/** System properties a PATCH may not change. */
const READ_ONLY = ['Id', 'Name', 'PowerState', 'Status', 'UUID', 'Actions', 'Links'];

export class RedfishModel {
  readonly systems = new Map<string, EmulatedSystem>();
  private readonly nodes = new Map<string, EmulatedNode>();
  readonly tasks = new Map<string, Task>();
  faults: Faults;
  private seq = 0;
  private taskSeq = 0;
  private readonly start: number;
  readonly now: () => number;

  constructor(o: ModelOptions) {
    this.now = o.now ?? Date.now;
    this.start = this.now();
    this.faults = o.faults ?? {};
    const prefix = o.idPrefix ?? 'sys-';
    for (let n = 1; n <= o.systems; n++) {
      const id = `${prefix}${n}`;
      const s = new EmulatedSystem(id, { ...DEFAULT_PROFILE, ...o.profile, ...o.overrides?.[id] });
      s.power = o.power ?? 'Off';
      this.systems.set(id, s);
    }
    for (const id of Object.keys(o.overrides ?? {})) if (!this.systems.has(id)) throw new Error(`override for unknown system "${id}"`);
  }

  elapsed(): number {
    return this.now() - this.start;
  }

  /** Whether a system-scoped fault applies to this system. */
  faultFor(id: string | null): boolean {
    const only = this.faults.systems;
    return !only || (id !== null && only.includes(id));
  }

  record(s: EmulatedSystem, kind: CommandRecord['kind'], args: Record<string, unknown>, status: number, by: CommandRecord['by'] = 'client'): void {
    this.seq += 1;
    s.commands.push({ seq: this.seq, atMs: this.elapsed(), system: s.id, kind, args, status, by });
  }

  /**
   * Starts a reset. Power changes after the delay (PoweringOn/PoweringOff meanwhile); a reset during a transition
   * replaces it. Returns the task when the system's profile asks for tasks.
   * @throws RedfishRefusal 400 for a reset type the system does not list.
   */
  reset(s: EmulatedSystem, type: unknown): Task | null {
    if (typeof type !== 'string' || !(RESET_TYPES as readonly string[]).includes(type) || !s.profile.resetTypes.includes(type as ResetType)) {
      const e = new RedfishRefusal(400, 'Base.1.8.ActionParameterValueNotInList', `The value ${JSON.stringify(type)} for the parameter ResetType is not in the list of acceptable values (${s.profile.resetTypes.join(', ')}).`, [String(type), 'ResetType']);
      this.record(s, 'reset', { ResetType: type }, 400);
      throw e;
    }
    const t = type as ResetType;
    const fail = this.faultFor(s.id) ? this.faults.failReset : undefined;
    if (fail === true || (typeof fail === 'number' && fail > 0)) {
      if (typeof fail === 'number') this.faults = { ...this.faults, failReset: fail - 1 };
      this.record(s, 'reset', { ResetType: t }, 500);
      throw new RedfishRefusal(500, 'Base.1.8.InternalError', `The power controller did not carry out ${t}: it is not responding.`, []);
    }
    const on = s.power === 'On' || s.power === 'PoweringOn';
    let to: 'On' | 'Off' | 'restart' | null;
    if (t === 'On' || t === 'ForceOn') to = on ? null : 'On';
    else if (t === 'ForceOff' || t === 'GracefulShutdown') to = on ? 'Off' : null;
    else if (t === 'PushPowerButton') to = on ? 'Off' : 'On';
    else if (t === 'Nmi') to = null;
    else to = on ? 'restart' : t === 'GracefulRestart' ? null : 'On';
    if (t === 'GracefulRestart' && !on) {
      this.record(s, 'reset', { ResetType: t }, 409);
      throw new RedfishRefusal(409, 'Base.1.8.ActionNotSupported', 'GracefulRestart is not possible while the system is off.', ['GracefulRestart']);
    }
    this.record(s, 'reset', { ResetType: t, from: s.power }, s.profile.tasks && to !== null ? 202 : 204);
    if (to === null) return null;
    this.cancelTransition(s);
    const delay = to === 'Off' ? s.profile.powerDelayMs : (this.faultFor(s.id) ? this.faults.powerOnDelayMs : undefined) ?? s.profile.powerDelayMs;
    s.power = to === 'Off' ? 'PoweringOff' : 'PoweringOn';
    s.version += 1;
    const task = s.profile.tasks ? this.newTask(s, `Reset ${t}`) : null;
    s.timer = setTimeout(() => {
      s.timer = null;
      s.power = to === 'Off' ? 'Off' : 'On';
      s.version += 1;
      this.record(s, 'power-settled', { PowerState: s.power }, 0, 'emulator');
      if (to !== 'Off') this.booted(s);
      else this.nodeOf(s)?.off();
      if (task) Object.assign(task, { state: 'Completed', endTime: new Date(this.now()).toISOString(), message: `PowerState is ${s.power}` });
    }, delay);
    return task;
  }

  /** A boot consumes a Once override (DMTF: Enabled goes back to Disabled). */
  private booted(s: EmulatedSystem): void {
    const device: BootTarget = s.boot.enabled === 'Disabled' || s.boot.target === 'None' ? 'Hdd' : s.boot.target;
    s.boots.push({ atMs: this.elapsed(), device, mode: s.boot.mode });
    this.record(s, 'booted', { device, mode: s.boot.mode }, 0, 'emulator');
    this.nodeOf(s)?.boot(device, s.media.inserted ? s.media.image : null);
    if (s.boot.enabled === 'Once') {
      s.boot = { ...s.boot, enabled: 'Disabled' };
      s.version += 1;
    }
  }

  /** The node emulator behind a system with a `node` setting, made on first use. */
  private nodeOf(s: EmulatedSystem): EmulatedNode | null {
    const settings = s.profile.node;
    if (!settings) return null;
    let n = this.nodes.get(s.id);
    if (!n || n.settings !== settings) {
      n?.off();
      n = new EmulatedNode(
        settings,
        (e) => this.record(s, 'node', e, 0, 'node'),
        () => {
          // The installer's poweroff: the server is off at once (no reset, nothing of the BMC's).
          this.cancelTransition(s);
          s.power = 'Off';
          s.version += 1;
          this.record(s, 'power-settled', { PowerState: 'Off' }, 0, 'node');
        },
      );
      this.nodes.set(s.id, n);
    }
    return n;
  }

  /** Powers off every node emulator (the emulator stops). */
  stopNodes(): void {
    for (const n of this.nodes.values()) n.off();
  }

  private cancelTransition(s: EmulatedSystem): void {
    if (s.timer) clearTimeout(s.timer);
    s.timer = null;
    for (const t of this.tasks.values()) if (t.system === s.id && t.state === 'Running') Object.assign(t, { state: 'Exception', endTime: new Date(this.now()).toISOString(), message: 'superseded by another reset' });
  }

  private newTask(s: EmulatedSystem, name: string): Task {
    this.taskSeq += 1;
    const t: Task = { id: String(this.taskSeq), state: 'Running', system: s.id, startTime: new Date(this.now()).toISOString(), endTime: null, message: name };
    this.tasks.set(t.id, t);
    return t;
  }

  /**
   * Applies a PATCH of the System's Boot object.
   * @throws RedfishRefusal 400 for an unknown property or a value not in the allowable list.
   */
  patchBoot(s: EmulatedSystem, body: Record<string, unknown>): void {
    const fail = (status: number, id: string, msg: string, args: string[]): never => {
      this.record(s, 'boot-override', body, status);
      throw new RedfishRefusal(status, id, msg, args);
    };
    for (const k of Object.keys(body)) {
      if (k === 'Boot') continue;
      const readOnly = READ_ONLY.includes(k);
      fail(400, readOnly ? 'Base.1.8.PropertyNotWritable' : 'Base.1.8.PropertyUnknown', `The property ${k} is ${readOnly ? 'read-only' : 'not known'}.`, [k]);
    }
    const b = body.Boot;
    if (typeof b !== 'object' || b === null || Array.isArray(b)) return fail(400, 'Base.1.8.PropertyValueTypeError', 'Boot must be an object.', ['Boot']);
    const next: BootOverride = { ...s.boot };
    const lists: Record<string, readonly string[]> = { BootSourceOverrideTarget: s.profile.bootTargets, BootSourceOverrideEnabled: BOOT_ENABLED, BootSourceOverrideMode: BOOT_MODES };
    const field = { BootSourceOverrideTarget: 'target', BootSourceOverrideEnabled: 'enabled', BootSourceOverrideMode: 'mode' } as const;
    for (const [k, v] of Object.entries(b)) {
      const allowed = lists[k];
      if (!allowed) return fail(400, 'Base.1.8.PropertyUnknown', `The property Boot/${k} is not known.`, [`Boot/${k}`]);
      if (typeof v !== 'string' || !allowed.includes(v)) return fail(400, 'Base.1.8.PropertyValueNotInList', `The value ${JSON.stringify(v)} for the property Boot/${k} is not in the list of acceptable values (${allowed.join(', ')}).`, [String(v), `Boot/${k}`]);
      (next as unknown as Record<string, string>)[field[k as keyof typeof field]] = v;
    }
    const before = s.boot;
    s.boot = next;
    s.version += 1;
    this.record(s, 'boot-override', b as Record<string, unknown>, 200);
    const revert = this.faultFor(s.id) ? this.faults.revertBootAfterMs : undefined;
    if (revert !== undefined) {
      if (s.revertTimer) clearTimeout(s.revertTimer);
      const undo = () => {
        s.revertTimer = null;
        s.boot = before;
        s.version += 1;
        this.record(s, 'boot-revert', { ...before }, 0, 'emulator');
      };
      // 0: at once, before the PATCH is answered (a timer of 0 raced a fast client's read-back on keep-alive).
      if (revert === 0) undo();
      else s.revertTimer = setTimeout(undo, revert);
    }
  }

  /** @throws RedfishRefusal 400 for a missing or non-http(s) Image, 409 when media is already inserted. */
  insertMedia(s: EmulatedSystem, body: Record<string, unknown>): void {
    const logged = { Image: body.Image, Inserted: body.Inserted, WriteProtected: body.WriteProtected };
    const image = body.Image;
    if (typeof image !== 'string' || !/^https?:\/\/[^\s]+$/.test(image)) {
      this.record(s, 'media-insert', logged, 400);
      throw new RedfishRefusal(400, 'Base.1.8.ActionParameterValueFormatError', `The value ${JSON.stringify(image)} for the parameter Image is not an http(s) URI.`, [String(image), 'Image']);
    }
    if (s.media.inserted) {
      this.record(s, 'media-insert', logged, 409);
      throw new RedfishRefusal(409, 'Base.1.8.ResourceInUse', `Virtual media is already inserted (${s.media.image}); eject it first.`);
    }
    s.media = { image, inserted: body.Inserted !== false, writeProtected: body.WriteProtected !== false };
    s.mediaVersion += 1;
    this.record(s, 'media-insert', logged, 204);
  }

  /** Ejecting an empty drive succeeds. */
  ejectMedia(s: EmulatedSystem): void {
    s.media = { image: null, inserted: false, writeProtected: true };
    s.mediaVersion += 1;
    this.record(s, 'media-eject', {}, 204);
  }

  /** Test setup: sets power directly (no transition, no log entry) and/or changes the profile. */
  configure(s: EmulatedSystem, o: { power?: unknown; profile?: Partial<SystemProfile> }): void {
    if (o.power !== undefined) {
      if (o.power !== 'On' && o.power !== 'Off') throw new Error('powerState must be On or Off');
      this.cancelTransition(s);
      s.power = o.power;
      s.version += 1;
    }
    if (o.profile) s.profile = { ...s.profile, ...o.profile };
  }

  /** Everything a test may assert about one system. */
  dump(s: EmulatedSystem): SystemDump {
    return { id: s.id, powerState: s.power, boot: s.boot, media: s.media, profile: s.profile, etag: s.etag(), reads: s.reads, lastReadAtMs: s.lastReadAtMs, boots: s.boots, commands: s.commands };
  }

  /** Stops every pending timer (on close). */
  stop(): void {
    this.stopNodes();
    for (const s of this.systems.values()) {
      if (s.timer) clearTimeout(s.timer);
      if (s.revertTimer) clearTimeout(s.revertTimer);
      s.timer = s.revertTimer = null;
    }
  }
}
