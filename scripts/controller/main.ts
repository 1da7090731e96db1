/**
 * The reference controller (docs/controller.md): `node dist/scripts/controller/main.js --listen 127.0.0.1:7443
 * --db ctl.db --token-file F [--tls-cert C --tls-key K] [--generation N] [--rewind-to SEQ [--agent ID]]`.
 * Prints one JSON line per fact on stdout; reads commands from stdin, one per line:
 *   command <agent_id> <op> [<json-args>]   e.g. command rack-a12 node.maintenance {"node_id":"...","maintenance":true}
 *   resend <agent_id> <command_id>          send a command sent before again, with its id (a repeat runs nothing)
 *   rewind <agent_id> <seq>                 ask from seq again (forgets what it held from there)
 *   resync <agent_id> [reason]              ask for a fresh snapshot
 *   agents                                  print each agent's place
 * Diagnostics (bad options, bad stdin lines) go to stderr through pino.
 */
import fs from 'node:fs';
import readline from 'node:readline';
import { Command as Cli, InvalidArgumentError } from 'commander';
import { pino } from 'pino';
import { NAME_PATTERN } from '../../agent/config/schema.js';
import type { CommandBody } from '../../agent/upstream/protocol.js';
import { Controller, type TokenEntry } from './server.js';
import { ControllerStore } from './store.js';

const log = pino({ name: 'controller' }, pino.destination(2));
/** An agent id as the protocol has it (the config's names). */
const AGENT_RE = new RegExp(NAME_PATTERN);

function intArg(min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`an integer >= ${min}`);
    return n;
  };
}

function listenArg(v: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:]+\]|[^:]+):(\d{1,5})$/.exec(v);
  const port = m === null ? NaN : Number(m[2]);
  if (m === null || port > 65535) throw new InvalidArgumentError('host:port');
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

/** The token file: one token per line, optionally followed by the one agent id it is issued to; # comments. */
export function readTokens(file: string): TokenEntry[] {
  const out: TokenEntry[] = [];
  for (const raw of fs.readFileSync(file, 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [token, agent, ...more] = line.split(/\s+/);
    if (more.length > 0 || (agent !== undefined && !AGENT_RE.test(agent))) throw new Error(`${file}: a line is "<token> [agent_id]"`);
    out.push({ token: token!, agent_id: agent ?? null });
  }
  if (out.length === 0) throw new Error(`${file}: no token`);
  return out;
}

function print(line: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ at: new Date().toISOString(), ...line })}\n`);
}

function handleLine(ctl: Controller, store: ControllerStore, line: string): void {
  const m = /^\s*(\S+)\s*(\S*)\s*(.*?)\s*$/.exec(line);
  if (m === null || m[1] === undefined || m[1] === '') return;
  const [, verb, agent, rest] = m as unknown as [string, string, string, string];
  const bad = (message: string) => print({ what: 'input-error', line: line.slice(0, 200), message });
  if (verb === 'agents') {
    for (const a of store.agents()) print({ what: 'agent', ...a, resume_from: a.place + 1 });
    return;
  }
  if (!AGENT_RE.test(agent)) return bad('expected an agent id after the verb');
  if (verb === 'command') {
    const sp = /^(\S+)\s*(.*)$/.exec(rest);
    if (sp === null) return bad('usage: command <agent_id> <op> [<json-args>]');
    let args: unknown = {};
    if (sp[2] !== '') {
      try {
        args = JSON.parse(sp[2]!);
      } catch (e) {
        return bad(`arguments are not JSON: ${(e as Error).message}`);
      }
    }
    if (args === null || typeof args !== 'object' || Array.isArray(args)) return bad('arguments must be a JSON object');
    const r = ctl.command(agent, { ...(args as object), op: sp[1] } as CommandBody);
    if (!r.ok) bad(r.message);
    return;
  }
  if (verb === 'resend') {
    if (!/^req-[0-9a-f-]{36}$/.test(rest)) return bad('usage: resend <agent_id> <command_id>');
    const r = ctl.resend(agent, rest);
    if (!r.ok) bad(r.message);
    return;
  }
  if (verb === 'rewind') {
    const seq = Number(rest);
    if (!Number.isSafeInteger(seq) || seq < 1) return bad('usage: rewind <agent_id> <seq>, seq >= 1');
    if (!ctl.rewind(agent, seq)) bad(`agent ${agent} is unknown or its place is already before ${seq}`);
    return;
  }
  if (verb === 'resync') {
    if (!ctl.resync(agent, rest === '' ? 'asked by the operator' : rest)) bad(`agent ${agent} is not connected`);
    return;
  }
  bad(`unknown verb ${verb.slice(0, 32)} (command, resend, rewind, resync, agents)`);
}

async function main(): Promise<void> {
  const cli = new Cli('controller')
    .description('The reference controller of the metald upstream protocol (docs/controller.md)')
    .requiredOption('--listen <host:port>', 'address to listen on', listenArg)
    .requiredOption('--db <file>', 'its SQLite file (created if missing)')
    .requiredOption('--token-file <file>', 'accepted bearer tokens, one per line: <token> [agent_id]')
    .option('--tls-cert <file>', 'PEM certificate: serve wss:// (with --tls-key)')
    .option('--tls-key <file>', 'PEM private key')
    .option('--generation <n>', 'fencing generation to send (stored; default the stored one, else 1)', intArg(0))
    .option('--rewind-to <seq>', 'at start, move the place back so that the next welcome asks from seq', intArg(1))
    .option('--agent <id>', 'with --rewind-to: only this agent (default every agent)')
    .option('--idle-close <seconds>', 'terminate a link silent (no frame, no ping) this long; 0: never', intArg(0), 30)
    .option('--timing', "add received_ms (when the event's frame arrived, ms since the epoch, sub-ms) to every event line")
    .parse();
  const o = cli.opts<{ listen: { host: string; port: number }; db: string; tokenFile: string; tlsCert?: string; tlsKey?: string; generation?: number; rewindTo?: number; agent?: string; idleClose: number; timing?: boolean }>();
  if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) cli.error('--tls-cert and --tls-key go together');
  if (o.agent !== undefined && o.rewindTo === undefined) cli.error('--agent goes with --rewind-to');
  const tokens = readTokens(o.tokenFile);
  const store = new ControllerStore(o.db);
  if (o.generation !== undefined) store.setGeneration(o.generation);
  if (o.rewindTo !== undefined) {
    for (const a of store.agents()) {
      if (o.agent !== undefined && a.agent_id !== o.agent) continue;
      const r = store.rewind(a.agent_id, o.rewindTo);
      if (r !== null) print({ what: 'rewind', agent_id: a.agent_id, resume_from: o.rewindTo, place_was: r.from, forgotten: r.forgotten });
    }
  }
  const tls = o.tlsCert !== undefined && o.tlsKey !== undefined ? { cert: fs.readFileSync(o.tlsCert), key: fs.readFileSync(o.tlsKey) } : undefined;
  const ctl = new Controller({ store, tokens, generation: store.generation(), print, idleCloseMs: o.idleClose * 1000, timing: o.timing === true, ...(tls === undefined ? {} : { tls }) });
  const addr = await ctl.listen(o.listen.host, o.listen.port);
  print({ what: 'listening', url: `${tls === undefined ? 'ws' : 'wss'}://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}/`, port: addr.port, generation: store.generation() });
  if (tls === undefined && !/^(127\.|::1$|localhost$)/.test(o.listen.host)) log.warn({ host: o.listen.host }, 'serving ws:// without TLS off loopback: tokens travel in clear');

  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  rl.on('line', (line) => {
    try {
      handleLine(ctl, store, line);
    } catch (e) {
      log.error({ err: e }, 'command line failed');
    }
  });
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    rl.close();
    await ctl.close();
    store.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
}

main().catch((e: unknown) => {
  log.error({ err: e }, 'controller failed');
  process.exit(1);
});
