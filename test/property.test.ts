/**
 * Property tests: any generated Secret round-trips exactly, and a secret canary placed in its values
 * never appears in the encrypted output, in an error message, or in inspect's JSON.
 */
import {afterAll, describe, expect, it} from '@jest/globals'
import fc from 'fast-check'
import {stringify} from 'yaml'
import {isKsealError} from '../src/errors.js'
import {inspectText} from '../src/inspect.js'
import {decryptText, encryptText} from '../src/transform.js'
import {kseal, TEAM_CERT, TEAM_KEY} from './support/cli.js'
import {keyringFor, teamRecipient, testBackends} from './support/keys.js'

const backends = testBackends()
const keyring = keyringFor(backends)
afterAll(() => backends.close())

const CANARY = 'CANARY-7f3a9c-do-not-leak'
const dnsLabel = fc.stringMatching(/^[a-z][a-z0-9-]{0,20}[a-z0-9]$/)
const secretKey = fc.stringMatching(/^[-._a-zA-Z0-9]{1,30}$/).filter((k) => k !== '.' && k !== '..')
const stringValue = fc.oneof(fc.string({unit: 'grapheme', maxLength: 60}), fc.constant(''), fc.string({maxLength: 200}).map((s) => s + CANARY))
const bytesValue = fc.oneof(fc.uint8Array({maxLength: 300}), fc.constant(new Uint8Array(0)), fc.string().map((s) => new TextEncoder().encode(CANARY + s)))

const secretArb = fc.record({
  name: dnsLabel,
  namespace: fc.option(dnsLabel, {nil: undefined}),
  data: fc.dictionary(secretKey, bytesValue, {maxKeys: 6}),
  stringData: fc.dictionary(secretKey, stringValue, {maxKeys: 6}),
  json: fc.boolean(),
  scope: fc.constantFrom('strict', 'namespace', 'cluster' as const),
})

type Gen = typeof secretArb extends fc.Arbitrary<infer T> ? T : never

function render(g: Gen): string {
  const obj = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {name: g.name, ...(g.namespace ? {namespace: g.namespace} : {})},
    data: Object.fromEntries(Object.entries(g.data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
    stringData: g.stringData,
  }
  // Written the way Kubernetes tooling writes: JSON, or YAML with strings that stay strings in YAML 1.1.
  return g.json ? JSON.stringify(obj, null, 2) + '\n' : stringify(obj, {version: '1.1'})
}

const hasCanary = (g: Gen) => Object.values(g.stringData).some((v) => v.includes(CANARY)) ||
  Object.values(g.data).some((v) => Buffer.from(v).toString('latin1').includes(CANARY))

describe('properties', () => {
  it('any Secret round-trips byte for byte, and the canary never shows in ciphertext', async () => {
    const recipient = await teamRecipient(backends)
    await fc.assert(fc.asyncProperty(secretArb, async (g) => {
      const text = render(g)
      const enc = await encryptText(text, 'gen', {recipients: [recipient], scope: g.scope})
      expect(enc).not.toContain(CANARY)
      expect(Buffer.from(enc).toString('base64')).not.toContain(Buffer.from(CANARY).toString('base64').slice(0, 16))
      expect(JSON.stringify(inspectText(enc, 'gen'))).not.toContain(CANARY)
      expect(await decryptText(enc, 'gen', keyring)).toBe(text)
    }), {numRuns: 300})
  })

  it('a tampered file fails with an error that never contains the canary', async () => {
    const recipient = await teamRecipient(backends)
    await fc.assert(fc.asyncProperty(secretArb.filter(hasCanary), fc.nat(), async (g, at) => {
      const enc = await encryptText(render(g), 'gen', {recipients: [recipient], scope: g.scope})
      // Flip one character inside some token.
      const tokens = [...enc.matchAll(/kseal:v1:[A-Za-z0-9_-]+/g)]
      const m = tokens[at % tokens.length]
      const pos = m.index! + 9 + (at % (m[0].length - 9))
      const tampered = enc.slice(0, pos) + (enc[pos] === 'A' ? 'B' : 'A') + enc.slice(pos + 1)
      try {
        await decryptText(tampered, 'gen', keyring)
        throw new Error('tampering was not detected')
      } catch (e) {
        expect(isKsealError(e)).toBe(true)
        if (isKsealError(e)) {
          expect(e.exitCode).toBe(3)
          expect(e.line).not.toContain(CANARY)
        }
      }
    }), {numRuns: 60})
  })

  it('through the CLI: the canary is absent from stdout, stderr and --json of a failed and a good run', async () => {
    const text = `apiVersion: v1\nkind: Secret\nmetadata:\n  name: c\n  namespace: d\nstringData:\n  token: "${CANARY}"\n`
    const enc = await kseal(['encrypt', '-r', `rsa:${TEAM_CERT}`], {input: text})
    expect(enc.code).toBe(0)
    expect(enc.stdout + enc.stderr).not.toContain(CANARY)
    const inspect = await kseal(['inspect', '--json'], {input: enc.stdout})
    expect(inspect.stdout + inspect.stderr).not.toContain(CANARY)
    const bad = await kseal(['decrypt', '-k', TEAM_KEY], {input: enc.stdout.replace('name: c', 'name: moved')})
    expect(bad.code).toBe(3)
    expect(bad.stdout + bad.stderr).not.toContain(CANARY)
    const badDebug = await kseal(['decrypt', '--debug', '-k', TEAM_KEY], {input: enc.stdout.replace('namespace: d', 'namespace: e')})
    expect(badDebug.stdout + badDebug.stderr).not.toContain(CANARY)
  })
})
