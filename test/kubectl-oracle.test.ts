/**
 * kubectl as the oracle for how kseal reads YAML. kubectl turns YAML into JSON with sigs.k8s.io/yaml
 * over go-yaml v2; `kubectl label --local -f FILE x=y -o json` runs exactly that reading (as `apply`
 * does), offline. Thousands of Secrets — one scalar each, as a stringData value or key, plain,
 * single- or double-quoted, literal or folded block — go to kubectl in one call, and for each
 * the verdict of kseal's own reader (parseManifests) must match kubectl's reading:
 *
 * - kseal accepts it as a string (or null): kubectl reads exactly that string, under exactly that key;
 * - kseal refuses it ("quote it"): kubectl reads something other than what is written — a number,
 *   a boolean, another key — or refuses the file. One refusal is by design rather than by kubectl's
 *   reading: a raw LS or PS next to a space or line break inside quotes, where go-yaml folds the
 *   spaces around it (kseal asks for the escape instead of modelling that folding). Those are
 *   counted apart, and must stay few.
 *
 * And whatever kseal writes back for a plain value (edits.ts valueEdit), kubectl reads as that value.
 */
import {spawnSync} from 'node:child_process'
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, expect} from '@jest/globals'
import fc from 'fast-check'
import {Document, Pair, parse, parseDocument, Scalar, YAMLMap} from 'yaml'
import {valueEdit} from '../src/manifest/edits.js'
import {KUBE_YAML, kubeYamlString} from '../src/manifest/kubeyaml.js'
import {parseManifests} from '../src/manifest/parse.js'
import {tool} from './support/tools.js'

type Reading = Record<string, unknown>

/** A longer soak, or another sample: KSEAL_ORACLE_RUNS=20000 KSEAL_ORACLE_SEED=7 npm test -- test/kubectl-oracle.test.ts */
const RUNS = Number(process.env.KSEAL_ORACLE_RUNS) || 400
const SEED = Number(process.env.KSEAL_ORACLE_SEED) || 15

interface Entry {
  /** How the scalar is written, for failure messages. */
  what: string
  /** The lines under `stringData:`. */
  body: string
  /** The reading the text spells out: the key and the value as written. */
  meant: Reading
  /** Set for text kseal itself wrote: kubectl must read exactly this. */
  mustRead?: Reading
}

/** Plain texts that the readers of YAML disagree about, or that sit next to such a text. */
const CURATED = [
  '2024-01-01',
  '2024-1-1',
  '2024-01-01T10:00:00Z',
  '2024-01-01 10:00:00',
  '2001-12-14t21:59:43.10-05:00',
  '2024-02-30',
  '12:30:45',
  '1:30',
  '190:20:30',
  '-1:30',
  '1:30.5',
  '0o755',
  '0755',
  '0_7_5_5',
  '0o8',
  '08',
  '09',
  '0x1F',
  '0X1f',
  '0xFFFFFFFFFFFFFFFF',
  '0xFFFFFFFFFFFFFFFFFF',
  '0b101',
  '0B11',
  '0b-1',
  '0b+1',
  '-0b101',
  '0b',
  '0x',
  '0o',
  '1_000',
  '1__0',
  '_1',
  '1_',
  '+_1',
  '0_x1F',
  '0x_1F',
  '1e3',
  '1E3',
  '1e+3',
  '1e-3',
  '1.5',
  '.5',
  '5.',
  '+.5',
  '-.5',
  '.5_5',
  '._5',
  '.5e1_0',
  '.5_e1',
  '1e400',
  '-1e400',
  '1e-400',
  '.5e400',
  '1_0.5',
  '1.0',
  '-0',
  '+0',
  '-0.0',
  '+12',
  '-12',
  '00',
  '000',
  '007',
  '0.1',
  '3.14159265358979',
  '16777217',
  '1e6',
  '1e5',
  '1e21',
  '1e39',
  '123456789.0',
  '9223372036854775807',
  '9223372036854775808',
  '-9223372036854775808',
  '-9223372036854775809',
  '18446744073709551615',
  '18446744073709551616',
  '+9223372036854775808',
  '123456789012345678901234567890',
  '.inf',
  '.Inf',
  '.INF',
  '+.inf',
  '-.inf',
  '-.Inf',
  '.iNf',
  '.nan',
  '.NaN',
  '.NAN',
  'nan',
  'inf',
  'Infinity',
  'NaN',
  '~',
  'null',
  'Null',
  'NULL',
  'nUll',
  'y',
  'Y',
  'n',
  'N',
  'yes',
  'Yes',
  'YES',
  'yEs',
  'no',
  'No',
  'NO',
  'on',
  'On',
  'ON',
  'oN',
  'off',
  'Off',
  'OFF',
  'true',
  'True',
  'TRUE',
  'tRue',
  'false',
  'False',
  'FALSE',
  '<<',
  '=',
  '-',
  '--',
  '+',
  '.',
  '..',
  '...x',
  'é',
  'ünï',
  '✓',
  '😀',
  '日本',
  'a b',
  'x\u00a0y',
  '\u3000x',
  'x\ufeffy',
  'a:b',
  'a#b',
  'a  b',
  'Zm9vYmFy',
  'aGVsbG8=',
  'abc+/==',
  '-x',
  '?x',
  ':x',
  'a-b_c.d',
]

/** Text built from the pieces numbers, dates and booleans are made of. */
const numberish = fc
  .array(
    fc.constantFrom(
      '0',
      '1',
      '7',
      '8',
      '9',
      '00',
      '_',
      '.',
      'e',
      'E',
      '+',
      '-',
      'x',
      'X',
      'o',
      'O',
      'b',
      'B',
      'a',
      'f',
      ':',
      'T',
      'Z',
      ' ',
      'inf',
      'nan',
      'y',
      'n',
      '~',
      '2024-',
      '12-31',
    ),
    {minLength: 1, maxLength: 7},
  )
  .map((a) => a.join(''))
/** Any text a person might type, for the quoted and block styles (and plain, where it is plain). */
const anyText = fc.oneof(
  fc.string({unit: 'grapheme', maxLength: 16}),
  fc.string({unit: 'grapheme-ascii', maxLength: 16}),
  fc
    .array(fc.constantFrom('a', ' ', ':', '#', '\n', "'", '"', '\\', '\t', 'é', '😀', '\u00a0', '\u2028', '\u0085', '-', '?'), {
      maxLength: 8,
    })
    .map((a) => a.join('')),
)

/** What go-yaml's reader refuses in the text itself: these only ever go double-quoted, as escapes. */
const RAW_UNREADABLE = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ufffe\uffff]/

const indent = (text: string, by: string) =>
  text
    .replace(/\n$/, '')
    .split('\n')
    .map((l) => (l === '' ? l : by + l))
    .join('\n') + '\n'

/** `key: value` in one style, as the yaml package writes it; null when that style cannot hold the text. */
function styled(key: string, value: string, keyStyle: Scalar.Type | undefined, valueStyle: Scalar.Type | undefined): string | null {
  const k = new Scalar(key)
  const v = new Scalar(value)
  k.type = keyStyle
  v.type = valueStyle
  const map = new YAMLMap()
  map.items.push(new Pair(k, v))
  const doc = new Document(null, KUBE_YAML)
  doc.contents = map
  const text = doc.toString({lineWidth: 0})
  return RAW_UNREADABLE.test(text) ? null : text
}

/** `key: value` with both written as they are; null unless the yaml package reads it as that one plain pair. */
function plainPair(key: string, value: string): string | null {
  if (/[\n\r]/.test(key + value) || RAW_UNREADABLE.test(key + value)) return null
  const text = `${key}: ${value}\n`
  const doc = parseDocument(text, KUBE_YAML)
  if (doc.errors.length || doc.warnings.length) return null
  const pair = (doc.contents as {items?: {key: Scalar; value: Scalar | null}[]})?.items
  if (pair?.length !== 1) return null
  const [p] = pair
  const plainKey = p.key?.type === Scalar.PLAIN ? p.key.source === key : p.key?.value === key
  const plainValue = value === '' ? p.value === null || p.value?.source === '' : p.value?.type === Scalar.PLAIN && p.value.source === value
  return plainKey && plainValue ? text : null
}

/** The text kseal writes back for a plain value (what decrypt does with a plain token). */
function ksealWrites(value: string): string {
  const src = 'k: kseal:v1:AAAA\n'
  const node = (parseDocument(src).contents as {items: {value: Scalar}[]}).items[0].value
  return valueEdit(src, node, value, '\n', false).text
}

function entries(): Entry[] {
  const out: Entry[] = []
  const add = (what: string, pair: string | null, meant: Reading, mustRead?: Reading) => {
    if (pair !== null) out.push({what, body: indent(pair, '  '), meant, mustRead})
  }
  const valueStyles: Scalar.Type[] = [Scalar.QUOTE_SINGLE, Scalar.QUOTE_DOUBLE, Scalar.BLOCK_LITERAL, Scalar.BLOCK_FOLDED]
  const forText = (t: string) => {
    add(`value ${JSON.stringify(t)} plain`, plainPair('k', t), {k: t})
    add(`key ${JSON.stringify(t)} plain`, plainPair(t, 'v'), {[t]: 'v'})
    for (const style of valueStyles) add(`value ${JSON.stringify(t)} ${style}`, styled('k', t, Scalar.PLAIN, style), {k: t})
    add(`key ${JSON.stringify(t)} single-quoted`, styled(t, 'v', Scalar.QUOTE_SINGLE, Scalar.PLAIN), {[t]: 'v'})
    add(`key ${JSON.stringify(t)} double-quoted`, styled(t, 'v', Scalar.QUOTE_DOUBLE, Scalar.PLAIN), {[t]: 'v'})
    add(`value ${JSON.stringify(t)} as kseal writes it`, `k: ${ksealWrites(t)}\n`, {k: t}, {k: t})
  }
  for (const t of CURATED) forText(t)
  for (const t of fc.sample(numberish, {numRuns: RUNS, seed: SEED})) forText(t)
  for (const t of fc.sample(anyText, {numRuns: Math.ceil(RUNS * 0.6), seed: SEED})) forText(t)
  return out
}

const secretDoc = (name: string, e: Entry) => `apiVersion: v1\nkind: Secret\nmetadata:\n  name: ${name}\nstringData:\n${e.body}`

/** kseal's verdict: the reading it accepts, or 'refused'. */
function ksealReads(text: string): Reading | 'refused' {
  try {
    const [s] = parseManifests(text, 'oracle.yaml').secrets
    return Object.fromEntries(s.values.map((v) => [v.key, v.value]))
  } catch {
    return 'refused'
  }
}

let dir: string
let calls = 0

/**
 * kubectl's reading of each document: its stringData, or 'error'. Each document is a file of one
 * directory, and one call reads them all: kubectl reads the files one by one and names each file
 * it cannot read.
 */
function kubectlReads(docs: {name: string; text: string}[]): Map<string, Reading | 'error'> {
  const batch = path.join(dir, `batch-${calls++}`)
  mkdirSync(batch)
  for (const d of docs) writeFileSync(path.join(batch, `${d.name}.yaml`), d.text)
  const r = spawnSync('kubectl', ['label', '--local', '-f', batch, 'oracle=checked', '-o', 'json'], {
    encoding: 'utf8',
    maxBuffer: 256 << 20,
  })
  // One object or a List when all went well; otherwise each object read, one after the other.
  const printed: {kind: string; items?: unknown[]}[] = r.stdout.trim() ? JSON.parse(`[${r.stdout.replace(/\n\}\n\{/g, '\n},\n{')}]`) : []
  const items = (printed.length === 1 && printed[0].kind === 'List' ? printed[0].items : printed) as {
    metadata: {name: string}
    stringData?: Reading
  }[]
  const out = new Map<string, Reading | 'error'>(items.map((o) => [o.metadata.name, o.stringData ?? {}]))
  for (const m of r.stderr.matchAll(/error parsing \S*\/([^/\s]+)\.yaml: /g)) out.set(m[1], 'error')
  expect([...out.keys()].sort()).toEqual(docs.map((d) => d.name).sort())
  expect(r.status).toBe(docs.length === items.length ? 0 : 1)
  return out
}

const kubectl = tool('kubectl')

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-oracle-'))
})
afterAll(() => rmSync(dir, {recursive: true, force: true}))

kubectl.describe('kseal reads YAML scalars and keys as kubectl does (kubectl as the oracle)', () => {
  kubectl.it(
    'agrees with kubectl on every generated scalar, in every style, as a value and as a key',
    () => {
      const all = entries().map((e, i) => ({e, name: `e${i}`, text: secretDoc(`e${i}`, e)}))
      const verdicts = new Map(all.map((d) => [d.name, ksealReads(d.text)]))
      const readings = kubectlReads(all)

      const disagreements: string[] = []
      const tally = {
        accepted: 0,
        refused: 0,
        acceptedWhereYaml11Differs: 0,
        refusedWhereKubectlReadsOther: 0,
        refusedWhereKubectlFails: 0,
        refusedByDesign: 0,
      }
      for (const {e, name, text} of all) {
        const mine = verdicts.get(name)!
        const theirs = readings.get(name)!
        const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b)
        if (e.mustRead && !same(theirs, e.mustRead)) disagreements.push(`${e.what}: kubectl reads ${JSON.stringify(theirs)}`)
        if (mine === 'refused') {
          tally.refused++
          if (theirs === 'error') tally.refusedWhereKubectlFails++
          else if (!same(theirs, e.meant)) tally.refusedWhereKubectlReadsOther++
          else if (/[ \t\r\n][\u2028\u2029]|[\u2028\u2029][ \t\r\n]/.test(e.body)) tally.refusedByDesign++
          else disagreements.push(`${e.what}: kseal refuses, kubectl reads it as written, ${JSON.stringify(theirs)}`)
        } else {
          tally.accepted++
          if (!same(theirs, mine)) disagreements.push(`${e.what}: kseal reads ${JSON.stringify(mine)}, kubectl ${JSON.stringify(theirs)}`)
          const yaml11 = (() => {
            try {
              return parse(text, {version: '1.1'}).stringData
            } catch {
              return undefined
            }
          })()
          if (!same(yaml11, mine)) tally.acceptedWhereYaml11Differs++
        }
      }
      expect(disagreements).toEqual([])
      // The set is not trivial: it holds each kind of case.
      expect(all.length).toBeGreaterThan(3000)
      expect(tally.acceptedWhereYaml11Differs).toBeGreaterThan(50)
      expect(tally.refusedWhereKubectlReadsOther).toBeGreaterThan(200)
      expect(tally.refusedWhereKubectlFails).toBeGreaterThan(5)
      expect(tally.refusedByDesign).toBeLessThan(tally.refused / 50)
    },
    120_000,
  )

  kubectl.it('reads a file the way kubectl does, also around the scalars: what kseal refuses, kubectl refuses too', () => {
    const cases = [
      ['a raw DEL in a double-quoted value', 'stringData:\n  k: "a\x7fb"\n'],
      ['a raw C1 control in a plain value', 'stringData:\n  k: a\x90b\n'],
      ['a raw U+FFFF', 'stringData:\n  k: a\uffffb\n'],
      ['an infinite value', 'stringData:\n  k: .inf\n'],
      ['a null key', 'stringData:\n  ~: v\n'],
      ['a key above int64', 'stringData:\n  18446744073709551615: v\n'],
    ] as const
    for (const [what, body] of cases) {
      const text = `apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n${body}`
      expect({what, kseal: ksealReads(text)}).toEqual({what, kseal: 'refused'})
      expect({what, kubectl: kubectlReads([{name: 'x', text}]).get('x')}).toEqual({what, kubectl: 'error'})
    }
    // What kseal writes (kubeYamlString), kubectl reads as kseal meant it.
    const awkward = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {name: 'x'},
      stringData: {a: 'x\u2028y', b: 'd\x7fe', c: 'nel\x85', e: 'x\uffff', f: '0o755', g: '1:30', h: 'y', k: 'l1\n\tl2\n', t: '\tx'},
    }
    const written = kubeYamlString(new Document(awkward, KUBE_YAML))
    const read = kubectlReads([{name: 'x', text: written}]).get('x')
    expect(read).toEqual(awkward.stringData)
    // An escape in a double-quoted string is fine for both.
    const escaped = 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\nstringData:\n  k: "a\\x7fb\\u0090"\n'
    expect(ksealReads(escaped)).toEqual({k: 'a\x7fb\x90'})
    expect(kubectlReads([{name: 'x', text: escaped}]).get('x')).toEqual({k: 'a\x7fb\x90'})
  })
})
