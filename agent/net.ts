/**
 * Address arithmetic for network catalogues and address pools (IPv4 and IPv6): one home for the config's
 * validation and the engine's allocation. Node's own parser (net.isIPv4/isIPv6) decides what an address is.
 */
import { isIPv4, isIPv6 } from 'node:net';

export interface Ip {
  version: 4 | 6;
  value: bigint;
}

/** A textual IPv4 or IPv6 address (no zone) -> its family and numeric value; null when invalid. */
export function parseIp(s: string): Ip | null {
  if (isIPv4(s)) {
    const value = s.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
    return { version: 4, value };
  }
  if (!isIPv6(s) || s.includes('%')) return null;
  let text = s;
  const v4tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4tail) {
    const v4 = parseIp(v4tail[1] as string);
    if (!v4) return null;
    const hi = Number(v4.value >> 16n).toString(16);
    const lo = Number(v4.value & 0xffffn).toString(16);
    text = `${text.slice(0, -(v4tail[1] as string).length)}${hi}:${lo}`;
  }
  const halves = text.split('::');
  const head = halves[0] ? (halves[0] as string).split(':') : [];
  const tail = halves.length > 1 && halves[1] ? (halves[1] as string).split(':') : [];
  const fill = halves.length > 1 ? 8 - head.length - tail.length : 0;
  const groups = [...head, ...Array<string>(fill).fill('0'), ...tail];
  if (groups.length !== 8) return null;
  const value = groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
  return { version: 6, value };
}

export function formatIp(ip: Ip): string {
  if (ip.version === 4) {
    return [24n, 16n, 8n, 0n].map((sh) => String((ip.value >> sh) & 0xffn)).join('.');
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((ip.value >> BigInt(i * 16)) & 0xffffn));
  // Compress the longest run of two or more zero groups.
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export interface Cidr {
  version: 4 | 6;
  network: bigint;
  prefix: number;
}

/** `10.0.0.0/24`, `fd00::/64` -> parsed; throws with a message when invalid or when host bits are set. */
export function parseCidr(s: string): Cidr {
  const m = /^([^/]+)\/([0-9]{1,3})$/.exec(s);
  if (!m) throw new Error('expected "address/prefix", e.g. "10.0.0.0/24" or "fd00::/64"');
  const ip = parseIp(m[1] as string);
  if (!ip) throw new Error(`"${m[1]}" is not an IPv4 or IPv6 address`);
  const bits = ip.version === 4 ? 32 : 128;
  const prefix = Number(m[2]);
  if (prefix > bits) throw new Error(`prefix /${prefix} is longer than ${bits} bits`);
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  if ((ip.value & hostMask) !== 0n) {
    const net = formatIp({ version: ip.version, value: ip.value & ~hostMask });
    throw new Error(`host bits are set (the network is ${net}/${prefix})`);
  }
  return { version: ip.version, network: ip.value, prefix };
}

export function cidrContains(c: Cidr, ip: Ip): boolean {
  if (c.version !== ip.version) return false;
  const shift = BigInt((c.version === 4 ? 32 : 128) - c.prefix);
  return ip.value >> shift === c.network >> shift;
}

/** Normalised text form (so differently written IPv6 addresses compare equal); null when not an address. */
export function normaliseIp(addr: string): string | null {
  const ip = parseIp(addr);
  return ip ? formatIp(ip) : null;
}
