/**
 * SIGHUP: what changed between the running configuration and the file just re-read, and which of those changes can
 * be applied without a restart. Pure functions; the daemon logs both lists ("applied: ...", "needs a restart: ...").
 *
 * Applied on SIGHUP: log_level, on_failure, terminated_retention, api.public_url, api.rate_limit, api.page_size, api.tokens,
 * allow_fake_drivers, power_sync, timeouts, power_poll, bmc.min_gap, liveness (but its engine), recovery, outbox, the catalogues (images,
 * instance_types, networks), boot.public_url and boot.ramdisk, new nodes, and every setting of an existing node
 * (name, type, boot_mode, macs, bmc, maintenance, enforce_power, adopt: an adoption only acts on a node without an
 * instance).
 * Needs a restart: agent_id, state_dir, api.listen, api.max_body_bytes (the HTTP server's body limit), boot.listen
 * (and adding or removing `boot`), liveness.engine and liveness.fping_path (the ICMP engine is opened at start),
 * upstream, removed nodes.
 *
 * The content of secret files is not part of Config: SecretFiles.reload() reports those changes.
 */
import type { Config, NodeConfig } from './types.js';

export interface ConfigDiff {
  /** `path: what changed`, applied by SIGHUP. */
  apply: string[];
  /** `path: what changed`, ignored until the daemon restarts. */
  restartRequired: string[];
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  }
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  const keys = new Set([...Object.keys(ra), ...Object.keys(rb)]);
  for (const k of keys) {
    // An absent key and a key holding undefined are the same setting.
    if (!deepEqual(ra[k], rb[k])) return false;
  }
  return true;
}

function show(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

const listen = (l: { host: string; port: number }): string =>
  l.host.includes(':') ? `[${l.host}]:${l.port}` : `${l.host}:${l.port}`;

/** `2 added, 1 removed, 1 changed` for a catalogue keyed by uuid. */
function catalogueChange<T extends { uuid: string }>(a: T[], b: T[]): string | null {
  const before = new Map(a.map((x) => [x.uuid, x]));
  const after = new Map(b.map((x) => [x.uuid, x]));
  let added = 0;
  let removed = 0;
  let changed = 0;
  for (const [k, v] of after) {
    const old = before.get(k);
    if (old === undefined) added++;
    else if (!deepEqual(old, v)) changed++;
  }
  for (const k of before.keys()) if (!after.has(k)) removed++;
  const parts: string[] = [];
  if (added) parts.push(`${added} added`);
  if (removed) parts.push(`${removed} removed`);
  if (changed) parts.push(`${changed} changed`);
  if (parts.length === 0) return deepEqual(a, b) ? null : 'reordered';
  return parts.join(', ');
}

const NODE_FIELDS = ['name', 'type', 'boot_mode', 'macs', 'bmc', 'maintenance', 'enforce_power', 'adopt'] as const;

export function diffConfig(old: Config, next: Config): ConfigDiff {
  const apply: string[] = [];
  const restartRequired: string[] = [];
  const scalar = (out: string[], path: string, a: unknown, b: unknown): void => {
    if (!deepEqual(a, b)) out.push(`${path}: ${show(a)} -> ${show(b)}`);
  };
  const changed = (out: string[], path: string, a: unknown, b: unknown): void => {
    if (!deepEqual(a, b)) out.push(`${path}: changed`);
  };

  // Restart required.
  scalar(restartRequired, 'agent_id', old.agent_id, next.agent_id);
  scalar(restartRequired, 'state_dir', old.state_dir, next.state_dir);
  if (!deepEqual(old.api.listen, next.api.listen)) {
    restartRequired.push(`api.listen: ${listen(old.api.listen)} -> ${listen(next.api.listen)}`);
  }
  scalar(restartRequired, 'api.max_body_bytes', old.api.max_body_bytes, next.api.max_body_bytes);
  if (old.boot === null && next.boot !== null) restartRequired.push('boot: added');
  else if (old.boot !== null && next.boot === null) restartRequired.push('boot: removed');
  else if (old.boot !== null && next.boot !== null) {
    if (!deepEqual(old.boot.listen, next.boot.listen)) {
      restartRequired.push(`boot.listen: ${listen(old.boot.listen)} -> ${listen(next.boot.listen)}`);
    }
    scalar(apply, 'boot.public_url', old.boot.public_url, next.boot.public_url);
    changed(apply, 'boot.ramdisk', old.boot.ramdisk, next.boot.ramdisk);
  }
  if (old.upstream === null && next.upstream !== null) restartRequired.push('upstream: added');
  else if (old.upstream !== null && next.upstream === null) restartRequired.push('upstream: removed');
  else changed(restartRequired, 'upstream', old.upstream, next.upstream);

  // Applied.
  scalar(apply, 'log_level', old.log_level, next.log_level);
  scalar(apply, 'on_failure', old.on_failure, next.on_failure);
  scalar(apply, 'terminated_retention_ms', old.terminated_retention_ms, next.terminated_retention_ms);
  scalar(apply, 'api.public_url', old.api.public_url, next.api.public_url);
  scalar(apply, 'api.rate_limit', old.api.rate_limit, next.api.rate_limit);
  scalar(apply, 'api.page_size', old.api.page_size, next.api.page_size);
  changed(apply, 'api.tokens', old.api.tokens, next.api.tokens);
  scalar(apply, 'allow_fake_drivers', old.allow_fake_drivers, next.allow_fake_drivers);
  scalar(apply, 'power_sync', old.power_sync, next.power_sync);
  scalar(apply, 'timeouts', old.timeouts, next.timeouts);
  scalar(apply, 'power_poll_ms', old.power_poll_ms, next.power_poll_ms);
  scalar(apply, 'bmc.min_gap_ms', old.bmc.min_gap_ms, next.bmc.min_gap_ms);
  // The ICMP engine is opened once at start (its raw socket or the fping binary): those two need a restart.
  scalar(restartRequired, 'liveness.engine', old.liveness.engine, next.liveness.engine);
  scalar(restartRequired, 'liveness.fping_path', old.liveness.fping_path, next.liveness.fping_path);
  scalar(apply, 'liveness', { ...old.liveness, engine: null, fping_path: null }, { ...next.liveness, engine: null, fping_path: null });
  scalar(apply, 'recovery', old.recovery, next.recovery);
  // The store takes new bounds live (Store.setOutboxBounds): lower ones fold at once.
  scalar(apply, 'outbox', old.outbox, next.outbox);
  for (const key of ['images', 'instance_types', 'networks'] as const) {
    const c = catalogueChange<{ uuid: string }>(old[key], next[key]);
    if (c !== null) apply.push(`${key}: ${c}`);
  }

  // Nodes, by id.
  const before = new Map(old.nodes.map((n) => [n.id, n]));
  const after = new Map(next.nodes.map((n) => [n.id, n]));
  for (const n of next.nodes) {
    const o = before.get(n.id);
    if (o === undefined) {
      apply.push(`nodes[${n.name}]: added`);
      continue;
    }
    for (const f of NODE_FIELDS) {
      if (f === 'maintenance' || f === 'enforce_power' || f === 'name' || f === 'type' || f === 'boot_mode') {
        scalar(apply, `nodes[${o.name}].${f}`, o[f], n[f]);
      } else {
        changed(apply, `nodes[${o.name}].${f}`, o[f], n[f]);
      }
    }
  }
  for (const o of old.nodes) {
    if (!after.has(o.id)) restartRequired.push(`nodes[${o.name}]: removed (the node stays managed until a restart)`);
  }
  return { apply, restartRequired };
}

/**
 * The configuration to run with after SIGHUP: `next`, except that every restart-required setting keeps its running
 * value (agent_id, state_dir, api.listen, api.max_body_bytes, boot.listen or the whole `boot` when it was added or
 * removed, liveness.engine and liveness.fping_path, upstream) and removed nodes stay (after the nodes of `next`) until a restart.
 */
export function mergeForReload(old: Config, next: Config): Config {
  const ids = new Set(next.nodes.map((n) => n.id));
  const kept: NodeConfig[] = old.nodes.filter((n) => !ids.has(n.id));
  let boot = next.boot;
  if (old.boot === null || next.boot === null) boot = old.boot;
  else boot = { ...next.boot, listen: old.boot.listen };
  return {
    ...next,
    agent_id: old.agent_id,
    state_dir: old.state_dir,
    api: { ...next.api, listen: old.api.listen, max_body_bytes: old.api.max_body_bytes },
    boot,
    liveness: { ...next.liveness, engine: old.liveness.engine, fping_path: old.liveness.fping_path },
    upstream: old.upstream,
    nodes: [...next.nodes, ...kept],
  };
}
