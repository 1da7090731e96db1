/**
 * `metalctl ping TARGET...`: metald's ICMP engine run in this process (not through the REST API: no token), with
 * fping's options, output and exit codes (docs/cli.md "ping"). The engine is chosen as the daemon chooses it
 * (agent/pinger/select.ts); when `auto` falls back to the fping binary one line on stderr says so and why.
 */
import type { Command } from 'commander';
import { lookup as dnsLookup } from 'node:dns/promises';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { openPinger as realOpenPinger, type EngineChoice, type OpenPingerOptions } from '../pinger/select.js';
import type { PingOptions, PingResult, ProbeEvent } from '../ports.js';
import { UsageError, type CliIo } from './context.js';
import { escapeControl } from './format.js';
import {
  effectiveTimeoutMs,
  parsePingArgs,
  PING_EXIT_ALIVE,
  PING_EXIT_NOT_FOUND,
  PING_EXIT_SYSTEM,
  PING_EXIT_UNREACHABLE,
  PING_EXIT_USAGE,
  PingUsageError,
  targetsFromText,
  type PingArgs,
} from './ping-args.js';
import { icmpErrorLine, replyLine, statsBlock, summaryLine, TargetTally, timeoutLine, type RunStats } from './ping-format.js';

/** What `metalctl ping` does to the world, injectable for tests. */
export interface PingDeps {
  openPinger: (o: OpenPingerOptions) => Promise<EngineChoice>;
  /** A name's first address (node:dns, as fping's getaddrinfo). @throws an error with a `code` (ENOTFOUND ...). */
  lookup: (name: string) => Promise<string>;
  /** A -f file's text; `-` is stdin. */
  readTargets: (file: string) => Promise<string>;
  /** Milliseconds, monotonic. */
  now: () => number;
}

export const PING_HELP = `Usage: metalctl ping [options] TARGET...
       metalctl ping [options] -f FILE        (- reads the targets from stdin)
       metalctl ping [options] -g A.B.C.D/N   (or -g START END; at most a /16)

Runs metald's ICMP engine in this process, fping's way. No API token is needed; the raw engine needs
CAP_NET_RAW (root), else auto falls back to the fping binary and says so on stderr.

Probing options:
   -c, --count=N      count mode: send N pings to each target (1..1000000)
   -t, --timeout=MS   first timeout of a target (1..600000; default 500, in count mode the period up to 2000)
   -r, --retry=N      retries (0..100; default 3; not used with -c)
   -B, --backoff=F    each retry waits the previous timeout times F (1.0..5.0; default 1.5)
   -i, --interval=MS  least gap between two packets sent (0..60000; default 10)
   -p, --period=MS    gap between two pings to one target in count mode (1..3600000; default 1000)
   -f, --file=FILE    read the targets from FILE, one per line (- is stdin)
   -g, --generate     the targets are a network (A.B.C.D/N: its hosts) or a start and an end address
   --engine=E         raw, fping or auto (default auto: raw where its socket opens, else fping)
   --fping-path=PATH  the fping binary of the fping engine (default /usr/bin/fping)

Output options:
   -a, --alive        show the targets that are alive (only)
   -u, --unreach      show the targets that are unreachable (only)
   -q, --quiet        no per-target or per-ping lines
   -s, --stats        print the statistics at the end (stderr)
   -h, --help         this text

Exit codes (fping's; metalctl's other commands use 2 for usage, ping uses 3 as fping's manual says):
  0 every target alive, 1 some unreachable, 2 a name that does not resolve, 3 bad arguments,
  4 a system call failed (the engine could not run)
`;

/** getaddrinfo's words (what fping prints) for node:dns's codes. */
const GAI_WORDS: Readonly<Record<string, string>> = {
  ENOTFOUND: 'Name or service not known',
  EAI_AGAIN: 'Temporary failure in name resolution',
  ENODATA: 'No address associated with hostname',
  EAI_FAIL: 'Non-recoverable failure in name resolution',
};

async function readStdin(io: CliIo): Promise<string> {
  if (io.stdin === undefined) throw Object.assign(new Error('no standard input'), { code: 'ENOENT' });
  let text = '';
  for await (const chunk of io.stdin) text += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
  return text;
}

function defaultDeps(io: CliIo): PingDeps {
  return {
    openPinger: realOpenPinger,
    lookup: async (name) => (await dnsLookup(name)).address,
    readTargets: (file) => (file === '-' ? readStdin(io) : readFile(file, 'utf8')),
    now: () => performance.now(),
  };
}

/** One target as given (a name or an address) and the address it stands for. */
interface Target {
  name: string;
  addr: string;
}

/**
 * The whole `metalctl ping` run over `argv` (what follows `ping`).
 * @returns fping's exit code (0 all alive, 1 some unreachable, 2 a name not found, 3 usage, 4 system failure); never throws.
 */
export async function runPing(argv: readonly string[], io: CliIo, overrides: Partial<PingDeps> = {}): Promise<number> {
  const deps = { ...defaultDeps(io), ...overrides };
  const err = (s: string): void => void io.stderr.write(s);
  let args: PingArgs;
  try {
    args = parsePingArgs(argv);
    if (args.help) {
      io.stdout.write(PING_HELP);
      return PING_EXIT_ALIVE;
    }
    if (args.file !== undefined) {
      let text: string;
      try {
        text = await deps.readTargets(args.file);
      } catch (e) {
        err(`metalctl ping: cannot read -f ${escapeControl(args.file)}: ${(e as { code?: string }).code ?? 'unreadable'}\n`);
        return PING_EXIT_SYSTEM;
      }
      args.targets = targetsFromText(text);
      if (args.targets.length === 0) throw new PingUsageError(`-f ${args.file}: no target in it`);
    }
  } catch (e) {
    if (!(e instanceof PingUsageError)) throw e;
    err(`metalctl ping: ${escapeControl(e.message)}\nsee 'metalctl ping --help' for usage information\n`);
    return PING_EXIT_USAGE;
  }

  const targets: Target[] = [];
  let unknown = 0;
  for (const name of args.targets) {
    if (isIP(name) !== 0) {
      targets.push({ name, addr: name });
      continue;
    }
    try {
      targets.push({ name, addr: await deps.lookup(name) });
    } catch (e) {
      const code = (e as { code?: string }).code ?? '';
      err(`${escapeControl(name)}: ${GAI_WORDS[code] ?? GAI_WORDS.ENOTFOUND}\n`);
      unknown++;
    }
  }
  if (targets.length === 0) return PING_EXIT_NOT_FOUND;

  let choice: EngineChoice;
  try {
    choice = await deps.openPinger({ engine: args.engine, fpingPath: args.fpingPath });
  } catch (e) {
    err(`metalctl ping: cannot open the ${args.engine} ICMP engine: ${escapeControl((e as Error).message)}\n`);
    return PING_EXIT_SYSTEM;
  }
  if (args.engine === 'auto' && choice.engine !== 'raw') err(`metalctl ping: using the ${choice.engine} engine: ${escapeControl(choice.reason)}\n`);

  try {
    return await probe(args, targets, unknown, choice, deps, io);
  } catch (e) {
    err(`metalctl ping: the ${choice.engine} engine failed: ${escapeControl((e as Error).message)}\n`);
    return PING_EXIT_SYSTEM;
  } finally {
    await choice.pinger.close?.();
  }
}

async function probe(args: PingArgs, targets: Target[], unknown: number, choice: EngineChoice, deps: PingDeps, io: CliIo): Promise<number> {
  const out = (s: string): void => void io.stdout.write(s);
  const err = (s: string): void => void io.stderr.write(s);
  const countMode = args.count !== undefined;
  /** -a, -u and -q keep the per-ping lines of count mode quiet, as in fping. */
  const perPing = countMode && !args.quiet && !args.alive && !args.unreach;
  const width = Math.max(...targets.map((t) => t.name.length));
  const shown = (t: Target): string => (countMode ? escapeControl(t.name).padEnd(width) : escapeControl(t.name));
  const byAddr = new Map<string, Target[]>();
  for (const t of targets) byAddr.set(t.addr, [...(byAddr.get(t.addr) ?? []), t]);
  const tallies = new Map<string, TargetTally>([...byAddr.keys()].map((a) => [a, new TargetTally()]));
  const printed = new Set<string>();
  let events = 0;

  const plainAlive = (t: Target): void => {
    if (args.quiet || args.unreach) return;
    out(args.alive ? `${shown(t)}\n` : `${shown(t)} is alive\n`);
  };
  const onEvent = (e: ProbeEvent): void => {
    const tally = tallies.get(e.addr);
    if (tally === undefined) return;
    events++;
    if (e.kind === 'icmp-error') {
      tally.icmpError();
      err(icmpErrorLine(e.error, e.addr));
      return;
    }
    if (e.kind === 'reply') tally.reply(e.rtt_ms);
    else tally.timeout();
    for (const t of byAddr.get(e.addr) ?? []) {
      if (perPing) out(e.kind === 'reply' ? replyLine(shown(t), e.seq, e.bytes, e.rtt_ms, tally) : timeoutLine(shown(t), e.seq, tally));
      if (!countMode && e.kind === 'reply' && !printed.has(t.name)) {
        printed.add(t.name);
        plainAlive(t);
      }
    }
  };

  const opts: PingOptions = {
    timeoutMs: effectiveTimeoutMs(args),
    retries: args.retries,
    backoff: args.backoff,
    packetIntervalMs: args.intervalMs,
    onEvent,
  };
  if (countMode) {
    opts.count = args.count;
    opts.periodMs = args.periodMs;
  }
  const started = deps.now();
  const results = await choice.pinger.ping([...byAddr.keys()], opts);
  const elapsedMs = deps.now() - started;
  const byResult = new Map<string, PingResult>(results.map((r) => [r.addr, r]));
  if (countMode && events === 0 && results.some((r) => r.sent === undefined)) {
    err(`metalctl ping: the ${choice.engine} engine has no count mode (-c); use --engine raw\n`);
    return PING_EXIT_SYSTEM;
  }

  const stats: RunStats = { targets: targets.length, alive: 0, unreachable: 0, unknown, timeouts: 0, sent: 0, received: 0, otherIcmp: 0, rtts: [], elapsedMs };
  const rtts: number[] = [];
  const summaries: string[] = [];
  for (const t of targets) {
    const r = byResult.get(t.addr) ?? { addr: t.addr, alive: false, rtt_ms: null };
    const tally = tallies.get(t.addr) as TargetTally;
    if (events === 0 && r.icmp_error) {
      tally.icmpError();
      err(icmpErrorLine(r.icmp_error, t.addr));
    }
    const replies = tally.rtts.length > 0 ? tally.rtts : (r.rtts_ms ?? (r.rtt_ms !== null ? [r.rtt_ms] : []));
    const alive = r.alive || replies.length > 0;
    // Engines that do not count (the fping binary in plain mode): a reply took one probe, silence every retry.
    const sent = r.sent ?? (countMode ? (args.count as number) : tally.settled > 0 ? tally.settled : alive ? 1 : args.retries + 1);
    const received = r.received ?? replies.length;
    stats.sent += sent;
    stats.received += received;
    stats.otherIcmp += tally.icmpErrors;
    stats.timeouts += Math.max(0, sent - received - tally.icmpErrors);
    rtts.push(...replies);
    if (alive) stats.alive++;
    else stats.unreachable++;
    if (countMode) {
      summaries.push(summaryLine(shown(t), sent, replies));
    } else if (alive && !printed.has(t.name)) {
      printed.add(t.name);
      plainAlive(t);
    } else if (!alive && !args.quiet && !args.alive) {
      out(args.unreach ? `${shown(t)}\n` : `${shown(t)} is unreachable\n`);
    }
  }
  if (countMode) err((perPing ? '\n' : '') + summaries.join(''));
  if (args.stats) err(statsBlock({ ...stats, rtts }));
  if (unknown > 0) return PING_EXIT_NOT_FOUND;
  return stats.unreachable > 0 ? PING_EXIT_UNREACHABLE : PING_EXIT_ALIVE;
}

/**
 * Lists `ping` in metalctl's help. metalctl's `run` hands `ping ...` to runPing before commander parses anything
 * (fping's options are not commander's, and its exit codes differ), so this command is reached only when global
 * options stand before `ping`, which it refuses.
 */
export function registerPingCommand(program: Command): void {
  program
    .command('ping')
    .description("ICMP-ping targets in this process, fping's way (metalctl ping --help; exit codes are fping's)")
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument('[fping-options-and-targets...]')
    .action(() => {
      throw new UsageError("'ping' must come first (metalctl ping [options] TARGET...): it takes no global option");
    });
}
