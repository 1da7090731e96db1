/**
 * The upstream link as one lifecycle component (agent/build-agent.ts): the link (./link.ts) with its hello source
 * (./hello.ts) and command handler (./commands.ts), or, without `upstream.url`, nothing but a `disabled` status
 * (standalone). The token is read from `upstream.token_file` through the secret files (re-read by SIGHUP: the next
 * dial uses the new one); the CA from `upstream.ca_file` at start and on every reload.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { SecretFiles } from '../config/secrets.js';
import type { Config } from '../config/types.js';
import type { Engine } from '../operations/engine.js';
import type { Clock } from '../ports.js';
import type { Store } from '../store/types.js';
import { UpstreamCommands } from './commands.js';
import { StoreHello } from './hello.js';
import { UpstreamLink } from './link.js';
import { readGeneration, type LinkStatus } from './types.js';

export interface UpstreamComponent {
  start(): void;
  stop(): Promise<void>;
  status(): LinkStatus;
  /** SIGHUP: re-reads the CA file (the token is re-read with the other secrets). Returns errors, if any. */
  reload(): string[];
  /** The link, when there is one (tests, bench). */
  readonly link: UpstreamLink | null;
}

export interface UpstreamDeps {
  config: () => Config;
  store: Store;
  engine: Engine;
  secrets: SecretFiles;
  clock: Clock;
  log: Logger;
  agentVersion: string;
}

/** metald's version: package.json's, found above this module (dist/agent/... bundled or not, or agent/ under tsx). */
export function agentVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'metald' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not here: one level up
    }
    dir = dirname(dir);
  }
  return 'unknown';
}

/** A bearer token goes into an HTTP header: printable ASCII without spaces. */
export function checkUpstreamToken(token: string, file: string): string {
  if (token === '') throw new Error(`upstream.token_file ${file} is empty`);
  if (!/^[\x21-\x7e]+$/.test(token)) throw new Error(`upstream.token_file ${file} holds characters a bearer token cannot have (spaces or control characters)`);
  return token;
}

function readCa(file: string | null): Buffer | null {
  if (file === null) return null;
  try {
    return readFileSync(file);
  } catch (e) {
    throw new Error(`upstream.ca_file ${file} cannot be read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}

/**
 * Builds the component. With an upstream, reads the token and the CA now, so a missing file fails the start with a
 * message naming it.
 */
export function createUpstream(d: UpstreamDeps): UpstreamComponent {
  const up = d.config().upstream;
  const since = new Date(d.clock.now()).toISOString();
  if (up === null) {
    return {
      link: null,
      start: () => undefined,
      stop: async () => undefined,
      reload: () => [],
      status: () => ({
        state: 'disabled',
        since,
        url: null,
        attempts: 0,
        last_error: null,
        last_ack_seq: null,
        last_ack_at: null,
        sent_seq: null,
        generation: readGeneration(d.store),
        welcomes: 0,
      }),
    };
  }
  const tokenFile = up.token_file;
  checkUpstreamToken(d.secrets.read(tokenFile), tokenFile);
  let ca = readCa(up.ca_file);
  const log = d.log.child({ component: 'upstream' });
  const link = new UpstreamLink({
    url: up.url,
    get ca() {
      return ca;
    },
    token: () => checkUpstreamToken(d.secrets.read(tokenFile), tokenFile),
    agentId: d.config().agent_id,
    store: d.store,
    hello: new StoreHello({ store: d.store, agentId: d.config().agent_id, agentVersion: d.agentVersion, clock: d.clock }),
    commands: new UpstreamCommands({ engine: d.engine, store: d.store, config: d.config, log, now: () => new Date(d.clock.now()).toISOString() }),
    log,
    clock: d.clock,
  });
  return {
    link,
    start: () => link.start(),
    stop: () => link.stop(),
    status: () => link.status(),
    reload: () => {
      try {
        ca = readCa(up.ca_file);
        return [];
      } catch (e) {
        return [(e as Error).message];
      }
    },
  };
}
