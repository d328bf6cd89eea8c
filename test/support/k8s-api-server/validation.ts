/**
 * ObjectMeta validation (names, namespaces, labels, annotations, ownerReferences, finalizers), run
 * with each definition's own `validate` before every write.
 */
import type {Server} from './server.js'
import {errors, fe, goQuote} from './status.js'
import type {Def, FieldError, KubeObject} from './types.js'
import {isObj} from './util.js'

// Names, labels ------------------------------------------------------------------------------

export const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
export const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
export const QUALIFIED_NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/
export const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/
export const CONFIG_KEY = /^[-._a-zA-Z0-9]+$/

// The apiserver's messages, word for word (k8s.io/apimachinery/pkg/util/validation).
const ALNUM_ENDS = 'must start and end with an alphanumeric character'
const QUALIFIED_NAME_EXAMPLES =
  "(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
export const MSG_SUBDOMAIN =
  `a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and ${ALNUM_ENDS} ` +
  "(e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
export const MSG_LABEL =
  `a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and ${ALNUM_ENDS} ` +
  "(e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"

export function isDNS1123Subdomain(v: string): string[] {
  const errs: string[] = []
  if (v.length > 253) errs.push('must be no more than 253 characters')
  if (!DNS1123_SUBDOMAIN.test(v)) errs.push(MSG_SUBDOMAIN)
  return errs
}

export function isDNS1123Label(v: string): string[] {
  const errs: string[] = []
  if (v.length > 63) errs.push('must be no more than 63 characters')
  if (!DNS1123_LABEL.test(v)) errs.push(MSG_LABEL)
  return errs
}

export function isQualifiedName(v: string): string[] {
  const parts = v.split('/')
  let name = v
  const errs: string[] = []
  if (parts.length === 2) {
    const prefix = parts[0]!
    name = parts[1]!
    if (prefix.length === 0) errs.push('prefix part must be non-empty')
    else errs.push(...isDNS1123Subdomain(prefix).map((m) => `prefix part ${m}`))
  } else if (parts.length > 2) {
    return [
      `a qualified name must consist of alphanumeric characters, '-', '_' or '.', and ${ALNUM_ENDS} ${QUALIFIED_NAME_EXAMPLES} ` +
        "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
    ]
  }
  if (name.length === 0) errs.push('name part must be non-empty')
  else if (name.length > 63) errs.push('name part must be no more than 63 characters')
  if (name.length > 0 && !QUALIFIED_NAME_PART.test(name)) {
    errs.push(`name part must consist of alphanumeric characters, '-', '_' or '.', and ${ALNUM_ENDS} ${QUALIFIED_NAME_EXAMPLES}`)
  }
  return errs
}

export function isLabelValue(v: string): string[] {
  const errs: string[] = []
  if (v.length > 63) errs.push('must be no more than 63 characters')
  if (!LABEL_VALUE.test(v)) {
    errs.push(
      `a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and ${ALNUM_ENDS} ` +
        "(e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
    )
  }
  return errs
}

export function isConfigMapKey(v: string): string[] {
  const errs: string[] = []
  if (v.length > 253) errs.push('must be no more than 253 characters')
  if (!CONFIG_KEY.test(v)) {
    errs.push(
      "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
    )
  }
  if (v === '.') errs.push("must not be '.'")
  else if (v === '..') errs.push("must not be '..'")
  else if (v.startsWith('..')) errs.push("must not start with '..'")
  return errs
}

export function validateMeta(s: Server, def: Def, obj: KubeObject, old: KubeObject | undefined): FieldError[] {
  const errs: FieldError[] = []
  const m = obj.metadata as KubeObject
  if (!m.name) {
    if (!m.generateName) errs.push(fe.required('metadata.name', 'name or generateName is required'))
  } else {
    const msgs = def.nameValidation === 'label' ? isDNS1123Label(m.name) : isDNS1123Subdomain(m.name)
    for (const msg of msgs) errs.push(fe.invalid('metadata.name', m.name, msg))
  }
  if (def.namespaced) {
    if (!m.namespace) errs.push(fe.required('metadata.namespace'))
    else for (const msg of isDNS1123Label(m.namespace)) errs.push(fe.invalid('metadata.namespace', m.namespace, msg))
  } else if (m.namespace) errs.push(fe.forbidden('metadata.namespace', 'not allowed on this type'))
  if (m.generation !== undefined && m.generation < 0)
    errs.push(fe.invalid('metadata.generation', m.generation, 'must be greater than or equal to 0'))
  if (m.labels !== undefined) {
    if (!isObj(m.labels)) errs.push(fe.invalid('metadata.labels', m.labels, 'must be a map'))
    else {
      for (const [k, v] of Object.entries(m.labels)) {
        for (const msg of isQualifiedName(k)) errs.push(fe.invalid('metadata.labels', k, msg))
        for (const msg of isLabelValue(String(v))) errs.push(fe.invalid('metadata.labels', v, msg))
      }
    }
  }
  if (isObj(m.annotations)) {
    let total = 0
    for (const [k, v] of Object.entries(m.annotations)) {
      for (const msg of isQualifiedName(k.toLowerCase())) errs.push(fe.invalid('metadata.annotations', k, msg))
      total += k.length + String(v).length
    }
    if (total > 256 * 1024) errs.push(fe.tooLong('metadata.annotations', 256 * 1024))
  }
  if (Array.isArray(m.ownerReferences)) {
    const controllers: string[] = []
    for (const ref of m.ownerReferences as KubeObject[]) {
      const p = 'metadata.ownerReferences'
      if (!ref.apiVersion) errs.push(fe.invalid(`${p}.apiVersion`, ref.apiVersion ?? '', 'version must not be empty'))
      if (!ref.kind) errs.push(fe.invalid(`${p}.kind`, ref.kind ?? '', 'kind must not be empty'))
      if (!ref.name) errs.push(fe.invalid(`${p}.name`, ref.name ?? '', 'name must not be empty'))
      if (!ref.uid) errs.push(fe.invalid(`${p}.uid`, ref.uid ?? '', 'uid must not be empty'))
      if (ref.controller === true) controllers.push(`${ref.kind}/${ref.name}`)
    }
    if (controllers.length > 1) {
      errs.push(
        fe.invalid(
          'metadata.ownerReferences',
          m.ownerReferences,
          `Only one reference can have Controller set to true. Found "true" in references for ${controllers.join(' and ')}`,
        ),
      )
    }
  }
  if (Array.isArray(m.finalizers)) {
    for (const f of m.finalizers as string[])
      for (const msg of isQualifiedName(String(f))) errs.push(fe.invalid('metadata.finalizers', f, msg))
  }
  if (old) {
    const om = old.metadata as KubeObject
    if (m.uid !== om.uid) errs.push(fe.invalid('metadata.uid', m.uid, 'field is immutable'))
    if (om.deletionTimestamp && Array.isArray(m.finalizers)) {
      const added = (m.finalizers as string[]).filter((f) => !((om.finalizers as string[] | undefined) ?? []).includes(f))
      if (added.length) {
        errs.push(
          fe.forbidden(
            'metadata.finalizers',
            `no new finalizers can be added if the object is being deleted, found new finalizers []string{${added.map(goQuote).join(', ')}}`,
          ),
        )
      }
    }
  }
  return errs
}

export function runValidation(s: Server, def: Def, obj: KubeObject, old: KubeObject | undefined): void {
  const errs = [...validateMeta(s, def, obj, old), ...(def.validate?.(obj, old, def) ?? [])]
  if (errs.length) {
    const view = s.toView(def, obj)
    throw errors.invalid(def.group, def.kind, String(view.metadata?.name ?? ''), errs)
  }
}
