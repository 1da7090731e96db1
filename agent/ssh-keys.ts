/**
 * OpenSSH public keys as authorized_keys takes them (`<type> <base64 blob> [comment]`): parsed, so that a key the
 * installed system would ignore is refused with a 400 when the operation is asked for, not found missing after the
 * install. The blob must decode and name the same key type as its first field (RFC 4253 section 6.6: a string).
 * Options before the type (`from="..." ssh-ed25519 ...`) are not accepted: metald writes the keys, not the options.
 */

const KEY_TYPES = new Set([
  'ssh-ed25519',
  'ssh-rsa',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
]);

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Why `key` is not an OpenSSH public key metald can install, or null when it is one. */
export function sshKeyProblem(key: string): string | null {
  if (/[\r\n\0]/.test(key)) return 'a key is one line (no line break or NUL)';
  const [type, blob, ...rest] = key.trim().split(/[ \t]+/);
  void rest;
  if (!type || !KEY_TYPES.has(type)) return `key type '${(type ?? '').slice(0, 40)}' is not one of ${[...KEY_TYPES].join(', ')}`;
  if (!blob || !BASE64.test(blob) || blob.length % 4 !== 0) return 'the key data (second field) is not base64';
  const bytes = Buffer.from(blob, 'base64');
  if (bytes.length < 4) return 'the key data is too short';
  const n = bytes.readUInt32BE(0);
  if (n > bytes.length - 4 || bytes.subarray(4, 4 + n).toString('latin1') !== type) return `the key data is not a ${type} key (its type field differs)`;
  if (bytes.length <= 4 + n) return 'the key data holds no key after its type';
  return null;
}

/** @returns the first problem of the list, naming the key by index (`ssh_keys[1]: ...`), or null. */
export function sshKeysProblem(keys: readonly string[], field = 'ssh_keys'): string | null {
  for (const [i, k] of keys.entries()) {
    const p = sshKeyProblem(k);
    if (p) return `${field}[${i}]: ${p}`;
  }
  return null;
}
