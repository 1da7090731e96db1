/**
 * Real OpenIPMI `ipmi_sim` BMCs for the tests, on 127.0.0.1 UDP ports. Each BMC has its own folder: a `lan.conf`
 * (user `admin` or the caller's, with the password the test chooses, lanplus on its port), a command file, an empty
 * `-s` folder (persisted users would override the config), and the state of its chassis_control program
 * (chassis-control.sh): `power`, `boot`, and `log`, where every `set` ipmi_sim carried out is appended. That log is
 * the BMC's own record of what it was asked: the tests assert on it, not only on what metald says.
 * Every `get` (a status read: `chassis power status` is `get power`) is appended to `reads` (`reads()` counts them).
 *
 * Facts (../shared/recipes/real-peers.md): ipmitool must use `-C 3` against it; it drops the boot flags (legacy,
 * next boot only); `chassis power cycle` is `power 0`, then `power 1` about a second later.
 *
 * Every BMC started is stopped by `stop()`, by `stopAllIpmiSims()`, and, as a last resort, when the test process exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const IPMI_SIM = '/usr/bin/ipmi_sim';
export const IPMITOOL = '/usr/bin/ipmitool';
/** Next to this module; built into dist/test/emulators/ (the bench's drivers section), the source tree's. */
export const CHASSIS_CONTROL = [resolve(import.meta.dirname, 'chassis-control.sh'), resolve(import.meta.dirname, '../../../test/emulators/chassis-control.sh')].find((p) => existsSync(p)) ?? resolve(import.meta.dirname, 'chassis-control.sh');

export interface IpmiSimOptions {
  /** The BMC user's password (1-20 printable characters, no quote or backslash). */
  password: string;
  /** Default `admin`. */
  username?: string;
  /** Initial power, default off. */
  power?: 'on' | 'off';
  /** startIpmiSim only: this UDP port rather than a free one (refused when another process holds it). */
  port?: number;
  /**
   * ipmi_sim's own packet log (`-d`, which it prints only with its console on, so stdin is a pipe kept open and never
   * written): `sessionsOpened()` counts the RMCP+ sessions it was asked to open, a wrong password's attempts included.
   */
  debug?: boolean;
}

export interface IpmiSim {
  readonly name: string;
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly username: string;
  readonly password: string;
  /** The BMC's folder (lan.conf, state). */
  readonly dir: string;
  readonly pid: number;
  /** Power as the chassis_control program holds it. */
  power(): Promise<'on' | 'off'>;
  /** The boot device ipmi_sim last set (`default` before any). */
  boot(): Promise<string>;
  /** Every `set` ipmi_sim carried out, in order: `power 1`, `shutdown 1`, `reset 1`, `boot pxe`, ... */
  log(): Promise<string[]>;
  /** With `debug`: how many RMCP+ session opens ipmi_sim received so far (its "Activate session" lines). */
  sessionsOpened(): number;
  /** How many power reads (`get power`) ipmi_sim served, as its chassis_control program counted them. */
  reads(): Promise<number>;
  /** SIGSTOP: the BMC hangs (answers nothing) until `resume`. */
  pause(): void;
  resume(): void;
  /** Kills it (resumed first) and removes its folder. Idempotent. */
  stop(): Promise<void>;
}

const live = new Set<IpmiSim>();
let exitHook = false;

/**
 * @throws Error saying what is missing when ipmi_sim or ipmitool is not installed here (a test then fails with
 *   that message; it never skips).
 */
export function requireIpmiPeers(): void {
  for (const bin of [IPMI_SIM, IPMITOOL]) {
    if (!existsSync(bin)) throw new Error(`${bin} is missing: install Debian's openipmi and ipmitool (scripts/setup.sh does)`);
  }
}

/** Starts `count` BMCs in parallel. @throws Error when one does not start (the others are stopped). */
export async function startIpmiSims(count: number, opts: IpmiSimOptions): Promise<IpmiSim[]> {
  requireIpmiPeers();
  checkCredential(opts.password, 'password');
  checkCredential(opts.username ?? 'admin', 'username');
  if (opts.port !== undefined && count !== 1) throw new Error('ipmi_sim: a fixed port is for one BMC');
  const ports = opts.port !== undefined ? [opts.port] : await freeUdpPorts(count);
  const start = opts.port !== undefined ? startOne : startRetrying;
  const started = await Promise.allSettled(ports.map((port, i) => start(`sim${i + 1}`, port, opts)));
  const sims = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(sims.map((s) => s.stop()));
    throw failed.reason as Error;
  }
  return sims;
}

export async function startIpmiSim(opts: IpmiSimOptions): Promise<IpmiSim> {
  const [sim] = await startIpmiSims(1, opts);
  return sim!;
}

/** Stops every BMC this process started and has not stopped yet. */
export async function stopAllIpmiSims(): Promise<void> {
  await Promise.all([...live].map((s) => s.stop()));
}

/** Starts one BMC; a port someone else took meanwhile (between our probe and ipmi_sim's bind) is replaced, twice at most. */
async function startRetrying(name: string, port: number, opts: IpmiSimOptions): Promise<IpmiSim> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await startOne(name, port, opts);
    } catch (e) {
      if (attempt >= 2 || !/also bound by another process|before listening/.test((e as Error).message)) throw e;
      [port] = (await freeUdpPorts(1)) as [number];
    }
  }
}

function checkCredential(value: string, what: string): void {
  if (!/^[\x21-\x7e]{1,20}$/.test(value) || /["\\]/.test(value)) {
    throw new Error(`ipmi_sim ${what}: 1-20 printable characters without quotes or backslashes`);
  }
}

async function startOne(name: string, port: number, opts: IpmiSimOptions): Promise<IpmiSim> {
  const dir = await mkdtemp(join(tmpdir(), `metald-ipmisim-${name}-`));
  const username = opts.username ?? 'admin';
  const state = join(dir, 'state');
  await mkdir(join(dir, 'persist'));
  await mkdir(state);
  await writeFile(join(state, 'power'), opts.power === 'on' ? '1\n' : '0\n');
  await writeFile(join(state, 'boot'), 'default\n');
  await writeFile(join(state, 'log'), '');
  await writeFile(join(state, 'reads'), '');
  const auths = 'none md2 md5 straight';
  const lan = [
    `name "${name}"`,
    'set_working_mc 0x20',
    '  startlan 1',
    `    addr 127.0.0.1 ${port}`,
    '    priv_limit admin',
    ...['callback', 'user', 'operator', 'admin'].map((p) => `    allowed_auths_${p} ${auths}`),
    `    guid ${Buffer.from(name.padEnd(16, '-')).toString('hex')}`,
    '  endlan',
    `  chassis_control "/bin/sh ${CHASSIS_CONTROL} ${state}"`,
    `  user 2 true "${username}" "${opts.password}" admin 10 ${auths}`,
    '',
  ].join('\n');
  await writeFile(join(dir, 'lan.conf'), lan, { mode: 0o600 });
  await writeFile(
    join(dir, 'cmds.emu'),
    ['mc_setbmc 0x20', 'mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02', 'sel_enable 0x20 1000 0x0a', 'mc_enable 0x20', ''].join('\n'),
  );
  const child = spawn(IPMI_SIM, ['-c', join(dir, 'lan.conf'), '-f', join(dir, 'cmds.emu'), '-s', join(dir, 'persist'), ...(opts.debug ? ['-d'] : ['-n'])], {
    stdio: [opts.debug ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  try {
    await waitListening(child, port, () => output);
  } catch (e) {
    child.kill('SIGKILL');
    await exited;
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  let stopped = false;
  const sim: IpmiSim = {
    name,
    host: '127.0.0.1',
    port,
    username,
    password: opts.password,
    dir,
    pid: child.pid!,
    power: async () => ((await readFile(join(state, 'power'), 'utf8')).trim() === '1' ? 'on' : 'off'),
    boot: async () => (await readFile(join(state, 'boot'), 'utf8')).trim(),
    log: async () => (await readFile(join(state, 'log'), 'utf8')).split('\n').filter((l) => l !== ''),
    sessionsOpened: () => {
      if (!opts.debug) throw new Error('sessionsOpened() needs an ipmi_sim started with debug: true');
      return output.split('\n').filter((l) => l.includes('Activate session:')).length;
    },
    reads: async () => (await readFile(join(state, 'reads'), 'utf8')).split('\n').filter((l) => /^get .*\bpower\b/.test(l)).length,
    pause: () => void child.kill('SIGSTOP'),
    resume: () => void child.kill('SIGCONT'),
    async stop() {
      if (stopped) return exited;
      stopped = true;
      live.delete(sim);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGCONT');
        child.kill('SIGKILL');
      }
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
  live.add(sim);
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const s of live) process.kill(s.pid, 'SIGKILL');
    });
  }
  return sim;
}

/**
 * Waits until ipmi_sim's own UDP socket is bound on the port (it says nothing when ready): the port's sockets in
 * /proc/net/udp, matched by inode against the child's file descriptors. ipmi_sim binds a port another process holds
 * without complaint (both then get packets), so a port bound by someone else is an error, not a ready BMC.
 */
async function waitListening(child: ChildProcess, port: number, output: () => string): Promise<void> {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const deadline = Date.now() + 5_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`ipmi_sim on port ${port} exited (${child.exitCode ?? child.signalCode}) before listening: ${output()}`);
    }
    const inodes = (await readFile('/proc/net/udp', 'utf8'))
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f[1] === local)
      .map((f) => f[9]);
    if (inodes.length > 0) {
      const fds = await readdir(`/proc/${child.pid}/fd`).catch(() => [] as string[]);
      const own = new Set(await Promise.all(fds.map((fd) => readlink(`/proc/${child.pid}/fd/${fd}`).catch(() => ''))));
      const ours = inodes.filter((i) => own.has(`socket:[${i}]`));
      if (ours.length > 0 && ours.length < inodes.length) throw new Error(`UDP port ${port} is also bound by another process`);
      if (ours.length > 0) return;
    }
    if (Date.now() > deadline) throw new Error(`ipmi_sim on port ${port} did not listen within 5 s: ${output()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** `count` distinct free UDP ports on 127.0.0.1 (bound together, then released for ipmi_sim). */
async function freeUdpPorts(count: number): Promise<number[]> {
  const sockets = await Promise.all(
    Array.from({ length: count }, () => {
      const s = createSocket('udp4');
      return new Promise<ReturnType<typeof createSocket>>((res, rej) => {
        s.once('error', rej);
        s.bind(0, '127.0.0.1', () => res(s));
      });
    }),
  );
  const ports = sockets.map((s) => s.address().port);
  await Promise.all(sockets.map((s) => new Promise<void>((res) => s.close(() => res()))));
  return ports;
}
