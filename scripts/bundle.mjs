// The daemon's entry point as one file: `npm run build` compiles with tsc, then this bundles dist/agent/main.js and
// every module it loads (ours and the npm packages, but the native addons better-sqlite3 and raw-socket) into dist/agent/main.js itself.
// Node then resolves, reads and compiles one file instead of ~400 at each start: measured at 1,000 nodes, CPU to
// ready 1.45 s -> 1.0 s and RSS 4 MiB less (docs/decisions.md). Modules loaded with `createRequire` at run time (yaml)
// stay outside and are found in node_modules as before. The other entry points (metalctl, scripts) are not bundled.
import process from 'node:process';
import { build } from 'esbuild';

await build({
  entryPoints: ['dist/agent/main.js'],
  outfile: 'dist/agent/main.js',
  allowOverwrite: true,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['better-sqlite3', 'raw-socket'],
  // CommonJS packages inside an ESM bundle call require(): give them Node's.
  banner: { js: "import { createRequire as __metaldRequire } from 'node:module'; const require = __metaldRequire(import.meta.url);" },
  sourcemap: 'linked',
  // Minified (names kept: errors and logs name their classes and functions): V8 keeps the whole source string on its
  // heap for lazy compilation, 3.2 MB as written, 2.1 MB without comments and whitespace, ~1.4 MB minified.
  // METALD_BUNDLE_MINIFY=0: not minified (profiles with readable code; never for a release).
  minify: process.env.METALD_BUNDLE_MINIFY !== '0',
  keepNames: true,
  logLevel: 'warning',
});
