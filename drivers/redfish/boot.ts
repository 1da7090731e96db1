/**
 * Redfish boot override: one PATCH of the system's `Boot` (`BootSourceOverrideTarget`, `...Enabled`, `...Mode`),
 * with `If-Match` when the system has an ETag, then a read-back in the BMC's own words. A target or mode the system's
 * `@Redfish.AllowableValues` does not list is BMC_ERR_UNSUPPORTED before anything is sent. A 412 (the system changed
 * since it was read) is retried once with a fresh ETag, then BMC_ERR_BUSY. A read-back that differs is
 * BMC_ERR_BOOT_FLAGS_IGNORED. Setting the same override again is a PATCH like any other (idempotent on the BMC).
 * getBoot of a system that holds no override (`BootSourceOverrideEnabled: Disabled`: cleared, or dropped after it was
 * set) is null; clearBoot PATCHes `BootSourceOverrideEnabled: Disabled` alone (the target is the BMC's to keep).
 */
import { BmcError } from '../errors.js';
import type { BootDevice, BootDriver, BootMode, BootSettings, CallOptions } from '../types.js';
import type { Json } from './client.js';
import { RedfishHttpError } from './errors.js';
import type { PowerContext } from './power.js';

export const BOOT_TARGETS: Readonly<Record<BootDevice, string>> = { pxe: 'Pxe', disk: 'Hdd', cdrom: 'Cd' };
export const BOOT_MODES: Readonly<Record<BootMode, string>> = { uefi: 'UEFI', legacy: 'Legacy' };
/** persistent -> BootSourceOverrideEnabled. */
const ENABLED = (persistent: boolean) => (persistent ? 'Continuous' : 'Once');

const FIELDS = ['BootSourceOverrideTarget', 'BootSourceOverrideEnabled', 'BootSourceOverrideMode'] as const;

function bootOf(driver: string, system: Json): Json {
  const boot = system['Boot'];
  if (typeof boot !== 'object' || boot === null) {
    throw new BmcError('BMC_ERR_UNSUPPORTED', driver, 'the system has no Boot property (no boot override); nothing was sent');
  }
  return boot as Json;
}

function refuseUnlisted(driver: string, boot: Json, field: string, value: string): void {
  const listed = boot[`${field}@Redfish.AllowableValues`];
  if (Array.isArray(listed) && !listed.includes(value)) {
    throw new BmcError('BMC_ERR_UNSUPPORTED', driver, `boot override: the BMC does not offer ${field} ${value} (it lists ${listed.join(', ') || 'none'}); nothing was sent`);
  }
}

const reverse = <K extends string>(m: Readonly<Record<K, string>>, v: unknown): K | undefined =>
  (Object.keys(m) as K[]).find((k) => m[k] === v);

/** One PATCH of the system's Boot with the ETag it was read with; a 412 is retried once with a fresh read. */
async function patchBoot(ctx: PowerContext, want: Readonly<Partial<Record<(typeof FIELDS)[number], string>>>, opts: CallOptions): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const { path, json, etag } = await ctx.readSystem(opts);
    const boot = bootOf(ctx.driver, json);
    for (const f of FIELDS) if (want[f] !== undefined) refuseUnlisted(ctx.driver, boot, f, want[f]);
    try {
      await ctx.client.act('PATCH', path, { Boot: want }, opts, etag ? { 'if-match': etag } : {});
      return;
    } catch (e) {
      if (!(e instanceof RedfishHttpError && e.status === 412) || attempt > 0) throw e;
    }
  }
}

export function createRedfishBoot(ctx: PowerContext): BootDriver {
  return {
    async setBoot(settings: BootSettings, opts = {}) {
      const want = { BootSourceOverrideTarget: BOOT_TARGETS[settings.device], BootSourceOverrideEnabled: ENABLED(settings.persistent), BootSourceOverrideMode: BOOT_MODES[settings.mode] };
      await patchBoot(ctx, want, opts);
      const { json } = await ctx.readSystem(opts);
      const boot = bootOf(ctx.driver, json);
      const off = FIELDS.filter((f) => boot[f] !== want[f]).map((f) => `${f}: asked ${want[f]}, BMC reports ${JSON.stringify(boot[f] ?? null)}`);
      if (off.length > 0) throw new BmcError('BMC_ERR_BOOT_FLAGS_IGNORED', ctx.driver, `boot override not applied as asked: ${off.join('; ')}`);
    },

    async getBoot(opts = {}) {
      const boot = bootOf(ctx.driver, (await ctx.readSystem(opts)).json);
      const device = reverse(BOOT_TARGETS, boot['BootSourceOverrideTarget']);
      const mode = reverse(BOOT_MODES, boot['BootSourceOverrideMode']);
      const enabled = boot['BootSourceOverrideEnabled'];
      // NOTE(any BMC that drops an override, e.g. on a timer or a BIOS reset): an answer, but no override held.
      if (enabled === 'Disabled') return null;
      if (!device || !mode || (enabled !== 'Once' && enabled !== 'Continuous')) {
        const seen = FIELDS.map((f) => `${f} ${JSON.stringify(boot[f] ?? null)}`).join(', ');
        throw new BmcError('BMC_ERR_BAD_RESPONSE', ctx.driver, `boot override not readable as pxe/disk/cdrom, once/continuous, uefi/legacy: ${seen}`);
      }
      return { device, persistent: enabled === 'Continuous', mode };
    },

    async clearBoot(opts = {}) {
      await patchBoot(ctx, { BootSourceOverrideEnabled: 'Disabled' }, opts);
    },
  };
}
