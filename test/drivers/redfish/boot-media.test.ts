/**
 * The redfish driver's boot override (PATCH with If-Match, 412, read-back) and virtual media (through the Manager,
 * then the System), asserted on what the scripted BMC received and holds.
 */
import { describe, expect, it } from 'vitest';
import { BmcError } from '../../../drivers/errors.js';
import type { Seen } from './scripted-bmc.js';
import { useScriptedBmc } from './setup.js';

const SYS = '/redfish/v1/Systems/1';
const CD = '/redfish/v1/Managers/1/VirtualMedia/Cd';
const ISO = 'http://10.0.0.1:8081/boot/ramdisk.iso';

async function failure(p: Promise<unknown>): Promise<BmcError> {
  const e: unknown = await p.then(() => null, (err: unknown) => err);
  if (!(e instanceof BmcError)) throw new Error(`expected a BmcError, got ${String(e)}`);
  return e;
}

const patches = (seen: readonly Seen[]) => seen.filter((s) => s.method === 'PATCH' && s.path === SYS);

describe('redfish driver: boot override', () => {
  const ctx = useScriptedBmc();

  it('PATCHes target, enabled and mode with If-Match of the ETag it read, then reads it back', async () => {
    const { driver } = ctx.bind();
    await driver.boot!.setBoot({ device: 'pxe', persistent: false, mode: 'uefi' });
    const [p] = patches(ctx.bmc.seen);
    expect(p!.headers['if-match']).toBe('W/"1"');
    expect(JSON.parse(p!.body)).toEqual({ Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once', BootSourceOverrideMode: 'UEFI' } });
    expect(ctx.bmc.boot).toMatchObject({ BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' });
    expect(ctx.bmc.calls().at(-1)).toBe(`GET ${SYS}`); // the read-back
    await driver.boot!.setBoot({ device: 'disk', persistent: true, mode: 'legacy' });
    expect(await driver.boot!.getBoot()).toEqual({ device: 'disk', persistent: true, mode: 'legacy' });
    expect(patches(ctx.bmc.seen)[1]!.headers['if-match']).toBe('W/"2"');
  });

  it('sends no If-Match when the system has no ETag', async () => {
    ctx.bmc.on('GET', SYS, (_r, b) => ({ status: 200, body: b.system() }));
    const { driver } = ctx.bind();
    await driver.boot!.setBoot({ device: 'cdrom', persistent: false, mode: 'uefi' });
    expect(patches(ctx.bmc.seen)[0]!.headers['if-match']).toBeUndefined();
    expect(ctx.bmc.boot['BootSourceOverrideTarget']).toBe('Cd');
  });

  it('a 412 (changed since read) is retried once with the fresh ETag; a second 412 is BMC_ERR_BUSY', async () => {
    const { driver } = ctx.bind();
    ctx.bmc.etag = 5;
    let raced = 1;
    ctx.bmc.on('GET', SYS, (_r, b) => {
      const reply = { status: 200, headers: { etag: `W/"${b.etag}"` }, body: b.system() };
      if (raced-- > 0) b.etag += 1; // someone else changes the system right after our read
      return reply;
    });
    await driver.boot!.setBoot({ device: 'pxe', persistent: true, mode: 'uefi' });
    expect(patches(ctx.bmc.seen).map((p) => p.headers['if-match'])).toEqual(['W/"5"', 'W/"6"']);
    expect(ctx.bmc.boot['BootSourceOverrideEnabled']).toBe('Continuous');

    ctx.bmc.on('PATCH', SYS, () => ({ status: 412, body: {} }));
    const e = await failure(driver.boot!.setBoot({ device: 'disk', persistent: true, mode: 'uefi' }));
    expect(e).toMatchObject({ code: 'BMC_ERR_BUSY', nothingSent: true });
    expect(patches(ctx.bmc.seen)).toHaveLength(4);
  });

  it('a target the BMC does not list is BMC_ERR_UNSUPPORTED and nothing is PATCHed', async () => {
    ctx.bmc.boot['BootSourceOverrideTarget@Redfish.AllowableValues'] = ['None', 'Hdd'];
    const { driver } = ctx.bind();
    const e = await failure(driver.boot!.setBoot({ device: 'pxe', persistent: false, mode: 'uefi' }));
    expect(e).toMatchObject({ code: 'BMC_ERR_UNSUPPORTED', nothingSent: true });
    expect(e.message).toContain('BootSourceOverrideTarget Pxe');
    expect(patches(ctx.bmc.seen)).toEqual([]);
  });

  it('a BMC that accepts the PATCH but keeps another mode is BMC_ERR_BOOT_FLAGS_IGNORED, in its own words', async () => {
    ctx.bmc.on('PATCH', SYS, (req, b) => {
      const { Boot } = JSON.parse(req.body) as { Boot: Record<string, unknown> };
      b.boot = { ...b.boot, ...Boot, BootSourceOverrideMode: 'Legacy' };
      return { status: 204 };
    });
    const { driver } = ctx.bind();
    const e = await failure(driver.boot!.setBoot({ device: 'pxe', persistent: false, mode: 'uefi' }));
    expect(e.code).toBe('BMC_ERR_BOOT_FLAGS_IGNORED');
    expect(e.message).toContain('BootSourceOverrideMode: asked UEFI, BMC reports "Legacy"');
  });
});

describe('redfish driver: virtual media', () => {
  const ctx = useScriptedBmc();

  it("inserts through the Manager's CD slot; the same image again and an empty eject send nothing", async () => {
    const { driver } = ctx.bind();
    await driver.media!.insertMedia(ISO);
    expect(ctx.bmc.media).toEqual({ Image: ISO, Inserted: true });
    const insert = ctx.bmc.seen.find((s) => s.path === `${CD}/Actions/VirtualMedia.InsertMedia`)!;
    expect(JSON.parse(insert.body)).toEqual({ Image: ISO, Inserted: true, WriteProtected: true });
    await driver.media!.insertMedia(ISO);
    await driver.media!.ejectMedia();
    expect(ctx.bmc.media).toEqual({ Image: null, Inserted: false });
    await driver.media!.ejectMedia();
    const actions = ctx.bmc.calls().filter((c) => c.startsWith('POST') && c.includes('VirtualMedia'));
    expect(actions).toEqual([`POST ${CD}/Actions/VirtualMedia.InsertMedia`, `POST ${CD}/Actions/VirtualMedia.EjectMedia`]);
  });

  it('ejects another image first, and finds the slot under the System when the Manager has none', async () => {
    const SCD = `${SYS}/VirtualMedia/1`;
    let slot: { Image: string | null; Inserted: boolean } = { Image: 'http://old/x.iso', Inserted: true };
    ctx.bmc.on('GET', '/redfish/v1/Managers/1', () => ({ status: 200, body: { '@odata.id': '/redfish/v1/Managers/1' } }));
    ctx.bmc.on('GET', SYS, (_r, b) => ({ status: 200, body: { ...b.system(), VirtualMedia: { '@odata.id': `${SYS}/VirtualMedia` } } }));
    ctx.bmc.on('GET', `${SYS}/VirtualMedia`, () => ({ status: 200, body: { Members: [{ '@odata.id': SCD }] } }));
    ctx.bmc.on('GET', SCD, () => ({ status: 200, headers: { etag: '"m1"' }, body: { MediaTypes: ['CD'], ...slot } }));
    ctx.bmc.on('PATCH', SCD, (req) => {
      slot = JSON.parse(req.body) as typeof slot;
      return { status: 204 };
    });
    const { driver } = ctx.bind();
    await driver.media!.insertMedia(ISO);
    const sent = ctx.bmc.seen.filter((s) => s.method === 'PATCH' && s.path === SCD);
    expect(sent.map((s) => JSON.parse(s.body))).toEqual([{ Image: null, Inserted: false }, { Image: ISO, Inserted: true, WriteProtected: true }]);
    expect(sent[0]!.headers['if-match']).toBe('"m1"');
    expect(slot).toMatchObject({ Image: ISO, Inserted: true });
  });

  it('no slot anywhere, or an image that is not an http(s) URL: BMC_ERR_UNSUPPORTED, nothing sent', async () => {
    const { driver } = ctx.bind();
    expect(await failure(driver.media!.insertMedia('file:///etc/passwd'))).toMatchObject({ code: 'BMC_ERR_UNSUPPORTED', nothingSent: true });
    ctx.bmc.on('GET', '/redfish/v1/Managers/1', () => ({ status: 200, body: {} }));
    expect(await failure(driver.media!.insertMedia(ISO))).toMatchObject({ code: 'BMC_ERR_UNSUPPORTED', nothingSent: true });
    expect(ctx.bmc.calls().filter((c) => !c.startsWith('GET') && !c.includes('Sessions'))).toEqual([]);
  });
});
