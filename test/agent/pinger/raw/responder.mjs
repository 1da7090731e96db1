// A crafted ICMP peer for the tolerance test, run inside a host namespace whose kernel does not answer pings
// (net.ipv4.icmp_echo_ignore_all=1). It reads echo requests on a raw socket and answers each as the last octet of
// the address it was sent to says, writing the IP header itself (IP_HDRINCL) so every reply comes from that address:
//   .21 one reply, 400 ms late   .22 two replies (duplicate)   .23 a reply with a bad checksum, then a truncated one
//   .24 a reply with the nonce (payload bytes 0-15) changed        .25 the three corrupted replies, then a good one
//   .26 a reply, 700 ms later, only to requests whose nonce is all 0xEE (the foreign pinger's, see probe-child's
//       nonceByte): late enough that the engine it must not fool has its own probe of that sequence outstanding
// Prints "ready" when listening; a line per crafted reply on stderr.
import { Buffer } from 'node:buffer';
import process from 'node:process';
import { setTimeout } from 'node:timers';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const raw = require('raw-socket');

function checksum(b) {
  let sum = 0;
  for (let i = 0; i + 1 < b.length; i += 2) sum += b.readUInt16BE(i);
  if (b.length % 2) sum += b[b.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

const s = raw.createSocket({ protocol: raw.Protocol.ICMP });
s.setOption(raw.SocketLevel.IPPROTO_IP, raw.SocketOption.IP_HDRINCL, 1);

function send(src, dst, icmp) {
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + icmp.length, 2);
  ip[8] = 64;
  ip[9] = 1;
  src.split('.').forEach((x, i) => (ip[12 + i] = Number(x)));
  dst.split('.').forEach((x, i) => (ip[16 + i] = Number(x)));
  const pkt = Buffer.concat([ip, icmp]);
  s.send(pkt, 0, pkt.length, dst, (err) => err && process.stderr.write(`send: ${err.message}\n`));
}

function reply(req, edit) {
  const icmp = Buffer.from(req);
  icmp[0] = 0;
  icmp.writeUInt16BE(0, 2);
  edit?.(icmp);
  if (icmp.readUInt16BE(2) === 0) icmp.writeUInt16BE(checksum(icmp), 2);
  return icmp;
}

const badChecksum = (req) => reply(req, (b) => b.writeUInt16BE((checksum(b) ^ 0x5a5a) || 1, 2));
const truncated = (req) => reply(req.subarray(0, 12));
const wrongNonce = (req) => reply(req, (b) => (b[8] ^= 0xff));

s.on('message', (buf) => {
  const ihl = (buf[0] & 0x0f) * 4;
  const icmp = Buffer.from(buf.subarray(ihl)); // a copy: raw-socket reuses its receive buffer
  if (icmp[0] !== 8) return;
  const from = `${buf[12]}.${buf[13]}.${buf[14]}.${buf[15]}`;
  const to = `${buf[16]}.${buf[17]}.${buf[18]}.${buf[19]}`;
  const kind = buf[19];
  const out = (b, what) => {
    process.stderr.write(`${to} -> ${from}: ${what}\n`);
    send(to, from, b);
  };
  if (kind === 21) setTimeout(() => out(reply(icmp), 'late'), 400);
  if (kind === 22) {
    out(reply(icmp), 'reply');
    out(reply(icmp), 'duplicate');
  }
  if (kind === 23 || kind === 25) {
    out(badChecksum(icmp), 'bad checksum');
    out(truncated(icmp), 'truncated');
  }
  if (kind === 24 || kind === 25) out(wrongNonce(icmp), 'wrong nonce');
  if (kind === 25) out(reply(icmp), 'reply');
  if (kind === 26 && icmp.subarray(8, 24).every((x) => x === 0xee)) setTimeout(() => out(reply(icmp), 'reply to the marked nonce'), 700);
});
process.stdout.write('ready\n');
