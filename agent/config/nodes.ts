/**
 * The `nodes` of the configuration: the checks that need more than the schema (uniqueness, MACs, adoption against
 * the catalogues) and the resolution of one node. A node's `bmc` belongs to its drivers: the registry
 * (drivers/registry.ts) gives the schema of its settings and the drivers' own rules; this file only reports them as
 * `nodes[i].bmc.key: message` and passes the settings through.
 */
import { isIPv6 } from 'node:net';
import { Value } from '@sinclair/typebox/value';
import type { DriverRegistry } from '../../drivers/registry.js';
import { keysMarked, PATH } from '../../drivers/settings.js';
import { cidrContains, formatIp, parseCidr, parseIp, type Cidr } from '../net.js';
import { applyDefaults } from './defaults.js';
import { checkUnique, isRec, list, lower, must, normMac, pointerToPath, Problems, rec, schemaErrors, str, type Loose } from './report.js';
import { AdoptSchema, NodeSchema, type RawAdopt, type RawNode } from './schema.js';
import { findSecretKeys } from './yaml.js';
import type { AddressConfig, AdoptConfig, NodeBmcConfig, NodeConfig } from './types.js';

export interface NodeCheckContext {
  images: unknown[];
  types: unknown[];
  cidrByName: Map<string, Cidr>;
  networkNames: Set<string>;
  allowFake: boolean;
  registry: DriverRegistry;
  /** JSON pointers of `password:`/`token:` keys, already reported. */
  secretPointers: Set<string>;
}

const driversOf = (b: Loose): string[] => {
  const d = b['driver'];
  return typeof d === 'string' ? [d] : list(d).filter((x): x is string => typeof x === 'string');
};

/** A node's `bmc` against its drivers' settings schema, then the drivers' own rules. */
function checkBmc(b: Loose, pointer: string, nodeName: string, ctx: NodeCheckContext, p: Problems): void {
  const drivers = driversOf(b);
  const { driver: _driver, ...settings } = b;
  const known = drivers.filter((d) => ctx.registry.definition(d) !== undefined);
  if (known.length > 0) {
    for (const line of schemaErrors(ctx.registry.settingsSchema(known).schema, settings, ctx.secretPointers, pointer)) {
      p.errors.push(line);
    }
  }
  const path = pointerToPath(pointer);
  ctx.registry.checkSettings(
    drivers,
    settings,
    { error: (key, message) => p.err(`${path}.${key}`, message), warn: (key, message) => p.warn(`${path}.${key}`, message) },
    { nodeName, allowTestOnly: ctx.allowFake },
  );
}

/** The drivers' settings with their schemas' defaults, relative `x-path` settings made absolute. */
function resolveBmc(b: Loose, abs: (p: string) => string, registry: DriverRegistry): NodeBmcConfig {
  const drivers = driversOf(b);
  const { driver: _driver, ...given } = b;
  const { schema } = registry.settingsSchema(drivers);
  const settings = applyDefaults(schema, Value.Clone(given)) as Loose;
  for (const key of keysMarked(schema, PATH)) {
    const v = settings[key];
    if (typeof v === 'string') settings[key] = abs(v);
  }
  return { ...settings, drivers };
}

export function checkNodes(nodes: unknown[], ctx: NodeCheckContext, p: Problems): void {
  const { images, types, cidrByName, networkNames } = ctx;
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
    if (isRec(n['bmc'])) checkBmc(n['bmc'], `/nodes/${i}/bmc`, str(n['name']) ?? path, ctx, p);
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
        const type = r['type'];
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

export function resolveNode(n: RawNode, abs: (p: string) => string, registry: DriverRegistry): NodeConfig {
  const bmc = resolveBmc(n.bmc as Loose, abs, registry);
  const adopt = resolveAdopt(must(n.adopt, 'nodes[].adopt'));
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

/** A node's `adopt` (defaults applied) resolved: ids lowercased, MACs normalised, address versions filled in. */
export function resolveAdopt(a: RawAdopt | null): AdoptConfig | null {
  let adopt: AdoptConfig | null = null;
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
  return adopt;
}

/** The catalogue a node given outside the file is checked against (the resolved config's, or one like it). */
export interface NodeCatalogue {
  images: readonly { uuid: string }[];
  instance_types: readonly { uuid: string; node_type: string }[];
  networks: readonly { name: string; cidr: string }[];
}

/**
 * One node given outside the file (an upstream `node.enrol`), judged by the file's node rules: the node schema
 * (with its defaults), no `password`/`token` key, the drivers' settings, MACs, `adopt` against the catalogue. Paths
 * in the problems start with `node`. Relative paths (password_file) go through `abs`, which may throw.
 * @returns the resolved node, or the problems (`node.path: message` lines)
 */
export function checkOneNode(
  given: unknown,
  catalogue: NodeCatalogue,
  opts: { allowFake: boolean; registry: DriverRegistry; abs: (p: string) => string },
): { ok: true; node: NodeConfig } | { ok: false; errors: string[] } {
  const p = new Problems();
  const raw = structuredClone(given);
  const secretPointers = findSecretKeys({ nodes: [raw] }, p);
  for (const line of schemaErrors(NodeSchema, raw, secretPointers, '/nodes/0')) p.errors.push(line);
  const full = applyDefaults(NodeSchema, raw);
  if (p.errors.length === 0) checkNodes([full], { ...nodeCheckContext(catalogue), allowFake: opts.allowFake, registry: opts.registry, secretPointers }, p);
  if (p.errors.length > 0) return { ok: false, errors: p.errors.map((l) => l.replace(/^nodes\[0\]/, 'node')) };
  return { ok: true, node: resolveNode(full as RawNode, opts.abs, opts.registry) };
}

/**
 * An `adopt` given for an enrolled node (an upstream `node.adopt`), judged by the file's rules for it against the
 * catalogue; paths start with `adopt`.
 */
export function checkAdopt(
  given: unknown,
  node: { id: string; name: string; type: string },
  catalogue: NodeCatalogue,
  registry: DriverRegistry,
): { ok: true; adopt: AdoptConfig } | { ok: false; errors: string[] } {
  const p = new Problems();
  const raw = structuredClone(given);
  for (const line of schemaErrors(AdoptSchema, raw, new Set(), '/adopt')) p.errors.push(line);
  const full = applyDefaults(AdoptSchema, raw) as RawAdopt;
  if (p.errors.length === 0) {
    checkNodes([{ id: node.id, name: node.name, type: node.type, adopt: full }], { ...nodeCheckContext(catalogue), allowFake: false, registry, secretPointers: new Set() }, p);
  }
  if (p.errors.length > 0) return { ok: false, errors: p.errors.map((l) => l.replace(/^nodes\[0\]\./, '')) };
  return { ok: true, adopt: resolveAdopt(full)! };
}

function nodeCheckContext(c: NodeCatalogue): Pick<NodeCheckContext, 'images' | 'types' | 'cidrByName' | 'networkNames'> {
  const cidrByName = new Map<string, Cidr>();
  for (const n of c.networks) if (!cidrByName.has(n.name)) cidrByName.set(n.name, parseCidr(n.cidr));
  return { images: [...c.images], types: [...c.instance_types], cidrByName, networkNames: new Set(c.networks.map((n) => n.name)) };
}
