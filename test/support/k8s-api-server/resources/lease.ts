/** coordination.k8s.io/v1 Lease validation. */
import {fe} from '../status.js'
import type {FieldError, KubeObject} from '../types.js'

export function validateLease(obj: KubeObject): FieldError[] {
  const errs: FieldError[] = []
  const spec = (obj.spec ?? {}) as KubeObject
  if (spec.leaseDurationSeconds !== undefined && !(spec.leaseDurationSeconds > 0)) {
    errs.push(fe.invalid('spec.leaseDurationSeconds', spec.leaseDurationSeconds, 'must be greater than 0'))
  }
  if (spec.leaseTransitions !== undefined && spec.leaseTransitions < 0) {
    errs.push(fe.invalid('spec.leaseTransitions', spec.leaseTransitions, 'must be greater than or equal to 0'))
  }
  return errs
}
