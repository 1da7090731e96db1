/**
 * ipmitool's HOME. At every start ipmitool reads the IANA enterprise-number registry, the system's
 * /usr/share/misc/enterprise-numbers.txt (~4.6 MB, ~25 ms of CPU a call here, most of its run time), unless
 * `$HOME/.local/usr/share/misc/enterprise-numbers` exists (`enterprise-numbers.txt` in Debian's build, which renames
 * the file), which it then reads instead. The registry only names
 * vendors in what ipmitool prints (`mc info`, FRU, SEL): nothing metald runs or parses. So the driver gives
 * ipmitool a HOME of its own, in the agent's work directory, whose registry has one entry: every power and boot call
 * is that much cheaper (at 1,000 BMCs and one read a minute each, ~25 s of CPU a minute).
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Where ipmitool looks for a user's registry, under HOME (its configure default IANAUSERDIR). */
export const REGISTRY_DIR = ['.local', 'usr', 'share', 'misc'] as const;
/** The registry's name: upstream's, and Debian's. */
export const REGISTRY_NAMES = ['enterprise-numbers', 'enterprise-numbers.txt'] as const;

/** A registry in the IANA file's format (a number at column 0, the name indented by two spaces), one entry. */
export const REGISTRY = '0\n  Reserved\n';

const prepared = new Map<string, string | null>();

/**
 * The HOME to hand ipmitool: `<workDir>/ipmi/home`, its registry written once per process (0700 directories, a
 * 0600 file). Null (ipmitool then reads the system's registry, as when run by hand) without a work directory or
 * when it cannot be written; `onError` says why, once.
 */
export function ipmitoolHome(workDir: string | undefined, onError: (message: string) => void): string | null {
  if (workDir === undefined) return null;
  const cached = prepared.get(workDir);
  if (cached !== undefined) return cached;
  const home = join(workDir, 'ipmi', 'home');
  const dir = join(home, ...REGISTRY_DIR);
  let result: string | null = home;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (const name of REGISTRY_NAMES) {
      const file = join(dir, name);
      let current: string | null = null;
      try {
        current = readFileSync(file, 'utf8');
      } catch {
        current = null;
      }
      if (current !== REGISTRY) writeFileSync(file, REGISTRY, { mode: 0o600 });
      chmodSync(file, 0o600);
    }
  } catch (e) {
    onError(`ipmitool's registry could not be written under ${home} (ipmitool reads the system's, ~25 ms a call more): ${e instanceof Error ? e.message : String(e)}`);
    result = null;
  }
  prepared.set(workDir, result);
  return result;
}
