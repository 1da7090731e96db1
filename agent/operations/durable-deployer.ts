/**
 * The deployer as the steps see it (agent/operations/runner.ts): each call that hands something to the installer
 * waits for the store's durability barrier (group commit) first, so what the step recorded is on disk before the
 * server can act on it.
 */
import type { Deployer } from '../ports.js';

export function durableDeployer(inner: Deployer, store: { durable(): Promise<void> | null }): Deployer {
  return {
    prepare: async (node, job, opts) => {
      await store.durable();
      return inner.prepare(node, job, opts);
    },
    deploy: async (node, job, opts) => {
      await store.durable();
      return inner.deploy(node, job, opts);
    },
    revoke: async (instanceId, reason) => {
      await store.durable();
      return inner.revoke(instanceId, reason);
    },
    booted: (jobId) => inner.booted?.(jobId) ?? false,
  };
}
