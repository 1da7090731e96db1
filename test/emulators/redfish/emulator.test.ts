/** The Redfish emulator over real HTTP, in-process: Redfish semantics, the control side, the fault knobs. */
import { afterEach, describe, expect, test } from 'vitest';
import { basic, emulatorControl, emuRequest, type EmuResponse } from './launch.js';
import type { SystemDump } from './model.js';
import { startRedfishEmulator, type EmulatorOptions, type RedfishEmulator } from './server.js';

const PASSWORD = 'emu-test-secret';
let emu: RedfishEmulator | null = null;

afterEach(async () => {
  await emu?.close();
  emu = null;
});

async function start(o: Partial<EmulatorOptions> = {}): Promise<RedfishEmulator> {
  emu = await startRedfishEmulator({ systems: 3, password: PASSWORD, profile: { powerDelayMs: 60 }, ...o });
  return emu;
}

const auth = { Authorization: basic('admin', PASSWORD) };
const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = auth): Promise<EmuResponse> =>
  emuRequest(emu!.url, method, path, { body, headers });
const sys = (id: string): Promise<SystemDump> => emulatorControl(emu!.url).system(id);
const reset = (id: string, type: string): Promise<EmuResponse> => call('POST', `/redfish/v1/Systems/${id}/Actions/ComputerSystem.Reset`, { ResetType: type });
const messageId = (r: EmuResponse): unknown => (r.body as { error: { '@Message.ExtendedInfo': { MessageId: string }[] } }).error['@Message.ExtendedInfo'][0]?.MessageId;

async function until(what: string, f: () => Promise<boolean>, ms = 2_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('sessions and auth', () => {
  test('the service root is open; Systems needs auth (401 with ExtendedInfo); Basic works; a session logs in and out', async () => {
    await start();
    expect((await call('GET', '/redfish/v1/', undefined, {})).status).toBe(200);
    const anon = await call('GET', '/redfish/v1/Systems', undefined, {});
    expect(anon.status).toBe(401);
    expect(messageId(anon)).toBe('Base.1.8.NoValidSession');
    const members = ((await call('GET', '/redfish/v1/Systems')).body as { Members: { '@odata.id': string }[] }).Members;
    expect(members.map((m) => m['@odata.id'])).toEqual(['/redfish/v1/Systems/sys-1', '/redfish/v1/Systems/sys-2', '/redfish/v1/Systems/sys-3']);

    const login = await call('POST', '/redfish/v1/SessionService/Sessions', { UserName: 'admin', Password: PASSWORD }, {});
    expect(login.status).toBe(201);
    const token = login.headers['x-auth-token'] as string;
    const location = login.headers.location as string;
    expect(location).toMatch(/^\/redfish\/v1\/SessionService\/Sessions\/\d+$/);
    expect((await call('GET', '/redfish/v1/Systems/sys-1', undefined, { 'X-Auth-Token': token })).status).toBe(200);
    expect(emu!.sessionCount()).toBe(1);
    expect((await call('DELETE', location, undefined, { 'X-Auth-Token': token })).status).toBe(204);
    expect(emu!.sessionCount()).toBe(0);
    expect((await call('GET', '/redfish/v1/Systems/sys-1', undefined, { 'X-Auth-Token': token })).status).toBe(401);
  });

  test('a wrong password is refused at login and in Basic auth; the password never appears in a body or the log', async () => {
    await start();
    const bad = await call('POST', '/redfish/v1/SessionService/Sessions', { UserName: 'admin', Password: 'nope' }, {});
    expect(bad.status).toBe(401);
    expect(bad.headers['x-auth-token']).toBeUndefined();
    expect((await call('GET', '/redfish/v1/Systems', undefined, { Authorization: basic('admin', 'nope') })).status).toBe(401);
    expect((await call('POST', '/redfish/v1/SessionService/Sessions', { UserName: 'admin' }, {})).status).toBe(400);
    await reset('sys-1', 'On');
    expect(JSON.stringify(await sys('sys-1'))).not.toContain(PASSWORD);
  });
});

describe('power', () => {
  test('a reset is asynchronous: 204, PoweringOn, then On after the delay; the log has the command and the settling', async () => {
    await start();
    expect((await reset('sys-1', 'On')).status).toBe(204);
    expect((await call('GET', '/redfish/v1/Systems/sys-1')).body).toMatchObject({ PowerState: 'PoweringOn' });
    await until('sys-1 On', async () => ((await call('GET', '/redfish/v1/Systems/sys-1')).body as { PowerState: string }).PowerState === 'On');
    const s = await sys('sys-1');
    expect((s.commands as { kind: string; args: unknown }[]).map((c) => [c.kind, c.args])).toEqual([
      ['reset', { ResetType: 'On', from: 'Off' }],
      ['power-settled', { PowerState: 'On' }],
      ['booted', { device: 'Hdd', mode: 'UEFI' }],
    ]);
    expect((await sys('sys-2')).powerState).toBe('Off');
    expect((await sys('sys-2')).commands).toEqual([]);
  });

  test('ResetType@Redfish.AllowableValues is per system: one without GracefulShutdown refuses it with 400 and ExtendedInfo', async () => {
    await start({ power: 'On', overrides: { 'sys-2': { resetTypes: ['On', 'ForceOff'] } } });
    const body = (await call('GET', '/redfish/v1/Systems/sys-2')).body as { Actions: Record<string, Record<string, unknown>> };
    expect(body.Actions['#ComputerSystem.Reset']!['ResetType@Redfish.AllowableValues']).toEqual(['On', 'ForceOff']);
    const r = await reset('sys-2', 'GracefulShutdown');
    expect(r.status).toBe(400);
    expect(messageId(r)).toBe('Base.1.8.ActionParameterValueNotInList');
    expect((await sys('sys-2')).powerState).toBe('On');
    expect((await reset('sys-1', 'GracefulShutdown')).status).toBe(204);
    await until('sys-1 Off', async () => (await sys('sys-1')).powerState === 'Off');
  });

  test('tasks: a reset answers 202 + Location; the task monitor says 202 Running, then 200 Completed', async () => {
    await start({ profile: { powerDelayMs: 150, tasks: true } });
    const r = await reset('sys-1', 'On');
    expect(r.status).toBe(202);
    const loc = r.headers.location as string;
    expect(loc).toMatch(/^\/redfish\/v1\/TaskService\/Tasks\/\d+$/);
    const running = await call('GET', loc);
    expect([running.status, (running.body as { TaskState: string }).TaskState]).toEqual([202, 'Running']);
    await until('task completed', async () => (await call('GET', loc)).status === 200);
    expect(((await call('GET', loc)).body as { TaskState: string }).TaskState).toBe('Completed');
    expect((await sys('sys-1')).powerState).toBe('On');
  });
});

describe('boot override and ETags', () => {
  const patch = (body: unknown, headers: Record<string, string> = {}): Promise<EmuResponse> => call('PATCH', '/redfish/v1/Systems/sys-1', body, { ...auth, ...headers });

  test('If-Match with the current ETag applies; a stale one is 412; a value outside AllowableValues is 400', async () => {
    await start();
    const got = await call('GET', '/redfish/v1/Systems/sys-1');
    const etag = got.headers.etag as string;
    expect(etag).toBe((got.body as Record<string, string>)['@odata.etag']);
    const ok = await patch({ Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' } }, { 'If-Match': etag });
    expect(ok.status).toBe(200);
    expect((await sys('sys-1')).boot).toEqual({ target: 'Pxe', enabled: 'Once', mode: 'UEFI' });
    const stale = await patch({ Boot: { BootSourceOverrideTarget: 'Cd' } }, { 'If-Match': etag });
    expect(stale.status).toBe(412);
    expect(messageId(stale)).toBe('Base.1.8.PreconditionFailed');
    const notListed = await patch({ Boot: { BootSourceOverrideTarget: 'Floppy' } });
    expect([notListed.status, messageId(notListed)]).toEqual([400, 'Base.1.8.PropertyValueNotInList']);
    expect((await patch({ PowerState: 'On' })).status).toBe(400);
    expect((await sys('sys-1')).boot).toEqual({ target: 'Pxe', enabled: 'Once', mode: 'UEFI' });
  });

  test('the ETag changes when a power transition settles: a PATCH with the ETag read before is 412', async () => {
    await start();
    await reset('sys-1', 'On');
    const before = (await call('GET', '/redfish/v1/Systems/sys-1')).headers.etag as string;
    await until('sys-1 On', async () => (await sys('sys-1')).powerState === 'On');
    expect((await patch({ Boot: { BootSourceOverrideTarget: 'Pxe' } }, { 'If-Match': before })).status).toBe(412);
  });

  test('a Once override is used by the next boot and goes back to Disabled; Continuous stays', async () => {
    await start();
    await patch({ Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' } });
    await reset('sys-1', 'On');
    await until('booted', async () => ((await sys('sys-1')).boots as unknown[]).length === 1);
    expect((await sys('sys-1')).boots).toMatchObject([{ device: 'Pxe' }]);
    expect((await sys('sys-1')).boot).toMatchObject({ enabled: 'Disabled' });
    await patch({ Boot: { BootSourceOverrideTarget: 'Cd', BootSourceOverrideEnabled: 'Continuous', BootSourceOverrideMode: 'Legacy' } });
    await reset('sys-1', 'ForceRestart');
    await until('rebooted', async () => ((await sys('sys-1')).boots as unknown[]).length === 2);
    expect((await sys('sys-1')).boots).toMatchObject([{ device: 'Pxe' }, { device: 'Cd', mode: 'Legacy' }]);
    expect((await sys('sys-1')).boot).toMatchObject({ enabled: 'Continuous' });
  });

  test('requireIfMatch: a PATCH without If-Match is 428', async () => {
    await start({ profile: { requireIfMatch: true } });
    const r = await patch({ Boot: { BootSourceOverrideTarget: 'Pxe' } });
    expect([r.status, messageId(r)]).toEqual([428, 'Base.1.8.PreconditionRequired']);
  });
});

describe('virtual media', () => {
  test('found through the Manager; insert, a second insert is 409, eject', async () => {
    await start();
    const mgr = (await call('GET', '/redfish/v1/Systems/sys-2')).body as { Links: { ManagedBy: { '@odata.id': string }[] } };
    const mgrPath = mgr.Links.ManagedBy[0]!['@odata.id'];
    const vm = ((await call('GET', mgrPath)).body as { VirtualMedia: { '@odata.id': string } }).VirtualMedia['@odata.id'];
    const cd = ((await call('GET', vm)).body as { Members: { '@odata.id': string }[] }).Members[0]!['@odata.id'];
    const insert = `${cd}/Actions/VirtualMedia.InsertMedia`;
    expect((await call('POST', insert, { Image: 'http://10.0.0.1/boot.iso' })).status).toBe(204);
    expect((await sys('sys-2')).media).toEqual({ image: 'http://10.0.0.1/boot.iso', inserted: true, writeProtected: true });
    expect(((await call('GET', cd)).body as Record<string, unknown>).Inserted).toBe(true);
    expect((await call('POST', insert, { Image: 'http://10.0.0.1/other.iso' })).status).toBe(409);
    expect((await call('POST', insert.replace('sys-2', 'sys-3'), { Image: 'ftp://x/y.iso' })).status).toBe(400);
    expect((await call('POST', `${cd}/Actions/VirtualMedia.EjectMedia`)).status).toBe(204);
    expect((await sys('sys-2')).media).toMatchObject({ image: null, inserted: false });
    expect(((await sys('sys-2')).commands as { kind: string; status: number }[]).map((c) => [c.kind, c.status])).toEqual([['media-insert', 204], ['media-insert', 409], ['media-eject', 204]]);
    expect((await call('GET', '/redfish/v1/Systems/sys-2/VirtualMedia')).status).toBe(404);
  });

  test('vmediaUnder system: the CD is linked from the System, not the Manager', async () => {
    await start({ profile: { vmediaUnder: 'system' } });
    expect(((await call('GET', '/redfish/v1/Systems/sys-1')).body as Record<string, unknown>).VirtualMedia).toEqual({ '@odata.id': '/redfish/v1/Systems/sys-1/VirtualMedia' });
    expect(((await call('GET', '/redfish/v1/Managers/sys-1')).body as Record<string, unknown>).VirtualMedia).toBeUndefined();
    expect((await call('POST', '/redfish/v1/Systems/sys-1/VirtualMedia/Cd/Actions/VirtualMedia.InsertMedia', { Image: 'https://h/x.iso' })).status).toBe(204);
  });
});

describe('faults', () => {
  const setFaults = (f: unknown): Promise<EmuResponse> => call('PUT', '/emulator/faults', f, {});

  test('unavailable: N: the next N requests answer 503 with Retry-After and ExtendedInfo, then service resumes', async () => {
    await start();
    expect((await setFaults({ unavailable: 2 })).status).toBe(200);
    const a = await call('GET', '/redfish/v1/Systems/sys-1');
    expect([a.status, a.headers['retry-after'], messageId(a)]).toEqual([503, '1', 'Base.1.8.ServiceTemporarilyUnavailable']);
    expect((await call('GET', '/redfish/v1/Systems/sys-1')).status).toBe(503);
    expect((await call('GET', '/redfish/v1/Systems/sys-1')).status).toBe(200);
  });

  test('hang: no answer while set (only for the systems listed); answered once cleared', async () => {
    await start();
    await setFaults({ hang: true, systems: ['sys-2'] });
    expect((await call('GET', '/redfish/v1/Systems/sys-1')).status).toBe(200);
    const hung = emuRequest(emu!.url, 'GET', '/redfish/v1/Systems/sys-2', { headers: auth, timeoutMs: 300 });
    await expect(hung).rejects.toThrow(/no answer in 300 ms/);
    const later = call('GET', '/redfish/v1/Systems/sys-2');
    await new Promise((r) => setTimeout(r, 50));
    expect((await call('DELETE', '/emulator/faults', undefined, {})).status).toBe(200);
    expect((await later).status).toBe(200);
  });

  test('dropSession: the next token call is 401 and every session is gone; a new login works', async () => {
    await start();
    const login = await call('POST', '/redfish/v1/SessionService/Sessions', { UserName: 'admin', Password: PASSWORD }, {});
    const token = { 'X-Auth-Token': login.headers['x-auth-token'] as string };
    await setFaults({ dropSession: true });
    expect((await call('GET', '/redfish/v1/Systems/sys-1', undefined, token)).status).toBe(401);
    expect(emu!.sessionCount()).toBe(0);
    expect((await call('GET', '/redfish/v1/Systems/sys-1', undefined, token)).status).toBe(401);
    expect((await call('POST', '/redfish/v1/SessionService/Sessions', { UserName: 'admin', Password: PASSWORD }, {})).status).toBe(201);
  });

  test('dropSessionOn: POST: reads keep the session, the next POST with the token drops it; authRefused counts every 401', async () => {
    await start();
    const login = await call('POST', '/redfish/v1/SessionService/Sessions', { UserName: 'admin', Password: PASSWORD }, {});
    const token = { 'X-Auth-Token': login.headers['x-auth-token'] as string };
    await setFaults({ dropSession: true, dropSessionOn: 'POST' });
    expect((await call('GET', '/redfish/v1/Systems/sys-1', undefined, token)).status).toBe(200);
    const reset = await call('POST', '/redfish/v1/Systems/sys-1/Actions/ComputerSystem.Reset', { ResetType: 'On' }, token);
    expect(reset.status).toBe(401);
    expect(emu!.sessionCount()).toBe(0);
    expect((await call('POST', '/redfish/v1/SessionService/Sessions', { UserName: 'admin', Password: 'wrong' }, {})).status).toBe(401);
    expect(((await call('GET', '/emulator/stats')).body as { authRefused: number }).authRefused).toBe(2);
    expect((await setFaults({ dropSessionOn: 'PUT' })).status).toBe(400);
  });

  test('dropConnection: the next request loses its connection without an answer', async () => {
    await start();
    await setFaults({ dropConnection: true });
    await expect(call('GET', '/redfish/v1/Systems/sys-1')).rejects.toThrow(/socket hang up|ECONNRESET/);
    expect((await call('GET', '/redfish/v1/Systems/sys-1')).status).toBe(200);
  });

  test('rejectPassword: the right password is refused at login and in Basic auth', async () => {
    await start({ faults: { rejectPassword: true } });
    expect((await call('POST', '/redfish/v1/SessionService/Sessions', { UserName: 'admin', Password: PASSWORD }, {})).status).toBe(401);
    expect((await call('GET', '/redfish/v1/Systems')).status).toBe(401);
  });

  test('revertBootAfterMs: the override goes back and the log says the emulator did it', async () => {
    await start({ faults: { revertBootAfterMs: 50 } });
    expect((await call('PATCH', '/redfish/v1/Systems/sys-1', { Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Continuous' } })).status).toBe(200);
    expect((await sys('sys-1')).boot).toMatchObject({ target: 'Pxe' });
    await until('reverted', async () => ((await sys('sys-1')).boot as { target: string }).target === 'None');
    expect(((await sys('sys-1')).commands as { kind: string; by: string }[]).map((c) => [c.kind, c.by])).toEqual([['boot-override', 'client'], ['boot-revert', 'emulator']]);
  });

  test('powerOnDelayMs: power-on is slow on the systems listed, the others keep the normal delay', async () => {
    await start({ faults: { powerOnDelayMs: 600, systems: ['sys-1'] } });
    await Promise.all([reset('sys-1', 'On'), reset('sys-2', 'On')]);
    await until('sys-2 On', async () => (await sys('sys-2')).powerState === 'On');
    expect((await sys('sys-1')).powerState).toBe('PoweringOn');
    await until('sys-1 On', async () => (await sys('sys-1')).powerState === 'On', 2_000);
  });

  test('stats: the most requests open at once (what a concurrency bound is checked by), reset on DELETE', async () => {
    await start({ faults: { delayMs: 100 } });
    const ctl = emulatorControl(emu!.url);
    await Promise.all(['sys-1', 'sys-2', 'sys-3', 'sys-1', 'sys-2'].map((id) => call('GET', `/redfish/v1/Systems/${id}`)));
    expect(await ctl.stats()).toMatchObject({ requests: 5, inFlight: 0, maxInFlight: 5 });
    expect(await ctl.resetStats()).toMatchObject({ requests: 0, inFlight: 0, maxInFlight: 0 });
    await call('GET', '/redfish/v1/Systems/sys-1');
    await call('GET', '/redfish/v1/Systems/sys-2');
    expect(await ctl.stats()).toMatchObject({ requests: 2, maxInFlight: 1 });
  });

  test('control input is validated: unknown fault, bad type, bad profile', async () => {
    await start();
    expect((await setFaults({ hangs: true })).body).toEqual({ error: expect.stringMatching(/unknown fault "hangs"/) });
    expect((await setFaults({ delayMs: -1 })).status).toBe(400);
    expect((await call('PATCH', '/emulator/systems/sys-1', { resetTypes: ['Explode'] }, {})).status).toBe(400);
    expect((await call('PATCH', '/emulator/systems/sys-1', { powerState: 'On', resetTypes: ['On'] }, {})).body).toMatchObject({ powerState: 'On', profile: { resetTypes: ['On'] } });
    expect((await call('GET', '/emulator/faults', undefined, {})).body).toEqual({});
    await expect(emulatorControl(emu!.url).configure('sys-9', { powerState: 'On' })).rejects.toThrow(/control PATCH \/emulator\/systems\/sys-9: 404/);
    expect(await emulatorControl(emu!.url).addFaults({ delayMs: 5 })).toEqual({ delayMs: 5 });
    expect(await emulatorControl(emu!.url).addFaults({ hang: false })).toEqual({ delayMs: 5, hang: false });
  });
});
