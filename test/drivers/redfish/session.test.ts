/**
 * The redfish driver's service discovery and authentication, against a scripted HTTPS BMC: what the BMC received
 * (its own request log) is asserted, not only what the driver returns.
 */
import { describe, expect, it } from 'vitest';
import { BmcError } from '../../../drivers/errors.js';
import { PASSWORD, USER } from './scripted-bmc.js';
import { useScriptedBmc } from './setup.js';

const ROOT = 'GET /redfish/v1/';
const LOGIN = 'POST /redfish/v1/SessionService/Sessions';
const SYSTEM = 'GET /redfish/v1/Systems/1';

async function failure(p: Promise<unknown>): Promise<BmcError> {
  const e: unknown = await p.then(() => null, (err: unknown) => err);
  if (!(e instanceof BmcError)) throw new Error(`expected a BmcError, got ${String(e)}`);
  return e;
}

describe('redfish driver: discovery and sessions', () => {
  const ctx = useScriptedBmc();

  it('finds the only system, logs in once with a session, and sends the token (not the password) after', async () => {
    const { driver } = ctx.bind();
    expect(await driver.power!.getPower()).toBe('off');
    ctx.bmc.power = 'On';
    expect(await driver.power!.getPower()).toBe('on');
    expect(ctx.bmc.calls()).toEqual([ROOT, LOGIN, 'GET /redfish/v1/Systems', SYSTEM, SYSTEM]);
    const [root, login, ...rest] = ctx.bmc.seen;
    expect(root!.headers['x-auth-token']).toBeUndefined();
    expect(root!.headers['authorization']).toBeUndefined();
    expect(JSON.parse(login!.body)).toEqual({ UserName: USER, Password: PASSWORD });
    const [token] = [...ctx.bmc.sessions.keys()];
    for (const r of rest) {
      expect(r.headers['x-auth-token']).toBe(token);
      expect(r.headers['authorization']).toBeUndefined();
    }
  });

  it('uses system_id when given (no Systems collection read)', async () => {
    const { driver } = ctx.bind({ system_id: '/redfish/v1/Systems/1' });
    await driver.power!.getPower();
    expect(ctx.bmc.calls()).toEqual([ROOT, LOGIN, SYSTEM]);
  });

  it('refuses to guess between several systems: BMC_ERR_UNSUPPORTED naming system_id, nothing sent', async () => {
    ctx.bmc.on('GET', '/redfish/v1/Systems', () => ({ status: 200, body: { Members: [{ '@odata.id': '/redfish/v1/Systems/1' }, { '@odata.id': '/redfish/v1/Systems/2' }] } }));
    const { driver } = ctx.bind();
    const e = await failure(driver.power!.setPower('on'));
    expect(e).toMatchObject({ code: 'BMC_ERR_UNSUPPORTED', nothingSent: true });
    expect(e.message).toMatch(/2 systems .*set system_id/);
    expect(ctx.bmc.calls().filter((c) => c.startsWith('POST /redfish/v1/Systems'))).toEqual([]);
  });

  it('logs out on close: DELETE of the session it created, with its token', async () => {
    const { driver } = ctx.bind();
    await driver.power!.getPower();
    const [token, path] = [...ctx.bmc.sessions.entries()][0]!;
    await driver.close!();
    const last = ctx.bmc.seen.at(-1)!;
    expect(`${last.method} ${last.path}`).toBe(`DELETE ${path}`);
    expect(last.headers['x-auth-token']).toBe(token);
    expect(ctx.bmc.sessions.size).toBe(0);
  });

  it('logs in again once when the BMC drops the session mid-way, and repeats the call', async () => {
    const { driver } = ctx.bind();
    await driver.power!.getPower();
    ctx.bmc.sessions.clear(); // the BMC forgot the session (expiry, BMC reset)
    ctx.bmc.power = 'On';
    expect(await driver.power!.getPower()).toBe('on');
    expect(ctx.bmc.calls().slice(4)).toEqual([SYSTEM, LOGIN, SYSTEM]);
    expect(ctx.bmc.seen.at(-1)!.headers['x-auth-token']).toBe([...ctx.bmc.sessions.keys()][0]);
  });

  it('re-logs in only once: a session refused again is BMC_ERR_AUTH', async () => {
    const { driver } = ctx.bind();
    await driver.power!.getPower();
    ctx.bmc.on('GET', '/redfish/v1/Systems/1', () => ({ status: 401, body: {} }));
    const e = await failure(driver.power!.getPower());
    expect(e.code).toBe('BMC_ERR_AUTH');
    expect(ctx.bmc.calls().slice(4)).toEqual([SYSTEM, LOGIN, SYSTEM]);
  });

  it('falls back to HTTP Basic when the service has no SessionService', async () => {
    ctx.bmc.sessionsEnabled = false;
    const { driver } = ctx.bind();
    expect(await driver.power!.getPower()).toBe('off');
    expect(ctx.bmc.calls()).toEqual([ROOT, 'GET /redfish/v1/Systems', SYSTEM]);
    const basic = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
    expect(ctx.bmc.seen.slice(1).map((s) => s.headers['authorization'])).toEqual([basic, basic]);
  });

  it('falls back to HTTP Basic when the SessionService refuses to create a session (405)', async () => {
    ctx.bmc.on('POST', '/redfish/v1/SessionService/Sessions', () => ({ status: 405, body: {} }));
    const { driver, logs } = ctx.bind();
    expect(await driver.power!.getPower()).toBe('off');
    expect(ctx.bmc.calls()).toEqual([ROOT, LOGIN, 'GET /redfish/v1/Systems', SYSTEM]);
    expect(ctx.bmc.seen.at(-1)!.headers['authorization']).toMatch(/^Basic /);
    expect(logs.some((l) => /using HTTP Basic/.test(l.msg))).toBe(true);
  });

  it('with HTTP Basic, a 401 reads the password file again once: a rotated password is picked up', async () => {
    ctx.bmc.sessionsEnabled = false;
    let secret = PASSWORD;
    const { driver } = ctx.bind({}, () => secret);
    await driver.power!.getPower();
    ctx.bmc.password = secret = 'rotated-Pa55';
    expect(await driver.power!.getPower()).toBe('off');
    const last = ctx.bmc.seen.slice(-2).map((s) => s.headers['authorization']);
    expect(last).toEqual([`Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`, `Basic ${Buffer.from(`${USER}:rotated-Pa55`).toString('base64')}`]);
    ctx.bmc.password = 'rotated-again';
    expect(await failure(driver.power!.getPower())).toMatchObject({ code: 'BMC_ERR_AUTH' });
    expect(ctx.bmc.seen.slice(-2).map((s) => s.path)).toEqual(['/redfish/v1/Systems/1', '/redfish/v1/Systems/1']);
  });

  it('a refused login is BMC_ERR_AUTH with the BMC message, and the power command is never sent', async () => {
    const { driver, logs } = ctx.bind();
    ctx.bmc.on('POST', '/redfish/v1/SessionService/Sessions', (req) =>
      JSON.parse(req.body).Password === PASSWORD ? { status: 401, body: { error: { '@Message.ExtendedInfo': [{ MessageId: 'Base.1.8.NoValidSession', Message: 'Invalid username or password.' }] } } } : undefined,
    );
    const e = await failure(driver.power!.setPower('on'));
    expect(e).toMatchObject({ code: 'BMC_ERR_AUTH', nothingSent: true, driver: 'redfish' });
    expect(e.message).toContain('Invalid username or password. (Base.1.8.NoValidSession)');
    expect(ctx.bmc.calls()).toEqual([ROOT, LOGIN]);
    expect(ctx.bmc.power).toBe('Off');
    expect(JSON.stringify(logs)).not.toContain(PASSWORD);
    expect(e.message).not.toContain(PASSWORD);
  });
});
