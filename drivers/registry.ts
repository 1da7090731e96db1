/**
 * The driver registry: which drivers exist, what settings each takes, and binding a node's ordered list of names to
 * its BMC. Adding a driver is a folder under drivers/ plus one line in `builtinDrivers`.
 *
 * A driver is known (its settings schema validates nodes) and, when it has `create` and is not withheld, bindable.
 */
import { Type, type TObject, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { BmcError } from './errors.js';
import { fakeDriverDefinition } from './fake/settings.js';
import { ipmiDriver } from './ipmi/index.js';
import { defaultDriverPorts, type DriverPorts } from './ports.js';
import { redfishDriver } from './redfish/index.js';
import { checkCommonSettings, keysMarked, satisfies, SECRET, type DriverSettings, type SettingsContext, type SettingsReport } from './settings.js';
import type { BmcTarget, BoundDriver, DriverDefinition, DriverFactory } from './types.js';

/** The settings schema of a node naming `drivers`, and the keys it accepts only because another driver uses them. */
export interface NodeSettingsSchema {
  schema: TObject;
  /** key -> the driver that uses it, for keys none of the node's drivers declares (a warning, not an error). */
  foreign: Map<string, string>;
}

const isFactory = (d: DriverDefinition): d is DriverFactory => typeof (d as Partial<DriverFactory>).create === 'function';

export class DriverRegistry {
  private readonly known = new Map<string, DriverDefinition>();
  private readonly factories = new Map<string, DriverFactory>();
  /** Known but not bindable, with why (e.g. `fake` without allow_fake_drivers, a driver not implemented yet). */
  private readonly withheld = new Map<string, string>();
  /** settingsSchema's answers by driver list (a config names a handful of lists for all its nodes); reset on changes. */
  private readonly schemas = new Map<string, NodeSettingsSchema>();

  constructor(private readonly ports: DriverPorts = defaultDriverPorts) {}

  /** @throws Error when a driver of that name is already registered. */
  register(factory: DriverFactory): this {
    if (this.factories.has(factory.name)) throw new Error(`driver ${factory.name} is already registered`);
    this.known.set(factory.name, factory);
    this.factories.set(factory.name, factory);
    this.withheld.delete(factory.name);
    this.schemas.clear();
    return this;
  }

  /** Declares a driver whose settings are known but which cannot be bound, and why (binding it says so). */
  declare(def: DriverDefinition, reason: string): this {
    if (this.factories.has(def.name)) return this;
    this.known.set(def.name, def);
    this.withheld.set(def.name, reason);
    this.schemas.clear();
    return this;
  }

  /** Bindable names, in registration order. */
  names(): string[] {
    return [...this.factories.keys()];
  }

  /** Every known name (bindable or not), in declaration order. */
  knownNames(): string[] {
    return [...this.known.keys()];
  }

  has(name: string): boolean {
    return this.factories.has(name);
  }

  get(name: string): DriverFactory | undefined {
    return this.factories.get(name);
  }

  definition(name: string): DriverDefinition | undefined {
    return this.known.get(name);
  }

  /**
   * The schema a node's settings must satisfy: the properties of its drivers (the first driver declaring a key wins),
   * every key any of them requires, plus the keys of the other known drivers (validated, but `foreign`).
   * Built once per driver list and shared: callers must not change it.
   */
  settingsSchema(drivers: readonly string[]): NodeSettingsSchema {
    // Keyed by the known names only, each once (what the schema is built from): the cache holds at most one entry per
    // ordered list of known drivers, whatever names a file tries.
    const own = [...new Set(drivers)].map((n) => this.known.get(n)).filter((d): d is DriverDefinition => d !== undefined);
    const key = own.map((d) => d.name).join('\n');
    let found = this.schemas.get(key);
    if (found === undefined) this.schemas.set(key, (found = this.buildSettingsSchema(own)));
    return found;
  }

  private buildSettingsSchema(own: readonly DriverDefinition[]): NodeSettingsSchema {
    const props: Record<string, TSchema> = {};
    const required = new Set<string>();
    const foreign = new Map<string, string>();
    for (const d of own) {
      for (const [k, s] of Object.entries(d.settings.properties as Record<string, TSchema>)) props[k] ??= s;
      for (const k of (d.settings.required ?? []) as string[]) required.add(k);
    }
    for (const d of this.known.values()) {
      if (own.includes(d)) continue;
      for (const [k, s] of Object.entries(d.settings.properties as Record<string, TSchema>)) {
        if (props[k] !== undefined) continue;
        props[k] = s;
        foreign.set(k, d.name);
      }
    }
    const schema = Type.Object(props, { additionalProperties: false });
    // Required: what the node's own drivers require (a foreign key is never required, whatever its driver says).
    if (required.size > 0) schema.required = [...required];
    else delete schema.required;
    return { schema, foreign };
  }

  /**
   * The rules beyond the schema: known names, test-only drivers, each driver's `check` (the first error of a key
   * wins, in the node's order), and keys only another driver uses. Reports under the key (`driver`, `address`, ...).
   */
  checkSettings(
    drivers: readonly string[],
    settings: DriverSettings,
    report: SettingsReport,
    ctx: Omit<SettingsContext, 'drivers'> & { allowTestOnly: boolean },
  ): void {
    for (const name of drivers) {
      const def = this.known.get(name);
      if (!def) report.error('driver', `unknown driver "${name}" (known: ${this.knownNames().join(', ')})`);
      else if (def.testOnly && !ctx.allowTestOnly) report.error('driver', `the ${name} driver requires allow_fake_drivers: true`);
    }
    const full: SettingsContext = { drivers, nodeName: ctx.nodeName };
    const errored = new Set<string>();
    const once: SettingsReport = {
      error: (key, message) => {
        if (errored.has(key)) return;
        errored.add(key);
        report.error(key, message);
      },
      warn: (key, message) => report.warn(key, message),
    };
    for (const name of drivers) this.known.get(name)?.check?.(settings, once, full);
    const { foreign } = this.settingsSchema(drivers);
    for (const [key, owner] of foreign) {
      if (settings[key] !== undefined) report.warn(key, `only the ${owner} driver uses it`);
    }
    checkCommonSettings(settings, report, full);
  }

  /**
   * Binds each named driver to the target, keeping the order (the order of fall-through). Each driver reads only the
   * secrets its schema marks `x-secret`.
   * @throws BmcError BMC_ERR_UNSUPPORTED for an empty list, an unknown, withheld or settings-only name, a name given
   *   twice, or settings that do not fit the drivers' schemas.
   * @throws Error when a driver rejects the target's settings (the drivers bound so far are closed).
   */
  bindAll(names: readonly string[], target: BmcTarget): BoundDriver[] {
    if (names.length === 0) throw new BmcError('BMC_ERR_UNSUPPORTED', 'registry', `node ${target.nodeId} names no BMC driver`);
    for (const [i, name] of names.entries()) {
      if (names.indexOf(name) !== i) {
        throw new BmcError('BMC_ERR_UNSUPPORTED', name, `node ${target.nodeId} names BMC driver ${name} twice`);
      }
      if (!this.factories.has(name)) {
        const why = this.withheld.get(name);
        const message = why
          ? `BMC driver ${name} of node ${target.nodeId} is not available: ${why}`
          : `unknown BMC driver ${JSON.stringify(name)} for node ${target.nodeId} (available: ${this.names().join(', ') || 'none'})`;
        throw new BmcError('BMC_ERR_UNSUPPORTED', name, message);
      }
    }
    const { schema } = this.settingsSchema(names);
    const bad = satisfies(schema, target.settings) ? undefined : Value.Errors(schema, target.settings).First();
    if (bad) {
      const where = bad.path === '' ? 'settings' : bad.path.slice(1).replace(/\//g, '.');
      throw new BmcError('BMC_ERR_UNSUPPORTED', 'registry', `BMC settings of node ${target.nodeId} do not fit ${names.join(', ')}: ${where}: ${bad.message}`);
    }
    const bound: BoundDriver[] = [];
    try {
      for (const name of names) {
        const factory = this.factories.get(name)!;
        const secrets = new Set(keysMarked(factory.settings, SECRET));
        const own: BmcTarget = {
          nodeId: target.nodeId,
          settings: target.settings,
          secret: (key) =>
            secrets.has(key) ? target.secret(key) : Promise.reject(new Error(`${key} is not a secret setting of the ${name} driver`)),
        };
        bound.push(factory.create(own, this.ports));
      }
    } catch (e) {
      for (const d of bound) void d.close?.().catch(() => undefined);
      throw e;
    }
    return bound;
  }
}

export interface DefaultRegistryOptions {
  /** `allow_fake_drivers` of the config: the in-memory fake is for tests and the demo only. */
  allowFake: boolean;
  /**
   * Bindable drivers the caller supplies for built-in names the registry only knows by their settings: agent/fakes.ts
   * passes the fake driver bound to its lab (test-only drivers are taken only with `allowFake`).
   */
  bindable?: readonly DriverFactory[] | undefined;
  /** What the drivers may use (clock, logger, process runner, HTTP client); a system clock and no logs when absent. */
  ports?: DriverPorts | undefined;
}

/**
 * Every driver metald ships. One line per driver. A definition without `create` has its settings only: the fake,
 * whose code is loaded only by agent/fakes.ts (never in production).
 */
export function builtinDrivers(): DriverDefinition[] {
  return [
    ipmiDriver, //            drivers/ipmi/     (ipmitool; needs ports.run)
    redfishDriver, //         drivers/redfish/  (undici; needs ports.http)
    fakeDriverDefinition, //  drivers/fake/     (tests and the demo only; bindable through `bindable`)
  ];
}

/** The registry of every driver metald ships: test-only drivers are withheld unless allowed. */
export function createDefaultRegistry(opts: DefaultRegistryOptions): DriverRegistry {
  const registry = new DriverRegistry(opts.ports);
  for (const builtin of builtinDrivers()) {
    const supplied = opts.bindable?.find((f) => f.name === builtin.name);
    const d = isFactory(builtin) ? builtin : supplied ?? builtin;
    if (d.testOnly && !opts.allowFake) {
      registry.declare(d, `the ${d.name} driver is for tests and the demo only (set allow_fake_drivers: true)`);
    } else if (!isFactory(d)) {
      registry.declare(d, d.testOnly ? `the ${d.name} driver is not wired in this process` : `the ${d.name} driver is not implemented yet`);
    } else registry.register(d);
  }
  return registry;
}
