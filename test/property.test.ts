/**
 * Property tests: any generated Secret round-trips exactly, and a secret canary placed in its values
 * never appears in the encrypted output, in an error message, or in inspect's JSON.
 */
import {afterAll, describe, expect, it} from '@jest/globals'
import fc from 'fast-check'
import {Document, parse, parseDocument, type Scalar} from 'yaml'
import {isKsealError} from '../src/core/errors.js'
import {KUBE_YAML, kubeYamlString} from '../src/manifest/kubeyaml.js'
import {inspectText} from '../src/ops/inspect.js'
import {decryptText} from '../src/ops/decrypt.js'
import {encryptText} from '../src/ops/encrypt.js'
import {YAML_AWKWARD} from './support/awkward.js'
import {kseal, TEAM_CERT, TEAM_KEY} from './support/cli.js'
import {keyringFor, otherRecipient, teamRecipient, testBackends} from './support/keys.js'

const backends = testBackends()
const keyring = keyringFor(backends)
afterAll(() => backends.close())

/** More runs for a soak: KSEAL_PROPERTY_RUNS=20000 npm test -- test/property.test.ts */
const RUNS = Number(process.env.KSEAL_PROPERTY_RUNS) || 300
const CANARY = 'CANARY-7f3a9c-do-not-leak'
const dnsLabel = fc.stringMatching(/^[a-z][a-z0-9-]{0,20}[a-z0-9]$/)
const secretKey = fc.stringMatching(/^[-._a-zA-Z0-9]{1,30}$/).filter((k) => k !== '.' && k !== '..')

/**
 * What kseal always writes escaped (docs/FORMAT.md): C0/C1 controls but tab and newline, NEL, LS,
 * PS and U+FEFF. Another writer may put them in literally, so a file holding them literally can
 * come back spelled differently — never with a different value.
 */
const ESCAPED_BY_KSEAL = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff]/
/** Characters a generator should reach for because writers and readers treat them specially. */
const awkward = fc.constantFrom(...YAML_AWKWARD, '\x07', '\x1b', '\x7f', '\u2029', '\u3000', '\u200b')
const anyText = fc.oneof(
  fc.string({unit: 'grapheme', maxLength: 60}),
  fc.array(fc.oneof(awkward, fc.string({unit: 'grapheme', maxLength: 3})), {maxLength: 12}).map((a) => a.join('')),
)
const bytesValue = fc.oneof(
  fc.uint8Array({maxLength: 300}),
  fc.constant(new Uint8Array(0)),
  fc.string().map((s) => new TextEncoder().encode(CANARY + s)),
)

function secretArb(value: fc.Arbitrary<string>) {
  return fc.record({
    name: dnsLabel,
    namespace: fc.option(dnsLabel, {nil: undefined}),
    data: fc.dictionary(secretKey, bytesValue, {maxKeys: 6}),
    stringData: fc.dictionary(
      secretKey,
      fc.oneof(
        value,
        fc.constant(''),
        fc.string({maxLength: 200}).map((s) => s + CANARY),
      ),
      {maxKeys: 6},
    ),
    json: fc.boolean(),
    scope: fc.constantFrom('strict', 'namespace', 'cluster' as const),
    style: fc.constantFrom(undefined, 'PLAIN', 'QUOTE_DOUBLE', 'QUOTE_SINGLE', 'BLOCK_LITERAL', 'BLOCK_FOLDED' as const),
  })
}
/** Values in the usual style: whatever a person types or a tool writes, short of control characters. */
const usualSecret = secretArb(fc.string({unit: 'grapheme', maxLength: 60}).filter((v) => !ESCAPED_BY_KSEAL.test(v))).map((g) => ({
  ...g,
  style: undefined,
}))
const anySecret = secretArb(anyText)

type Gen = typeof anySecret extends fc.Arbitrary<infer T> ? T : never

function manifest(g: Gen) {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {name: g.name, ...(g.namespace ? {namespace: g.namespace} : {})},
    data: Object.fromEntries(Object.entries(g.data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
    stringData: g.stringData,
  }
}

function render(g: Gen): string {
  // Written the way Kubernetes tooling writes: JSON, or YAML (in the style the generator picked, where
  // the yaml writer can use it).
  return g.json
    ? JSON.stringify(manifest(g), null, 2) + '\n'
    : kubeYamlString(new Document(manifest(g), KUBE_YAML), {defaultStringType: g.style ?? 'PLAIN'})
}

/** The document as a reader sees it: JSON through JSON.parse, YAML as kubectl reads it. */
const read = (text: string, json: boolean) => (json ? JSON.parse(text) : parse(text, KUBE_YAML))

const hasCanary = (g: Gen) =>
  Object.values(g.stringData).some((v) => v.includes(CANARY)) ||
  Object.values(g.data).some((v) => Buffer.from(v).toString('latin1').includes(CANARY))

describe('properties', () => {
  it('a Secret in the usual style round-trips byte for byte, and the canary never shows in ciphertext', async () => {
    const recipient = await teamRecipient(backends)
    await fc.assert(
      fc.asyncProperty(usualSecret, async (g) => {
        const text = render(g)
        // Documented normalisation: a whitespace-only line inside a block scalar comes back empty.
        fc.pre(!/\n +\n/.test(text))
        const enc = await encryptText(text, 'gen', {recipients: [recipient], scope: g.scope})
        expect(enc).not.toContain(CANARY)
        expect(Buffer.from(enc).toString('base64')).not.toContain(Buffer.from(CANARY).toString('base64').slice(0, 16))
        expect(JSON.stringify(inspectText(enc, 'gen'))).not.toContain(CANARY)
        expect(await decryptText(enc, 'gen', keyring)).toBe(text)
      }),
      {numRuns: RUNS},
    )
  })

  it('any Secret, in any style and with any characters, decrypts to the same values, and a second round trip changes nothing', async () => {
    const recipient = await teamRecipient(backends)
    await fc.assert(
      fc.asyncProperty(anySecret, async (g) => {
        const text = render(g)
        const enc = await encryptText(text, 'gen', {recipients: [recipient], scope: g.scope})
        expect(enc).not.toContain(CANARY)
        const dec = await decryptText(enc, 'gen', keyring)
        expect(read(dec, g.json)).toEqual(read(text, g.json))
        const again = await encryptText(dec, 'gen', {recipients: [recipient], scope: g.scope})
        expect(await decryptText(again, 'gen', keyring)).toBe(dec)
      }),
      {numRuns: RUNS},
    )
  })

  it('values with Unicode spaces and controls keep their value, and their spelling wherever kseal writes them unescaped', async () => {
    // The shrunk counterexample from CI was a lone NBSP written plain and read back quoted. Here:
    // every JavaScript whitespace character, every C0 and C1 control, LS, PS, NEL and U+FEFF, alone
    // and next to text, in the yaml writer's style and as JSON.
    const odd = [...Array(0x10000).keys()]
      .map((c) => String.fromCharCode(c))
      .filter((c) => /[\s\x00-\x1f\x7f-\x9f]/.test(c) || '\u180e\u200b\ufeff'.includes(c))
    const stringData = Object.fromEntries(
      odd.flatMap((c, i) => [
        [`a${i}`, c],
        [`b${i}`, `x${c}`],
        [`c${i}`, `${c}x`],
        [`d${i}`, `x${c}y`],
        [`e${i}`, `x\n${c}`],
      ]),
    )
    const recipient = await teamRecipient(backends)
    for (const json of [false, true]) {
      const obj = {apiVersion: 'v1', kind: 'Secret', metadata: {name: 'u'}, stringData}
      const text = json ? JSON.stringify(obj, null, 2) + '\n' : kubeYamlString(new Document(obj, KUBE_YAML))
      const dec = await decryptText(await encryptText(text, 'gen', {recipients: [recipient], scope: 'strict'}), 'gen', keyring)
      expect(read(dec, json)).toEqual(obj)
      // Every value without those characters is spelled exactly as the original spelled it.
      const docs = new Map([text, dec].map((t) => [t, parseDocument(t, KUBE_YAML)]))
      const spelling = (t: string, k: string) => {
        const node = docs.get(t)!.getIn(['stringData', k], true) as Scalar
        return t.slice(node.range![0], node.range![1])
      }
      const plainKeys = Object.keys(stringData).filter((k) => !ESCAPED_BY_KSEAL.test(stringData[k]) && !/\n +\n/.test(spelling(text, k)))
      expect(plainKeys.length).toBeGreaterThan(100)
      for (const k of plainKeys) expect([k, spelling(dec, k)]).toEqual([k, spelling(text, k)])
    }
  })

  it('a tampered file fails with an error that never contains the canary', async () => {
    const recipient = await teamRecipient(backends)
    await fc.assert(
      fc.asyncProperty(usualSecret.filter(hasCanary), fc.nat(), async (g, at) => {
        const enc = await encryptText(render(g), 'gen', {recipients: [recipient], scope: g.scope})
        // Flip one character inside some token.
        const tokens = [...enc.matchAll(/kseal:v2:[A-Za-z0-9_-]+/g)]
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
      }),
      {numRuns: 60},
    )
  })

  it('any change to the recipient set (an entry added, removed, duplicated or altered in any field) is refused, never decrypted', async () => {
    const team = await teamRecipient(backends)
    const other = await otherRecipient(backends)
    const entry = fc.record({
      backend: fc.constantFrom('rsa', 'age', 'awskms', 'x'),
      kid: fc.string({minLength: 1, maxLength: 20}),
      wrapped: fc.base64String({minLength: 4, maxLength: 40}),
    })
    const change = fc.oneof(
      entry.map((e) => (rs: Record<string, string>[]) => [...rs, e]),
      fc.nat().map((i) => (rs: Record<string, string>[]) => rs.filter((_, j) => j !== 1 + (i % (rs.length - 1)))),
      fc.nat().map((i) => (rs: Record<string, string>[]) => [...rs, rs[i % rs.length]]),
      fc.tuple(fc.nat(), fc.constantFrom('backend', 'kid', 'wrapped', 'key', 'extra'), fc.string({minLength: 1, maxLength: 8})).map(
        ([i, f, v]) =>
          (rs: Record<string, string>[]) =>
            rs.map((r, j) => (j === 1 + (i % (rs.length - 1)) ? {...r, [f]: (r[f] ?? '') + v} : r)),
      ),
    )
    await fc.assert(
      fc.asyncProperty(
        usualSecret.filter((g) => Object.keys(g.data).length + Object.keys(g.stringData).length > 0),
        change,
        async (g, f) => {
          const enc = await encryptText(render(g), 'gen', {recipients: [team, other], scope: g.scope})
          const doc = parseDocument(enc, {version: '1.1'})
          const before = (doc.getIn(['kseal', 'recipients']) as {toJSON(): Record<string, string>[]}).toJSON()
          const after = f(before)
          fc.pre(JSON.stringify(after) !== JSON.stringify(before))
          doc.setIn(['kseal', 'recipients'], doc.createNode(after))
          // A JSON manifest stays strict JSON (kseal refuses anything else in a JSON file, exit 2).
          const tampered = g.json ? JSON.stringify(doc.toJSON(), null, 2) + '\n' : doc.toString()
          await expect(decryptText(tampered, 'gen', keyring)).rejects.toMatchObject({exitCode: 3})
        },
      ),
      {numRuns: 40},
    )
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
