/** The installs bench section's target and report (scripts/bench/installs-report.ts). */
import { describe, expect, test } from 'vitest';
import { formatInstallsReport, MAX_RATIO, type InstallsResults } from '../../scripts/bench/installs-report.js';

const results = (wallS: number): InstallsResults => {
  const transfersS = [1, 1, 1, 1, 1, 1, 1, 1.2];
  const sum = transfersS.reduce((a, b) => a + b, 0);
  return { nodes: 8, imageMiB: 16, rateMiBs: 16, transfersS, sumTransfersS: sum, wallS, installsS: [1.9, wallS], ratio: wallS / sum, pass: wallS / sum <= MAX_RATIO };
};

describe('installs report', () => {
  test('prints the peer\'s transfers, the wall time, and the ratio with its verdict', () => {
    const r = formatInstallsReport(results(2.5));
    expect(r).toContain('| peer: busybox wget of the image, 8 in a row (sum; longest) | 8.20 s; 1.20 s |');
    expect(r).toContain('| metald: first create to last install-succeed | 2.50 s |');
    expect(r).toMatch(/30% \(target <= 50%\) \| PASS/);
    expect(formatInstallsReport(results(4.2))).toMatch(/51% \(target <= 50%\) \| \*\*FAIL\*\*/);
  });
});
