/**
 * Address arithmetic for network catalogues and address pools (IPv4 and IPv6), with Node's own parser (net.isIP)
 * deciding what an address is.
 */
import { isIP } from 'node:net';

/** The address as a number, or null when it is not an IP address. */
export function ipToBigInt(addr: string): { value: bigint; version: 4 | 6 } | null {
  const v = isIP(addr);
  if (v === 4) {
    const parts = addr.split('.').map(Number);
    return { value: parts.reduce((acc, p) => (acc << 8n) + BigInt(p), 0n), version: 4 };
  }
  if (v === 6) {
    let s = addr;
    const tail = s.match(/(\d+\.\d+\.\d+\.\d+)$/);
    if (tail?.[1]) {
      const n = ipToBigInt(tail[1]);
      if (!n) return null;
      s = s.slice(0, -tail[1].length) + ((n.value >> 16n) & 0xffffn).toString(16) + ':' + (n.value & 0xffffn).toString(16);
    }
    const [head, rest] = s.split('::');
    const h = head ? head.split(':') : [];
    const r = rest !== undefined && rest !== '' ? rest.split(':') : [];
    const fill = s.includes('::') ? 8 - h.length - r.length : 0;
    const groups = [...h, ...Array<string>(fill).fill('0'), ...r];
    if (groups.length !== 8) return null;
    return { value: groups.reduce((acc, g) => (acc << 16n) + BigInt(parseInt(g, 16)), 0n), version: 6 };
  }
  return null;
}

export function bigIntToIp(value: bigint, version: 4 | 6): string {
  if (version === 4) {
    return [24n, 16n, 8n, 0n].map((s) => ((value >> s) & 0xffn).toString()).join('.');
  }
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((value >> BigInt(i * 16)) & 0xffffn).toString(16));
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::').replace(/:{3,}/, '::');
}

/** Normalised text form (so 10.0.0.001-style or differently compressed IPv6 compare equal). */
export function normaliseIp(addr: string): string | null {
  const n = ipToBigInt(addr);
  return n ? bigIntToIp(n.value, n.version) : null;
}

export function cidrContains(cidr: string, addr: string): boolean {
  const [base, lenText] = cidr.split('/');
  const b = base ? ipToBigInt(base) : null;
  const a = ipToBigInt(addr);
  if (!b || !a || a.version !== b.version) return false;
  const bits = b.version === 4 ? 32 : 128;
  const len = Number(lenText ?? bits);
  const shift = BigInt(bits - len);
  return b.value >> shift === a.value >> shift;
}

/**
 * The first address of the inclusive range [first, last] not in `used` (normalised forms), or null when the pool is
 * exhausted.
 */
export function firstFreeInPool(first: string, last: string, used: ReadonlySet<string>): string | null {
  const f = ipToBigInt(first);
  const l = ipToBigInt(last);
  if (!f || !l || f.version !== l.version) return null;
  for (let v = f.value; v <= l.value; v++) {
    const ip = bigIntToIp(v, f.version);
    if (!used.has(ip)) return ip;
  }
  return null;
}
