/**
 * The ipmitool wrapper's argv builder and output readers, table-driven. The outputs are what the real ipmitool
 * (Debian 1.8.19) printed here against ipmi_sim (test/emulators/ipmi-sim.ts), a dead port and a bad host.
 */
import { describe, expect, it } from 'vitest';
import {
  buildArgv,
  classifyFailure,
  confirms,
  IPMITOOL_ERRORS,
  isBareSessionFailure,
  parseBootParam5,
  parsePowerStatus,
  rowAgrees,
  type IpmiCommand,
  type IpmiSession,
} from '../../../drivers/ipmi/ipmitool.js';

const SESSION: IpmiSession = { host: '10.0.1.21', port: 6230, username: 'admin', cipherSuite: 3, retries: 2, retryTimeoutS: 1 };
const BASE = ['-I', 'lanplus', '-H', '10.0.1.21', '-p', '6230', '-U', 'admin', '-C', '3', '-R', '2', '-N', '1', '-E'];

const BOOTPARAM_SIM = `Boot parameter version: 1
Boot parameter 5 is valid/unlocked
Boot parameter data: 0004000000
 Boot Flags :
   - Boot Flag Invalid
   - Options apply to only next boot
   - BIOS PC Compatible (legacy) boot 
   - Boot Device Selector : Force PXE
   - BIOS verbosity : System Default
   - Console Redirection control : Console redirection occurs per BIOS configuration setting (default)
   - BIOS Mux Control Override : BIOS uses recommended setting of the mux at the end of POST
`;

const SESSION_FAILED = 'Error: Unable to establish IPMI v2 / RMCP+ session\n';

describe('buildArgv', () => {
  const cases: [IpmiCommand, string[]][] = [
    [{ kind: 'power', verb: 'status' }, ['chassis', 'power', 'status']],
    [{ kind: 'power', verb: 'on' }, ['chassis', 'power', 'on']],
    [{ kind: 'power', verb: 'off' }, ['chassis', 'power', 'off']],
    [{ kind: 'power', verb: 'soft' }, ['chassis', 'power', 'soft']],
    [{ kind: 'power', verb: 'cycle' }, ['chassis', 'power', 'cycle']],
    [{ kind: 'power', verb: 'reset' }, ['chassis', 'power', 'reset']],
    [{ kind: 'bootdev', device: 'pxe', persistent: false, efi: false }, ['chassis', 'bootdev', 'pxe']],
    [{ kind: 'bootdev', device: 'disk', persistent: true, efi: false }, ['chassis', 'bootdev', 'disk', 'options=persistent']],
    [{ kind: 'bootdev', device: 'cdrom', persistent: false, efi: true }, ['chassis', 'bootdev', 'cdrom', 'options=efiboot']],
    [{ kind: 'bootdev', device: 'pxe', persistent: true, efi: true }, ['chassis', 'bootdev', 'pxe', 'options=persistent,efiboot']],
    [{ kind: 'bootdev', device: 'none', persistent: false, efi: false }, ['chassis', 'bootdev', 'none']],
    [{ kind: 'bootparam-get-5' }, ['chassis', 'bootparam', 'get', '5']],
  ];
  it.each(cases)('%j', (command, tail) => {
    expect(buildArgv(SESSION, command)).toEqual([...BASE, ...tail]);
  });

  it('-v first when diagnosing; the password is never an argument (-E reads the environment)', () => {
    const argv = buildArgv({ ...SESSION, verbose: true }, { kind: 'power', verb: 'status' });
    expect(argv.slice(0, 2)).toEqual(['-v', '-I']);
    expect(argv).not.toContain('-P');
    expect(argv).toContain('-E');
  });
});

describe('output readers', () => {
  it.each([
    ['Chassis Power is on\n', 'on'],
    ['Chassis Power is off\n', 'off'],
  ] as const)('power status %j', (stdout, want) => expect(parsePowerStatus(stdout)).toBe(want));

  it.each(['', 'Chassis Power is unknown\n', 'Chassis Power Control: Up/On\n'])('power status %j is BMC_ERR_BAD_RESPONSE', (stdout) => {
    expect(() => parsePowerStatus(stdout)).toThrow(expect.objectContaining({ code: 'BMC_ERR_BAD_RESPONSE' }) as unknown as Error);
  });

  it.each([
    ['on', 'Chassis Power Control: Up/On\n'],
    ['off', 'Chassis Power Control: Down/Off\n'],
    ['soft', 'Chassis Power Control: Soft\n'],
    ['cycle', 'Chassis Power Control: Cycle\n'],
    ['reset', 'Chassis Power Control: Reset\n'],
  ] as const)('power %s is confirmed by %j only', (verb, stdout) => {
    expect(confirms({ kind: 'power', verb }, stdout)).toBe(true);
    expect(confirms({ kind: 'power', verb: verb === 'on' ? 'off' : 'on' }, stdout)).toBe(false);
    expect(confirms({ kind: 'power', verb }, '')).toBe(false);
  });

  it('bootdev is confirmed only by "Set Boot Device to X"; status and bootparam by their lines', () => {
    const pxe = { kind: 'bootdev', device: 'pxe', persistent: false, efi: false } as const;
    expect(confirms(pxe, 'Set Boot Device to pxe\n')).toBe(true);
    expect(confirms(pxe, 'Set Boot Device to disk\n')).toBe(false);
    expect(confirms({ kind: 'power', verb: 'status' }, 'Chassis Power is off\n')).toBe(true);
    expect(confirms({ kind: 'bootparam-get-5' }, BOOTPARAM_SIM)).toBe(true);
    expect(confirms({ kind: 'bootparam-get-5' }, 'Boot parameter version: 1\n')).toBe(false);
  });

  it.each([
    [BOOTPARAM_SIM, { device: 'pxe', persistent: false, mode: 'legacy' }],
    [BOOTPARAM_SIM.replace('Force PXE', 'Force Boot from CD/DVD'), { device: 'cdrom', persistent: false, mode: 'legacy' }],
    [BOOTPARAM_SIM.replace('Force PXE', 'Force Boot from default Hard-Drive'), { device: 'disk', persistent: false, mode: 'legacy' }],
    [
      BOOTPARAM_SIM.replace('only next boot', 'all future boots').replace('BIOS PC Compatible (legacy) boot ', 'BIOS EFI boot'),
      { device: 'pxe', persistent: true, mode: 'uefi' },
    ],
  ])('bootparam get 5 (%#)', (stdout, want) => expect(parseBootParam5(stdout)).toEqual(want));

  it('bootparam get 5: "No override" (bootdev none) is null; another selector or missing lines are BMC_ERR_BAD_RESPONSE', () => {
    expect(parseBootParam5(BOOTPARAM_SIM.replace('Force PXE', 'No override'))).toBeNull();
    expect(() => parseBootParam5(BOOTPARAM_SIM.replace('Force PXE', 'Force Boot into BIOS Setup'))).toThrow(/boots "Force Boot into BIOS Setup"/);
    expect(() => parseBootParam5('Boot parameter version: 1\n')).toThrow(expect.objectContaining({ code: 'BMC_ERR_BAD_RESPONSE' }) as unknown as Error);
  });
});

describe('classifyFailure', () => {
  const STATUS: IpmiCommand = { kind: 'power', verb: 'status' };
  const ON: IpmiCommand = { kind: 'power', verb: 'on' };
  const BOOTDEV: IpmiCommand = { kind: 'bootdev', device: 'pxe', persistent: false, efi: false };
  const cases: [string, IpmiCommand, { code: number | null; stdout?: string; stderr: string }, string | null, boolean | null][] = [
    ['success', STATUS, { code: 0, stdout: 'Chassis Power is on\n', stderr: '' }, null, null],
    ['success with a noisy stderr line', ON, { code: 0, stdout: 'Chassis Power Control: Up/On\n', stderr: 'Invalid completion code received: Invalid command\n' }, null, null],
    ['exit 0 without the confirmation', ON, { code: 0, stdout: '', stderr: '' }, 'BMC_ERR_COMMAND_FAILED', false],
    ['killed at the deadline', STATUS, { code: null, stderr: '' }, 'BMC_ERR_TIMEOUT', false],
    ['wrong password (-v)', STATUS, { code: 1, stderr: 'Loading IANA PEN Registry...\n> RAKP 2 HMAC is invalid\n' + SESSION_FAILED }, 'BMC_ERR_AUTH', true],
    ['unknown user (-v)', STATUS, { code: 1, stderr: 'Loading IANA PEN Registry...\nRAKP 2 message indicates an error : unauthorized name\n' + SESSION_FAILED }, 'BMC_ERR_AUTH', true],
    ['no IPMI_PASSWORD', STATUS, { code: 1, stderr: 'Unable to read password from environment\nPassword: ' + SESSION_FAILED }, 'BMC_ERR_AUTH', true],
    ['cipher suite 17 (-v)', STATUS, { code: 1, stderr: 'Loading IANA PEN Registry...\nError in open session response message : invalid authentication algorithm\n\n' + SESSION_FAILED }, 'BMC_ERR_UNSUPPORTED', true],
    ['dead port (-v)', STATUS, { code: 1, stderr: 'Loading IANA PEN Registry...\nGet Auth Capabilities error\nError issuing Get Channel Authentication Capabilities request\n' + SESSION_FAILED }, 'BMC_ERR_UNREACHABLE', true],
    ['bad host', STATUS, { code: 1, stderr: 'Address lookup for nonexistent.invalid failed\nCould not open socket!\n' + SESSION_FAILED }, 'BMC_ERR_UNREACHABLE', true],
    ['bare session failure', STATUS, { code: 1, stderr: SESSION_FAILED }, 'BMC_ERR_UNREACHABLE', true],
    ['sessions exhausted', STATUS, { code: 1, stderr: 'Error in open session response message : insufficient resources for session\n\n' + SESSION_FAILED }, 'BMC_ERR_BUSY', true],
    ['bad power verb', ON, { code: 1, stderr: 'Invalid chassis power command: bogus\n' }, 'BMC_ERR_UNSUPPORTED', true],
    ['bad bootdev', BOOTDEV, { code: 1, stderr: 'Invalid argument: bogus\n' }, 'BMC_ERR_UNSUPPORTED', true],
    ['bootdev refused, exit 0', BOOTDEV, { code: 0, stderr: 'Set Chassis Boot Parameter 5 failed: Unspecified error\n' }, 'BMC_ERR_COMMAND_FAILED', false],
    ['unknown failure', STATUS, { code: 1, stderr: 'something new\n' }, 'BMC_ERR_COMMAND_FAILED', false],
  ];
  it.each(cases)('%s', (_name, command, out, code, nothingSent) => {
    const err = classifyFailure('call', command, { stdout: '', ...out });
    if (code === null) expect(err).toBeNull();
    else expect(err).toMatchObject({ code, nothingSent, driver: 'ipmi' });
  });

  it('every table row marks nothing-sent as its code does', () => {
    for (const row of IPMITOOL_ERRORS) expect([row.code, rowAgrees(row)]).toEqual([row.code, true]);
  });

  it('a bare session failure is told apart from one with a reason', () => {
    expect(isBareSessionFailure(SESSION_FAILED)).toBe(true);
    expect(isBareSessionFailure('> RAKP 2 HMAC is invalid\n' + SESSION_FAILED)).toBe(false);
    expect(isBareSessionFailure('')).toBe(false);
  });
});
