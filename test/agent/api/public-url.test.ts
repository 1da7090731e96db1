/** The API's own URL: api.public_url when set, else the bound address (the real port when the config says 0). */
import { describe, expect, it } from 'vitest';
import { listenUrl, publicUrl } from '../../../agent/api/public-url.js';

const bound = { address: '127.0.0.1', family: 'IPv4', port: 40123 };

describe('publicUrl', () => {
  it('is api.public_url when set', () => {
    expect(publicUrl({ listen: { host: '127.0.0.1', port: 0 }, public_url: 'https://metal.example/' }, bound)).toBe('https://metal.example/');
  });

  it('without public_url names the bound port, or the configured one before listening', () => {
    expect(publicUrl({ listen: { host: '127.0.0.1', port: 0 }, public_url: null }, bound)).toBe('http://127.0.0.1:40123');
    expect(publicUrl({ listen: { host: '127.0.0.1', port: 6385 }, public_url: null }, null)).toBe('http://127.0.0.1:6385');
    expect(listenUrl({ host: '::1', port: 6385 }, undefined)).toBe('http://[::1]:6385');
  });
});
