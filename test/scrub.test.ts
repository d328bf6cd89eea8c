/** Credentials in URLs never reach a message, a log line or an Event: one helper, scrubUrls, on every path. */
import {describe, expect, it} from '@jest/globals'
import {KsealError, scrubUrls} from '../src/core/errors.js'
import {createLogger} from '../src/controller/log.js'
import {cleanEnv, kseal} from './support/cli.js'

const SECRET = 'hunter2-pw'

describe('scrubUrls', () => {
  it('removes userinfo from every URL in a text, whatever the scheme, and leaves the rest', () => {
    expect(scrubUrls(`cannot reach http://user:${SECRET}@kms.local:4566/x and https://tok@h/ and s3://a:b@c`)).toBe(
      'cannot reach http://kms.local:4566/x and https://h/ and s3://c',
    )
    expect(scrubUrls(`http://u:p@ss:${SECRET}@host/path?q=1`)).toBe('http://host/path?q=1')
    expect(scrubUrls('mail me at dev@example.com, see http://host/a@b')).toBe('mail me at dev@example.com, see http://host/a@b')
  })

  it('every KsealError message, and every controller log field, goes through it', () => {
    expect(new KsealError('ERR_BACKEND', `cannot reach AWS KMS at http://me:${SECRET}@127.0.0.1:1`).line).toBe(
      'cannot reach AWS KMS at http://127.0.0.1:1',
    )
    const lines: string[] = []
    const log = createLogger({write: (l) => void lines.push(l)})
    log
      .with({endpoint: `http://a:${SECRET}@x`})
      .warn(`failed http://a:${SECRET}@x`, {error: `at https://b:${SECRET}@y`, list: [`http://c:${SECRET}@z`]})
    expect(lines.join('')).not.toContain(SECRET)
    expect(JSON.parse(lines[0])).toMatchObject({msg: 'failed http://x', endpoint: 'http://x', error: 'at https://y', list: ['http://z']})
  })

  it('through the CLI: a KMS endpoint with credentials in its URL is never printed with them', async () => {
    const input = 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\nstringData:\n  a: b\n'
    const env = cleanEnv({
      AWS_ENDPOINT_URL: `http://kseal:${SECRET}@127.0.0.1:1`,
      AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'x',
      AWS_MAX_ATTEMPTS: '1',
      KSEAL_KMS_TIMEOUT: '2',
    })
    const r = await kseal(['encrypt', '-r', 'awskms:arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab'], {
      input,
      env,
    })
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/cannot reach AWS KMS at http:\/\/127\.0\.0\.1:1/)
    expect(r.stderr + r.stdout).not.toContain(SECRET)
    const dbg = await kseal(
      ['encrypt', '--debug', '-r', 'awskms:arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab'],
      {input, env},
    )
    expect(dbg.stderr + dbg.stdout).not.toContain(SECRET)
  })
})
