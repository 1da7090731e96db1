/**
 * ssh keys are parsed when an operation is asked for (agent/ssh-keys.ts): a key the installed system would ignore is
 * a 400 naming it, and nothing is created or changed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { sshKeyProblem } from '../../agent/ssh-keys.js';
import { IMAGE, MEMBER_TOKEN, PROJECT, SSH_KEY, SSH_KEY2, startHarness, type Harness } from '../helpers/harness.js';

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

describe('sshKeyProblem', () => {
  it('accepts OpenSSH public keys, with or without a comment', () => {
    expect(sshKeyProblem(SSH_KEY)).toBeNull();
    expect(sshKeyProblem(SSH_KEY2.split(' ').slice(0, 2).join(' '))).toBeNull();
  });

  it.each([
    ['ssh-ed25519 AAAA k', 'too short'],
    ['ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIAEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB', 'not a ssh-rsa key'],
    ['ssh-ed25519 not*base64', 'not base64'],
    ['ssh-ed25519', 'not base64'],
    ['ssh-foo AAAAC3NzaC1lZDI1NTE5AAAAIAEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB', "key type 'ssh-foo'"],
    ['from="10.0.0.1" ' + SSH_KEY, 'key type'],
    [`${SSH_KEY}\nssh-ed25519 AAAA`, 'one line'],
    ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5', 'no key after its type'],
  ])('refuses %j (%s)', (key, why) => {
    expect(sshKeyProblem(key)).toContain(why);
  });

  it('a create with a key that does not parse: 400 naming the key, no instance made', async () => {
    h = await startHarness({ nodes: 1 });
    const res = await h.agent.api.inject({
      method: 'POST',
      url: `/v1/${PROJECT}/instances`,
      headers: { 'x-auth-token': MEMBER_TOKEN },
      payload: { name: 'k', image_uuid: IMAGE, extra: { ssh_keys: [SSH_KEY, 'ssh-ed25519 AAAA broken'] } },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error_code: 'AGENT_ERR_BAD_REQUEST', error_msg: expect.stringContaining('extra.ssh_keys[1]') });
    expect(h.agent.store.listInstances()).toEqual([]);
  });
});
