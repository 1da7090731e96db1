import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../../agent/cli/metalctl.js';
import { Sink } from './stub-server.js';

export const TOKEN = 'tok-3f9d2c8e1a7b4d6f';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs metalctl in-process against `url`, with the token in METALCTL_TOKEN unless `env` says otherwise. */
export async function cli(url: string, argv: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  const stdout = new Sink();
  const stderr = new Sink();
  const code = await run(argv, { stdout, stderr, env: { METALCTL_URL: url, METALCTL_TOKEN: TOKEN, ...env } });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

/** Writes `files` into a fresh temporary directory; returns their paths by name. */
export function tempFiles(files: Record<string, string>): Record<string, string> {
  const dir = mkdtempSync(join(tmpdir(), 'metalctl-test-'));
  const out: Record<string, string> = {};
  for (const [name, content] of Object.entries(files)) {
    const path = join(dir, name);
    writeFileSync(path, content, { mode: 0o600 });
    out[name] = path;
  }
  return out;
}
