/**
 * Loading the configuration file: YAML -> schema (agent/config/schema.ts) -> semantic checks -> the resolved
 * `Config` (agent/config/types.ts) with defaults applied, durations in ms and relative paths made absolute.
 *
 * Every problem is collected before anything is thrown, so an operator sees the whole list at once:
 * `ConfigError.errors` is `path: message` lines (`nodes[1].bmc.address: ...`). Values are only quoted where they
 * cannot be secrets (addresses, MACs, names); the file never holds secrets anyway (keys `password`/`token` are
 * refused), and YAML syntax errors are reported by line and column without quoting the line.
 *
 * Warnings (insecure TLS, fake drivers, instance types without nodes, ...) do not stop the daemon; they are returned
 * by the `...WithWarnings` variants for the caller to log.
 */
import { readFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { dirname, isAbsolute, resolve as resolvePath } from 'node:path';
import { isIP, isIPv4, isIPv6 } from 'node:net';
import { cidrContains, parseCidr, parseIp, type Cidr, type Ip } from '../net.js';
import { createDefaultRegistry, type DriverRegistry } from '../../drivers/registry.js';
import { HOSTNAME_RE } from '../../drivers/settings.js';
import { applyDefaults } from './defaults.js';
import { checkNodes, resolveNode } from './nodes.js';
import { parseWithCache, type CachedParse } from './parse-cache.js';
import { findSecretKeys, parseYaml } from './yaml.js';
import {
  ConfigError,
  Problems,
  checkUnique,
  isRec,
  list,
  lower,
  must,
  rec,
  schemaErrors,
  sortByPath,
  str,
  type Loose,
} from './report.js';
import { RawConfigSchema, type RawConfig } from './schema.js';
import type { Config, ImageEntry, InstanceTypeEntry, NetworkEntry } from './types.js';

export { ConfigError } from './report.js';

// ---------------------------------------------------------------------------------------------------------------
// Errors and results

export interface ParseOptions {
  /** The default agent_id (os.hostname() when absent). */
  hostname?: string;
  /** Directory relative paths resolve against (loadConfigFile: the file's directory; else process.cwd()). */
  baseDir?: string;
  /** The drivers whose settings schemas validate each node's `bmc` (default: every driver metald ships). */
  drivers?: DriverRegistry;
  /** loadConfigWithWarnings: parse through the cache in state_dir (./parse-cache.ts; the daemon only). */
  parseCache?: boolean;
}

export interface ConfigWithWarnings {
  config: Config;
  /** `path: message` lines worth logging at warn level; none of them stops the daemon. */
  warnings: string[];
  /** With `parseCache`: whether the parse came from the cache, and how to save it once the daemon runs. */
  parse?: Omit<CachedParse, 'raw'>;
}

// ---------------------------------------------------------------------------------------------------------------
// Public entry points

export function parseConfig(text: string, opts: ParseOptions = {}): Config {
  return parseConfigWithWarnings(text, opts).config;
}

export function parseConfigWithWarnings(text: string, opts: ParseOptions & { parsed?: unknown } = {}): ConfigWithWarnings {
  const raw = opts.parsed ?? parseYaml(text);
  const p = new Problems();
  const secretPaths = findSecretKeys(raw, p);
  for (const line of schemaErrors(RawConfigSchema, raw, secretPaths)) p.errors.push(line);
  // The schema's `default`s are the only defaults: applied once, then every check and the resolution read them. In
  // place: `raw` is this call's own parse (or the cache's copy), not read again.
  const full = applyDefaults(RawConfigSchema, raw);
  const drivers = opts.drivers ?? createDefaultRegistry({ allowFake: true });
  checkSemantics(full as Loose, p, drivers, secretPaths);
  if (p.errors.length > 0) throw new ConfigError(sortByPath(p.errors));
  const config = resolveConfig(full as RawConfig, {
    hostname: opts.hostname ?? osHostname(),
    baseDir: opts.baseDir ?? process.cwd(),
    drivers,
  });
  return { config, warnings: sortByPath(p.warnings) };
}

export function loadConfigFile(path: string, opts: Omit<ParseOptions, 'baseDir'> = {}): Config {
  return loadConfigWithWarnings(path, opts).config;
}

/** Reads and validates `path`; relative paths inside resolve against the file's directory. */
export function loadConfigWithWarnings(path: string, opts: Omit<ParseOptions, 'baseDir'> = {}): ConfigWithWarnings {
  const abs = resolvePath(path);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (e) {
    throw new ConfigError([`${path}: cannot read the configuration file (${errnoText(e)})`], path);
  }
  try {
    const { parseCache, ...rest } = opts;
    const cached = parseCache ? parseWithCache(text, dirname(abs)) : undefined;
    const result = parseConfigWithWarnings(text, { ...rest, baseDir: dirname(abs), ...(cached ? { parsed: cached.raw } : {}) });
    return cached ? { ...result, parse: { hit: cached.hit, save: cached.save } } : result;
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(e.errors, path);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Units and addresses (exported: useful to other modules and to tests)

const DURATION_RE = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `"500ms" | "30s" | "5m" | "2h" | "7d"` or a number of seconds -> milliseconds (rounded). Throws on bad input. */
export function parseDuration(v: string | number): number {
  if (typeof v === 'number') {
    if (!Number.isFinite(v) || v < 0) throw new Error('expected a non-negative number of seconds');
    return Math.round(v * 1000);
  }
  const m = DURATION_RE.exec(v);
  if (!m) throw new Error('expected a duration such as "500ms", "30s", "5m", "2h", "7d" or a number of seconds');
  return Math.round(Number(m[1]) * (UNIT_MS[m[2] as string] as number));
}


/** `host:port` or `[v6]:port` (port 0-65535; 0 picks a free port) -> `{host, port}` (IPv6 without brackets). */
export function parseListen(s: string): { host: string; port: number } {
  let host: string;
  let portText: string;
  const v6 = /^\[([^\]]+)\]:([^:]*)$/.exec(s);
  if (v6) {
    host = v6[1] as string;
    portText = v6[2] as string;
    if (!isIPv6(host) || host.includes('%')) throw new Error(`"${host}" is not an IPv6 address`);
  } else {
    const parts = s.split(':');
    if (parts.length > 2) throw new Error('IPv6 addresses need brackets, e.g. "[::1]:6385"');
    if (parts.length < 2) throw new Error('expected "host:port", e.g. "127.0.0.1:6385"');
    host = parts[0] as string;
    portText = parts[1] as string;
    if (!isIPv4(host) && !HOSTNAME_RE.test(host)) throw new Error(`"${host}" is not an IPv4 address or host name`);
  }
  if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) > 65535) {
    throw new Error(`port must be an integer from 0 to 65535`);
  }
  return { host, port: Number(portText) };
}

export function formatListen(l: { host: string; port: number }): string {
  return l.host.includes(':') ? `[${l.host}]:${l.port}` : `${l.host}:${l.port}`;
}

// IP and CIDR arithmetic lives in agent/net.ts (one home for the config and the engine).
export { cidrContains, formatIp, parseCidr, parseIp, type Cidr, type Ip } from '../net.js';

// ---------------------------------------------------------------------------------------------------------------
// Internals: problem collection

function errnoText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  return code ?? (e instanceof Error ? e.message : String(e));
}

// ---------------------------------------------------------------------------------------------------------------
// Schema errors -> `path: message`

// ---------------------------------------------------------------------------------------------------------------
// Semantic checks: defensive reads of the raw document (the schema has already reported wrong shapes)

/** Node.js timers fire at once beyond 2^31-1 ms: every timer-backed duration stays below. */
const MAX_TIMER_MS = 2 ** 31 - 1;

function durationOf(v: unknown): number | undefined {
  if (typeof v !== 'string' && typeof v !== 'number') return undefined;
  try {
    return parseDuration(v);
  } catch {
    return undefined;
  }
}

function checkTimer(v: unknown, path: string, p: Problems, opts: { positive: boolean }): void {
  const ms = durationOf(v);
  if (ms === undefined) return;
  if (opts.positive && ms <= 0) p.err(path, 'must be greater than 0');
  else if (ms > MAX_TIMER_MS) p.err(path, 'must be at most 24d (the longest Node.js timer)');
}

function checkHttpUrl(v: unknown, path: string, p: Problems, schemes = ['http:', 'https:']): URL | undefined {
  const s = str(v);
  if (s === undefined) return undefined;
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    p.err(path, `not a valid URL (expected ${schemes.map((x) => `${x}//`).join(' or ')}...)`);
    return undefined;
  }
  if (!schemes.includes(u.protocol)) {
    p.err(path, `expected a ${schemes.map((x) => `${x}//`).join(' or ')} URL`);
    return undefined;
  }
  if (u.username || u.password) {
    p.err(path, 'credentials in a URL are not allowed: use the *_file keys');
    return undefined;
  }
  return u;
}

function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  if (h === 'localhost') return true;
  const ip = parseIp(h);
  if (!ip) return false;
  if (ip.version === 4) return ip.value >> 24n === 127n;
  return ip.value === 1n;
}

function checkListen(v: unknown, path: string, p: Problems, what: string): void {
  const s = str(v);
  if (s === undefined) return;
  try {
    const l = parseListen(s);
    if (what === 'api' && !isLoopbackHost(l.host)) {
      p.warn(path, 'the API listens beyond loopback over plain HTTP: put a TLS proxy in front of it');
    }
  } catch (e) {
    p.err(path, (e as Error).message);
  }
}


function checkSemantics(raw: Loose, p: Problems, drivers: DriverRegistry, secretPointers: Set<string>): void {
  const allowFake = raw['allow_fake_drivers'] === true;
  if (allowFake) p.warn('allow_fake_drivers', 'fake drivers are allowed: for tests and the demo only');

  // Durations.
  checkTimer(raw['terminated_retention'], 'terminated_retention', p, { positive: false });
  const retention = durationOf(raw['terminated_retention']);
  if (retention !== undefined && retention > 3650 * 86_400_000) p.err('terminated_retention', 'must be at most 3650d');
  const ps = rec(raw['power_sync']);
  checkTimer(ps['interval'], 'power_sync.interval', p, { positive: true });
  const to = rec(raw['timeouts']);
  for (const k of ['bmc_call', 'power', 'deploy', 'soft_power']) checkTimer(to[k], `timeouts.${k}`, p, { positive: true });
  list(raw['power_poll']).forEach((d, i) => checkTimer(d, `power_poll[${i}]`, p, { positive: true }));
  checkTimer(rec(raw['bmc'])['min_gap'], 'bmc.min_gap', p, { positive: false });
  const lv = rec(raw['liveness']);
  checkTimer(lv['interval'], 'liveness.interval', p, { positive: true });
  checkTimer(lv['timeout'], 'liveness.timeout', p, { positive: true });
  checkTimer(lv['packet_interval'], 'liveness.packet_interval', p, { positive: false });
  if (lv['engine'] === 'fake' && !allowFake) {
    p.err('liveness.engine', 'the fake engine requires allow_fake_drivers: true');
  }
  const lvInterval = durationOf(lv['interval']);
  const lvTimeout = durationOf(lv['timeout']);
  const lvRetries = lv['retries'];
  if (lvInterval !== undefined && lvTimeout !== undefined && typeof lvRetries === 'number' && lvTimeout * (lvRetries + 1) > lvInterval) {
    p.warn('liveness.timeout', 'timeout x (retries + 1) is longer than the interval: probes will overlap');
  }

  // API, boot, upstream.
  const api = rec(raw['api']);
  checkListen(api['listen'], 'api.listen', p, 'api');
  checkHttpUrl(api['public_url'], 'api.public_url', p);
  const pageSize = rec(api['page_size']);
  if (typeof pageSize['default'] === 'number' && typeof pageSize['max'] === 'number' && pageSize['default'] > pageSize['max']) {
    p.err('api.page_size.default', `must be at most api.page_size.max (${pageSize['max']})`);
  }
  const tokens = list(api['tokens']);
  if (tokens.length === 0) p.warn('api.tokens', 'no tokens: every API request will be refused');
  checkUnique(tokens, (t) => str(t['token_file']), (i) => `api.tokens[${i}].token_file`, 'token file', (a, b) =>
    p.err(a, b),
  );
  if (isRec(raw['boot'])) {
    const boot = raw['boot'];
    checkListen(boot['listen'], 'boot.listen', p, 'boot');
    checkHttpUrl(boot['public_url'], 'boot.public_url', p);
  }
  if (isRec(raw['upstream'])) {
    const up = raw['upstream'];
    const u = checkHttpUrl(up['url'], 'upstream.url', p, ['wss:', 'ws:']);
    if (u && u.protocol === 'ws:' && !isLoopbackHost(u.hostname)) {
      p.warn('upstream.url', 'ws:// is not encrypted: the upstream token travels in clear (use wss://)');
    }
  }

  // Catalogues.
  const images = list(raw['images']);
  checkUnique(images, (x) => lower(x['uuid']), (i) => `images[${i}].uuid`, 'uuid', (a, b) => p.err(a, b));
  checkUnique(images, (x) => str(x['name']), (i) => `images[${i}].name`, 'name', (a, b) => p.warn(a, b));
  images.forEach((img, i) => checkHttpUrl(rec(img)['url'], `images[${i}].url`, p));

  const types = list(raw['instance_types']);
  checkUnique(types, (x) => lower(x['uuid']), (i) => `instance_types[${i}].uuid`, 'uuid', (a, b) => p.err(a, b));
  checkUnique(types, (x) => str(x['name']), (i) => `instance_types[${i}].name`, 'name', (a, b) => p.warn(a, b));

  const networks = list(raw['networks']);
  checkUnique(networks, (x) => lower(x['uuid']), (i) => `networks[${i}].uuid`, 'uuid', (a, b) => p.err(a, b));
  checkUnique(networks, (x) => str(x['name']), (i) => `networks[${i}].name`, 'name', (a, b) => p.err(a, b));
  const cidrByName = new Map<string, Cidr>();
  networks.forEach((n, i) => {
    const c = checkNetwork(rec(n), `networks[${i}]`, p);
    const name = str(rec(n)['name']);
    if (c && name !== undefined && !cidrByName.has(name)) cidrByName.set(name, c);
  });
  const networkNames = new Set(networks.map((n) => str(rec(n)['name'])).filter((x): x is string => !!x));

  checkNodes(list(raw['nodes']), { images, types, cidrByName, networkNames, allowFake, registry: drivers, secretPointers }, p);
}

function checkNetwork(n: Loose, path: string, p: Problems): Cidr | undefined {
  const cidrText = str(n['cidr']);
  let cidr: Cidr | undefined;
  if (cidrText !== undefined) {
    try {
      cidr = parseCidr(cidrText);
    } catch (e) {
      p.err(`${path}.cidr`, (e as Error).message);
    }
  }
  const family = (ip: Ip): string => `IPv${ip.version}`;
  const inside = (ip: Ip, where: string, what: string): boolean => {
    if (!cidr) return true;
    if (ip.version !== cidr.version) {
      p.err(where, `${what} is ${family(ip)} but the cidr is IPv${cidr.version}`);
      return false;
    }
    if (!cidrContains(cidr, ip)) {
      p.err(where, `${what} is outside ${cidrText ?? ''}`);
      return false;
    }
    return true;
  };
  let gateway: Ip | undefined;
  const gwText = str(n['gateway']);
  if (gwText !== undefined) {
    const ip = parseIp(gwText);
    if (!ip) p.err(`${path}.gateway`, `"${gwText}" is not an IPv4 or IPv6 address`);
    else if (inside(ip, `${path}.gateway`, 'the gateway')) gateway = ip;
  }
  list(n['dns']).forEach((d, k) => {
    const s = str(d);
    if (s !== undefined && !isIP(s)) p.err(`${path}.dns[${k}]`, `"${s}" is not an IPv4 or IPv6 address`);
  });
  const poolText = str(n['pool']);
  if (poolText !== undefined) {
    const parts = poolText.split('-');
    const first = parts.length === 2 ? parseIp((parts[0] as string).trim()) : null;
    const last = parts.length === 2 ? parseIp((parts[1] as string).trim()) : null;
    if (!first || !last) {
      p.err(`${path}.pool`, 'expected "first-last" with two addresses, e.g. "10.0.0.100-10.0.0.199"');
    } else if (first.version !== last.version) {
      p.err(`${path}.pool`, 'first and last are of different families');
    } else {
      const okFirst = inside(first, `${path}.pool`, 'the first address');
      const okLast = inside(last, `${path}.pool`, 'the last address');
      if (okFirst && okLast) {
        if (first.value > last.value) p.err(`${path}.pool`, 'the first address is after the last');
        else if (gateway && gateway.version === first.version && gateway.value >= first.value && gateway.value <= last.value) {
          p.err(`${path}.pool`, 'contains the gateway');
        }
      }
    }
  }
  return cidr;
}

// ---------------------------------------------------------------------------------------------------------------
// Resolution: defaults, units, absolute paths

interface ResolveCtx {
  hostname: string;
  baseDir: string;
  drivers: DriverRegistry;
}

function resolveConfig(raw: RawConfig, ctx: ResolveCtx): Config {
  const abs = (p: string): string => (isAbsolute(p) ? p : resolvePath(ctx.baseDir, p));
  const absOrNull = (p: string | null | undefined): string | null => (p === null || p === undefined ? null : abs(p));
  const dur = (v: string | number | undefined, path: string): number => parseDuration(must(v, path));

  const api = must(raw.api, 'api');
  const rl = must(api.rate_limit, 'api.rate_limit');
  const boot = must(raw.boot, 'boot');
  const upstream = must(raw.upstream, 'upstream');
  const ps = must(raw.power_sync, 'power_sync');
  const to = must(raw.timeouts, 'timeouts');
  const lv = must(raw.liveness, 'liveness');

  return {
    agent_id: raw.agent_id ?? ctx.hostname,
    state_dir: abs(must(raw.state_dir, 'state_dir')),
    log_level: must(raw.log_level, 'log_level'),
    on_failure: must(raw.on_failure, 'on_failure'),
    terminated_retention_ms: dur(raw.terminated_retention, 'terminated_retention'),
    api: {
      listen: parseListen(must(api.listen, 'api.listen')),
      public_url: must(api.public_url, 'api.public_url'),
      rate_limit: {
        per_token_per_s: must(rl.per_token_per_s, 'api.rate_limit.per_token_per_s'),
        burst: must(rl.burst, 'api.rate_limit.burst'),
      },
      max_body_bytes: must(api.max_body_bytes, 'api.max_body_bytes'),
      page_size: {
        default: must(must(api.page_size, 'api.page_size').default, 'api.page_size.default'),
        max: must(must(api.page_size, 'api.page_size').max, 'api.page_size.max'),
      },
      tokens: must(api.tokens, 'api.tokens').map((t) => ({
        token_file: abs(t.token_file),
        project_id: t.project_id,
        user_id: t.user_id,
        roles: [...must(t.roles, 'api.tokens[].roles')],
      })),
    },
    boot:
      boot === null
        ? null
        : {
            listen: parseListen(must(boot.listen, 'boot.listen')),
            public_url: must(boot.public_url, 'boot.public_url'),
            ramdisk: {
              kernel: absOrNull(boot.ramdisk?.kernel),
              initrd: absOrNull(boot.ramdisk?.initrd),
              iso: absOrNull(boot.ramdisk?.iso),
            },
          },
    upstream:
      upstream === null
        ? null
        : { url: upstream.url, token_file: abs(upstream.token_file), ca_file: absOrNull(upstream.ca_file) },
    outbox: {
      max_events: must(must(raw.outbox, 'outbox').max_events, 'outbox.max_events'),
      max_bytes: must(must(raw.outbox, 'outbox').max_bytes, 'outbox.max_bytes'),
    },
    allow_fake_drivers: must(raw.allow_fake_drivers, 'allow_fake_drivers'),
    power_sync: {
      interval_ms: dur(ps.interval, 'power_sync.interval'),
      failures_before_unknown: must(ps.failures_before_unknown, 'power_sync.failures_before_unknown'),
      concurrency: must(ps.concurrency, 'power_sync.concurrency'),
    },
    timeouts: {
      bmc_call_ms: dur(to.bmc_call, 'timeouts.bmc_call'),
      power_ms: dur(to.power, 'timeouts.power'),
      deploy_ms: dur(to.deploy, 'timeouts.deploy'),
      soft_power_ms: dur(to.soft_power, 'timeouts.soft_power'),
    },
    power_poll_ms: must(raw.power_poll, 'power_poll').map((d) => parseDuration(d)),
    bmc: { min_gap_ms: dur(must(raw.bmc, 'bmc').min_gap, 'bmc.min_gap') },
    liveness: {
      engine: must(lv.engine, 'liveness.engine'),
      fping_path: must(lv.fping_path, 'liveness.fping_path'),
      interval_ms: dur(lv.interval, 'liveness.interval'),
      jitter: must(lv.jitter, 'liveness.jitter'),
      timeout_ms: dur(lv.timeout, 'liveness.timeout'),
      retries: must(lv.retries, 'liveness.retries'),
      backoff: must(lv.backoff, 'liveness.backoff'),
      packet_interval_ms: dur(lv.packet_interval, 'liveness.packet_interval'),
      hysteresis: must(lv.hysteresis, 'liveness.hysteresis'),
      batch: must(lv.batch, 'liveness.batch'),
    },
    recovery: { concurrency: must(must(raw.recovery, 'recovery').concurrency, 'recovery.concurrency') },
    images: must(raw.images, 'images').map(
      (i): ImageEntry => ({
        uuid: i.uuid.toLowerCase(),
        name: i.name,
        url: i.url,
        sha256: i.sha256.toLowerCase(),
        os: i.os,
        boot_method: must(i.boot_method, 'images[].boot_method'),
      }),
    ),
    instance_types: must(raw.instance_types, 'instance_types').map(
      (t): InstanceTypeEntry => ({ uuid: t.uuid.toLowerCase(), name: t.name, node_type: t.node_type }),
    ),
    networks: must(raw.networks, 'networks').map((n): NetworkEntry => {
      const pool = n.pool ? n.pool.split('-').map((x) => x.trim()) : null;
      return {
        uuid: n.uuid.toLowerCase(),
        name: n.name,
        cidr: n.cidr,
        gateway: must(n.gateway, 'networks[].gateway'),
        dns: [...must(n.dns, 'networks[].dns')],
        pool: pool ? { first: pool[0] as string, last: pool[1] as string } : null,
      };
    }),
    nodes: must(raw.nodes, 'nodes').map((n) => resolveNode(n, abs, ctx.drivers)),
  };
}
