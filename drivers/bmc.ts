/**
 * The node's BMC handle (the `Bmc` of drivers/types.ts): walks the node's ordered drivers per capability, holds the
 * BMC's lock around every single command, gives every command a deadline and verifies every change by reading back.
 *
 * Rules, in one place:
 * - Per capability, the drivers that declare it are tried in order. The next one is tried ONLY after a BmcError whose
 *   `nothingSent` is true (unreachable, auth, unsupported, the BMC's own busy answer). Any other error stops the walk;
 *   when drivers refused before it, its message names them (`(tried before, nothing sent: redfish: BMC_ERR_...)`).
 * - Every command runs under `BmcLock.run(lockKey, minGapMs)`, so verification polls of concurrent callers interleave
 *   command by command and never overlap on the wire.
 * - Every command has a deadline: `opts.timeoutMs ?? callTimeoutMs`, combined with the caller's signal. The deadline
 *   includes the wait for the lock: expiring while queued is BMC_ERR_BUSY (nothing was sent, the walk stops);
 *   expiring while the driver runs is BMC_ERR_TIMEOUT (the driver is abandoned; it must kill its process on abort).
 *   The caller's signal gives BMC_ERR_ABORTED.
 * - setPower verifies by polling getPower under the waiting policy (waitFor, drivers/wait.ts): the first read after
 *   the first delay, then one read per delay (the last delay repeats), a final read at the deadline. The deadline
 *   counts from the moment the command was answered.
 * - reboot is carried out as a verified off, then a verified on (soft-reboot: a verified soft-off, then on), as
 *   Ironic and MAAS do (REBOOT_AS): a reset command verified as "reads on" would pass on a BMC that accepts the reset
 *   and does nothing, since the server already read on. The driver's own reset is never sent. supports('power',
 *   'reboot') says whether every action of that plan is supported.
 * - After a BMC_ERR_TIMEOUT on a power command, power is read back at once (then polled as above): if it already is
 *   in the wanted state the change counts as done; otherwise setPower fails with BMC_ERR_TIMEOUT. It never re-sends
 *   the command and never tries another driver, so a reset never runs twice.
 * - Once a command was sent, a failing read-back is BMC_ERR_VERIFY_FAILED (never a nothingSent error), so no caller
 *   can mistake a half-done change for a safe-to-retry one.
 * - `onCall` (optional) is told of every command, every verification and every call refused before any driver, with
 *   the driver, a closed call name and the error code: the agent's metrics (drivers/ knows nothing of prom-client).
 */
import { realSleep, type BmcLock, type Sleep } from './bmc-lock.js';
import { BmcError, isBmcError, type BmcErrorCode } from './errors.js';
import { EXPECTED_POWER, isReboot, REBOOT_AS } from './power.js';
import { checkWaitPolicy, waitFor } from './wait.js';
import type {
  Bmc,
  BootSettings,
  BoundDriver,
  CallOptions,
  CallRecord,
  Capability,
  Inventory,
  PowerAction,
  PowerReading,
  SetPowerOptions,
  WaitPolicy,
} from './types.js';

export interface CreateBmcOptions {
  /** Shared by every Bmc of the process: one queue per lock key. */
  lock: BmcLock;
  /** The BMC's lock key, `bmcLockKey(target)` (address:port). Default: the node id. */
  lockKey?: string;
  /** Minimum gap between the end of one command and the start of the next to this BMC. */
  minGapMs: number;
  /** Deadline of one command (lock wait included); `CallOptions.timeoutMs` overrides it per call. */
  callTimeoutMs: number;
  /** Default waiting policy of setPower verification; `setPower(…, {wait})` overrides it per call. */
  wait: WaitPolicy;
  /** Sleep between read-backs. */
  sleep?: Sleep;
  /** Monotonic ms, for the verification deadline. Default: performance.now(). */
  now?: () => number;
  /** Told of every command and verification (the agent's metrics); see BmcCallObserver. */
  onCall?: BmcCallObserver;
}

/**
 * What a Bmc does, a closed list (metrics labels): one command to one driver (`power_read` ... `inventory`), or the
 * verification of a change (`power_verify`: power read back as asked; `boot_verify`: the override read back as set).
 */
export const BMC_CALLS = ['power_read', 'power_set', 'power_verify', 'boot_read', 'boot_set', 'boot_clear', 'boot_verify', 'media_insert', 'media_eject', 'inventory'] as const;
export type BmcCall = (typeof BMC_CALLS)[number];

/**
 * Called once per command a driver ran or refused (a fall-through calls it per driver), once per verification, and
 * once per call refused before any driver (driver `bmc`): `code` null for a success; `ms` the command's time with
 * the BMC's lock held, null when it never reached a driver (queued out, aborted) and for verifications. On the hot
 * path: positional arguments (nothing allocated); what it throws is dropped.
 */
export type BmcCallObserver = (driver: string, call: BmcCall, code: BmcErrorCode | null, ms: number | null) => void;

/** The Bmc of drivers/types.ts plus read-only helpers the agent may use (boot override, inventory). */
export interface BmcHandle extends Bmc {
  /** null: the BMC holds no boot override. */
  readBoot(opts?: CallOptions): Promise<{ boot: BootSettings | null } & CallRecord>;
  readInventory(opts?: CallOptions): Promise<{ inventory: Inventory } & CallRecord>;
}

const BOOT_FIELDS = ['device', 'persistent', 'mode'] as const;

/** Who reported an error that no single driver raised. */
const BMC = 'bmc';

/** @throws Error when a driver declares a capability it does not implement, or an option is out of range. */
export function createBmc(nodeId: string, drivers: readonly BoundDriver[], opts: CreateBmcOptions): BmcHandle {
  for (const d of drivers) {
    for (const cap of d.capabilities) {
      if (d[cap] === undefined) throw new Error(`driver ${d.name} of node ${nodeId} declares ${cap} but does not implement it`);
    }
  }
  if (!(opts.callTimeoutMs > 0)) throw new Error(`callTimeoutMs must be > 0, got ${opts.callTimeoutMs}`);
  if (!(opts.minGapMs >= 0)) throw new Error(`minGapMs must be >= 0, got ${opts.minGapMs}`);
  checkWaitPolicy(opts.wait);

  const lockKey = opts.lockKey ?? nodeId;
  const sleep = opts.sleep ?? realSleep;
  const now = opts.now ?? (() => performance.now());
  /** Errors raised by our own lock queue (not by a driver): they never fall through. */
  const queueErrors = new WeakSet<BmcError>();
  let closed = false;
  const onCall = opts.onCall;
  const observe = (driver: string, call: BmcCall, code: BmcErrorCode | null, ms: number | null): void => {
    if (!onCall) return;
    try {
      onCall(driver, call, code, ms);
    } catch {
      // Metrics never fail a command.
    }
  };
  /** `err`, once observed (a verification's outcome, a call refused before any driver). */
  const observed = (call: BmcCall, err: BmcError): BmcError => {
    observe(err.driver, call, err.code, null);
    return err;
  };

  const driversFor = (cap: Capability): BoundDriver[] => drivers.filter((d) => d.capabilities.includes(cap));
  const powerDrivers = driversFor('power');
  const bootDrivers = driversFor('boot');
  const mediaDrivers = driversFor('media');
  const inventoryDrivers = driversFor('inventory');

  /** The boot override re-read after `what` was sent; an unreadable answer is BMC_ERR_VERIFY_FAILED. */
  async function readBack(driver: BoundDriver, what: string, callOpts?: CallOptions): Promise<BootSettings | null> {
    try {
      return await send(driver, 'boot_read', 'boot override read', (o) => driver.boot!.getBoot(o), callOpts);
    } catch (e) {
      const err = e as BmcError;
      if (err.code === 'BMC_ERR_ABORTED') throw observed('boot_verify', err);
      throw observed('boot_verify', new BmcError('BMC_ERR_VERIFY_FAILED', driver.name, `${what} was sent but the read-back failed: ${err.message}`));
    }
  }

  /** One command to one driver: under the BMC's lock, with its own deadline. */
  async function send<T>(driver: BoundDriver, call: BmcCall, what: string, fn: (o: CallOptions) => Promise<T>, callOpts?: CallOptions): Promise<T> {
    const timeoutMs = callOpts?.timeoutMs ?? opts.callTimeoutMs;
    const caller = callOpts?.signal;
    if (caller?.aborted) throw observed(call, new BmcError('BMC_ERR_ABORTED', driver.name, `${what} via ${driver.name}: aborted before it was sent`));
    // One controller for the deadline and the caller's signal, its timer cleared when the command ends
    // (AbortSignal.timeout + AbortSignal.any cost ~5% of a power operation's CPU, and left a timer per command).
    const controller = new AbortController();
    const signal = controller.signal;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new DOMException(`${what} via ${driver.name}: no answer within ${timeoutMs} ms`, 'TimeoutError'));
    }, timeoutMs);
    timer.unref();
    const onCallerAbort = () => controller.abort(caller!.reason);
    caller?.addEventListener('abort', onCallerAbort, { once: true });
    /** When the lock was taken and the driver called (monotonic ms); -1: not (yet). */
    let sentAt = -1;
    try {
      const value = await opts.lock.run(
        lockKey,
        opts.minGapMs,
        () => {
          sentAt = now();
          return raceAbort(Promise.resolve().then(() => fn({ signal, timeoutMs })), signal);
        },
        signal,
      );
      observe(driver.name, call, null, now() - sentAt);
      return value;
    } catch (e) {
      const started = sentAt >= 0;
      let err: BmcError;
      if (caller?.aborted) {
        err = new BmcError('BMC_ERR_ABORTED', driver.name, `${what} via ${driver.name}: aborted${started ? '' : ' before it was sent'}`);
      } else if (timedOut && !started) {
        err = new BmcError('BMC_ERR_BUSY', driver.name, `${what} via ${driver.name}: still queued behind other commands to this BMC after ${timeoutMs} ms; nothing was sent`);
        queueErrors.add(err);
      } else if (timedOut) {
        err = new BmcError('BMC_ERR_TIMEOUT', driver.name, `${what} via ${driver.name}: no answer within ${timeoutMs} ms`);
      } else {
        err = isBmcError(e) ? e : new BmcError('BMC_ERR_COMMAND_FAILED', driver.name, `${what} via ${driver.name}: ${messageOf(e)}`);
      }
      observe(driver.name, call, err.code, started ? now() - sentAt : null);
      throw err;
    } finally {
      clearTimeout(timer);
      caller?.removeEventListener('abort', onCallerAbort);
    }
  }

  /** Tries `candidates` in order; falls through only on a driver's nothingSent error. */
  async function walk<T>(
    call: BmcCall,
    what: string,
    candidates: readonly BoundDriver[],
    fn: (d: BoundDriver, o: CallOptions) => Promise<T>,
    callOpts: CallOptions | undefined,
    tried: string[],
  ): Promise<{ value: T; driver: BoundDriver }> {
    if (closed) throw observed(call, new BmcError('BMC_ERR_ABORTED', BMC, `${what}: the BMC handle of node ${nodeId} is closed`));
    const failures: BmcError[] = [];
    for (const d of candidates) {
      if (!tried.includes(d.name)) tried.push(d.name);
      try {
        return { value: await send(d, call, what, (o) => fn(d, o), callOpts), driver: d };
      } catch (e) {
        const err = e as BmcError;
        if (!err.nothingSent || queueErrors.has(err)) throw failures.length === 0 ? err : afterFallThrough(err, failures);
        failures.push(err);
      }
    }
    const last = failures[failures.length - 1];
    if (!last) throw observed(call, new BmcError('BMC_ERR_UNSUPPORTED', BMC, `${what}: node ${nodeId} has no driver for it (drivers: ${names()})`));
    if (failures.length === 1) throw last;
    throw new BmcError(
      last.code,
      last.driver,
      `${what}: every driver failed before sending anything: ${failures.map((f) => `${f.driver}: ${f.message}`).join('; ')}`,
    );
  }

  function names(): string {
    return drivers.map((d) => d.name).join(', ') || 'none';
  }

  async function readPowerOnce(callOpts: CallOptions | undefined, tried: string[]) {
    return walk('power_read', 'power status read', powerDrivers, (d, o) => d.power!.getPower(o), callOpts, tried);
  }

  /**
   * Polls power until it reads `expected` or the policy's deadline passes.
   * @returns the last thing seen when it never matched.
   * @throws BmcError BMC_ERR_ABORTED, or BMC_ERR_VERIFY_FAILED when a read fails in a way that will not heal.
   */
  async function pollPower(
    expected: PowerReading,
    wait: WaitPolicy,
    immediate: boolean,
    callOpts: CallOptions | undefined,
    tried: string[],
    what: string,
  ): Promise<{ ok: true } | { ok: false; last: string }> {
    const seen = await waitFor<string>(
      wait,
      async () => {
        try {
          const { value } = await readPowerOnce(callOpts, tried);
          return { done: value === expected, seen: value };
        } catch (e) {
          const err = e as BmcError;
          if (err.code === 'BMC_ERR_ABORTED') throw err;
          if (!err.retryable) {
            throw new BmcError('BMC_ERR_VERIFY_FAILED', err.driver, `${what} was sent but the power read-back failed: ${err.message}`);
          }
          return { done: false, seen: `an error (${err.code}: ${err.message})` };
        }
      },
      { clock: { now, sleep }, signal: callOpts?.signal, immediate },
    );
    const last = seen.last ?? 'nothing (no read completed)';
    if (seen.status === 'aborted') throw new BmcError('BMC_ERR_ABORTED', BMC, `${what}: aborted while verifying (last read: ${last})`);
    return seen.status === 'done' ? { ok: true } : { ok: false, last };
  }

  /** One verified power action (never a reboot: see REBOOT_AS). */
  async function setOnePower(action: PowerAction, callOpts: SetPowerOptions | undefined): Promise<{ power: PowerReading } & CallRecord> {
    const wait = callOpts?.wait ?? opts.wait;
    checkWaitPolicy(wait);
    const expected = EXPECTED_POWER[action];
    const what = `power ${action}`;
    const tried: string[] = [];
    const candidates = powerDrivers.filter((d) => d.power!.supportedPowerActions().includes(action));
    if (candidates.length === 0) {
      throw observed('power_set', new BmcError('BMC_ERR_UNSUPPORTED', BMC, `${what}: no driver of node ${nodeId} supports it (drivers: ${names()})`));
    }
    let sender: string;
    let timedOut: BmcError | null = null;
    try {
      const sendOne = async (d: (typeof candidates)[number], o: CallOptions) => {
        // Awaited: the caller's record of the sending must be durable before the command can reach the BMC.
        const recorded = callOpts?.onSending?.(action);
        if (recorded) await recorded;
        return d.power!.setPower(action, o);
      };
      sender = (await walk('power_set', what, candidates, sendOne, callOpts, tried)).driver.name;
    } catch (e) {
      if (!isBmcError(e) || e.code !== 'BMC_ERR_TIMEOUT') throw e;
      // Nothing is proven: the command may have run. Read back before anything else; never re-send.
      timedOut = e;
      sender = e.driver;
    }
    let seen: Awaited<ReturnType<typeof pollPower>>;
    try {
      seen = await pollPower(expected, wait, timedOut !== null, callOpts, tried, what);
    } catch (e) {
      throw observed('power_verify', e as BmcError);
    }
    // After a timeout, power that never read as asked is the verification's failure (the command's was its timeout).
    observe(sender, 'power_verify', seen.ok ? null : 'BMC_ERR_VERIFY_FAILED', null);
    if (seen.ok) return { power: expected, tried, succeeded: sender };
    if (timedOut) {
      throw new BmcError(
        'BMC_ERR_TIMEOUT',
        timedOut.driver,
        `${timedOut.message}; power then read ${seen.last} (expected ${expected}); the command was not re-sent`,
      );
    }
    throw new BmcError(
      'BMC_ERR_VERIFY_FAILED',
      sender,
      `${what} was accepted by ${sender} but power read ${seen.last}, expected ${expected}, within ${wait.deadlineMs} ms`,
    );
  }

  const bmc: BmcHandle = {
    nodeId,

    supports(capability: Capability, action?: PowerAction): boolean {
      const list = driversFor(capability);
      if (capability === 'power' && action !== undefined) {
        const needs = isReboot(action) ? REBOOT_AS[action] : [action];
        return needs.every((a) => list.some((d) => d.power!.supportedPowerActions().includes(a)));
      }
      return list.length > 0;
    },

    async readPower(callOpts?: CallOptions) {
      const tried: string[] = [];
      const { value, driver } = await readPowerOnce(callOpts, tried);
      return { power: value, tried, succeeded: driver.name };
    },

    async setPower(action: PowerAction, callOpts?: SetPowerOptions) {
      if (isReboot(action)) {
        const [off, on] = REBOOT_AS[action];
        const first = await setOnePower(off, callOpts);
        const second = await setOnePower(on, callOpts);
        return { power: second.power, tried: [...new Set([...first.tried, ...second.tried])], succeeded: second.succeeded };
      }
      return setOnePower(action, callOpts);
    },

    async setBoot(settings: BootSettings, callOpts?: CallOptions) {
      const what = `boot override set (${describeBoot(settings)})`;
      const tried: string[] = [];
      const { driver } = await walk('boot_set', what, bootDrivers, (d, o) => d.boot!.setBoot(settings, o), callOpts, tried);
      const read = await readBack(driver, what, callOpts);
      // An answer that holds no override (dropped after it was set): not kept, not unread.
      if (read === null) throw observed('boot_verify', new BmcError('BMC_ERR_BOOT_FLAGS_IGNORED', driver.name, `boot override not kept via ${driver.name}: the BMC holds no boot override`));
      // A BMC the operator declared keeps no persistent device is checked for what it was sent: next boot only.
      const expected: BootSettings = driver.boot!.keepsPersistent === false ? { ...settings, persistent: false } : settings;
      const mismatches = BOOT_FIELDS.filter((f) => read[f] !== expected[f]).map((f) => `${f}: asked ${String(expected[f])}, BMC reports ${String(read[f])}`);
      if (mismatches.length > 0) {
        throw observed('boot_verify', new BmcError('BMC_ERR_BOOT_FLAGS_IGNORED', driver.name, `boot override not applied as asked via ${driver.name}: ${mismatches.join('; ')}`));
      }
      observe(driver.name, 'boot_verify', null, null);
      return { tried, succeeded: driver.name };
    },

    async clearBoot(callOpts?: CallOptions) {
      const what = 'boot override clear';
      const tried: string[] = [];
      const { driver } = await walk('boot_clear', what, bootDrivers, (d, o) => d.boot!.clearBoot(o), callOpts, tried);
      const read = await readBack(driver, what, callOpts);
      if (read !== null) throw observed('boot_verify', new BmcError('BMC_ERR_BOOT_FLAGS_IGNORED', driver.name, `boot override not cleared via ${driver.name}: the BMC still holds ${describeBoot(read)}`));
      observe(driver.name, 'boot_verify', null, null);
      return { tried, succeeded: driver.name };
    },

    async insertMedia(url: string, callOpts?: CallOptions) {
      const tried: string[] = [];
      const { driver } = await walk('media_insert', 'virtual media insert', mediaDrivers, (d, o) => d.media!.insertMedia(url, o), callOpts, tried);
      return { tried, succeeded: driver.name };
    },

    async ejectMedia(callOpts?: CallOptions) {
      const tried: string[] = [];
      const { driver } = await walk('media_eject', 'virtual media eject', mediaDrivers, (d, o) => d.media!.ejectMedia(o), callOpts, tried);
      return { tried, succeeded: driver.name };
    },

    async readBoot(callOpts?: CallOptions) {
      const tried: string[] = [];
      const { value, driver } = await walk('boot_read', 'boot override read', bootDrivers, (d, o) => d.boot!.getBoot(o), callOpts, tried);
      return { boot: value, tried, succeeded: driver.name };
    },

    async readInventory(callOpts?: CallOptions) {
      const tried: string[] = [];
      const { value, driver } = await walk('inventory', 'inventory read', inventoryDrivers, (d, o) => d.inventory!.getInventory(o), callOpts, tried);
      return { inventory: value, tried, succeeded: driver.name };
    },

    /** Idempotent; later calls fail with BMC_ERR_ABORTED. A driver's failure to close is not an error here. */
    async close() {
      if (closed) return;
      closed = true;
      await Promise.allSettled(drivers.map((d) => d.close?.()));
    },
  };
  return bmc;
}

/** A later driver's error that stopped the walk, naming the drivers that refused before it (same code and driver). */
function afterFallThrough(err: BmcError, before: readonly BmcError[]): BmcError {
  const tried = before.map((f) => `${f.driver}: ${f.code}`).join(', ');
  return new BmcError(err.code, err.driver, `${err.message} (tried before, nothing sent: ${tried})`);
}

function describeBoot(s: BootSettings): string {
  return `${s.device}, ${s.persistent ? 'persistent' : 'next boot only'}, ${s.mode}`;
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Settles with `p`, or rejects as soon as `signal` aborts (the driver is abandoned; its late result is dropped). */
function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
