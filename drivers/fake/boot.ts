/**
 * Fake boot override. Setting the same override again succeeds. A next-boot-only override is consumed by the next
 * boot (getBoot then reports the persistent one again, as IPMI does once the boot-flags-valid bit clears).
 * Cleared, it holds none and the server boots from its disk. With the fault `ignore_boot_flags` only the device is kept, next boot only, legacy (like ipmi_sim).
 */
import type { BootDriver } from '../types.js';
import type { FakeServer } from './lab.js';

export function createFakeBoot(server: FakeServer, via: string): BootDriver {
  return {
    setBoot: (settings, opts) => server.setBoot(via, settings, opts?.signal),
    getBoot: (opts) => server.getBoot(via, opts?.signal),
    clearBoot: (opts) => server.clearBoot(via, opts?.signal),
  };
}
