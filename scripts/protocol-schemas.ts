/**
 * Writes the protocol's JSON Schema files (docs/protocol/<type>.json) from agent/upstream/protocol.ts.
 * `--check`: writes nothing, exits 1 naming each file that differs (test/agent/upstream/protocol.test.ts does the same).
 * Run: `npm run protocol-schemas` (builds first), or `node dist/scripts/protocol-schemas.js [--check] [DIR]`.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { schemaFiles } from '../agent/upstream/schema-files.js';

/** The files of `dir` that differ from the generated ones (missing, changed, or a .json no message has). */
export function staleFiles(dir: string): string[] {
  const want = schemaFiles();
  const stale = [...want].filter(([name, text]) => !existsSync(join(dir, name)) || readFileSync(join(dir, name), 'utf8') !== text).map(([n]) => n);
  const extra = existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith('.json') && !want.has(n)) : [];
  return [...stale, ...extra];
}

function main(argv: string[]): number {
  const check = argv.includes('--check');
  const dirArg = argv.find((a) => !a.startsWith('--'));
  const dir = resolve(dirArg ?? join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'docs', 'protocol'));
  if (check) {
    const stale = staleFiles(dir);
    for (const n of stale) console.error(`${join(dir, n)}: differs from agent/upstream/protocol.ts; run npm run protocol-schemas`);
    return stale.length === 0 ? 0 : 1;
  }
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of schemaFiles()) writeFileSync(join(dir, name), text);
  console.log(`wrote ${schemaFiles().size} schemas to ${dir}`);
  return 0;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));
