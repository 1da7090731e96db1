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
import { cidrContains, formatIp, parseCidr, parseIp, type Cidr, type Ip } from '../net.js';
import { LineCounter, parseDocument } from 'yaml';
import { Value } from '@sinclair/typebox/value';
import { ValueErrorType, type ValueError, type ValueErrorIterator } from '@sinclair/typebox/errors';
import type { TSchema } from '@sinclair/typebox';
import { KNOWN_DRIVERS, RawConfigSchema, type RawConfig, type RawNode } from './schema.js';
import type {
  AddressConfig,
  AdoptConfig,
  Config,
  ImageEntry,
  InstanceTypeEntry,
  NetworkEntry,
  NodeBmcConfig,
  NodeConfig,
} from './types.js';

// ---------------------------------------------------------------------------------------------------------------
// Errors and results

/** An invalid configuration: `errors` lists every problem as `path: message`. */
export class ConfigError extends Error {
  readonly errors: string[];

  constructor(errors: string[], source?: string) {
    const head = `invalid configuration${source ? ` ${source}` : ''} (${errors.length} problem${errors.length === 1 ? '' : 's'})`;
    super(`${head}:\n  ${errors.join('\n  ')}`);
    this.name = 'ConfigError';
    this.errors = errors;
  }
}

export interface ParseOptions {
  /** The default agent_id (os.hostname() when absent). */
  hostname?: string;
  /** Directory relative paths resolve against (loadConfigFile: the file's directory; else process.cwd()). */
  baseDir?: string;
}

export interface ConfigWithWarnings {
  config: Config;
  /** `path: message` lines worth logging at warn level; none of them stops the daemon. */
  warnings: string[];
}

// ---------------------------------------------------------------------------------------------------------------
// Public entry points

export function parseConfig(text: string, opts: ParseOptions = {}): Config {
  return parseConfigWithWarnings(text, opts).config;
}

export function parseConfigWithWarnings(text: string, opts: ParseOptions = {}): ConfigWithWarnings {
  const raw = parseYaml(text);
  const p = new Problems();
  const secretPaths = findSecretKeys(raw, p);
  for (const line of schemaErrors(raw, secretPaths)) p.errors.push(line);
  // The schema's `default`s are the only defaults: applied once, then every check and the resolution read them.
  const full = Value.Default(RawConfigSchema, Value.Clone(raw));
  checkSemantics(full as Loose, p);
  if (p.errors.length > 0) throw new ConfigError(sortByPath(p.errors));
  const config = resolveConfig(full as RawConfig, {
    hostname: opts.hostname ?? osHostname(),
    baseDir: opts.baseDir ?? process.cwd(),
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
    return parseConfigWithWarnings(text, { ...opts, baseDir: dirname(abs) });
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

const HOSTNAME_RE = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

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

type Loose = Record<string, unknown>;

class Problems {
  readonly errors: string[] = [];
  readonly warnings: string[] = [];
  err(path: string, message: string): void {
    this.errors.push(`${path}: ${message}`);
  }
  warn(path: string, message: string): void {
    this.warnings.push(`${path}: ${message}`);
  }
}

function errnoText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  return code ?? (e instanceof Error ? e.message : String(e));
}

const isRec = (v: unknown): v is Loose => typeof v === 'object' && v !== null && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const rec = (v: unknown): Loose => (isRec(v) ? v : {});

/** JSON pointer (`/nodes/1/bmc/address`) -> `nodes[1].bmc.address`. */
function pointerToPath(pointer: string): string {
  if (pointer === '') return '(root)';
  const segs = pointer
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  let out = '';
  for (const s of segs) {
    if (/^[0-9]+$/.test(s)) out += `[${s}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(s)) out += out === '' ? s : `.${s}`;
    else out += `[${JSON.stringify(s)}]`;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// YAML

function parseYaml(text: string): unknown {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, lineCounter, uniqueKeys: true });
  const where = (pos: [number, number] | undefined): string => {
    if (!pos) return 'yaml';
    const lp = lineCounter.linePos(pos[0]);
    return `line ${lp.line}, column ${lp.col}`;
  };
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e) => `${where(e.pos)}: YAML syntax error: ${e.message}`));
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new ConfigError([`yaml: ${e instanceof Error ? e.message : String(e)}`]);
  }
  if (raw === null || raw === undefined) throw new ConfigError(['(root): the configuration file is empty']);
  if (!isRec(raw)) throw new ConfigError(['(root): expected a mapping of keys (agent_id, api, nodes, ...)']);
  return raw;
}

// ---------------------------------------------------------------------------------------------------------------
// Secret keys: the file never holds a secret, only the file it is in

const SECRET_KEY_HINT: Record<string, string> = {
  password: 'password_file',
  token: 'token_file',
};

/** Reports every `password:`/`token:` key and returns their JSON pointers (the schema's "unknown key" is muted). */
function findSecretKeys(raw: unknown, p: Problems): Set<string> {
  const found = new Set<string>();
  const walk = (v: unknown, ptr: string, parentKey: string | null): void => {
    if (Array.isArray(v)) {
      v.forEach((x, i) => walk(x, `${ptr}/${i}`, null));
      return;
    }
    if (!isRec(v)) return;
    for (const [k, child] of Object.entries(v)) {
      const childPtr = `${ptr}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`;
      // adopt.metadata is the tenant's free string map, not configuration.
      if (parentKey === 'adopt' && k === 'metadata') continue;
      const hint = SECRET_KEY_HINT[k.toLowerCase()];
      if (hint !== undefined) {
        found.add(childPtr);
        p.err(
          pointerToPath(childPtr),
          `secrets are never written in the configuration: put the value in a file readable only by metald ` +
            `(e.g. a systemd credential) and name it with ${hint}`,
        );
        continue;
      }
      walk(child, childPtr, k);
    }
  };
  walk(raw, '', null);
  return found;
}

// ---------------------------------------------------------------------------------------------------------------
// Schema errors -> `path: message`

function schemaErrors(raw: unknown, mutedPointers: Set<string>): string[] {
  const found: { path: string; message: string; required: boolean }[] = [];
  const visit = (it: ValueErrorIterator): void => {
    for (const e of it) {
      if (e.type === ValueErrorType.ObjectAdditionalProperties && mutedPointers.has(e.path)) continue;
      // A union without its own message (mapping | null): report the errors of the mapping branch.
      if (e.type === ValueErrorType.Union && typeof e.schema['errorMessage'] !== 'string') {
        const branches = (e.schema['anyOf'] ?? []) as TSchema[];
        const idx = branches.findIndex((b) => b['type'] === 'object');
        const sub = e.errors[idx];
        if (isRec(e.value) && idx >= 0 && sub) {
          visit(sub);
          continue;
        }
      }
      found.push({
        path: pointerToPath(e.path),
        message: messageFor(e),
        required: e.type === ValueErrorType.ObjectRequiredProperty,
      });
    }
  };
  visit(Value.Errors(RawConfigSchema, raw));
  // A missing key also fails its type check: say only that it is required.
  const missing = new Set(found.filter((f) => f.required).map((f) => f.path));
  const out = new Set<string>();
  for (const f of found) {
    if (missing.has(f.path) && !f.required) continue;
    out.add(`${f.path}: ${f.message}`);
  }
  return [...out];
}

/** Orders `path: message` lines by path (numeric-aware), keeping the order of lines with the same path. */
function sortByPath(lines: string[]): string[] {
  const key = (l: string): string => l.slice(0, Math.max(0, l.indexOf(': ')));
  return lines
    .map((l, i) => ({ l, i, k: key(l) }))
    .sort((a, b) => a.k.localeCompare(b.k, 'en', { numeric: true }) || a.i - b.i)
    .map((x) => x.l);
}

function messageFor(e: ValueError): string {
  const s = e.schema as Loose;
  const custom = s['errorMessage'];
  const quoteHint = typeof e.value === 'number' || typeof e.value === 'boolean' ? ' (quote the value in YAML)' : '';
  switch (e.type) {
    case ValueErrorType.ObjectAdditionalProperties: {
      const allowed = Object.keys(rec(s['properties']));
      return `unknown key (allowed here: ${allowed.join(', ')})`;
    }
    case ValueErrorType.ObjectRequiredProperty:
      return 'is required';
    case ValueErrorType.Object:
      return typeof custom === 'string' ? custom : 'expected a mapping';
    case ValueErrorType.Array:
      return 'expected a list';
    case ValueErrorType.ArrayMinItems:
      return `expected at least ${String(s['minItems'])} item(s)`;
    case ValueErrorType.ArrayMaxItems:
      return `expected at most ${String(s['maxItems'])} items`;
    case ValueErrorType.ArrayUniqueItems:
      return 'items must be distinct';
    case ValueErrorType.Boolean:
      return 'expected true or false';
    case ValueErrorType.Integer:
      return 'expected an integer';
    case ValueErrorType.Number:
      return 'expected a number';
    case ValueErrorType.NumberMinimum:
    case ValueErrorType.IntegerMinimum:
      return `must be at least ${String(s['minimum'])}`;
    case ValueErrorType.NumberMaximum:
    case ValueErrorType.IntegerMaximum:
      return `must be at most ${String(s['maximum'])}`;
    case ValueErrorType.NumberExclusiveMinimum:
    case ValueErrorType.IntegerExclusiveMinimum:
      return `must be greater than ${String(s['exclusiveMinimum'])}`;
    case ValueErrorType.String:
      return typeof custom === 'string' ? `${custom}${quoteHint}` : `expected a string${quoteHint}`;
    case ValueErrorType.StringMinLength:
      return typeof custom === 'string' ? custom : 'must not be empty';
    case ValueErrorType.StringMaxLength:
      return `must be at most ${String(s['maxLength'])} characters`;
    case ValueErrorType.StringPattern:
      return typeof custom === 'string' ? custom : `does not match ${String(s['pattern'])}`;
    case ValueErrorType.Literal:
      return `must be ${JSON.stringify(s['const'])}`;
    case ValueErrorType.Null:
      return 'expected null';
    default:
      return typeof custom === 'string' ? custom : e.message;
  }
}

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

/** Records the first index of each key and reports later duplicates. */
function checkUnique(
  items: unknown[],
  key: (item: Loose) => string | undefined,
  path: (i: number) => string,
  what: string,
  report: (path: string, message: string) => void,
): void {
  const first = new Map<string, number>();
  items.forEach((item, i) => {
    if (!isRec(item)) return;
    const k = key(item);
    if (k === undefined) return;
    const prev = first.get(k);
    if (prev === undefined) first.set(k, i);
    else report(path(i), `duplicate ${what} (also ${path(prev)})`);
  });
}

const lower = (v: unknown): string | undefined => str(v)?.toLowerCase();
const normMac = (v: unknown): string | undefined => str(v)?.toLowerCase().replace(/-/g, ':');

function checkSemantics(raw: Loose, p: Problems): void {
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

  // Nodes.
  const nodes = list(raw['nodes']);
  checkUnique(nodes, (x) => lower(x['id']), (i) => `nodes[${i}].id`, 'node id', (a, b) => p.err(a, b));
  checkUnique(nodes, (x) => str(x['name']), (i) => `nodes[${i}].name`, 'node name', (a, b) => p.err(a, b));
  const macOwner = new Map<string, string>();
  const imageUuids = new Set(images.map((x) => lower(rec(x)['uuid'])));
  const typeByUuid = new Map(types.map((x) => [lower(rec(x)['uuid']), str(rec(x)['node_type'])] as const));
  const adoptIds = new Map<string, string>();
  const fixedAddrs = new Map<string, string>();
  nodes.forEach((n, i) => {
    if (!isRec(n)) return;
    const path = `nodes[${i}]`;
    const macs = list(n['macs']);
    macs.forEach((m, k) => {
      const mac = normMac(rec(m)['mac']);
      if (mac === undefined) return;
      const here = `${path}.macs[${k}].mac`;
      const prev = macOwner.get(mac);
      if (prev !== undefined) p.err(here, `duplicate MAC ${mac} (also ${prev})`);
      else macOwner.set(mac, here);
    });
    if (macs.length > 0) {
      const pxe = macs.filter((m) => rec(m)['pxe'] === true).length;
      if (pxe !== 1) p.err(`${path}.macs`, `exactly one MAC must have pxe: true (found ${pxe})`);
    }
    if (isRec(n['bmc'])) checkBmc(n['bmc'], `${path}.bmc`, str(n['name']) ?? path, allowFake, p);
    if (isRec(n['adopt'])) {
      const a = n['adopt'];
      const apath = `${path}.adopt`;
      const iid = lower(a['instance_id']);
      if (iid !== undefined) {
        const prev = adoptIds.get(iid);
        if (prev !== undefined) p.err(`${apath}.instance_id`, `duplicate instance id (also ${prev})`);
        else adoptIds.set(iid, `${apath}.instance_id`);
      }
      const img = lower(a['image_uuid']);
      if (img !== undefined && !imageUuids.has(img)) p.err(`${apath}.image_uuid`, 'no image with this uuid in images');
      const it = lower(a['instance_type_uuid']);
      if (it !== undefined) {
        if (!typeByUuid.has(it)) p.err(`${apath}.instance_type_uuid`, 'no instance type with this uuid in instance_types');
        else {
          const nodeType = str(n['type']) ?? '';
          const wanted = typeByUuid.get(it);
          if (wanted !== undefined && wanted !== nodeType) {
            p.warn(`${apath}.instance_type_uuid`, `the instance type is for nodes of type ${wanted}, this node is ${nodeType}`);
          }
        }
      }
      list(a['addresses']).forEach((ad, k) => {
        const addrPath = `${apath}.addresses[${k}]`;
        const r = rec(ad);
        const net = str(r['network']);
        if (net !== undefined && !networkNames.has(net)) {
          p.err(`${addrPath}.network`, `no network named "${net}" in networks`);
        }
        const addrText = str(r['addr']);
        if (addrText === undefined) return;
        const ip = parseIp(addrText);
        if (!ip) {
          p.err(`${addrPath}.addr`, `"${addrText}" is not an IPv4 or IPv6 address`);
          return;
        }
        if (typeof r['version'] === 'number' && r['version'] !== ip.version) {
          p.err(`${addrPath}.version`, `is ${String(r['version'])} but the address is IPv${ip.version}`);
        }
        const type = r['type'] ?? 'fixed';
        const cidr = net !== undefined ? cidrByName.get(net) : undefined;
        if (type === 'fixed' && cidr && !cidrContains(cidr, ip)) {
          p.err(`${addrPath}.addr`, `is outside network ${net} (${formatIp({ version: cidr.version, value: cidr.network })}/${cidr.prefix})`);
        }
        const key = `${net ?? ''}/${formatIp(ip)}`;
        const prev = fixedAddrs.get(key);
        if (prev !== undefined) p.err(`${addrPath}.addr`, `duplicate address (also ${prev})`);
        else fixedAddrs.set(key, `${addrPath}.addr`);
      });
    }
  });

  const nodeTypes = new Set(nodes.map((n) => str(rec(n)['type'])));
  types.forEach((t, i) => {
    const nt = str(rec(t)['node_type']);
    if (nt !== undefined && !nodeTypes.has(nt)) {
      p.warn(`instance_types[${i}].node_type`, `no configured node has type ${nt} (yet: nodes may be enrolled later)`);
    }
  });
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

function checkBmc(b: Loose, path: string, nodeName: string, allowFake: boolean, p: Problems): void {
  const d = b['driver'];
  const drivers = typeof d === 'string' ? [d] : list(d).filter((x): x is string => typeof x === 'string');
  for (const name of drivers) {
    if (!(KNOWN_DRIVERS as readonly string[]).includes(name)) {
      p.err(`${path}.driver`, `unknown driver "${name}" (known: ${KNOWN_DRIVERS.join(', ')})`);
    }
  }
  if (drivers.includes('fake') && !allowFake) {
    p.err(`${path}.driver`, 'the fake driver requires allow_fake_drivers: true');
  }
  const hasIpmi = drivers.includes('ipmi');
  const hasRedfish = drivers.includes('redfish');
  const insecure = b['insecure'] === true;
  const address = str(b['address']);
  if (address !== undefined) {
    if (hasRedfish) {
      let u: URL | undefined;
      try {
        u = new URL(address);
      } catch {
        u = undefined;
      }
      if (!u || (u.protocol !== 'https:' && u.protocol !== 'http:')) {
        p.err(`${path}.address`, 'the redfish driver needs an https:// address, e.g. "https://10.0.1.22"');
      } else if (u.username || u.password) {
        p.err(`${path}.address`, 'credentials in a URL are not allowed: use username and password_file');
      } else if (u.protocol === 'http:' && !insecure) {
        p.err(`${path}.address`, 'http:// sends the BMC credentials in clear: use https://, or set insecure: true');
      }
    } else if (hasIpmi) {
      if (address.includes('://')) {
        let ok = false;
        try {
          ok = new URL(address).hostname !== '';
        } catch {
          ok = false;
        }
        if (!ok) p.err(`${path}.address`, 'expected a host name, an IP address or a URL');
      } else if (!isIP(address) && !HOSTNAME_RE.test(address)) {
        p.err(`${path}.address`, 'expected a host name or an IP address');
      }
    }
  }
  const hasUser = typeof b['username'] === 'string';
  const hasPw = typeof b['password_file'] === 'string';
  if (hasIpmi) {
    if (!hasUser) p.err(`${path}.username`, 'the ipmi driver needs username and password_file');
    if (!hasPw) p.err(`${path}.password_file`, 'the ipmi driver needs username and password_file');
  } else if (hasRedfish && hasUser !== hasPw) {
    p.err(hasUser ? `${path}.password_file` : `${path}.username`, 'the redfish driver needs both username and password_file, or neither');
  }
  if (b['cipher_suite'] !== undefined && !hasIpmi) p.warn(`${path}.cipher_suite`, 'only the ipmi driver uses it');
  if (b['system_id'] !== undefined && !hasRedfish) p.warn(`${path}.system_id`, 'only the redfish driver uses it');
  if (b['fake'] !== undefined && !drivers.includes('fake')) p.warn(`${path}.fake`, 'only the fake driver uses it');
  if (insecure) {
    p.warn(
      `${path}.insecure`,
      `TLS certificate verification is disabled for node ${nodeName}: its BMC can be impersonated and its credentials stolen`,
    );
    if (b['ca_file'] !== undefined) p.warn(`${path}.ca_file`, 'ignored while insecure: true');
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Resolution: defaults, units, absolute paths

interface ResolveCtx {
  hostname: string;
  baseDir: string;
}

/** A key the schema gives a default: present once `Value.Default` ran (a missing one is a schema bug). */
function must<T>(v: T | undefined, path: string): T {
  if (v === undefined) throw new Error(`internal error: the configuration schema has no default for ${path}`);
  return v;
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
    allow_fake_drivers: must(raw.allow_fake_drivers, 'allow_fake_drivers'),
    power_sync: {
      interval_ms: dur(ps.interval, 'power_sync.interval'),
      failures_before_unknown: must(ps.failures_before_unknown, 'power_sync.failures_before_unknown'),
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
      timeout_ms: dur(lv.timeout, 'liveness.timeout'),
      retries: must(lv.retries, 'liveness.retries'),
    },
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
    nodes: must(raw.nodes, 'nodes').map((n) => resolveNode(n, abs)),
  };
}

function resolveNode(n: RawNode, abs: (p: string) => string): NodeConfig {
  const b = n.bmc;
  const bmc: NodeBmcConfig = {
    drivers: typeof b.driver === 'string' ? [b.driver] : [...b.driver],
    address: b.address,
    insecure: must(b.insecure, 'nodes[].bmc.insecure'),
  };
  if (b.port !== undefined) bmc.port = b.port;
  if (b.username !== undefined) bmc.username = b.username;
  if (b.password_file !== undefined) bmc.password_file = abs(b.password_file);
  if (b.cipher_suite !== undefined) bmc.cipher_suite = b.cipher_suite;
  if (b.system_id !== undefined) bmc.system_id = b.system_id;
  if (b.ca_file !== undefined) bmc.ca_file = abs(b.ca_file);
  if (b.fake !== undefined) bmc.fake = { ...b.fake };

  let adopt: AdoptConfig | null = null;
  const a = must(n.adopt, 'nodes[].adopt');
  if (a !== null) {
    adopt = {
      instance_id: a.instance_id.toLowerCase(),
      project_id: a.project_id,
      user_id: a.user_id,
      name: a.name,
      addresses: must(a.addresses, 'nodes[].adopt.addresses').map(
        (ad): AddressConfig => ({
          addr: ad.addr,
          mac: ad.mac.toLowerCase().replace(/-/g, ':'),
          version: ad.version ?? (isIPv6(ad.addr) ? 6 : 4),
          type: must(ad.type, 'nodes[].adopt.addresses[].type'),
          network: ad.network,
        }),
      ),
    };
    if (a.image_uuid !== undefined) adopt.image_uuid = a.image_uuid.toLowerCase();
    if (a.instance_type_uuid !== undefined) adopt.instance_type_uuid = a.instance_type_uuid.toLowerCase();
    if (a.metadata !== undefined) adopt.metadata = { ...a.metadata };
  }

  return {
    id: n.id.toLowerCase(),
    name: n.name,
    type: must(n.type, 'nodes[].type'),
    boot_mode: must(n.boot_mode, 'nodes[].boot_mode'),
    macs: must(n.macs, 'nodes[].macs').map((m) => ({
      mac: m.mac.toLowerCase().replace(/-/g, ':'),
      pxe: must(m.pxe, 'nodes[].macs[].pxe'),
    })),
    bmc,
    maintenance: must(n.maintenance, 'nodes[].maintenance'),
    enforce_power: must(n.enforce_power, 'nodes[].enforce_power'),
    adopt,
  };
}
