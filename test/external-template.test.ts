/**
 * kseal's template language (src/external/template/): what external-secrets templates write most,
 * with Go text/template's and sprig's answers; the refusals, each naming the function or construct
 * and its line and column; the bounds; and a fast-check fuzz of the parser and executor (any input
 * either works or fails with a KsealError, within the step and size bounds).
 */
import {describe, expect, it} from '@jest/globals'
import fc from 'fast-check'
import {isKsealError} from '../src/core/errors.js'
import {compileTemplate} from '../src/external/template/index.js'
import {goFloat} from '../src/external/template/values.js'

const data = (o: Record<string, string | Uint8Array>) =>
  new Map(Object.entries(o).map(([k, v]) => [k, typeof v === 'string' ? Buffer.from(v, 'utf8') : v]))
const run = (text: string, d: Record<string, string | Uint8Array> = {}, limits?: {maxOutput: number; maxSteps: number}) =>
  compileTemplate(text, 'template.data.x').execute(data(d), limits)
const str = (text: string, d: Record<string, string | Uint8Array> = {}) => run(text, d).toString('utf8')

function refusal(f: () => unknown): string {
  try {
    f()
  } catch (e) {
    if (!isKsealError(e)) throw e
    expect(e.code).toBe('ERR_INPUT')
    return e.message
  }
  throw new Error('expected a refusal')
}

describe('what external-secrets templates write', () => {
  it('fields, pipes, b64dec / b64enc, upper / lower / trim, quote, default, toString', () => {
    const d = {user: 'app', password: 'p@ss', b64: Buffer.from('decoded!').toString('base64'), blank: '  x \n'}
    expect(str('postgres://{{ .user }}:{{ .password }}@db:5432/app', d)).toBe('postgres://app:p@ss@db:5432/app')
    expect(str('{{ .b64 | b64dec }}', d)).toBe('decoded!')
    expect(str('{{ .user | b64enc }}', d)).toBe('YXBw')
    expect(str('{{ .user | upper }} {{ "ÉTÉ" | lower }} [{{ .blank | trim }}]', d)).toBe('APP été [x]')
    expect(str('{{ .password | quote }} {{ squote .user }}', d)).toBe('"p@ss" \'app\'')
    expect(str('{{ "" | default "fallback" }} {{ .user | default "unused" }}', d)).toBe('fallback app')
    expect(str('{{ toString 42 }} {{ 1.5 | toString }}', d)).toBe('42 1.5')
  })

  it('index for keys that are not identifiers, and for maps from fromJson', () => {
    const d = {'tls.crt': 'CERT', config: '{"db": {"host": "h", "port": 5432, "tags": ["a", "b"]}, "n": 1000000}'}
    expect(str('{{ index . "tls.crt" }}', d)).toBe('CERT')
    expect(str('{{ (.config | fromJson).db.host }}:{{ ((fromJson .config).db).port }}', d)).toBe('h:5432')
    expect(str('{{ index (fromJson .config) "db" "tags" 1 }}', d)).toBe('b')
    // float64 prints as Go prints it: the surprise external-secrets users know.
    expect(str('{{ (fromJson .config).n }}', d)).toBe('1e+06')
    expect(str('{{ index (fromJson .config) "missing" }}', d)).toBe('<no value>')
  })

  it('if / else if / else, range over lists and maps (sorted), with, variables', () => {
    const d = {env: 'prod', list: '["a","b","c"]', m: '{"z": 1, "a": 2}'}
    expect(str('{{ if eq .env "dev" }}D{{ else if eq .env "prod" }}P{{ else }}?{{ end }}', d)).toBe('P')
    expect(str('{{ range $i, $e := fromJson .list }}{{ $i }}={{ $e }};{{ end }}', d)).toBe('0=a;1=b;2=c;')
    expect(str('{{ range $k, $v := fromJson .m }}{{ $k }}:{{ $v }},{{ end }}', d)).toBe('a:2,z:1,')
    expect(str('{{ range fromJson "[]" }}x{{ else }}empty{{ end }}', d)).toBe('empty')
    expect(str('{{ with .env }}env={{ . }}{{ end }}{{ with "" }}no{{ else }}none{{ end }}', d)).toBe('env=prodnone')
    expect(str('{{ $x := .env }}{{ $x = printf "%s-%s" $x "eu" }}{{ $x }} {{ $ | len }}', d)).toBe('prod-eu 3')
  })

  it('a dotenv file from every key, with trim markers', () => {
    const d = {B: '2', A: '1'}
    expect(str('{{- range $k, $v := . }}\n{{ $k }}={{ $v }}\n{{- end }}\n', d)).toBe('\nA=1\nB=2\n')
    expect(str('a  {{- /* a comment */ -}}  b', d)).toBe('ab')
  })

  it('toJson is encoding/json (HTML-safe, sorted keys), fromJson round-trips, printf supports %s %d %v %q', () => {
    expect(str('{{ dict "b" "<x>" "a" (list 1 true nil) | toJson }}')).toBe('{"a":[1,true,null],"b":"\\u003cx\\u003e"}')
    expect(str('{{ dict "k" "v" | toPrettyJson }}')).toBe('{\n  "k": "v"\n}')
    expect(str('{{ dict "a" "<\\\\u003c&>" | toRawJson }}')).toBe('{"a":"<\\\\u003c&>"}')
    expect(str('{{ printf "%s:%d:%v:%q:%%" "s" 7 true "q\\n" }}')).toBe('s:7:true:"q\\n":%')
    expect(str('{{ "a,b,c" | splitList "," | join "+" }} {{ "x.y" | replace "." "_" }} {{ "abc" | sha256sum }}')).toBe(
      'a+b+c x_y ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    )
    expect(str('{{ "a\\nb" | indent 2 }}|{{ "a" | nindent 4 }}')).toBe('  a\n  b|\n    a')
  })

  it('keeps bytes: a binary value through b64dec comes out exactly', () => {
    const der = Buffer.from([0x30, 0x82, 0x00, 0xff, 0xc3, 0x28, 0x80])
    expect(run('{{ .cert | b64dec }}', {cert: der.toString('base64')})).toEqual(der)
    expect(run('{{ .raw }}', {raw: der})).toEqual(der)
    expect(str('{{ len .raw }}', {raw: der})).toBe('7')
  })

  it('formats float64 as %v does', () => {
    expect([1e6, 123456, 1234567, 0.0001, 0.00001, 1.5, 100, -2.5e-7, 1e21].map(goFloat)).toEqual([
      '1e+06',
      '123456',
      '1.234567e+06',
      '0.0001',
      '1e-05',
      '1.5',
      '100',
      '-2.5e-07',
      '1e+21',
    ])
  })
})

describe('errors name the template, line and column, never a value', () => {
  it('a missing key (missingkey=error), a field on a string, wrong arity, bad base64', () => {
    expect(refusal(() => run('ok\n  {{ .nope }}', {secret: 's3cr3t'}))).toBe(
      'template.data.x: line 2, column 6: map has no entry for key "nope"',
    )
    expect(refusal(() => run('{{ .secret.x }}', {secret: 's3cr3t'}))).toBe(
      "template.data.x: line 1, column 4: can't evaluate field x in type string",
    )
    expect(refusal(() => run('{{ upper }}'))).toBe('template.data.x: line 1, column 4: wrong number of args for upper: want 1 got 0')
    const msg = refusal(() => run('{{ .secret | b64dec }}', {secret: 's3cr3t!'}))
    expect(msg).toBe('template.data.x: line 1, column 14: b64dec: the value is not valid base64 (standard alphabet, padded)')
    expect(refusal(() => run('{{ fromJson .secret }}', {secret: '{"a":1,"a":2}'}))).toMatch(
      /fromJson: not JSON: duplicate key in an object at offset \d+$/,
    )
    expect(refusal(() => run('{{ printf "%d" .secret }}', {secret: 's3cr3t'}))).toMatch(/printf: %d needs an integer, got string$/)
  })

  it('unsupported functions and constructs are refused when compiled', () => {
    expect(refusal(() => compileTemplate('{{ .a | pkcs12cert }}', 't'))).toBe(
      `t: line 1, column 9: function "pkcs12cert" is not supported by kseal's template language; docs/external-secrets.md lists the functions it has`,
    )
    expect(refusal(() => compileTemplate('{{ env "HOME" }}', 't'))).toMatch(
      /^t: line 1, column 4: function "env" is not supported by kseal's template language \(it reads the controller's environment\)/,
    )
    expect(refusal(() => compileTemplate('x\n{{ define "a" }}{{ end }}', 't'))).toBe(
      't: line 2, column 4: named templates ({{define}}) are not supported',
    )
    expect(refusal(() => compileTemplate('{{ $nope }}', 't'))).toBe('t: line 1, column 4: undefined variable "$nope"')
    expect(refusal(() => compileTemplate('{{ if .a }}x', 't'))).toBe('t: line 1, column 4: unexpected EOF: {{if}} has no {{end}}')
    expect(refusal(() => compileTemplate('{{ .a }', 't'))).toMatch(/^t: line 1, column 7: unexpected "}" in action/)
    expect(refusal(() => compileTemplate('{{ "abc }}', 't'))).toBe('t: line 1, column 4: unterminated quoted string')
    expect(refusal(() => compileTemplate(`{{ ${'('.repeat(70)}1${')'.repeat(70)} }}`, 't'))).toMatch(/nested more than 64 levels deep$/)
  })

  it('bounds: steps, output size, and every intermediate string', () => {
    const list = JSON.stringify(Array.from({length: 400}, (_, i) => i))
    const nested = `{{ range fromJson .l }}{{ range fromJson $.l }}{{ end }}{{ end }}`
    expect(refusal(() => run(nested, {l: list}))).toMatch(/stopped after 100000 steps/)
    expect(refusal(() => run('{{ range fromJson .l }}{{ $.big }}{{ end }}', {l: list, big: 'x'.repeat(4096)}))).toMatch(
      /the output is larger than 1048576 bytes$/,
    )
    // Doubling a string in a variable builds no output, but each result is checked.
    const doubling = `{{ $x := "xxxxxxxx" }}{{ range fromJson .l }}{{ $x = printf "%s%s" $x $x }}{{ end }}`
    expect(refusal(() => run(doubling, {l: list}))).toMatch(/printf: the result is larger than 1048576 bytes$/)
    expect(refusal(() => run('{{ "a" | indent 100000 }}'))).toMatch(/indent: expected an integer from 0 to 10000/)
  })
})

describe('fuzz', () => {
  const pieces = [
    '{{',
    '}}',
    '{{-',
    '-}}',
    ' ',
    '.',
    '.a',
    '.b',
    '$',
    '$x',
    ':=',
    '=',
    '|',
    '(',
    ')',
    '"s"',
    '`r`',
    '1',
    '-2',
    '1.5',
    'if',
    'else',
    'end',
    'range',
    'with',
    'upper',
    'b64dec',
    'b64enc',
    'index',
    'fromJson',
    'toJson',
    'printf',
    'len',
    'eq',
    'and',
    'or',
    'not',
    'default',
    'list',
    'dict',
    'nil',
    'true',
    '/*',
    '*/',
    '\n',
    'x',
    '\\',
  ]
  const source = fc.oneof(
    fc.array(fc.constantFrom(...pieces), {maxLength: 40}).map((p) => p.join('')),
    fc.string({maxLength: 80}),
  )

  it('any source either compiles or is refused with a KsealError; compiled ones run or fail with one, within bounds', () => {
    fc.assert(
      fc.property(source, fc.string({maxLength: 20}), (src, value) => {
        let t
        try {
          t = compileTemplate(src, 'fuzz')
        } catch (e) {
          if (!isKsealError(e)) throw e
          return
        }
        try {
          const out = t.execute(data({a: value, b: '[1,{"k":"v"}]'}), {maxOutput: 4096, maxSteps: 1000})
          expect(out.length).toBeLessThanOrEqual(4096)
        } catch (e) {
          if (!isKsealError(e)) throw e
        }
      }),
      {numRuns: 3000},
    )
  })
})
