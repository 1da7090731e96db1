/**
 * IPMI boot override: `chassis bootdev pxe|disk|cdrom [options=persistent,efiboot]` (`none` clears it), read back with
 * `chassis bootparam get 5`. Setting the same device again succeeds. A BMC that keeps the device but drops the flags
 * (ipmi_sim: legacy, next boot only) reads back as such; drivers/bmc.ts reports it as BMC_ERR_BOOT_FLAGS_IGNORED,
 * unless the node says `persistent_boot: false`: then a persistent request is sent and verified as next boot only
 * (as Ironic's force_persistent_boot_device: Never); later boots follow the server's own boot order.
 */
import type { BootDriver } from '../types.js';
import type { IpmitoolClient } from './client.js';
import { parseBootParam5 } from './ipmitool.js';

/** `persistentBoot` false: the BMC keeps no persistent device (`persistent_boot: false`): never ask for one. */
export function createIpmiBoot(client: IpmitoolClient, persistentBoot = true): BootDriver {
  return {
    keepsPersistent: persistentBoot,
    async setBoot(settings, opts) {
      await client.run(
        `chassis bootdev ${settings.device}`,
        { kind: 'bootdev', device: settings.device, persistent: settings.persistent && persistentBoot, efi: settings.mode === 'uefi' },
        opts,
      );
    },
    async clearBoot(opts) {
      await client.run('chassis bootdev none', { kind: 'bootdev', device: 'none', persistent: false, efi: false }, opts);
    },
    async getBoot(opts) {
      const out = await client.run('boot parameter 5 read', { kind: 'bootparam-get-5' }, opts);
      return parseBootParam5(out.stdout);
    },
  };
}
