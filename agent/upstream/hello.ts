/**
 * The hello's maker over the store (docs/protocol.md, "hello"): identity, generation, the outbox's first seq, the
 * host's inventory, and a snapshot of every node and every instance that is not terminated, read in one synchronous
 * stretch so it reflects exactly the journal up to its seq.
 *
 * The inventory (systeminformation) is gathered once, asynchronously, when the link starts (`ready()`), and cached. It
 * never throws: a host without DMI data, or a call that fails or answers junk, gives null or empty fields; the
 * result is bounded to the Inventory schema so that every hello passes parseMessage.
 */
import os from 'node:os';
import type { Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { Systeminformation } from 'systeminformation';
import type { Clock } from '../ports.js';
import type { Store } from '../store/types.js';
import { Inventory, PROTOCOL_VERSION, type Hello } from './protocol.js';
import { snapshotInstance, snapshotNode } from './snapshot.js';
import { readGeneration, type HelloSource } from './types.js';

export type InventoryT = Static<typeof Inventory>;

/** The systeminformation calls the inventory uses (injectable: tests do not depend on the host). */
export interface InventoryPort {
  osInfo(): Promise<Partial<Systeminformation.OsData>>;
  system(): Promise<Partial<Systeminformation.SystemData>>;
  cpu(): Promise<Partial<Systeminformation.CpuData>>;
  mem(): Promise<Partial<Systeminformation.MemData>>;
  networkInterfaces(): Promise<Partial<Systeminformation.NetworkInterfacesData>[] | Partial<Systeminformation.NetworkInterfacesData>>;
}

/** Each systeminformation call gets this long; a slower one counts as failed (null fields). */
export const INVENTORY_CALL_MS = 10_000;

const SHORT = 255;
/** What firmware puts in DMI fields it was never given: the same as no value. */
const JUNK = /^(|-+|0+|none|n\/a|na|null|unknown|not specified|not applicable|default string|to be filled by o\.e\.m\.?|system (serial number|product name|manufacturer|version)|o\.e\.m\.?|0123456789|123456789|ffffffff-ffff-ffff-ffff-ffffffffffff|00000000-0000-0000-0000-000000000000|03000200-0400-0500-0006-000700080009)$/i;

function text(v: unknown, max = SHORT): string | null {
  if (typeof v !== 'string') return null;
  // eslint-disable-next-line no-control-regex -- control characters are what is removed
  const s = v.replace(/[\x00-\x1f\x7f]/g, ' ').trim();
  return JUNK.test(s) ? null : s.slice(0, max);
}

function count(v: unknown): number | null {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= 65536 ? v : null;
}

async function call<T>(fn: () => Promise<T>): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      fn(),
      new Promise<null>((r) => {
        timer = setTimeout(() => r(null), INVENTORY_CALL_MS);
        timer.unref();
      }),
    ]);
  } catch {
    return null;
  } finally {
    clearTimeout(timer);
  }
}

/** An inventory from node's own `os` module: what is left when systeminformation gives nothing. */
export function minimalInventory(): InventoryT {
  return {
    hostname: text(os.hostname()) ?? 'unknown',
    os: { platform: text(os.platform()) ?? 'unknown', distro: null, release: null, kernel: text(os.release()), arch: text(os.arch()) ?? 'unknown' },
    system: { manufacturer: null, model: null, serial: null, uuid: null },
    cpu: { brand: null, cores: 0, physical_cores: null },
    memory_bytes: 0,
    interfaces: [],
  };
}

/** Gathers the host's inventory once; never throws, always within the Inventory schema. */
export async function gatherInventory(si?: InventoryPort): Promise<InventoryT> {
  const port = si ?? ((await import('systeminformation')).default as unknown as InventoryPort);
  const [osInfo, sys, cpu, mem, nics] = await Promise.all([
    call(() => port.osInfo()), call(() => port.system()), call(() => port.cpu()), call(() => port.mem()), call(() => port.networkInterfaces()),
  ]);
  const base = minimalInventory();
  const list = Array.isArray(nics) ? nics : nics !== null && typeof nics === 'object' ? [nics] : [];
  const inv: InventoryT = {
    hostname: text(osInfo?.hostname) ?? base.hostname,
    os: {
      platform: text(osInfo?.platform) ?? base.os.platform,
      distro: text(osInfo?.distro),
      release: text(osInfo?.release),
      kernel: text(osInfo?.kernel) ?? base.os.kernel,
      arch: text(osInfo?.arch) ?? base.os.arch,
    },
    system: { manufacturer: text(sys?.manufacturer), model: text(sys?.model), serial: text(sys?.serial), uuid: text(sys?.uuid) },
    cpu: {
      brand: text([cpu?.manufacturer, cpu?.brand].filter((x) => typeof x === 'string' && text(x) !== null).join(' ')),
      cores: count(cpu?.cores) ?? 0,
      physical_cores: count(cpu?.physicalCores),
    },
    memory_bytes: typeof mem?.total === 'number' && Number.isSafeInteger(mem.total) && mem.total >= 0 ? mem.total : 0,
    interfaces: list
      .filter((n) => n !== null && typeof n === 'object' && text(n.iface, 64) !== null && n.internal !== true)
      .slice(0, 128)
      .map((n) => ({
        name: text(n.iface, 64)!,
        mac: text(n.mac),
        ip4: addrs(n.ip4),
        ip6: addrs(n.ip6),
      })),
  };
  return Value.Check(Inventory, inv) ? inv : base;
}

function addrs(v: unknown): string[] {
  const all = Array.isArray(v) ? v : [v];
  return all.map((a) => text(a, 64)).filter((a): a is string => a !== null).slice(0, 32);
}

export type HelloStore = Pick<Store, 'storeId' | 'getMeta' | 'outboxFirstSeq' | 'lastSeq' | 'listNodes' | 'listInstances' | 'lastAliveVerdict'>;

export interface StoreHelloOptions {
  store: HelloStore;
  agentId: string;
  /** metald's version (package.json), passed in by the composition root. */
  agentVersion: string;
  clock: Clock;
  /** Where the inventory comes from: default gatherInventory() over systeminformation. */
  inventory?: () => Promise<InventoryT>;
}

/** A HelloSource over the store. `ready()` gathers the inventory (once); until then hello() uses minimalInventory(). */
export class StoreHello implements HelloSource {
  private inventory: InventoryT | null = null;
  private gathering: Promise<void> | null = null;

  constructor(private readonly o: StoreHelloOptions) {}

  ready(): Promise<void> {
    this.gathering ??= (async () => {
      try {
        const inv = await (this.o.inventory ?? gatherInventory)();
        this.inventory = Value.Check(Inventory, inv) ? inv : minimalInventory();
      } catch {
        this.inventory = minimalInventory();
      }
    })();
    return this.gathering;
  }

  hello(): Hello {
    const s = this.o.store;
    // One synchronous stretch: no journal entry can be appended between these reads.
    const seq = s.lastSeq();
    const nodes = s.listNodes().map(snapshotNode);
    const instances = s.listInstances().filter((i) => i.state !== 'terminated').map((i) => snapshotInstance(i, s.lastAliveVerdict(i.id)));
    return {
      type: 'hello',
      version: PROTOCOL_VERSION,
      agent_id: this.o.agentId,
      store_id: s.storeId(),
      agent_version: this.o.agentVersion.slice(0, 64) || 'unknown',
      generation: readGeneration(s),
      outbox_first_seq: s.outboxFirstSeq(),
      inventory: this.inventory ?? minimalInventory(),
      snapshot: { seq, taken_at: new Date(this.o.clock.now()).toISOString(), nodes, instances },
    };
  }
}
