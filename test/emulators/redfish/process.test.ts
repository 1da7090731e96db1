/** The standalone emulator (dist/, `npm run build` first): its command line, its listening line, HTTPS with the test CA. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import { parseEmulatorArgs } from './cli.js';
import { basic, EMULATOR_MAIN, emuRequest, launchEmulator, type EmulatorProcess } from './launch.js';
import { makeTestPki } from './tls.js';

const dir = mkdtempSync(join(tmpdir(), 'rfemu-proc-'));
let running: EmulatorProcess | null = null;

afterEach(async () => {
  await running?.stop();
  running = null;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('command line', () => {
  test('defaults and per-system settings', () => {
    const o = parseEmulatorArgs(['--systems', '8', '--reset-types', 'On,ForceOff', '--system', 'sys-3={"tasks":true}', '--faults', '{"unavailable":2}']);
    expect(o).toMatchObject({ systems: 8, port: 0, host: '127.0.0.1', user: 'admin', power: 'Off', profile: { resetTypes: ['On', 'ForceOff'] }, overrides: { 'sys-3': { tasks: true } }, faults: { unavailable: 2 } });
  });

  test.each([
    [['--systems', '0'], /--systems must be an integer from 1/],
    [['--systems', 'x'], /--systems must be an integer/],
    [['--reset-types', 'On,Explode'], /resetTypes must be a list of/],
    [['--faults', '{"nope":1}'], /unknown fault "nope"/],
    [['--faults', '{'], /--faults is not valid JSON/],
    [['--system', 'sys-1'], /--system must be ID=JSON/],
    [['--power', 'Maybe'], /--power must be On or Off/],
    [['--password', 'x'], /Unknown option '--password'/],
  ])('%j is refused: %s', (argv, message) => {
    expect(() => parseEmulatorArgs(argv)).toThrow(message);
  });

  test('a bad option exits 2 with the reason and the usage on stderr', () => {
    const r = spawnSync(process.execPath, [EMULATOR_MAIN, '--systems', '-3'], { encoding: 'utf8', timeout: 10_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/redfish-emulator: .*--systems/);
    expect(r.stderr).toContain('Usage: redfish-emulator');
  });
});

describe('standalone process over HTTPS', () => {
  test('prints its URL and credentials file; serves HTTPS verified by the test CA; a CA that does not match is refused', async () => {
    const tlsDir = join(dir, 'tls');
    const pwFile = join(dir, 'pw');
    writeFileSync(pwFile, 'from-a-file-42\n');
    running = await launchEmulator(['--systems', '8', '--tls-dir', tlsDir, '--password-file', pwFile, '--system', 'sys-8={"resetTypes":["On","ForceOff"]}', '--power-delay-ms', '20']);
    expect(running.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(running.password).toBe('from-a-file-42');
    expect(statSync(running.credentialsFile).mode & 0o777).toBe(0o600);
    const ca = readFileSync(running.caFile!, 'utf8');
    const r = await emuRequest(running.url, 'GET', '/redfish/v1/Systems', { ca, headers: { Authorization: basic('admin', running.password) } });
    expect((r.body as { 'Members@odata.count': number })['Members@odata.count']).toBe(8);
    const s8 = await emuRequest(running.url, 'GET', '/redfish/v1/Systems/sys-8', { ca, headers: { Authorization: basic('admin', running.password) } });
    expect((s8.body as { Actions: Record<string, Record<string, unknown>> }).Actions['#ComputerSystem.Reset']!['ResetType@Redfish.AllowableValues']).toEqual(['On', 'ForceOff']);

    const other = makeTestPki(join(dir, 'other-ca'));
    await expect(emuRequest(running.url, 'GET', '/redfish/v1/', { ca: other.ca })).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
    expect(running.stderr()).toBe('');
    expect(await running.stop()).toBe(0);
  });

  test('PUT /emulator/tls: the same process and port serve another certificate; the old CA is refused from then on', async () => {
    running = await launchEmulator(['--systems', '1', '--tls-dir', join(dir, 'tls-a')]);
    const caA = readFileSync(running.caFile!, 'utf8');
    const b = makeTestPki(join(dir, 'tls-b'));
    expect((await emuRequest(running.url, 'GET', '/redfish/v1/', { ca: caA })).status).toBe(200);
    const set = await emuRequest(running.url, 'PUT', '/emulator/tls', { ca: caA, body: { key: readFileSync(join(dir, 'tls-b', 'server.key'), 'utf8'), cert: readFileSync(join(dir, 'tls-b', 'server.pem'), 'utf8') } });
    expect(set.status).toBe(200);
    await expect(emuRequest(running.url, 'GET', '/redfish/v1/', { ca: caA })).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
    expect((await emuRequest(running.url, 'GET', '/redfish/v1/', { ca: b.ca })).status).toBe(200);
    expect((await emuRequest(running.url, 'PUT', '/emulator/tls', { ca: b.ca, body: { key: 'x' } })).status).toBe(400);
    expect(await running.stop()).toBe(0);
  });

  test('without --tls-dir it serves plain HTTP; the generated password is only in the credentials file', async () => {
    running = await launchEmulator(['--systems', '2', '--state-dir', dir]);
    expect(running.url).toMatch(/^http:\/\//);
    expect(running.caFile).toBeNull();
    expect(running.password.length).toBeGreaterThanOrEqual(16);
    expect(running.child.spawnargs.join(' ')).not.toContain(running.password);
    const r = await emuRequest(running.url, 'GET', '/redfish/v1/Systems/sys-2', { headers: { Authorization: basic(running.username, running.password) } });
    expect(r.status).toBe(200);
  });
});
