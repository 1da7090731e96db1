/**
 * TEST-ONLY store fault injection: the names of the store's writes and the injector interface. Production never sets
 * an injector (see OpenStoreOptions.fault in ./sqlite.ts).
 */

/** Names passed to StoreFaultInjector.beforeWrite: one per writing method of the store. */
export const STORE_WRITE_OPS = [
  'putNode',
  'deleteNode',
  'putInstance',
  'purgeTerminated',
  'insertAction',
  'putAction',
  'appendActionEvent',
  'updateActionEvent',
  'setActionPlan',
  'appendJournal',
  'trimJournal',
  'setMeta',
  'putCommandResult',
  'putBootJob',
] as const;
export type StoreWriteOp = (typeof STORE_WRITE_OPS)[number];

/**
 * TEST-ONLY fault injection. `beforeWrite(op, at)` is called before every write (op is one of STORE_WRITE_OPS) and
 * may throw; the write is then not performed and the caller gets a StoreError (a non-StoreError is wrapped). Inside a
 * `transaction`, the throw rolls the whole transaction back unless the caller catches it. `at.transaction` numbers
 * the outermost transaction the write would commit with (1, 2, ... per store), so a test can tell the writes of one
 * commit (an API call's acceptance) from the ones after it.
 */
export interface StoreFaultInjector {
  beforeWrite(op: StoreWriteOp, at: { transaction: number }): void;
}
