/**
 * Events the controller records about the objects it reconciles: one per change of state, never
 * one per retry. Messages are value-free by construction (they name objects and keys) and are
 * scrubbed of URL credentials and cut to 1 KiB all the same.
 */
import {scrubUrls} from '../core/errors.js'
import {CONTROLLER_NAME} from '../core/names.js'
import type {CoreEvent} from '../kube/api.js'

const COMPONENT = CONTROLLER_NAME

export interface InvolvedObject {
  apiVersion: string
  kind: string
  name: string
  namespace: string
  uid?: string
  resourceVersion?: string
}

/** A core/v1 Event about `obj`, reported by this replica. */
export function eventFor(
  obj: InvolvedObject,
  e: {type: 'Normal' | 'Warning'; reason: string; message: string; action: string},
  identity: string,
  now: Date,
): CoreEvent {
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: {
      name: `${obj.name.slice(0, 200)}.${now.getTime().toString(16)}${Math.floor(Math.random() * 0xffff)
        .toString(16)
        .padStart(4, '0')}`,
      namespace: obj.namespace,
    },
    involvedObject: obj,
    reason: e.reason,
    message: scrubUrls(e.message).slice(0, 1024),
    type: e.type,
    action: e.action,
    source: {component: COMPONENT},
    reportingComponent: COMPONENT,
    reportingInstance: identity,
    firstTimestamp: now,
    lastTimestamp: now,
    count: 1,
  }
}
