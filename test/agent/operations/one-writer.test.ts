/**
 * One writer: the recorder (agent/operations/recorder.ts) is the only module that writes instance rows, node rows
 * and the journal; everything else asks it. The store's own modules (agent/store/) implement those writes.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const WRITES = /\bstore\s*\.\s*(putInstance|putNode|appendJournal)\s*\(/g;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = join(dir, d.name);
    if (d.isDirectory()) return sources(p);
    return d.name.endsWith('.ts') ? [p] : [];
  });
}

describe('one writer', () => {
  it('no module but the recorder writes instance rows, node rows or the journal', () => {
    const offenders = [...sources(join(ROOT, 'agent')), ...sources(join(ROOT, 'drivers'))]
      .map((p) => relative(ROOT, p))
      .filter((p) => !p.startsWith('agent/store/') && p !== 'agent/operations/recorder.ts')
      .flatMap((p) => [...readFileSync(join(ROOT, p), 'utf8').matchAll(WRITES)].map((m) => `${p}: store.${m[1]}`));
    expect(offenders).toEqual([]);
    // The recorder itself is found by the same pattern (the check is not vacuous).
    expect(readFileSync(join(ROOT, 'agent/operations/recorder.ts'), 'utf8').match(WRITES)?.length).toBeGreaterThan(0);
  });
});
