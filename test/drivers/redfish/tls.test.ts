/**
 * The redfish driver's TLS and connections, through the real undici port: the certificate is checked against the
 * node's ca_file (a mismatch fails before any request, nothing sent), insecure works and is warned about at bind and
 * on every power read, one keep-alive connection serves a BMC's calls, and no secret reaches a log.
 */
import { describe, expect, it } from 'vitest';
import { BmcError } from '../../../drivers/errors.js';
import { PASSWORD } from './scripted-bmc.js';
import { useScriptedBmc } from './setup.js';

async function failure(p: Promise<unknown>): Promise<BmcError> {
  const e: unknown = await p.then(() => null, (err: unknown) => err);
  if (!(e instanceof BmcError)) throw new Error(`expected a BmcError, got ${String(e)}`);
  return e;
}

describe('redfish driver: TLS and connections', () => {
  const ctx = useScriptedBmc();

  it('a certificate the ca_file does not vouch for fails the handshake: BMC_ERR_AUTH, nothing sent, no request seen', async () => {
    const { driver } = ctx.bind({ ca_file: ctx.pki.otherCaFile });
    const e = await failure(driver.power!.setPower('on'));
    expect(e).toMatchObject({ code: 'BMC_ERR_AUTH', nothingSent: true, retryable: false });
    expect(e.message).toMatch(/TLS: .*nothing was sent/);
    expect(ctx.bmc.seen).toEqual([]);
    expect(ctx.bmc.tcpConnections).toBeGreaterThan(0); // it did reach the BMC, and stopped at the certificate
    expect(ctx.bmc.power).toBe('Off');
  });

  it('without ca_file the system CAs are used, which do not know the test CA', async () => {
    const { driver } = ctx.bind({ ca_file: undefined });
    expect(await failure(driver.power!.getPower())).toMatchObject({ code: 'BMC_ERR_AUTH', nothingSent: true });
    expect(ctx.bmc.seen).toEqual([]);
  });

  it('an unreadable ca_file fails before connecting', async () => {
    const { driver } = ctx.bind({ ca_file: `${ctx.pki.dir}/absent.pem` });
    const e = await failure(driver.power!.getPower());
    expect(e).toMatchObject({ code: 'BMC_ERR_AUTH', nothingSent: true });
    expect(e.message).toContain('cannot read ca_file');
    expect(ctx.bmc.tcpConnections).toBe(0);
  });

  it('insecure: true connects without verifying, and warns at bind and on every power read', async () => {
    const { driver, logs } = ctx.bind({ ca_file: undefined, insecure: true });
    const warnings = () => logs.filter((l) => l.level === 'warn' && /verification is OFF/.test(l.msg));
    expect(warnings()).toHaveLength(1); // at bind
    expect(await driver.power!.getPower()).toBe('off');
    expect(await driver.power!.getPower()).toBe('off');
    expect(warnings()).toHaveLength(3);
    expect(warnings()[0]!.obj).toMatchObject({ node: 'rf-node', origin: ctx.bmc.origin });
  });

  it('keeps one connection alive across calls to the same BMC', async () => {
    const { driver } = ctx.bind();
    for (let i = 0; i < 5; i++) await driver.power!.getPower();
    await driver.boot!.setBoot({ device: 'pxe', persistent: false, mode: 'uefi' });
    expect(ctx.bmc.seen.length).toBeGreaterThan(8);
    expect(ctx.bmc.tlsConnections).toBe(1);
  });

  it('never logs the password or the session token', async () => {
    const { driver, logs } = ctx.bind({ insecure: true });
    await driver.power!.getPower();
    ctx.bmc.sessions.clear();
    await driver.power!.getPower();
    ctx.bmc.on('POST', '/redfish/v1/Systems/1/Actions/ComputerSystem.Reset', () => ({ status: 500, body: {} }));
    await failure(driver.power!.setPower('on'));
    await driver.close!();
    const text = JSON.stringify(logs);
    expect(logs.length).toBeGreaterThan(0);
    expect(text).not.toContain(PASSWORD);
    for (const s of ctx.bmc.seen) {
      const token = s.headers['x-auth-token'];
      if (typeof token === 'string') expect(text).not.toContain(token);
    }
  });
});
