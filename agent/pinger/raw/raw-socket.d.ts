/**
 * The part of raw-socket 1.8.1 (CommonJS native addon, no types of its own) that agent/pinger/raw/socket.ts uses,
 * including its native `wrap` (socket.ts sends and reads through it directly; see there why). Loaded with
 * createRequire; this module only types what that call returns. The version is pinned in package.json.
 */
import type { EventEmitter } from 'node:events';

/** raw-socket's native SocketWrap: synchronous sendto/recvfrom on a non-blocking socket; they throw strerror's words. */
export interface RawSocketWrap extends EventEmitter {
  /** sendto(2) now; `done` runs synchronously with the bytes sent. @throws Error (e.g. "Resource temporarily unavailable") */
  send(buffer: Buffer, offset: number, length: number, address: string, done: (bytes: number) => void): this;
  /** recvfrom(2) now into `buffer`; `got` runs synchronously. @throws Error ("Resource temporarily unavailable" when none) */
  recv(buffer: Buffer, got: (buffer: Buffer, bytes: number, source: string) => void): this;
}

export interface RawSocket extends EventEmitter {
  readonly wrap: RawSocketWrap;
  /** raw-socket's queue of packets waiting for a writable event. */
  readonly requests: unknown[];
  /** Queues a packet; `before` runs just before sendto(2), `after` with its outcome. */
  send(buffer: Buffer, offset: number, length: number, address: string, before: () => void, after: (error: Error | null, bytes: number) => void): this;
  setOption(level: number, option: number, value: number): void;
  close(): this;
  on(event: 'message', listener: (buffer: Buffer, source: string) => void): this;
  on(event: 'error', listener: (error: Error) => void): this;
  on(event: 'close', listener: () => void): this;
}

export interface RawSocketModule {
  createSocket(options: { protocol: number; addressFamily?: number; bufferSize?: number }): RawSocket;
  AddressFamily: { IPv4: number; IPv6: number };
  Protocol: { ICMP: number; ICMPv6: number };
  SocketLevel: { SOL_SOCKET: number };
  SocketOption: { SO_RCVBUF: number };
}
