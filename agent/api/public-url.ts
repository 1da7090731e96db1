/**
 * The API's own URL. Links and `Location` headers use `api.public_url` when set; otherwise they name the address the
 * API is bound to (with `port: 0` in the config, the real port once it listens).
 */
import type { AddressInfo } from 'node:net';
import { formatListen } from '../config/load.js';

/** What `server.address()` returns: an AddressInfo when listening on TCP, else a pipe name or null. */
export type BoundAddress = AddressInfo | string | null | undefined;

/** `http://host:port` of the listen address, with the bound port when the server listens. */
export function listenUrl(listen: { host: string; port: number }, bound: BoundAddress): string {
  const port = bound && typeof bound === 'object' ? bound.port : listen.port;
  return `http://${formatListen({ host: listen.host, port })}`;
}

/** `api.public_url` when set, else the listen URL. */
export function publicUrl(api: { listen: { host: string; port: number }; public_url: string | null }, bound: BoundAddress): string {
  if (api.public_url) return api.public_url;
  return listenUrl(api.listen, bound);
}
