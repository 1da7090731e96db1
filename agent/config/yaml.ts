/**
 * The raw document: YAML text to a plain mapping (syntax errors by line and column, never quoting the line), and the
 * `password:`/`token:` keys found anywhere in it (a secret is never written in the file, only the file it is in).
 */
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';
import { ConfigError, isRec, pointerToPath, type Problems } from './report.js';

// ---------------------------------------------------------------------------------------------------------------
// YAML

// Loaded at the first parse (the package is CommonJS, so `require` is what `import` would do): a restart whose parse
// is cached (./parse-cache.ts) never loads it (~70 modules, ~3 MiB of heap).
let yaml: typeof Yaml | undefined;
const loadYaml = (): typeof Yaml => (yaml ??= createRequire(import.meta.url)('yaml') as typeof Yaml);

export function parseYaml(text: string): unknown {
  const { LineCounter, parseDocument } = loadYaml();
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
export function findSecretKeys(raw: unknown, p: Problems): Set<string> {
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
