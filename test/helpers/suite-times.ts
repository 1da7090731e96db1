/**
 * A vitest reporter that ends the run with each suite's (test file's) wall time, slowest first, so CI logs show
 * where the time goes, then one plain closing line `N passed, N failed` (`, N skipped` when any were, and
 * `, N unhandled errors` when vitest caught errors outside the tests: they fail the run while every test passes).
 */
import { relative } from 'node:path';
import type { Reporter, TestModule } from 'vitest/node';

export default class SuiteTimes implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown> = []): void {
    const rows = modules
      .map((m) => ({ file: relative(process.cwd(), m.moduleId), ms: m.diagnostic().duration, state: m.state() }))
      .sort((a, b) => b.ms - a.ms);
    const lines = rows.map((r) => `  ${(r.ms / 1000).toFixed(2).padStart(8)} s  ${r.state.padEnd(7)} ${r.file}`);
    const counts = { passed: 0, failed: 0, skipped: 0 };
    for (const m of modules) {
      for (const t of m.children.allTests()) {
        const state = t.result().state;
        if (state === 'passed') counts.passed++;
        else if (state === 'failed') counts.failed++;
        else counts.skipped++;
      }
      // A file that failed to load has no tests to count: it is a failure all the same.
      if (m.state() === 'failed' && [...m.children.allTests()].length === 0) counts.failed++;
    }
    const skipped = counts.skipped > 0 ? `, ${counts.skipped} skipped` : '';
    const errors = unhandledErrors.length > 0 ? `, ${unhandledErrors.length} unhandled errors (see above)` : '';
    process.stdout.write(`\nsuite times:\n${lines.join('\n')}\n\n${counts.passed} passed, ${counts.failed} failed${skipped}${errors}\n`);
  }
}
