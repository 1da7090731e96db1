/** The bench's command line: `npm run bench -- [--sizes 10,100,1000,2000] [--soak 60] [--idle 30] [--out FILE]`. */

export interface BenchOptions {
  /** Fleet sizes N, ascending, each run in turn. */
  sizes: number[];
  /** Sizes above this run a subset (sweeps, start to ready, RSS). */
  fullUpTo: number;
  /** Idle heap soak at the reference size, seconds (the soak: 600). */
  soakS: number;
  /** Idle window at default intervals, seconds (one default interval: 30). */
  idleS: number;
  /** Idle window at demo intervals, seconds. */
  demoIdleS: number;
  /** Load window of each req/s figure, seconds. */
  loadS: number;
  out: string;
  /** Only the heap soak (npm run bench:soak). */
  soakOnly: boolean;
  /** Only the CPU-per-power-operation figures (daemon and engine alone), at each of --sizes. */
  powerOnly: boolean;
  help: boolean;
}

export const USAGE = `usage: npm run bench -- [options]
  --sizes LIST     fleet sizes N, comma-separated (default 10,100,1000,2000; 1..5000 each)
  --full-up-to N   sizes above N run a subset: sweeps, start to ready, RSS (default 1000)
  --soak S         idle heap soak at N=1,000 in seconds (default 0: none; npm run bench:soak runs the issue's 600)
  --idle S         idle CPU window at default intervals in seconds (default 30: one interval)
  --demo-idle S    idle CPU window at demo intervals in seconds (default 10)
  --load S         window of each req/s figure in seconds (default 3)
  --soak-only      only the heap soak, at N=1,000 or the largest of --sizes (npm run bench:soak: 600 s)
  --power-only     only CPU per power operation (the daemon's and the engine's alone) at each of --sizes
  --out FILE       JSON file of every figure (default bench-results.json)
  --help           this text`;

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** A whole number within min..max given to `flag` (the drivers section's flags use it too). @throws UsageError */
export function count(flag: string, text: string | undefined, min: number, max: number): number {
  if (text === undefined || text.startsWith('--')) throw new UsageError(`${flag} needs a value`);
  if (!/^\d+$/.test(text)) throw new UsageError(`${flag}: "${text}" is not a whole number`);
  const n = Number(text);
  if (n < min || n > max) throw new UsageError(`${flag}: ${n} is outside ${min}..${max}`);
  return n;
}

/** @throws UsageError naming the flag at fault. */
export function parseArgs(argv: readonly string[]): BenchOptions {
  const o: BenchOptions = { sizes: [10, 100, 1000, 2000], fullUpTo: 1000, soakS: 0, idleS: 30, demoIdleS: 10, loadS: 3, out: 'bench-results.json', soakOnly: false, powerOnly: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = () => argv[++i];
    switch (flag) {
      case '--sizes': {
        const text = value();
        if (text === undefined || text.startsWith('--') || text === '') throw new UsageError('--sizes needs a value');
        const sizes = text.split(',').map((s) => count('--sizes', s.trim(), 1, 5000));
        o.sizes = [...new Set(sizes)].sort((a, b) => a - b);
        break;
      }
      case '--full-up-to':
        o.fullUpTo = count(flag, value(), 1, 5000);
        break;
      case '--soak':
        o.soakS = count(flag, value(), 0, 3600);
        break;
      case '--idle':
        o.idleS = count(flag, value(), 1, 600);
        break;
      case '--demo-idle':
        o.demoIdleS = count(flag, value(), 1, 600);
        break;
      case '--load':
        o.loadS = count(flag, value(), 1, 60);
        break;
      case '--out': {
        const text = value();
        if (text === undefined || text.startsWith('--') || text === '') throw new UsageError('--out needs a file name');
        o.out = text;
        break;
      }
      case '--soak-only':
        o.soakOnly = true;
        break;
      case '--power-only':
        o.powerOnly = true;
        break;
      case '--help':
      case '-h':
        o.help = true;
        break;
      default:
        throw new UsageError(`unknown option "${flag}"`);
    }
  }
  return o;
}
