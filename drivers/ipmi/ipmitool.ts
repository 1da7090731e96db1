/**
 * The typed ipmitool wrapper: the one module that builds ipmitool's argv and reads its output (the way node-ipmi wraps
 * the binary). No process is run here: drivers/ipmi/client.ts runs what this builds through the ProcessRunner port.
 *
 * - argv: `-I lanplus -H host -p port -U user -C suite -R retries -N seconds -E <command>`. The password is never
 *   in argv: `-E` makes ipmitool read `IPMI_PASSWORD` from its environment (the caller's stdin is ignored, else
 *   ipmitool without the variable blocks reading a password from it).
 * - Output: ipmitool's vendor words become our closed unions here (style 4), and its failures become BmcError codes
 *   through one table, `IPMITOOL_ERRORS`, whose rows say whether the output proves nothing was sent.
 * - ipmitool exits 0 on some failures (`bootdev` prints "Set Chassis Boot Parameter 5 failed: ..." to stderr): a
 *   command counts as done only when stdout carries its confirmation line (`confirms`).
 */
import { BMC_ERRORS, BmcError, type BmcErrorCode } from '../errors.js';
import type { BootDevice, BootSettings } from '../types.js';

export const DRIVER = 'ipmi';

export type ChassisPowerVerb = 'status' | 'on' | 'off' | 'soft' | 'cycle' | 'reset';

export type IpmiCommand =
  | { kind: 'power'; verb: ChassisPowerVerb }
  | { kind: 'bootdev'; device: BootDevice | 'none'; persistent: boolean; efi: boolean }
  | { kind: 'bootparam-get-5' };

/** Where and as whom: everything of argv but the command. The password is not here (it goes through the environment). */
export interface IpmiSession {
  host: string;
  port: number;
  username: string;
  cipherSuite: number;
  /** ipmitool `-R`: attempts per request. */
  retries: number;
  /** ipmitool `-N`: seconds between retransmissions. */
  retryTimeoutS: number;
  /** `-v`: the session errors say why (used to diagnose a refused session, never for a command's output). */
  verbose?: boolean;
}

/** The environment variable `-E` reads. */
export const PASSWORD_ENV = 'IPMI_PASSWORD';

const BOOTDEV_WORD: Readonly<Record<BootDevice | 'none', string>> = { pxe: 'pxe', disk: 'disk', cdrom: 'cdrom', none: 'none' };

/** ipmitool's argv for `command` on `session`. */
export function buildArgv(session: IpmiSession, command: IpmiCommand): string[] {
  const argv = [
    ...(session.verbose ? ['-v'] : []),
    '-I', 'lanplus',
    '-H', session.host,
    '-p', String(session.port),
    '-U', session.username,
    '-C', String(session.cipherSuite),
    '-R', String(session.retries),
    '-N', String(session.retryTimeoutS),
    '-E',
  ];
  switch (command.kind) {
    case 'power':
      return [...argv, 'chassis', 'power', command.verb];
    case 'bootdev': {
      const options = [...(command.persistent ? ['persistent'] : []), ...(command.efi ? ['efiboot'] : [])];
      return [...argv, 'chassis', 'bootdev', BOOTDEV_WORD[command.device], ...(options.length > 0 ? [`options=${options.join(',')}`] : [])];
    }
    case 'bootparam-get-5':
      return [...argv, 'chassis', 'bootparam', 'get', '5'];
  }
}

/** What stdout says when a power control command was accepted (`Chassis Power Control: Up/On`). */
const POWER_CONTROL_WORD: Readonly<Record<Exclude<ChassisPowerVerb, 'status'>, string>> = {
  on: 'Up/On',
  off: 'Down/Off',
  soft: 'Soft',
  cycle: 'Cycle',
  reset: 'Reset',
};

/** The boot device selectors ipmitool prints for `bootparam get 5`, ours in their place (others are not ours). */
const BOOT_SELECTOR: readonly [RegExp, BootDevice][] = [
  [/^Force PXE$/, 'pxe'],
  [/^Force Boot from default Hard-Drive/, 'disk'],
  [/^Force Boot from CD\/DVD$/, 'cdrom'],
];

/**
 * ipmitool's failure outputs (stderr, or stdout for completion codes), first match wins. `sent: 'nothing'` marks the
 * rows whose output proves the BMC received no command (the session never opened, ipmitool refused the arguments,
 * the BMC refused the command unexecuted): only those may fall through to the next driver. Each row's code carries the
 * same mark in drivers/errors.ts (a unit test checks they agree).
 */
export const IPMITOOL_ERRORS: readonly { match: RegExp; code: BmcErrorCode; sent: 'nothing' | 'maybe'; says: string }[] = [
  { match: /RAKP 2 HMAC is invalid|RAKP \d message indicates an error : (unauthorized name|invalid integrity check value)|unauthorized name|Invalid user name/i, code: 'BMC_ERR_AUTH', sent: 'nothing', says: 'the BMC rejected the user name or password' },
  { match: /Unable to read password from environment/i, code: 'BMC_ERR_AUTH', sent: 'nothing', says: 'no password was given to ipmitool' },
  { match: /unauthorized role or privilege|Requested privilege level exceeds/i, code: 'BMC_ERR_AUTH', sent: 'nothing', says: "the user's privilege level is too low" },
  { match: /invalid (authentication|integrity|confidentiality) algorithm|Unsupported cipher suite/i, code: 'BMC_ERR_UNSUPPORTED', sent: 'nothing', says: 'the BMC does not support this cipher suite' },
  { match: /insufficient resources for session|Node busy|Out of space/i, code: 'BMC_ERR_BUSY', sent: 'nothing', says: 'the BMC is busy' },
  { match: /Address lookup for \S+ failed|Could not open socket|Get Auth Capabilities error|Error issuing Get Channel Authentication Capabilities|No response from remote controller/i, code: 'BMC_ERR_UNREACHABLE', sent: 'nothing', says: 'the BMC did not answer' },
  { match: /Invalid chassis power command|Invalid argument|Invalid chassis bootdev|Unknown boot device|Invalid option/i, code: 'BMC_ERR_UNSUPPORTED', sent: 'nothing', says: 'ipmitool refused the arguments' },
  { match: /Invalid command|Command not supported|not supported in present state/i, code: 'BMC_ERR_UNSUPPORTED', sent: 'nothing', says: 'the BMC does not support the command' },
  { match: /Unable to establish IPMI v2 \/ RMCP\+ session/i, code: 'BMC_ERR_UNREACHABLE', sent: 'nothing', says: 'no IPMI session could be opened' },
  { match: /Unable to set Chassis Power Control|Set Chassis Boot Parameter \d+ failed|Invalid data field|Unspecified error|Parameter out of range/i, code: 'BMC_ERR_COMMAND_FAILED', sent: 'maybe', says: 'the BMC refused the command' },
];

/** The session-level failure only: ipmitool printed no reason (it does with `-v`). */
export function isBareSessionFailure(stderr: string): boolean {
  const lines = meaningful(stderr);
  return lines.length > 0 && lines.every((l) => /^Error: Unable to establish IPMI v2 \/ RMCP\+ session$/.test(l));
}

/** Raw ipmitool output of one run. */
export interface IpmitoolOutput {
  /** null: killed (deadline or abort). */
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Whether stdout carries the line ipmitool prints when `command` did what was asked. ipmitool exits 0 on some
 * failures (`bootdev` prints "Set Chassis Boot Parameter 5 failed: ..." to stderr), so exit 0 alone proves nothing.
 */
export function confirms(command: IpmiCommand, stdout: string): boolean {
  const lines = stdout.split('\n').map((l) => l.trim());
  switch (command.kind) {
    case 'power':
      return command.verb === 'status'
        ? lines.some((l) => /^Chassis Power is (on|off)$/.test(l))
        : lines.includes(`Chassis Power Control: ${POWER_CONTROL_WORD[command.verb]}`);
    case 'bootdev':
      return lines.includes(`Set Boot Device to ${BOOTDEV_WORD[command.device]}`);
    case 'bootparam-get-5':
      return lines.some((l) => /^- Boot Device Selector :/.test(l));
  }
}

/**
 * The BmcError of a run, or null when it did what was asked (exit 0 and its confirmation line: then stderr is not
 * read, so a noisy line can never turn a command that ran into a "nothing was sent" error). Otherwise the first
 * table row found in the output; none: BMC_ERR_COMMAND_FAILED (nothing is proven).
 */
export function classifyFailure(what: string, command: IpmiCommand, out: IpmitoolOutput): BmcError | null {
  if (out.code === null) return new BmcError('BMC_ERR_TIMEOUT', DRIVER, `${what}: ipmitool was killed at its deadline`);
  if (out.code === 0 && confirms(command, out.stdout)) return null;
  const row = IPMITOOL_ERRORS.find((r) => r.match.test(`${out.stderr}\n${out.stdout}`));
  const detail = meaningful(out.stderr).join('; ') || meaningful(out.stdout).slice(0, 3).join('; ') || `exit code ${out.code}`;
  if (!row) {
    const why = out.code === 0 ? 'ipmitool did not confirm it' : `ipmitool failed (exit code ${out.code})`;
    return new BmcError('BMC_ERR_COMMAND_FAILED', DRIVER, `${what}: ${why}: ${detail}`);
  }
  return new BmcError(row.code, DRIVER, `${what}: ${row.says}${row.sent === 'nothing' ? ' (nothing was sent)' : ''}: ${detail}`);
}

/** `Chassis Power is on|off` -> the reading. @throws BmcError BMC_ERR_BAD_RESPONSE on anything else. */
export function parsePowerStatus(stdout: string): 'on' | 'off' {
  const m = /^Chassis Power is (on|off)\s*$/m.exec(stdout);
  if (!m) throw badResponse('power status read', stdout);
  return m[1] as 'on' | 'off';
}

/**
 * `chassis bootparam get 5` -> what the BMC will boot; null for "No override" (what `chassis bootdev none` leaves).
 * Any other selector that is none of ours (BIOS setup, floppy ...) is BMC_ERR_BAD_RESPONSE (not a boot setting metald
 * can set or report).
 * NOTE(ipmi_sim): it answers "Boot Flag Invalid", legacy and next boot only whatever was asked, with the device it
 * was given; the read-back then shows the dropped flags (drivers/bmc.ts: BMC_ERR_BOOT_FLAGS_IGNORED).
 */
export function parseBootParam5(stdout: string): BootSettings | null {
  const flags = stdout.split('\n').map((l) => l.trim().replace(/^- /, '').trim());
  const selector = flags.find((l) => l.startsWith('Boot Device Selector :'))?.slice('Boot Device Selector :'.length).trim();
  const persistentLine = flags.find((l) => /^Options apply to (all future boots|only next boot)$/.test(l));
  const modeLine = flags.find((l) => /^BIOS (EFI|PC Compatible \(legacy\)) boot$/.test(l));
  if (selector === undefined || persistentLine === undefined || modeLine === undefined) throw badResponse('boot parameter 5 read', stdout);
  // `chassis bootdev none`: the BMC holds no override; the server follows its own boot order.
  if (selector === 'No override') return null;
  const device = BOOT_SELECTOR.find(([re]) => re.test(selector))?.[1];
  if (!device) {
    throw new BmcError('BMC_ERR_BAD_RESPONSE', DRIVER, `boot parameter 5 read: the BMC boots "${selector}", not pxe, disk or cdrom`);
  }
  return { device, persistent: persistentLine.endsWith('all future boots'), mode: modeLine.includes('EFI') ? 'uefi' : 'legacy' };
}

/** Whether a code of drivers/errors.ts agrees with a table row's mark. */
export function rowAgrees(row: (typeof IPMITOOL_ERRORS)[number]): boolean {
  return BMC_ERRORS[row.code].nothingSent === (row.sent === 'nothing');
}

function badResponse(what: string, stdout: string): BmcError {
  const shown = meaningful(stdout).slice(0, 3).join('; ') || 'nothing';
  return new BmcError('BMC_ERR_BAD_RESPONSE', DRIVER, `${what}: unexpected ipmitool output: ${shown}`);
}

/** Output lines without blanks and -v chatter. */
function meaningful(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^Loading IANA PEN Registry/.test(l) && l !== 'Password:');
}
