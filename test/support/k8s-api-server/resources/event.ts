/** core/v1 and events.k8s.io/v1 Events: one storage, field mapping, validation, field selectors. */
import {fe} from '../status.js'
import type {FieldError, KubeObject, ResourceDefinition} from '../types.js'

export const CORE_EVENT_TIMES = [['firstTimestamp'], ['lastTimestamp']]
export const CORE_EVENT_MICRO = [['eventTime'], ['series', 'lastObservedTime']]
export const V1_EVENT_TIMES = [['deprecatedFirstTimestamp'], ['deprecatedLastTimestamp']]

/** core/v1 Event <-> events.k8s.io/v1 Event field mapping (they share storage in the apiserver). */
export const EVENT_FIELD_MAP: Array<[core: string, eventsV1: string]> = [
  ['involvedObject', 'regarding'],
  ['message', 'note'],
  ['reportingComponent', 'reportingController'],
  ['source', 'deprecatedSource'],
  ['firstTimestamp', 'deprecatedFirstTimestamp'],
  ['lastTimestamp', 'deprecatedLastTimestamp'],
  ['count', 'deprecatedCount'],
]

export function coreEventToEventsV1(o: KubeObject): KubeObject {
  const out: KubeObject = {}
  for (const [k, v] of Object.entries(o)) {
    const m = EVENT_FIELD_MAP.find(([c]) => c === k)
    out[m ? m[1] : k] = v
  }
  out.apiVersion = 'events.k8s.io/v1'
  out.kind = 'Event'
  return out
}

export function eventsV1ToCoreEvent(o: KubeObject): KubeObject {
  const out: KubeObject = {}
  for (const [k, v] of Object.entries(o)) {
    const m = EVENT_FIELD_MAP.find(([, e]) => e === k)
    out[m ? m[0] : k] = v
  }
  out.apiVersion = 'v1'
  out.kind = 'Event'
  return out
}

/** ValidateEventCreate/Update (storage = core/v1 field names; `strict` = request via events.k8s.io/v1). */
export function validateEvent(obj: KubeObject, old: KubeObject | undefined, def: ResourceDefinition): FieldError[] {
  const errs: FieldError[] = []
  const strict = def.group === 'events.k8s.io'
  const ns = obj.metadata?.namespace ?? ''
  const involvedNs: string = obj.involvedObject?.namespace ?? ''
  const reportingField = strict ? 'reportingController' : 'reportingComponent'
  if (!obj.eventTime) {
    if (involvedNs === '') {
      if (ns !== '' && ns !== 'default') errs.push(fe.invalid('involvedObject.namespace', involvedNs, 'does not match event.namespace'))
    } else if (ns !== involvedNs) errs.push(fe.invalid('involvedObject.namespace', involvedNs, 'does not match event.namespace'))
  } else {
    if (involvedNs === '' && ns !== 'default' && ns !== 'kube-system') {
      errs.push(fe.invalid('involvedObject.namespace', involvedNs, 'does not match event.namespace'))
    }
    if (!obj.reportingComponent) errs.push(fe.required(reportingField))
    if (!obj.reportingInstance) errs.push(fe.required('reportingInstance'))
    if (!obj.action) errs.push(fe.required('action'))
    if (!obj.reason) errs.push(fe.required('reason'))
  }
  if (strict && !old) {
    if (!obj.eventTime) errs.push(fe.required('eventTime'))
    if (obj.type !== 'Normal' && obj.type !== 'Warning') errs.push(fe.invalid('type', '', `has invalid value: ${obj.type ?? ''}`))
    if (obj.firstTimestamp) errs.push(fe.invalid('deprecatedFirstTimestamp', '', 'needs to be unset'))
    if (obj.lastTimestamp) errs.push(fe.invalid('deprecatedLastTimestamp', '', 'needs to be unset'))
    if (obj.count) errs.push(fe.invalid('deprecatedCount', '', 'needs to be unset'))
    if (obj.source?.component || obj.source?.host) errs.push(fe.invalid('deprecatedSource', '', 'needs to be unset'))
    if (typeof obj.message === 'string' && obj.message.length > 1024) errs.push(fe.tooLong('note', 1024))
  }
  return errs
}

export const EVENT_FIELD_SELECTORS: Record<string, (o: KubeObject) => string | undefined> = {
  'involvedObject.kind': (o) => o.involvedObject?.kind,
  'involvedObject.namespace': (o) => o.involvedObject?.namespace,
  'involvedObject.name': (o) => o.involvedObject?.name,
  'involvedObject.uid': (o) => o.involvedObject?.uid,
  'involvedObject.apiVersion': (o) => o.involvedObject?.apiVersion,
  'involvedObject.resourceVersion': (o) => o.involvedObject?.resourceVersion,
  'involvedObject.fieldPath': (o) => o.involvedObject?.fieldPath,
  reason: (o) => o.reason,
  reportingComponent: (o) => o.reportingComponent,
  source: (o) => o.source?.component,
  type: (o) => o.type,
}

export const EVENTS_V1_FIELD_SELECTORS: Record<string, (o: KubeObject) => string | undefined> = {
  'regarding.kind': (o) => o.regarding?.kind,
  'regarding.namespace': (o) => o.regarding?.namespace,
  'regarding.name': (o) => o.regarding?.name,
  'regarding.uid': (o) => o.regarding?.uid,
  'regarding.apiVersion': (o) => o.regarding?.apiVersion,
  'regarding.resourceVersion': (o) => o.regarding?.resourceVersion,
  'regarding.fieldPath': (o) => o.regarding?.fieldPath,
  reason: (o) => o.reason,
  reportingController: (o) => o.reportingController,
  type: (o) => o.type,
}
