/**
 * Writes docs/openapi.json: the OpenAPI 3 document metald serves at `GET /openapi.json`, taken from an agent built
 * in-process on a configuration with no node and no fake driver (so no test-only route is in it, and no BMC is
 * reached). `--check`: writes nothing and exits 1 when the file differs (test/docs/openapi-doc.test.ts does the same).
 *
 *   npm run openapi            # build, then write docs/openapi.json
 *   node dist/scripts/openapi.js --check
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { buildAgent } from '../agent/build-agent.js';
import { loadConfigFile } from '../agent/config/load.js';
import { writeConfig } from '../test/helpers/harness.js';

/** The repository's root, from the sources (scripts/) or from the build (dist/scripts/). */
const here = fileURLToPath(new URL('.', import.meta.url));
const ROOT = [resolve(here, '..'), resolve(here, '..', '..')].find((d) => existsSync(join(d, 'package.json'))) ?? resolve(here, '..', '..');
export const OPENAPI_DOC = join(ROOT, 'docs', 'openapi.json');

/** The document as the API serves it, pretty-printed with a final newline. */
export async function openapiText(): Promise<string> {
  const { dir, configPath } = writeConfig({
    nodes: 0,
    liveness: '{engine: fping, interval: 30s, timeout: 100ms, retries: 0}',
    editConfig: (y) => y.replace('allow_fake_drivers: true', 'allow_fake_drivers: false').replace(/\nnodes:\n[\s\S]*$/, '\nnodes: []\n'),
  });
  try {
    const agent = await buildAgent(loadConfigFile(configPath), { log: pino({ level: 'silent' }) });
    try {
      const r = await agent.api.inject({ method: 'GET', url: '/openapi.json' });
      if (r.statusCode !== 200) throw new Error(`GET /openapi.json: ${r.statusCode} ${r.body}`);
      return `${JSON.stringify(JSON.parse(r.body), null, 2)}\n`;
    } finally {
      await agent.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(argv: string[]): Promise<number> {
  const text = await openapiText();
  if (argv.includes('--check')) {
    const same = existsSync(OPENAPI_DOC) && readFileSync(OPENAPI_DOC, 'utf8') === text;
    if (!same) console.error(`${OPENAPI_DOC}: differs from what the API serves; run npm run openapi`);
    return same ? 0 : 1;
  }
  writeFileSync(OPENAPI_DOC, text);
  console.log(`wrote ${OPENAPI_DOC} (${Object.keys((JSON.parse(text) as { paths: object }).paths).length} paths)`);
  return 0;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (e: unknown) => {
      console.error(e instanceof Error ? e.message : String(e));
      process.exitCode = 1;
    },
  );
}
