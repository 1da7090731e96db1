/**
 * A strict parser of the Prometheus text exposition format 0.0.4 (what a Prometheus server scrapes from /metrics):
 * `# HELP` and `# TYPE` lines, then samples `name{label="value",...} value [timestamp]`, label values escaped with
 * `\\`, `\"` and `\n`. Any line it cannot read is an error, so a malformed exposition fails the test that scrapes it.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  samples: Sample[];
  /** Family name -> type (counter, gauge, histogram, summary, untyped). */
  types: Map<string, string>;
  help: Map<string, string>;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*/;

/** @throws Error naming the line that is not in the format. */
export function parseExposition(text: string): Exposition {
  const out: Exposition = { samples: [], types: new Map(), help: new Map() };
  text.split('\n').forEach((line, i) => {
    const where = `line ${i + 1}: ${JSON.stringify(line)}`;
    if (line.trim() === '') return;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
      if (!m) {
        if (/^# (HELP|TYPE)\b/.test(line)) throw new Error(`malformed ${where}`);
        return; // a comment
      }
      if (m[1] === 'TYPE') {
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(m[3]!)) throw new Error(`unknown type at ${where}`);
        if (out.types.has(m[2]!)) throw new Error(`second TYPE for ${m[2]} at ${where}`);
        out.types.set(m[2]!, m[3]!);
      } else out.help.set(m[2]!, m[3]!);
      return;
    }
    out.samples.push(parseSample(line, where));
  });
  return out;
}

function parseSample(line: string, where: string): Sample {
  const name = NAME.exec(line)?.[0];
  if (!name) throw new Error(`no metric name at ${where}`);
  let rest = line.slice(name.length);
  const labels: Record<string, string> = {};
  if (rest.startsWith('{')) {
    rest = rest.slice(1);
    for (;;) {
      if (rest.startsWith('}')) {
        rest = rest.slice(1);
        break;
      }
      const key = LABEL.exec(rest)?.[0];
      if (!key || rest[key.length] !== '=' || rest[key.length + 1] !== '"') throw new Error(`bad label at ${where}`);
      rest = rest.slice(key.length + 2);
      let value = '';
      for (;;) {
        const c = rest[0];
        if (c === undefined) throw new Error(`unterminated label value at ${where}`);
        rest = rest.slice(1);
        if (c === '"') break;
        if (c === '\\') {
          const e = rest[0];
          rest = rest.slice(1);
          if (e === 'n') value += '\n';
          else if (e === '\\' || e === '"') value += e;
          else throw new Error(`bad escape at ${where}`);
        } else value += c;
      }
      if (key in labels) throw new Error(`label ${key} twice at ${where}`);
      labels[key] = value;
      if (rest.startsWith(',')) rest = rest.slice(1);
      else if (!rest.startsWith('}')) throw new Error(`expected , or } at ${where}`);
    }
  }
  const m = /^ ([^ ]+)(?: (-?\d+))?$/.exec(rest);
  if (!m) throw new Error(`bad value at ${where}`);
  // As Prometheus reads it (Go's ParseFloat): NaN and Inf in any case (prom-client writes `Nan`).
  const raw = m[1]!.toLowerCase();
  const value = /^[+]?inf$/.test(raw) ? Infinity : raw === '-inf' ? -Infinity : raw === 'nan' ? NaN : Number(raw);
  if (Number.isNaN(value) && raw !== 'nan') throw new Error(`bad number at ${where}`);
  return { name, labels, value };
}

/** The samples named `name` whose labels include `match` (every pair equal). */
export function select(x: Exposition, name: string, match: Record<string, string> = {}): Sample[] {
  return x.samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
}

/** The one sample named `name` whose labels are exactly `labels`; undefined when there is none. */
export function valueOf(x: Exposition, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.keys(labels).length;
  const hit = select(x, name, labels).filter((s) => Object.keys(s.labels).length === want);
  if (hit.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} appears ${hit.length} times`);
  return hit[0]?.value;
}

/** The sum of the samples `select` returns. */
export function sumOf(x: Exposition, name: string, match: Record<string, string> = {}): number {
  return select(x, name, match).reduce((a, s) => a + s.value, 0);
}

/**
 * The family a sample belongs to: `x_bucket`, `x_sum`, `x_count` of a histogram (or summary) `x` are `x`'s; any
 * other sample is its own name's.
 */
export function familyOf(x: Exposition, sampleName: string): string {
  const m = /^(.*)_(bucket|sum|count)$/.exec(sampleName);
  if (m && ['histogram', 'summary'].includes(x.types.get(m[1]!) ?? '')) return m[1]!;
  return sampleName;
}
