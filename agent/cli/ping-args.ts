/**
 * `metalctl ping`'s arguments, read the way fping 5.1 reads them: short options alone (`-c 3`), with their value
 * attached (`-c3`) or grouped (`-qs`), fping's long spellings (`--count=3`, `--count 3`), `--` to end the options.
 * Every value is checked against a range (fping's where it has one, e.g. the back-off factor 1.0..5.0) before the
 * engine is opened; a mistake is a PingUsageError (exit 3, as fping's manual says).
 */
import { isIP } from 'node:net';

export const PING_EXIT_ALIVE = 0;
export const PING_EXIT_UNREACHABLE = 1;
export const PING_EXIT_NOT_FOUND = 2;
export const PING_EXIT_USAGE = 3;
export const PING_EXIT_SYSTEM = 4;

/** The most targets one run takes (from argv, -f or -g): a /16's hosts and a little more. */
export const MAX_TARGETS = 65_536;
/** The shortest prefix -g expands (a /16: 65,534 hosts). */
export const MIN_GENERATE_PREFIX = 16;

/** A mistake in the invocation (exit 3). */
export class PingUsageError extends Error {
  override readonly name = 'PingUsageError';
}

export interface PingArgs {
  engine: 'auto' | 'raw' | 'fping';
  fpingPath: string;
  /** -c: count mode. */
  count: number | undefined;
  /** -t as given; undefined: fping's default (500 ms, in count mode the period up to 2000 ms). */
  timeoutMs: number | undefined;
  retries: number;
  backoff: number;
  intervalMs: number;
  periodMs: number;
  quiet: boolean;
  stats: boolean;
  alive: boolean;
  unreach: boolean;
  /** -f FILE ('-' is stdin). */
  file: string | undefined;
  /** -g: the targets are one CIDR or a start and an end address. */
  generate: boolean;
  targets: string[];
  help: boolean;
}

interface NumberRule {
  key: 'count' | 'timeoutMs' | 'retries' | 'backoff' | 'intervalMs' | 'periodMs';
  what: string;
  min: number;
  max: number;
  integer: boolean;
  /** How the range is written in the error (fping writes the back-off's as 1.0 and 5.0). */
  range?: string;
}

/** Options that take a value, by short letter; long spellings map onto them. */
const NUMBER_OPTIONS: Readonly<Record<string, NumberRule>> = {
  c: { key: 'count', what: 'count', min: 1, max: 1_000_000, integer: true },
  t: { key: 'timeoutMs', what: 'timeout', min: 1, max: 600_000, integer: false },
  r: { key: 'retries', what: 'retry count', min: 0, max: 100, integer: true },
  B: { key: 'backoff', what: 'backoff factor', min: 1, max: 5, integer: false, range: '1.0 and 5.0' },
  i: { key: 'intervalMs', what: 'interval', min: 0, max: 60_000, integer: false },
  p: { key: 'periodMs', what: 'period', min: 1, max: 3_600_000, integer: false },
};
const FLAG_OPTIONS: Readonly<Record<string, 'quiet' | 'stats' | 'alive' | 'unreach' | 'generate' | 'help'>> = {
  q: 'quiet',
  s: 'stats',
  a: 'alive',
  u: 'unreach',
  g: 'generate',
  h: 'help',
};
const LONG_OPTIONS: Readonly<Record<string, string>> = {
  count: 'c',
  timeout: 't',
  retry: 'r',
  backoff: 'B',
  interval: 'i',
  period: 'p',
  quiet: 'q',
  stats: 's',
  alive: 'a',
  unreach: 'u',
  generate: 'g',
  help: 'h',
  file: 'f',
  engine: 'engine',
  'fping-path': 'fping-path',
};
/** Letters and long names that take a value. */
const TAKES_VALUE = new Set([...Object.keys(NUMBER_OPTIONS), 'f', 'engine', 'fping-path']);

function defaults(): PingArgs {
  return {
    engine: 'auto',
    fpingPath: '/usr/bin/fping',
    count: undefined,
    timeoutMs: undefined,
    retries: 3,
    backoff: 1.5,
    intervalMs: 10,
    periodMs: 1000,
    quiet: false,
    stats: false,
    alive: false,
    unreach: false,
    file: undefined,
    generate: false,
    targets: [],
    help: false,
  };
}

function setValue(out: PingArgs, name: string, value: string): void {
  const rule = NUMBER_OPTIONS[name];
  if (rule !== undefined) {
    const n = Number(value);
    const shape = rule.integer ? /^\d+$/ : /^\d+(\.\d+)?$/;
    if (!shape.test(value) || !Number.isFinite(n)) {
      throw new PingUsageError(`-${name}: ${rule.what} '${value}' is not ${rule.integer ? 'a whole number' : 'a number'}`);
    }
    if (n < rule.min || n > rule.max) {
      throw new PingUsageError(`${rule.what} ${value} not valid, must be between ${rule.range ?? `${String(rule.min)} and ${String(rule.max)}`}`);
    }
    out[rule.key] = n;
    return;
  }
  if (name === 'f') {
    if (value === '') throw new PingUsageError('-f: expected a file name, or - for stdin');
    out.file = value;
  } else if (name === 'engine') {
    if (value !== 'auto' && value !== 'raw' && value !== 'fping') throw new PingUsageError(`--engine '${value}': expected raw, fping or auto`);
    out.engine = value;
  } else if (name === 'fping-path') {
    if (value === '' || value.includes('\0')) throw new PingUsageError('--fping-path: expected the path of the fping binary');
    out.fpingPath = value;
  }
}

/**
 * Reads metalctl ping's argv (what follows `ping`).
 * @throws PingUsageError for an unknown option, a missing or out-of-range value, or options that cannot go together.
 */
export function parsePingArgs(argv: readonly string[]): PingArgs {
  const out = defaults();
  let i = 0;
  const next = (opt: string): string => {
    const v = argv[++i];
    if (v === undefined) throw new PingUsageError(`option requires an argument -- '${opt}'`);
    return v;
  };
  for (; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      out.targets.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const longName = arg.slice(2, eq < 0 ? undefined : eq);
      const name = LONG_OPTIONS[longName];
      if (name === undefined) throw new PingUsageError(`unrecognized option '--${longName}'`);
      if (TAKES_VALUE.has(name)) setValue(out, name, eq < 0 ? next(`--${longName}`) : arg.slice(eq + 1));
      else if (eq >= 0) throw new PingUsageError(`option '--${longName}' doesn't allow an argument`);
      else out[FLAG_OPTIONS[name] as 'quiet'] = true;
      continue;
    }
    if (arg.startsWith('-') && arg.length > 1) {
      for (let j = 1; j < arg.length; j++) {
        const letter = arg[j] as string;
        if (TAKES_VALUE.has(letter)) {
          setValue(out, letter, j + 1 < arg.length ? arg.slice(j + 1) : next(letter));
          break;
        }
        const flag = FLAG_OPTIONS[letter];
        if (flag === undefined) throw new PingUsageError(`invalid option -- '${letter}'`);
        out[flag] = true;
      }
      continue;
    }
    out.targets.push(arg);
  }
  if (out.help) return out;
  if (out.alive && out.unreach) throw new PingUsageError('specify only one of a, u');
  if (out.file !== undefined && out.targets.length > 0) throw new PingUsageError('-f FILE and targets on the command line: give one or the other');
  if (out.file !== undefined && out.generate) throw new PingUsageError('-g generates the targets only without -f');
  if (out.generate) out.targets = generateTargets(out.targets);
  if (out.file === undefined && out.targets.length === 0) throw new PingUsageError('no target: give addresses or names, -f FILE or -g CIDR');
  if (out.targets.length > MAX_TARGETS) throw new PingUsageError(`${String(out.targets.length)} targets: at most ${String(MAX_TARGETS)}`);
  return out;
}

/** fping's default timeout: 500 ms, in count mode the period up to 2000 ms; -t wins. */
export function effectiveTimeoutMs(a: PingArgs): number {
  if (a.timeoutMs !== undefined) return a.timeoutMs;
  return a.count !== undefined ? Math.min(a.periodMs, 2000) : 500;
}

/** Targets of a -f file: the first word of each line; blank lines and lines starting with # are skipped (fping). */
export function targetsFromText(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    const word = line.trim().split(/\s+/, 1)[0] ?? '';
    if (word === '' || word.startsWith('#')) continue;
    out.push(word);
  }
  if (out.length > MAX_TARGETS) throw new PingUsageError(`-f: ${String(out.length)} targets: at most ${String(MAX_TARGETS)}`);
  return out;
}

function ipv4ToInt(s: string): number {
  return s.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
}

function intToIpv4(n: number): string {
  return [24, 16, 8, 0].map((shift) => String(Math.floor(n / 2 ** shift) % 256)).join('.');
}

/**
 * -g's targets, as fping: `A.B.C.D/N` is the network's hosts (network and broadcast address left out, except for a
 * /31 or /32, whose addresses are all taken); `START END` is every address from START to END. IPv4 only, and at most
 * a /16's worth.
 * @throws PingUsageError for anything else.
 */
export function generateTargets(spec: readonly string[]): string[] {
  let first: number;
  let last: number;
  if (spec.length === 1) {
    const m = /^([^/]+)\/(\d{1,2})$/.exec(spec[0] as string);
    if (!m || isIP(m[1] as string) !== 4 || Number(m[2]) > 32) throw new PingUsageError(`-g '${spec[0] as string}': expected an IPv4 network as A.B.C.D/N, or a start and an end address`);
    const prefix = Number(m[2]);
    if (prefix < MIN_GENERATE_PREFIX) {
      throw new PingUsageError(`-g ${spec[0] as string}: a /${String(prefix)} has ${(2 ** (32 - prefix) - 2).toLocaleString('en-US')} hosts; metalctl ping generates at most a /${String(MIN_GENERATE_PREFIX)} (65,534 hosts)`);
    }
    const size = 2 ** (32 - prefix);
    const network = Math.floor(ipv4ToInt(m[1] as string) / size) * size;
    [first, last] = prefix >= 31 ? [network, network + size - 1] : [network + 1, network + size - 2];
  } else if (spec.length === 2) {
    const [a, b] = spec as [string, string];
    if (isIP(a) !== 4 || isIP(b) !== 4) throw new PingUsageError(`-g ${a} ${b}: expected two IPv4 addresses`);
    [first, last] = [ipv4ToInt(a), ipv4ToInt(b)];
    if (first > last) throw new PingUsageError(`-g ${a} ${b}: the start address is after the end address`);
    if (last - first + 1 > MAX_TARGETS) throw new PingUsageError(`-g ${a} ${b}: ${String(last - first + 1)} addresses; at most ${String(MAX_TARGETS)}`);
  } else {
    throw new PingUsageError('-g takes one network (A.B.C.D/N) or a start and an end address');
  }
  const out: string[] = [];
  for (let n = first; n <= last; n++) out.push(intToIpv4(n));
  return out;
}
