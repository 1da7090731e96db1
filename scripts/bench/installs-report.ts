/** The installs section's options, figures and report (./installs.ts measures them). */

export interface InstallsOptions {
  nodes: number;
  imageMiB: number;
  rateMiBs: number;
}

export interface InstallsResults {
  nodes: number;
  imageMiB: number;
  rateMiBs: number;
  /** The peer's transfer of the image, one per node, one after the other, s. */
  transfersS: number[];
  sumTransfersS: number;
  /** From the first create to the last install-succeed, s. */
  wallS: number;
  /** Each install's time, from its create to its install-succeed, s. */
  installsS: number[];
  ratio: number;
  pass: boolean;
}

export const DEFAULT_INSTALLS: InstallsOptions = { nodes: 8, imageMiB: 16, rateMiBs: 16 };
export const MAX_RATIO = 0.5;

export function formatInstallsReport(r: InstallsResults): string {
  const f = (s: number) => `${s.toFixed(2)} s`;
  return [
    `## installs (issue 11): ${r.nodes} emulated servers at once, a ${r.imageMiB} MiB image at ${r.rateMiBs} MiB/s per server`,
    '',
    '| figure | value |',
    '|---|---|',
    `| peer: busybox wget of the image, ${r.nodes} in a row (sum; longest) | ${f(r.sumTransfersS)}; ${f(Math.max(...r.transfersS))} |`,
    `| metald: first create to last install-succeed | ${f(r.wallS)} |`,
    `| each install (min / max) | ${f(Math.min(...r.installsS))} / ${f(Math.max(...r.installsS))} |`,
    `| wall / sum of transfers | ${(r.ratio * 100).toFixed(0)}% (target <= ${MAX_RATIO * 100}%) | ${r.pass ? 'PASS' : '**FAIL**'} |`,
  ].join('\n');
}
