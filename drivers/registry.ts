/**
 * The driver registry: which driver names exist, and binding a node's ordered list of names to its BMC.
 * Adding a driver is a folder under drivers/ plus one `register` line in `createDefaultRegistry`.
 */
import { BmcError } from './errors.js';
import { fakeDriverFactory } from './fake/index.js';
import { FakeLab } from './fake/lab.js';
import type { BmcTarget, BoundDriver, DriverFactory } from './types.js';

export class DriverRegistry {
  private readonly factories = new Map<string, DriverFactory>();
  /** Names known but not registered, with why (e.g. `fake` without allow_fake_drivers). */
  private readonly withheld = new Map<string, string>();

  /** @throws Error when a driver of that name is already registered. */
  register(factory: DriverFactory): this {
    if (this.factories.has(factory.name)) throw new Error(`driver ${factory.name} is already registered`);
    this.factories.set(factory.name, factory);
    this.withheld.delete(factory.name);
    return this;
  }

  /** Records a known driver that is deliberately not available, so binding it says why. */
  withhold(name: string, reason: string): this {
    if (!this.factories.has(name)) this.withheld.set(name, reason);
    return this;
  }

  /** Registered names, in registration order. */
  names(): string[] {
    return [...this.factories.keys()];
  }

  has(name: string): boolean {
    return this.factories.has(name);
  }

  get(name: string): DriverFactory | undefined {
    return this.factories.get(name);
  }

  /**
   * Binds each named driver to the target, keeping the order (the order of fall-through).
   * @throws BmcError BMC_ERR_UNSUPPORTED for an empty list, an unknown or withheld name, or a name given twice.
   * @throws Error when a driver rejects the target's options (the drivers bound so far are closed).
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
    const bound: BoundDriver[] = [];
    try {
      for (const name of names) bound.push(this.factories.get(name)!.create(target));
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
  /** The lab the fake driver simulates servers in (shared with the fake installer); a new one when absent. */
  fakeLab?: FakeLab | undefined;
}

/** The registry of every driver metald ships. One line per driver. */
export function createDefaultRegistry(opts: DefaultRegistryOptions): DriverRegistry {
  const registry = new DriverRegistry();
  // registry.register(ipmiDriverFactory(...));     (later issue)
  // registry.register(redfishDriverFactory(...));  (later issue)
  if (opts.allowFake) registry.register(fakeDriverFactory(opts.fakeLab ?? new FakeLab()));
  else registry.withhold('fake', 'the fake driver is for tests and the demo only (set allow_fake_drivers: true)');
  return registry;
}
