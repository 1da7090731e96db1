import { stringify } from 'yaml';
import { ConfigError, parseConfigWithWarnings, type ConfigWithWarnings } from '../../../agent/config/load.js';

/** A YAML document under construction: tests poke into it freely. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Doc = any;

export const NODE_ID = (n: number): string => `1b8c5f0e-0000-4000-8000-${String(n).padStart(12, '0')}`;
export const UUID = (n: number): string => `51f9dc2d-734c-466b-8bfd-${String(n).padStart(12, '0')}`;
export const SHA = 'a'.repeat(64);

/** A minimal valid document: one ipmi node and one of each catalogue entry. */
export function base(): Doc {
  return {
    agent_id: 'test-agent',
    api: {
      listen: '127.0.0.1:0',
      tokens: [{ token_file: '/run/credentials/metald.service/api-admin', project_id: 'p1', user_id: 'ops', roles: ['admin'] }],
    },
    images: [{ uuid: UUID(1), name: 'debian-12', url: 'http://images.example/d12.qcow2', sha256: SHA, os: 'linux' }],
    instance_types: [{ uuid: UUID(2), name: 'bm.small', node_type: 'small' }],
    networks: [
      { uuid: UUID(3), name: 'private', cidr: '10.0.0.0/24', gateway: '10.0.0.1', dns: ['10.0.0.1'], pool: '10.0.0.100-10.0.0.199' },
    ],
    nodes: [
      {
        id: NODE_ID(1),
        name: 'node-01',
        type: 'small',
        macs: [{ mac: 'fa:16:3e:1c:d0:5a', pxe: true }],
        bmc: { driver: 'ipmi', address: '10.0.1.21', username: 'admin', password_file: '/run/credentials/metald.service/node-01' },
      },
    ],
  };
}

export function parseObj(doc: unknown, opts: { hostname?: string; baseDir?: string } = {}): ConfigWithWarnings {
  return parseConfigWithWarnings(stringify(doc), opts);
}

/** The errors of an invalid document (fails the test if it is valid). */
export function errorsOf(doc: unknown): string[] {
  try {
    parseObj(doc);
  } catch (e) {
    if (e instanceof ConfigError) return e.errors;
    throw e;
  }
  throw new Error('expected the configuration to be invalid');
}

/** Mutates a fresh base() document with `f` and returns its errors. */
export function errorsWith(f: (d: Doc) => void): string[] {
  const d = base();
  f(d);
  return errorsOf(d);
}

export function warningsWith(f: (d: Doc) => void): string[] {
  const d = base();
  f(d);
  return parseObj(d).warnings;
}
