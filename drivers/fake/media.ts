/** Fake virtual media: one slot. Inserting replaces what is there (the same URL again succeeds); ejecting empty succeeds. */
import type { MediaDriver } from '../types.js';
import type { FakeServer } from './lab.js';

export function createFakeMedia(server: FakeServer, via: string): MediaDriver {
  return {
    insertMedia: (url, opts) => server.insertMedia(via, url, opts?.signal),
    ejectMedia: (opts) => server.ejectMedia(via, opts?.signal),
  };
}
