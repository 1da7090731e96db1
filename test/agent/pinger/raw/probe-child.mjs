// Runs raw-engine sweeps in THIS process (started by the real tests with `ip netns exec NS node probe-child.mjs JOB`,
// because Node cannot setns) and prints one JSON line: every engine's results and counters, and the shared hub's.
// JOB (argv[2], JSON): { engines: [{ identifier?, firstSeq?, nonceByte?, targets, opts }], lingerMs? }; nonceByte
// makes every nonce of that engine 16 such bytes (the responder's .26 answers only those). All engines run at once,
// in one process, so they share its one socket per family. Imports the built engine: `npm run build` first.
import { Buffer } from 'node:buffer';
import process from 'node:process';
import { setTimeout } from 'node:timers';
import { RawPinger } from '../../../../dist/agent/pinger/raw/engine.js';
import { processHub } from '../../../../dist/agent/pinger/raw/socket.js';

const job = JSON.parse(process.argv[2] ?? '{}');
const engines = job.engines.map((e) => new RawPinger({
    identifier: e.identifier,
    firstSeq: e.firstSeq,
    ...(e.nonceByte !== undefined ? { nonce: () => Buffer.alloc(16, e.nonceByte) } : {}),
  }));
const events = engines.map(() => []);
const t0 = process.hrtime.bigint();
const results = await Promise.all(
  job.engines.map((e, i) => engines[i].ping(e.targets, { ...e.opts, onEvent: (ev) => events[i].push(ev) })),
);
const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
// Stay a while so replies that arrive after the sweep (late, duplicated) reach the counters.
await new Promise((r) => setTimeout(r, job.lingerMs ?? 0));
const out = {
  wallMs,
  identifiers: engines.map((e) => e.identifier),
  results,
  events,
  stats: engines.map((e) => e.stats()),
  hub: processHub.stats(),
};
for (const e of engines) await e.close();
out.socketsAfterClose = processHub.usage.sockets;
process.stdout.write(`${JSON.stringify(out)}\n`);
