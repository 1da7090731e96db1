/**
 * The catalogue (images, instance types, networks) the engine reads: the config file's entries, and those the
 * controller put (upstream image.put, instance-type.put, network.put), kept durably as JSON in store meta keys
 * (`catalogue.images`, `catalogue.instance_types`, `catalogue.networks`). An entry is judged by the config loader
 * itself (a minimal config holding the catalogue with the new entry), so both sources follow the same rules.
 *
 * The file's entries win: a put or delete of a uuid the file holds is refused (change it in the file), and should a
 * later file take a uuid the controller put, the file's entry is the one read. A delete of an entry a live instance
 * (or a waiting adoption) uses is refused.
 */
import { parseConfigWithWarnings } from '../config/load.js';
import { ConfigError } from '../config/report.js';
import type { Config, ImageEntry, InstanceTypeEntry, NetworkEntry } from '../config/types.js';
import { AgentError } from '../errors.js';
import type { Store } from '../store/types.js';

export type CatalogueKind = 'images' | 'instance_types' | 'networks';
type EntryOf<K extends CatalogueKind> = Config[K][number];

/** The store meta key holding the controller's entries of a kind. */
export const CATALOGUE_KEYS: Record<CatalogueKind, string> = {
  images: 'catalogue.images',
  instance_types: 'catalogue.instance_types',
  networks: 'catalogue.networks',
};
const KINDS = Object.keys(CATALOGUE_KEYS) as CatalogueKind[];
/** The word of a kind in messages and paths (the command's field). */
const WORD: Record<CatalogueKind, string> = { images: 'image', instance_types: 'instance_type', networks: 'network' };

type Added = { [K in CatalogueKind]: EntryOf<K>[] };

export class Catalogue {
  private cached: { base: Config; merged: Config } | null = null;

  constructor(
    private readonly store: Store,
    private readonly base: () => Config,
  ) {}

  /** The config with the controller's entries merged in (the file's win on a uuid clash); cached until a change. */
  config(): Config {
    const base = this.base();
    if (this.cached?.base === base) return this.cached.merged;
    const added = this.added();
    const merged: Config = { ...base };
    for (const k of KINDS) {
      const own = new Set(base[k].map((e) => e.uuid));
      (merged as unknown as Added)[k] = [...base[k], ...added[k].filter((e) => !own.has(e.uuid))] as never;
    }
    this.cached = { base, merged };
    return merged;
  }

  /** The controller's entries, as stored. */
  private added(): Added {
    const out = {} as Added;
    for (const k of KINDS) {
      const v = this.store.getMeta(CATALOGUE_KEYS[k]);
      out[k] = (v === null ? [] : (JSON.parse(v) as never[]));
    }
    return out;
  }

  /**
   * Adds or replaces (by uuid) one of the controller's entries, judged by the config loader against the catalogue
   * it joins; `record` runs in the same transaction.
   * @throws AgentError BAD_REQUEST (the loader's problems, or a uuid of the file)
   */
  put<K extends CatalogueKind>(kind: K, given: unknown, record?: (entry: EntryOf<K>) => void): EntryOf<K> {
    const uuid = String((given as { uuid?: unknown }).uuid ?? '').toLowerCase();
    const base = this.base();
    if (base[kind].some((e) => e.uuid === uuid)) {
      throw new AgentError('AGENT_ERR_BAD_REQUEST', `${WORD[kind]} ${uuid} is in the configuration file: change it there`);
    }
    const current = this.config()[kind].filter((e) => e.uuid !== uuid);
    const entry = this.judge(kind, current, given);
    return this.write(() => {
      const list = this.added()[kind].filter((e) => e.uuid !== uuid);
      this.store.setMeta(CATALOGUE_KEYS[kind], JSON.stringify([...list, entry]));
      record?.(entry);
      return entry;
    });
  }

  /**
   * Removes one of the controller's entries.
   * @throws AgentError NOT_FOUND, BAD_REQUEST (an entry of the file), CONFLICT (a live instance or a waiting
   *   adoption uses it)
   */
  delete(kind: CatalogueKind, uuidGiven: string, record?: () => void): void {
    const uuid = uuidGiven.toLowerCase();
    if (this.base()[kind].some((e) => e.uuid === uuid)) {
      throw new AgentError('AGENT_ERR_BAD_REQUEST', `${WORD[kind]} ${uuid} is in the configuration file: remove it there`);
    }
    const list = this.added()[kind];
    const entry = list.find((e) => e.uuid === uuid);
    if (!entry) throw new AgentError('AGENT_ERR_NOT_FOUND', `${WORD[kind]} ${uuid} is not in the catalogue`);
    const user = this.usedBy(kind, entry);
    if (user !== null) throw new AgentError('AGENT_ERR_CONFLICT', `${WORD[kind]} ${uuid} is in use by ${user}`);
    this.write(() => {
      this.store.setMeta(CATALOGUE_KEYS[kind], JSON.stringify(list.filter((e) => e.uuid !== uuid)));
      record?.();
    });
  }

  /** What uses an entry: a live instance (its image, instance type, a network or address on it), a waiting adoption. */
  private usedBy(kind: CatalogueKind, entry: ImageEntry | InstanceTypeEntry | NetworkEntry): string | null {
    const uuid = entry.uuid;
    for (const i of this.store.listInstances()) {
      if (i.state === 'terminated') continue;
      const uses =
        kind === 'images' ? i.image_uuid === uuid || i.extra.pending_params?.image_uuid === uuid
          : kind === 'instance_types' ? i.instance_type_uuid === uuid
            : i.networks.some((n) => n.uuid === uuid) || i.addresses.some((a) => a.network_uuid === uuid) || (i.extra.pending_ip?.networks.some((n) => n.uuid === uuid) ?? false);
      if (uses) return `instance ${i.id}`;
    }
    for (const n of this.store.listNodes()) {
      const a = n.adopt;
      if (!a) continue;
      const uses =
        kind === 'images' ? a.image_uuid === uuid
          : kind === 'instance_types' ? a.instance_type_uuid === uuid
            : a.addresses.some((x) => x.network === (entry as NetworkEntry).name);
      if (uses) return `the adoption waiting on node ${n.name}`;
    }
    return null;
  }

  /** A write in one transaction; the merged view is rebuilt afterwards whether it committed or not. */
  private write<T>(fn: () => T): T {
    try {
      return this.store.transaction(fn);
    } finally {
      this.cached = null;
    }
  }

  /** The entry as the config loader resolves it, in a config holding `current` and it (so names are checked too). */
  private judge<K extends CatalogueKind>(kind: K, current: readonly EntryOf<K>[], given: unknown): EntryOf<K> {
    const raw: Record<string, unknown> = { state_dir: this.base().state_dir, [kind]: [...current.map((e) => rawOf(kind, e)), given] };
    // Each kind is judged alone: no kind of the catalogue refers to another.
    const last = current.length;
    try {
      const { config } = parseConfigWithWarnings('', { parsed: structuredClone(raw) });
      return config[kind][last] as EntryOf<K>;
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      const prefix = `${kind}[${last}]`;
      const lines = e.errors.map((l) => (l.startsWith(prefix) ? WORD[kind] + l.slice(prefix.length) : l));
      throw new AgentError('AGENT_ERR_BAD_REQUEST', lines.slice(0, 5).join('; '));
    }
  }
}

/** A resolved entry back in the file's form (the loader reads it again beside the new one). */
function rawOf(kind: CatalogueKind, e: ImageEntry | InstanceTypeEntry | NetworkEntry): Record<string, unknown> {
  if (kind !== 'networks') return { ...e };
  const n = e as NetworkEntry;
  return { uuid: n.uuid, name: n.name, cidr: n.cidr, gateway: n.gateway, dns: [...n.dns], ...(n.pool ? { pool: `${n.pool.first}-${n.pool.last}` } : {}) };
}
