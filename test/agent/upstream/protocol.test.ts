/**
 * The upstream protocol (docs/protocol.md, agent/upstream/protocol.ts): every example on the page parses (they are
 * read from the page, so it cannot drift), each kind of bad input gets its typed error and never a throw, the JSON
 * Schema files equal the generated ones, and a plain JSON Schema validator (Ajv, as fastify's REST validation uses)
 * given those files judges the examples as the agent does: what a controller in another language would see.
 */
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { CommandBody, MAX_HELLO_BYTES, MAX_MESSAGE_BYTES, MAX_NODES, MESSAGE_TYPES, PROTOCOL_ERRORS } from '../../../agent/upstream/protocol.js';
import { errorFor, parseMessage, type ParseResult } from '../../../agent/upstream/parse.js';
import { schemaFiles } from '../../../agent/upstream/schema-files.js';
import { snapshotInstance, snapshotNode } from '../../../agent/upstream/snapshot.js';
import { staleFiles } from '../../../scripts/protocol-schemas.js';
import { runningInstance } from '../../helpers/engine.js';
import { INVENTORY } from './link-helpers.js';
import { ctx, IMAGE, nodeId, startHarness } from '../../helpers/harness.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const DOC = readFileSync(join(ROOT, 'docs', 'protocol.md'), 'utf8');
const SCHEMA_DIR = join(ROOT, 'docs', 'protocol');

interface Example {
  line: number;
  text: string;
  /** null: a valid message; else the code it must be refused with. */
  refused: string | null;
}

/** Every ```json block of the page: `json` is a valid message, `json refused CODE` one refused with CODE. */
function examples(md: string): Example[] {
  const out: Example[] = [];
  const re = /^```json( refused ([A-Z_]+))?\n([\s\S]*?)^```$/gm;
  for (let m = re.exec(md); m !== null; m = re.exec(md)) {
    out.push({ line: md.slice(0, m.index).split('\n').length, text: m[3]!, refused: m[2] ?? null });
  }
  return out;
}

function refusal(r: ParseResult): Exclude<ParseResult, { ok: true }> {
  if (r.ok) throw new Error(`expected a refusal, got a ${r.message.type}`);
  return r;
}

const ACK = { type: 'ack', version: 1, seq: 5 };
const COMMAND = {
  type: 'command',
  version: 1,
  command_id: 'req-2a8f4e1c-7b3d-4e5f-a6b7-c8d9e0f1a2b3',
  generation: 3,
  command: { op: 'instance.power', instance_id: 'cbce6087-6156-453c-a512-60bf3d75d69f', target: 'reboot' },
};
const j = (v: unknown) => JSON.stringify(v);

describe('docs/protocol.md examples', () => {
  const all = examples(DOC);

  it('every example on the page parses as what it says it is (valid, or refused with its code)', () => {
    expect(all.length).toBeGreaterThan(15);
    for (const ex of all) {
      const r = parseMessage(ex.text);
      if (ex.refused === null) {
        expect(r.ok ? 'ok' : `${r.code}: ${r.message}`, `docs/protocol.md:${ex.line}`).toBe('ok');
      } else {
        expect(r.ok ? 'ok' : r.code, `docs/protocol.md:${ex.line}`).toBe(ex.refused);
      }
    }
  });

  it('every message type has a valid example, and every command op is in the page', () => {
    const types = new Set(all.filter((e) => e.refused === null).map((e) => (JSON.parse(e.text) as { type: string }).type));
    expect([...types].sort()).toEqual([...MESSAGE_TYPES].sort());
    const ops = CommandBody.anyOf.map((m) => m.properties.op.const as string);
    expect(ops.length).toBe(15);
    for (const op of ops) expect(DOC, op).toContain(`\`${op}\``);
  });

  it('the code table lists every protocol error code', () => {
    for (const code of Object.keys(PROTOCOL_ERRORS)) expect(DOC, code).toContain(`| \`${code}\` |`);
  });
});

describe('parseMessage: typed errors, never a throw', () => {
  it('malformed JSON', () => {
    const e = refusal(parseMessage('{"type":"ack",'));
    expect(e.code).toBe('PROTO_ERR_MALFORMED');
    expect(e.message).toMatch(/not JSON/);
  });

  it('not UTF-8 (a binary frame)', () => {
    const e = refusal(parseMessage(new Uint8Array([0x7b, 0xff, 0x7d])));
    expect(e.code).toBe('PROTO_ERR_MALFORMED');
    expect(e.message).toMatch(/UTF-8/);
    expect(parseMessage(Buffer.from(j(ACK))).ok).toBe(true);
  });

  it('not an object', () => {
    for (const text of ['[1,2]', '"ack"', 'null', '5']) expect(refusal(parseMessage(text)).code, text).toBe('PROTO_ERR_MALFORMED');
  });

  it('a duplicate key (a smuggled second generation)', () => {
    const text = j(COMMAND).replace('"generation":3', '"generation":3,"generation":9');
    const e = refusal(parseMessage(text));
    expect(e.code).toBe('PROTO_ERR_MALFORMED');
    expect(e.message).toMatch(/duplicate key 'generation'/);
    expect(e.in_reply_to.command_id).toBe(COMMAND.command_id);
  });

  it('oversized: past the hello limit before parsing, past 1 MiB for any other type, a hello up to 16 MiB', () => {
    const huge = 'x'.repeat(MAX_HELLO_BYTES + 1);
    expect(refusal(parseMessage(huge)).code).toBe('PROTO_ERR_TOO_LARGE');
    expect(refusal(parseMessage(Buffer.from(huge))).code).toBe('PROTO_ERR_TOO_LARGE');
    // Fewer UTF-16 units than the limit, more UTF-8 bytes.
    const wideHuge = 'é'.repeat(MAX_HELLO_BYTES / 2 + 1);
    expect(wideHuge.length).toBeLessThan(MAX_HELLO_BYTES);
    expect(refusal(parseMessage(wideHuge)).code).toBe('PROTO_ERR_TOO_LARGE');
    // Multi-byte characters count as their bytes, not their UTF-16 units.
    const wide = j({ type: 'resync', version: 1, reason: 'é'.repeat(MAX_MESSAGE_BYTES / 2) });
    expect(wide.length).toBeLessThan(MAX_MESSAGE_BYTES);
    const e = refusal(parseMessage(wide));
    expect(e.code).toBe('PROTO_ERR_TOO_LARGE');
    expect(e.message).toMatch(/a resync message exceeds 1048576 bytes/);
    // A hello of 2 MiB is not refused for its size (its schema refuses this one's padding field instead).
    const bigHello = j({ type: 'hello', version: 1, pad: 'x'.repeat(2 * 1024 * 1024) });
    expect(refusal(parseMessage(bigHello)).code).toBe('PROTO_ERR_SCHEMA');
  });

  it('a field of the wrong type, with its path', () => {
    const e = refusal(parseMessage(j({ ...ACK, seq: '5' })));
    expect(e).toMatchObject({ code: 'PROTO_ERR_SCHEMA', path: '/seq' });
  });

  it('a missing field', () => {
    const e = refusal(parseMessage(j({ type: 'welcome', version: 1, agent_id: 'rack-a12', resume_from: 1 })));
    expect(e.code).toBe('PROTO_ERR_SCHEMA');
    expect(e.path).toBe('/generation');
    expect(e.message).toMatch(/welcome: \/generation: Expected required property/);
  });

  it('an extra field (every object is closed)', () => {
    expect(refusal(parseMessage(j({ ...ACK, sseq: 5 }))).code).toBe('PROTO_ERR_SCHEMA');
    const nested = { ...COMMAND, command: { ...COMMAND.command, force: true } };
    expect(refusal(parseMessage(j(nested)))).toMatchObject({ code: 'PROTO_ERR_SCHEMA', path: '/command/force' });
  });

  it("a bad value inside the union member chosen by the event's kind or the command's op, with the words allowed", () => {
    const ev = {
      type: 'event', version: 1, agent_id: 'rack-a12', seq: 7, at: '2026-12-02T14:00:01.250Z', kind: 'instance.power',
      instance_id: null, node_id: null, cause: 'poll', data: { power_state: 'of' },
    };
    const e = refusal(parseMessage(j(ev)));
    expect(e).toMatchObject({ code: 'PROTO_ERR_SCHEMA', path: '/data/power_state', in_reply_to: { type: 'event', seq: 7 } });
    expect(e.message).toContain('expected one of: "on", "off", "unknown"');
    expect(refusal(parseMessage(j({ ...ev, kind: 'instance.exploded' })))).toMatchObject({ path: '/kind' });
    const cmd = refusal(parseMessage(j({ ...COMMAND, command: { ...COMMAND.command, target: 'of' } })));
    expect(cmd).toMatchObject({ code: 'PROTO_ERR_SCHEMA', path: '/command/target' });
    expect(refusal(parseMessage(j({ ...COMMAND, command: { op: 'instance.explode' } })))).toMatchObject({ path: '/command/op' });
  });

  it('an unknown type', () => {
    const e = refusal(parseMessage(j({ type: 'snapshot', version: 1 })));
    expect(e).toMatchObject({ code: 'PROTO_ERR_UNKNOWN_TYPE', path: '/type' });
    expect(refusal(parseMessage(j({ version: 1 }))).code).toBe('PROTO_ERR_UNKNOWN_TYPE');
    expect(refusal(parseMessage(j({ type: '__proto__', version: 1 }))).code).toBe('PROTO_ERR_UNKNOWN_TYPE');
    expect(refusal(parseMessage(j({ type: 'toString', version: 1 }))).code).toBe('PROTO_ERR_UNKNOWN_TYPE');
  });

  it('an unknown version, or none, before anything else of the message is judged', () => {
    for (const version of [2, 0, '1', null, undefined]) {
      const e = refusal(parseMessage(j({ ...ACK, version, extra: true })));
      expect(e.code, String(version)).toBe('PROTO_ERR_UNKNOWN_VERSION');
      const err = errorFor(e);
      expect(err).toMatchObject({ fatal: true, supported_versions: [1] });
      expect(parseMessage(j(err)).ok).toBe(true);
    }
  });

  it('a message from the wrong side', () => {
    expect(refusal(parseMessage(j(COMMAND), { from: 'agent' })).code).toBe('PROTO_ERR_UNEXPECTED');
    expect(parseMessage(j(COMMAND), { from: 'controller' }).ok).toBe(true);
    expect(refusal(parseMessage(j(ACK), { from: 'agent' })).code).toBe('PROTO_ERR_UNEXPECTED');
  });

  it('bounds: a string past its maximum, an array past its maximum', () => {
    expect(refusal(parseMessage(j({ type: 'resync', version: 1, reason: 'x'.repeat(257) })))).toMatchObject({ path: '/reason' });
    const err = errorFor({ code: 'PROTO_ERR_SCHEMA', message: 'x', path: null, in_reply_to: { type: null, seq: null, command_id: null } });
    expect(refusal(parseMessage(j({ ...err, supported_versions: Array.from({ length: 17 }, () => 1) })))).toMatchObject({ path: '/supported_versions' });
  });

  it("an enrolment's BMC settings: scalars and flat mappings of scalars (the fake driver's options), nothing deeper", () => {
    const enrol = (bmc: unknown) => j({
      ...COMMAND,
      command: { op: 'node.enrol', node: { id: '1b8c5f0e-0000-4000-8000-000000000003', name: 'node-03', bmc } },
    });
    expect(parseMessage(enrol({ driver: 'fake', fake: { power: 'on', os: true } })).ok).toBe(true);
    expect(parseMessage(enrol({ driver: ['redfish', 'ipmi'], address: 'https://10.0.1.23', port: 443, insecure: false })).ok).toBe(true);
    expect(refusal(parseMessage(enrol({ driver: 'fake', fake: { deep: { er: 1 } } }))).code).toBe('PROTO_ERR_SCHEMA');
    expect(refusal(parseMessage(enrol({ address: 'x' }))).code).toBe('PROTO_ERR_SCHEMA');
  });

  it('the answer to every refusal is itself a valid error message, with the bounded text', () => {
    const e = refusal(parseMessage(j({ ...COMMAND, command: { ...COMMAND.command, target: 'x'.repeat(5000) } })));
    expect(parseMessage(j(errorFor(e)), { from: 'agent' }).ok).toBe(true);
    const err = errorFor({ ...e, message: 'x'.repeat(5000), path: `/${'y'.repeat(5000)}` });
    expect(err.message.length).toBe(1024);
    expect(err.path?.length).toBe(256);
    const stale = errorFor({ code: 'PROTO_ERR_STALE_GENERATION', message: 'welcome generation 2 is older than 3', path: '/generation', in_reply_to: { type: 'welcome', seq: null, command_id: null } }, { fatal: true });
    expect(stale.fatal).toBe(true);
    expect(parseMessage(j(stale)).ok).toBe(true);
    expect(errorFor({ code: 'PROTO_ERR_STALE_GENERATION', message: 'm', path: null, in_reply_to: stale.in_reply_to }).fatal).toBe(false);
    const back = parseMessage(j(err), { from: 'agent' });
    expect(back.ok).toBe(true);
  });

  it('never throws, whatever the frame (fuzz)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json(), fc.jsonValue().map((v) => j({ ...ACK, ...(typeof v === 'object' && v !== null ? v : { v }) }))), (text) => {
        const r = parseMessage(text);
        expect(typeof r.ok).toBe('boolean');
      }),
      { numRuns: 2000 },
    );
  });
});

describe('docs/protocol/*.json', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'proto-schemas-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('equal the files generated from agent/upstream/protocol.ts (run npm run protocol-schemas)', () => {
    expect(staleFiles(SCHEMA_DIR)).toEqual([]);
    for (const [name, text] of schemaFiles()) expect(readFileSync(join(SCHEMA_DIR, name), 'utf8'), name).toBe(text);
  });

  it('a changed, missing or stray file is named', () => {
    for (const [name, text] of schemaFiles()) writeFileSync(join(tmp, name), text);
    expect(staleFiles(tmp)).toEqual([]);
    writeFileSync(join(tmp, 'ack.json'), '{}\n');
    writeFileSync(join(tmp, 'old.json'), '{}\n');
    rmSync(join(tmp, 'welcome.json'));
    expect(staleFiles(tmp).sort()).toEqual(['ack.json', 'old.json', 'welcome.json']);
  });

  it('a plain JSON Schema validator given the files judges every example as the agent does', () => {
    const ajv = new Ajv({ strict: true, allErrors: false });
    const check = new Map(MESSAGE_TYPES.map((t) => [t, ajv.compile(JSON.parse(readFileSync(join(SCHEMA_DIR, `${t}.json`), 'utf8')) as object)]));
    const cases = [
      ...examples(DOC).map((e) => ({ where: `docs/protocol.md:${e.line}`, text: e.text })),
      { where: 'extra field', text: j({ ...ACK, sseq: 1 }) },
      { where: 'wrong type', text: j({ ...ACK, seq: '5' }) },
      { where: 'bad op word', text: j({ ...COMMAND, command: { ...COMMAND.command, target: 'of' } }) },
    ];
    for (const c of cases) {
      const v = JSON.parse(c.text) as { type?: string; version?: unknown };
      const validate = typeof v.type === 'string' ? check.get(v.type as (typeof MESSAGE_TYPES)[number]) : undefined;
      if (validate === undefined) continue; // an unknown type: no file to judge it by
      const agent = parseMessage(c.text);
      expect(validate(v), c.where).toBe(agent.ok);
    }
  });
});

describe('events are the journal as the store writes it', () => {
  it('every entry of a create and power run, sent as an event, is a valid event message', async () => {
    const h = await startHarness({ nodes: 2 });
    try {
      const id = await runningInstance(h, 'proto', 1);
      for (const target of ['off', 'on', 'reboot'] as const) {
        await h.agent.engine.setInstancePower(ctx(), id, { target });
        await h.agent.engine.idle();
      }
      await h.agent.engine.setMaintenance(ctx('admin'), h.agent.engine.getInstance(ctx(), id).node_id, true, 'proto');
      await h.agent.engine.setMaintenance(ctx('admin'), h.agent.engine.getInstance(ctx(), id).node_id, false);
      await h.agent.engine.deleteInstance(ctx(), id);
      await h.agent.engine.idle();
      const entries = h.agent.store.readJournal(1, 100000);
      expect(entries.length).toBeGreaterThan(20);
      for (const e of entries) {
        const r = parseMessage(j({ type: 'event', version: 1, ...e }), { from: 'agent' });
        expect(r.ok ? 'ok' : `${e.kind}: ${r.message}`, `seq ${e.seq}`).toBe('ok');
      }
    } finally {
      await h.close();
    }
  });
});

describe("the snapshot is the store's public model", () => {


  it('a hello made from a real store (adopted, created, in maintenance) is valid, holds no secret, says what the store says, and MAX_NODES of its nodes fit', async () => {
    const h = await startHarness({ adopt: true, nodes: 3 });
    try {
      const e = h.agent.engine;
      const { instance } = await e.createInstance(ctx(), {
        name: 'snap', image_uuid: IMAGE,
        extra: { node_id: nodeId(1), password_hash: '$6$secretsalt$SECRETHASH', user_data: '#cloud-config SECRETUSERDATA' },
      });
      await e.idle();
      await e.setMaintenance(ctx('admin'), nodeId(2), true, 'DIMM');
      const store = h.agent.store;
      const nodes = store.listNodes().map(snapshotNode);
      const instances = store.listInstances().filter((i) => i.state !== 'terminated').map((i) => snapshotInstance(i, store.lastAliveVerdict(i.id)));
      expect(instances.map((i) => i.id)).toContain(instance.id);
      expect(instances.length).toBeGreaterThanOrEqual(2); // the adopted one too
      // An idle agent: no target anywhere; what the store says, field by field where it matters.
      expect(nodes.map((n) => n.target_power_state)).toEqual(nodes.map(() => null));
      expect(nodes.find((n) => n.id === nodeId(2))).toMatchObject({ maintenance: true, maintenance_reason: 'DIMM', instance_id: null, adopting: false });
      expect(nodes.find((n) => n.id === nodeId(1))).toMatchObject({ power_state: 'on', instance_id: instance.id, drivers: ['fake'] });
      expect(instances.find((i) => i.id === instance.id)).toMatchObject({ state: 'running', power_state: 'on', target_power_state: null, task: null, operation_state: 'install-succeed', error: null });
      const hello = {
        type: 'hello', version: 1, agent_id: h.agent.engine.agentId, store_id: '0f6c2d9e-8a4b-4c1d-9e2f-3a5b7c9d1e2f',
        agent_version: '0.1.0', generation: 0, outbox_first_seq: 1, inventory: INVENTORY,
        snapshot: { seq: store.lastSeq(), taken_at: new Date().toISOString(), nodes, instances },
      };
      const text = j(hello);
      const r = parseMessage(text, { from: 'agent' });
      expect(r.ok ? 'ok' : r.message).toBe('ok');
      expect(text).not.toMatch(/SECRET|password_file|password_hash|user_data/);
      // The limit's claim: MAX_NODES nodes, each with a live instance, in one hello.
      const perNode = Math.max(...nodes.map((n) => j(n).length)) + Math.max(...instances.map((i) => j(i).length)) + 2;
      expect(perNode * MAX_NODES).toBeLessThan(MAX_HELLO_BYTES / 2);
    } finally {
      await h.close();
    }
  });
});
