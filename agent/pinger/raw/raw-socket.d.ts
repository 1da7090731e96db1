/**
 * The part of raw-socket 1.8.1 (CommonJS native addon, no types of its own) that agent/pinger/raw/socket.ts uses.
 * Loaded with createRequire; this module only types what that call returns.
 */
import type { EventEmitter } from 'node:events';

export interface RawSocket extends EventEmitter {
  /** Queues a packet; `before` runs just before sendto(2), `after` with its outcome. */
  send(buffer: Buffer, offset: number, length: number, address: string, before: () => void, after: (error: Error | null, bytes: number) => void): this;
  close(): this;
  on(event: 'message', listener: (buffer: Buffer, source: string) => void): this;
  on(event: 'error', listener: (error: Error) => void): this;
  on(event: 'close', listener: () => void): this;
}

export interface RawSocketModule {
  createSocket(options: { protocol: number; addressFamily?: number; bufferSize?: number }): RawSocket;
  AddressFamily: { IPv4: number; IPv6: number };
  Protocol: { ICMP: number; ICMPv6: number };
}
