/**
 * The redfish driver's power: the ResetType chosen from the system's AllowableValues, a refusal before anything is
 * sent (the API's 406), task monitors, the BMC's ExtendedInfo as the error, the status table. Asserted on what the
 * scripted BMC received and did.
 */
import { describe, expect, it } from 'vitest';
import { createBmc } from '../../../drivers/bmc.js';
import { BmcLock } from '../../../drivers/bmc-lock.js';
import { BmcError } from '../../../drivers/errors.js';
import { errorBody, type Seen } from './scripted-bmc.js';
import { useScriptedBmc } from './setup.js';

const RESET = '/redfish/v1/Systems/1/Actions/ComputerSystem.Reset';
const TASK = '/redfish/v1/TaskService/Tasks/7';

async function failure(p: Promise<unknown>): Promise<BmcError> {
  const e: unknown = await p.then(() => null, (err: unknown) => err);
  if (!(e instanceof BmcError)) throw new Error(`expected a BmcError, got ${String(e)}`);
  return e;
}

const resetsSent = (seen: readonly Seen[]) => seen.filter((s) => s.path === RESET).map((s) => (JSON.parse(s.body) as { ResetType: string }).ResetType);

describe('redfish driver: power', () => {
  const ctx = useScriptedBmc();

  it('sends On, ForceOff and GracefulShutdown for on, off and soft-off, and the BMC changes power', async () => {
    const { driver } = ctx.bind();
    await driver.power!.setPower('on');
    expect(ctx.bmc.power).toBe('On');
    await driver.power!.setPower('off');
    expect(ctx.bmc.power).toBe('Off');
    ctx.bmc.power = 'On';
    await driver.power!.setPower('soft-off');
    expect(resetsSent(ctx.bmc.seen)).toEqual(['On', 'ForceOff', 'GracefulShutdown']);
  });

  it('falls back to what the BMC lists: ForceOn for on, PushPowerButton for soft-off (only when on)', async () => {
    ctx.bmc.resets = ['ForceOn', 'ForceOff', 'PushPowerButton'];
    const { driver } = ctx.bind();
    await driver.power!.setPower('on');
    expect(ctx.bmc.power).toBe('On');
    await driver.power!.setPower('soft-off');
    expect(ctx.bmc.power).toBe('Off');
    await driver.power!.setPower('soft-off'); // already off: a toggle would power it on, so nothing is sent
    expect(ctx.bmc.power).toBe('Off');
    expect(resetsSent(ctx.bmc.seen)).toEqual(['ForceOn', 'PushPowerButton']);
  });

  it('an action the BMC lists no value for is BMC_ERR_UNSUPPORTED, nothing sent, and is no longer offered', async () => {
    ctx.bmc.resets = ['On', 'ForceOff'];
    const { driver } = ctx.bind();
    const bmc = createBmc('rf-node', [driver], { lock: new BmcLock(), minGapMs: 0, callTimeoutMs: 5_000, wait: { delaysMs: [5], deadlineMs: 500 } });
    expect(bmc.supports('power', 'soft-off')).toBe(true); // not read yet: offered
    await bmc.readPower();
    expect(bmc.supports('power', 'soft-off')).toBe(false); // what the engine checks before accepting (406)
    expect(bmc.supports('power', 'off')).toBe(true);
    const e = await failure(driver.power!.setPower('soft-off'));
    expect(e).toMatchObject({ code: 'BMC_ERR_UNSUPPORTED', nothingSent: true });
    expect(e.message).toContain('it lists On, ForceOff');
    expect(resetsSent(ctx.bmc.seen)).toEqual([]);
    await bmc.close();
  });

  it('a system without AllowableValues takes the standard set; without a Reset action it supports nothing', async () => {
    ctx.bmc.resets = null;
    const { driver } = ctx.bind();
    await driver.power!.setPower('soft-off');
    expect(resetsSent(ctx.bmc.seen)).toEqual(['GracefulShutdown']);
    ctx.bmc.on('GET', '/redfish/v1/Systems/1', (_r, b) => ({ status: 200, body: { ...b.system(), Actions: {} } }));
    expect(await failure(driver.power!.setPower('on'))).toMatchObject({ code: 'BMC_ERR_UNSUPPORTED' });
    expect(driver.power!.supportedPowerActions()).toEqual([]);
  });

  it('reads the AllowableValues from @Redfish.ActionInfo when only listed there (read once)', async () => {
    const INFO = '/redfish/v1/Systems/1/ResetActionInfo';
    ctx.bmc.resets = null;
    ctx.bmc.on('GET', '/redfish/v1/Systems/1', (_r, b) => {
      const sys = b.system() as { Actions: Record<string, Record<string, unknown>> };
      sys.Actions['#ComputerSystem.Reset']!['@Redfish.ActionInfo'] = INFO;
      return { status: 200, body: sys };
    });
    ctx.bmc.on('GET', INFO, () => ({ status: 200, body: { Parameters: [{ Name: 'ResetType', AllowableValues: ['ForceOn', 'ForceOff'] }] } }));
    const { driver } = ctx.bind();
    await driver.power!.setPower('on');
    expect(await failure(driver.power!.setPower('soft-off'))).toMatchObject({ code: 'BMC_ERR_UNSUPPORTED', nothingSent: true });
    expect(driver.power!.supportedPowerActions()).toEqual(['on', 'off']);
    expect(resetsSent(ctx.bmc.seen)).toEqual(['ForceOn']);
    expect(ctx.bmc.seen.filter((s) => s.path === INFO)).toHaveLength(1);
  });

  it('reads a transition as the state it leaves: PoweringOn is off, PoweringOff is on', async () => {
    const { driver } = ctx.bind();
    ctx.bmc.power = 'PoweringOn';
    expect(await driver.power!.getPower()).toBe('off');
    ctx.bmc.power = 'PoweringOff';
    expect(await driver.power!.getPower()).toBe('on');
    ctx.bmc.power = 'Sideways';
    expect(await failure(driver.power!.getPower())).toMatchObject({ code: 'BMC_ERR_BAD_RESPONSE' });
  });

  it('follows a 202 task monitor to completion before returning', async () => {
    let polls = 0;
    ctx.bmc.on('POST', RESET, () => ({ status: 202, headers: { location: TASK }, body: {} }));
    ctx.bmc.on('GET', TASK, (_r, b) => {
      polls += 1;
      if (polls < 3) return { status: 202, body: { TaskState: 'Running' } };
      b.power = 'On';
      return { status: 200, body: { TaskState: 'Completed', TaskStatus: 'OK' } };
    });
    const { driver } = ctx.bind();
    await driver.power!.setPower('on', { timeoutMs: 5_000 });
    expect(polls).toBe(3);
    expect(ctx.bmc.power).toBe('On');
    expect(ctx.bmc.seen.at(-1)!.path).toBe(TASK);
  });

  it('a task that ends in Exception is BMC_ERR_COMMAND_FAILED with its messages', async () => {
    ctx.bmc.on('POST', RESET, () => ({ status: 202, headers: { location: TASK } }));
    ctx.bmc.on('GET', TASK, () => ({ status: 200, body: { TaskState: 'Exception', Messages: [{ MessageId: 'Oem.1.0.PsuFault', Message: 'Power supply 2 failed.' }] } }));
    const { driver } = ctx.bind();
    const e = await failure(driver.power!.setPower('on', { timeoutMs: 5_000 }));
    expect(e.code).toBe('BMC_ERR_COMMAND_FAILED');
    expect(e.message).toContain('ended Exception: Power supply 2 failed. (Oem.1.0.PsuFault)');
  });

  it('a task still running at the call deadline is BMC_ERR_TIMEOUT (maybe done: nothing is proven)', async () => {
    ctx.bmc.on('POST', RESET, () => ({ status: 202, headers: { location: TASK } }));
    ctx.bmc.on('GET', TASK, () => ({ status: 202, body: { TaskState: 'Running' } }));
    const { driver } = ctx.bind();
    const started = Date.now();
    const e = await failure(driver.power!.setPower('on', { timeoutMs: 400 }));
    expect(e).toMatchObject({ code: 'BMC_ERR_TIMEOUT', nothingSent: false });
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(ctx.bmc.seen.filter((s) => s.path === TASK).length).toBeGreaterThan(1);
  });

  it("turns the BMC's @Message.ExtendedInfo into the error message", async () => {
    ctx.bmc.on('POST', RESET, () => ({
      status: 400,
      body: errorBody('Base.1.8.ActionParameterNotSupported', 'The parameter ResetType for the action Reset is not supported on the target resource.', 'Remove the parameter.'),
    }));
    const { driver } = ctx.bind();
    const e = await failure(driver.power!.setPower('on'));
    expect(e.code).toBe('BMC_ERR_COMMAND_FAILED');
    expect(e.message).toBe(
      `POST ${RESET}: HTTP 400: The parameter ResetType for the action Reset is not supported on the target resource. (Base.1.8.ActionParameterNotSupported; resolution: Remove the parameter.)`,
    );
  });

  it('maps statuses by the table: 503 busy (nothing sent), 500 bad response (maybe sent), 404 unsupported', async () => {
    const { driver } = ctx.bind();
    for (const [status, code, nothingSent] of [
      [503, 'BMC_ERR_BUSY', true],
      [500, 'BMC_ERR_BAD_RESPONSE', false],
      [404, 'BMC_ERR_UNSUPPORTED', true],
    ] as const) {
      ctx.bmc.on('POST', RESET, () => ({ status, body: errorBody('Base.1.8.GeneralError', `scripted ${status}`) }));
      const e = await failure(driver.power!.setPower('on'));
      expect(e).toMatchObject({ code, nothingSent });
      expect(e.message).toContain(`scripted ${status}`);
    }
  });

  it('a BMC that takes the request and never answers is BMC_ERR_TIMEOUT, not nothing-sent', async () => {
    ctx.bmc.on('POST', RESET, () => new Promise(() => undefined));
    const { driver } = ctx.bind();
    await driver.power!.getPower();
    const e = await failure(driver.power!.setPower('on', { timeoutMs: 300 }));
    expect(e).toMatchObject({ code: 'BMC_ERR_TIMEOUT', nothingSent: false });
    expect(resetsSent(ctx.bmc.seen)).toEqual(['On']);
  });

  it('a BMC that is not listening is BMC_ERR_UNREACHABLE, nothing sent', async () => {
    const { driver } = ctx.bind();
    await ctx.bmc.close();
    const e = await failure(driver.power!.setPower('on'));
    expect(e).toMatchObject({ code: 'BMC_ERR_UNREACHABLE', nothingSent: true });
    expect(e.message).toMatch(/ECONNREFUSED.*nothing was sent/);
  });
});
