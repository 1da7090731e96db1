/**
 * The job document (docs/boot-protocol.md, "GET BASE/v1/jobs/TOKEN"): what the installer is told, built from the
 * operation's DeployJob and the config's networks when the job is prepared. The URLs and the expiry are
 * added when it is fetched (boot.public_url can change on a reload).
 */
import type { NetworkEntry } from '../config/types.js';
import type { DeployJob } from '../ports.js';

export const DOCUMENT_VERSION = 1;

export interface JobInterface {
  mac: string;
  addresses: { address: string; prefix: number; version: 4 | 6 }[];
  gateway: string | null;
  dns: string[];
}

export interface JobDocument {
  version: number;
  job_id: string;
  operation: string;
  instance_id: string;
  hostname: string | null;
  image: { url: string; sha256: string; name: string; os: string } | null;
  disk: string;
  wipe: string[];
  network: { interfaces: JobInterface[] } | null;
  password_hash: string | null;
  ssh_keys: string[];
  user_data: string | null;
}

/** What each operation asks of the installer (the table of docs/boot-protocol.md). */
const WRITES_IMAGE = new Set(['install', 'reinstall', 'switch-install']);
const CONFIGURES_NETWORK = new Set(['install', 'reinstall', 'switch-install', 'modify-ip']);

/** @throws Error naming what is missing (an address on a network the config no longer has). */
export function buildDocument(jobId: string, job: DeployJob, networks: readonly NetworkEntry[]): JobDocument {
  const image = WRITES_IMAGE.has(job.operation) ? job.image : null;
  if (WRITES_IMAGE.has(job.operation) && !image) throw new Error(`${job.operation} needs an image, and the job has none`);
  const byMac = new Map<string, JobInterface>();
  for (const a of CONFIGURES_NETWORK.has(job.operation) ? job.addresses : []) {
    const net = networks.find((n) => n.name === a.network || n.uuid === a.network_uuid);
    if (!net) throw new Error(`address ${a.addr}: network '${a.network}' is not in the config`);
    const mac = a.mac.toLowerCase();
    const itf = byMac.get(mac) ?? { mac, addresses: [], gateway: net.gateway, dns: [...net.dns] };
    itf.addresses.push({ address: a.addr, prefix: prefixOf(net.cidr), version: a.version });
    byMac.set(mac, itf);
  }
  const password = job.operation === 'change-password' || WRITES_IMAGE.has(job.operation);
  return {
    version: DOCUMENT_VERSION,
    job_id: jobId,
    operation: job.operation,
    instance_id: job.instance_id,
    hostname: WRITES_IMAGE.has(job.operation) ? job.hostname : null,
    image: image ? { url: image.url, sha256: image.sha256.toLowerCase(), name: image.name, os: image.os } : null,
    disk: 'auto',
    wipe: job.operation === 'uninstall' ? ['auto'] : [],
    network: CONFIGURES_NETWORK.has(job.operation) ? { interfaces: [...byMac.values()] } : null,
    password_hash: password ? job.password_hash : null,
    ssh_keys: WRITES_IMAGE.has(job.operation) ? [...job.ssh_keys] : [],
    user_data: WRITES_IMAGE.has(job.operation) ? job.user_data : null,
  };
}

function prefixOf(cidr: string): number {
  const p = Number(cidr.split('/')[1]);
  if (!Number.isInteger(p)) throw new Error(`network cidr ${cidr} has no prefix length`);
  return p;
}

/** The fetched document: the stored one with its expiry and report URLs. */
export type FetchedDocument = JobDocument & { expires_at: string; progress_url: string; result_url: string };

/**
 * The document for a POSIX shell without a JSON parser (the reference installer, `?format=lines`): one
 * `<key> <base64 of the UTF-8 value>` line per value, lists as repeated keys, null values left out. An address is
 * `<mac> <address>/<prefix>`, a gateway and a DNS server `<mac> <address>`.
 */
export function documentLines(d: FetchedDocument): string {
  const out: string[] = [];
  const add = (k: string, v: string | number | null | undefined) => {
    if (v !== null && v !== undefined && v !== '') out.push(`${k} ${Buffer.from(String(v), 'utf8').toString('base64')}`);
  };
  add('version', d.version);
  add('job_id', d.job_id);
  add('operation', d.operation);
  add('instance_id', d.instance_id);
  add('hostname', d.hostname);
  add('image_url', d.image?.url);
  add('image_sha256', d.image?.sha256);
  add('image_name', d.image?.name);
  add('image_os', d.image?.os);
  add('disk', d.disk);
  for (const w of d.wipe) add('wipe', w);
  for (const itf of d.network?.interfaces ?? []) {
    add('interface', itf.mac);
    for (const a of itf.addresses) add('address', `${itf.mac} ${a.address}/${a.prefix}`);
    if (itf.gateway) add('gateway', `${itf.mac} ${itf.gateway}`);
    for (const s of itf.dns) add('dns', `${itf.mac} ${s}`);
  }
  add('password_hash', d.password_hash);
  for (const k of d.ssh_keys) add('ssh_key', k);
  add('user_data', d.user_data);
  add('expires_at', d.expires_at);
  add('progress_url', d.progress_url);
  add('result_url', d.result_url);
  return `${out.join('\n')}\n`;
}
