/**
 * The names kseal gives things in a cluster, each defined once: the controller's namespace and name
 * as the install manifests (deploy/) create them, and the `kseal.dev/` prefix of kseal's own labels
 * and annotations, with the marks more than one part of kseal reads.
 */

/** The namespace the install manifests put the controller in (its key Secrets and Lease live there too). */
export const CONTROLLER_NAMESPACE = 'kseal-system'
/** The controller's name: its Deployment, Service, leader Lease, field manager and Event component. */
export const CONTROLLER_NAME = 'kseal-controller'

/** Labels and annotations in this prefix are kseal's own: users may not set them through a template. */
export const RESERVED_PREFIX = 'kseal.dev/'

/** An administrator's opt-in: the controller may take over this Secret although it did not create it. */
export const MANAGED_ANNOTATION = `${RESERVED_PREFIX}managed`
