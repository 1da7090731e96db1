/**
 * Small things the boot tests (installer, node emulator, QEMU) and the installs bench share: a free TCP port, and
 * why this machine cannot run a test that needs root and some Debian tools (the test then fails with that reason).
 */
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:net';

/** A TCP port on 127.0.0.1 that was free a moment ago (for a config that needs it before the server starts). */
export async function freeTcpPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/**
 * Why the test cannot run here, or null: `rootFor` says what needs root (null: no root needed); `tools` are looked
 * up on the PATH; `install` is the apt-get line that brings them.
 */
export function missingPeers(rootFor: string | null, tools: readonly string[], install: string): string | null {
  if (rootFor && process.getuid?.() !== 0) return `${rootFor} needs root (CI runs as root)`;
  for (const tool of tools) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'pipe' });
    } catch {
      return `${tool} is not installed (apt-get install ${install}; .ci/run does)`;
    }
  }
  return null;
}
