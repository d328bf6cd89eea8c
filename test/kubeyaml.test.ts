/**
 * kubectl's reading of plain scalars and keys (src/manifest/kubeyaml.ts), as frozen expectations: each value
 * below is what kubectl 1.32 printed for it (`kubectl label --local -f FILE x=y -o json`), so the
 * model is held to kubectl even where kubectl is not installed. test/kubectl-oracle.test.ts asks
 * kubectl itself, over thousands of generated scalars.
 */
import {describe, expect, it} from '@jest/globals'
import {Document, parse} from 'yaml'
import {checkKubeText, formatFloat32, KUBE_YAML, kubeKey, kubeValue, kubeYamlString} from '../src/manifest/kubeyaml.js'

describe('plain values, as kubectl reads them', () => {
  it.each([
    // Strings to kubectl that YAML 1.1 types: timestamps, sexagesimal, overflowing numbers.
    ['2024-01-01', '2024-01-01'],
    ['2024-01-01T10:00:00Z', '2024-01-01T10:00:00Z'],
    ['12:30:45', '12:30:45'],
    ['1:30', '1:30'],
    ['0xFFFFFFFFFFFFFFFFFF', '0xFFFFFFFFFFFFFFFFFF'],
    ['1e400', '1e400'],
    ['.5e400', '.5e400'],
    ['0o8', '0o8'],
    ['0b', '0b'],
    ['0o', '0o'],
    ['._5', '._5'],
    ['.5_e1', '.5_e1'],
    ['.5.', '.5.'],
    ['_1', '_1'],
    ['.e5', '.e5'],
    ['0x_1F', 31],
    // Numbers: Go's ParseInt with base prefixes once every _ is gone, go-yaml's float pattern.
    ['0o755', 493],
    ['0755', 493],
    ['0_7_5_5', 493],
    ['08', 8],
    ['09', 9],
    ['0b101', 5],
    ['0B11', 3],
    ['0O17', 15],
    ['0X1f', 31],
    ['0b-1', -1],
    ['0b+1', 1],
    ['-0b101', -5],
    ['1_000', 1000],
    ['1__0', 10],
    ['+_1', 1],
    ['0_x1F', 31],
    ['1e3', 1000],
    ['.5_5', 0.55],
    ['.5e1_0', 5e9],
    ['1_0.5', 10.5],
    ['1e-400', 0],
    ['+.5', 0.5],
    ['5.', 5],
    ['-0', 0],
    ['+12', 12],
    ['18446744073709551615', 18446744073709551615],
    ['-9223372036854775808', -9223372036854775808],
    // Booleans and null, y and n among them (go-yaml v2's resolve table).
    ['y', true],
    ['Y', true],
    ['yes', true],
    ['on', true],
    ['ON', true],
    ['n', false],
    ['N', false],
    ['off', false],
    ['No', false],
    ['yEs', 'yEs'],
    ['~', null],
    ['null', null],
    ['NULL', null],
    ['nUll', 'nUll'],
    ['', null],
    ['.inf', Infinity],
    ['-.Inf', -Infinity],
    ['.iNf', '.iNf'],
    ['Infinity', 'Infinity'],
    ['nan', 'nan'],
  ])('%j reads as %j', (text, value) => {
    expect(kubeValue(text)).toEqual(value)
    // ...and the yaml package, under KUBE_YAML, reads the same.
    expect(parse(`k: ${text}`, KUBE_YAML).k).toEqual(value)
  })

  it('NaN is a number', () => {
    expect(kubeValue('.nan')).toBeNaN()
  })
})

describe('plain keys, as kubectl turns them into strings', () => {
  it.each([
    ['yes', 'true'],
    ['y', 'true'],
    ['Off', 'false'],
    ['true', 'true'],
    ['1', '1'],
    ['0x10', '16'],
    ['0755', '493'],
    ['2024-01-02', '2024-01-02'],
    ['1.5', '1.5'],
    ['1.0', '1'],
    ['3.14159265358979', '3.1415927'],
    ['123456789.0', '1.2345679e+08'],
    ['1e6', '1e+06'],
    ['1e5', '100000'],
    ['1e21', '1e+21'],
    ['1e39', '.inf'],
    ['.Inf', '.inf'],
    ['-.inf', '-.inf'],
    ['.NaN', '.nan'],
    ['0.0001', '0.0001'],
    ['0.00001', '1e-05'],
    ['1.0e-5', '1e-05'],
    ['-1e-7', '-1e-07'],
    ['-0.0', '-0'],
    ['16777217', '16777217'],
    ['9223372036854775807', '9223372036854775807'],
    ['~', null],
    ['null', null],
    ['18446744073709551615', null],
    ['<<', null],
  ])('%j is the key %j', (text, key) => {
    expect(kubeKey(text)).toBe(key)
  })

  it('formats float32 the way Go does, shortest first', () => {
    expect([0.1, 1 / 3, 100, 1e-4, 1e-5, 123456, 1234567, 2 ** 24 + 1, -2.5e-10].map(formatFloat32)).toEqual([
      '0.1',
      '0.33333334',
      '100',
      '0.0001',
      '1e-05',
      '123456',
      '1.234567e+06',
      '1.6777216e+07',
      '-2.5e-10',
    ])
  })
})

describe('kubeYamlString: what kseal writes, kubectl reads back', () => {
  it('double-quotes and escapes what go-yaml refuses or folds raw, and keeps tabs out of block indentation', () => {
    const value = {a: 'x\u2028y', b: 'd\x7fe', c: 'nel\x85', d: 'l1\n\tl2\n', e: '\tx', f: 'plain', g: '0o755', h: '1:30', i: 'x\uffff'}
    const text = kubeYamlString(new Document(value, KUBE_YAML))
    expect(() => checkKubeText(text, 'out.yaml')).not.toThrow()
    expect(parse(text, KUBE_YAML)).toEqual(value)
    expect(text).toContain('a: "x\\u2028y"\n')
    expect(text).toContain('f: plain\n')
    expect(text).toContain('g: "0o755"\n')
  })
})
