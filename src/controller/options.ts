/**
 * `kseal controller`'s options, from one table: each row is a flag — its type, default and help —
 * and the command builds its oclif flags from the rows, `controllerOptions` turns parsed flag values
 * into ControllerOptions (checking them), and DEFAULTS are the rows' defaults as options. A default
 * is written once, here (or, for the HTTP limits, in the server's HTTP_LIMITS). Kept free of
 * client-node and oclif, so the command imports it at start-up.
 */
import os from 'node:os'
import {formatDuration, parseDuration, parseTime} from '../core/duration.js'
import {KsealError} from '../core/errors.js'
import {CONTROLLER_NAME, CONTROLLER_NAMESPACE} from '../core/names.js'
import {HTTP_LIMITS, type HttpLimits} from './http/server.js'
import {LEVELS, type Level} from './log.js'

export interface ControllerOptions {
  kubeconfig?: string
  context?: string
  /** Namespaces to watch; empty: all. */
  namespaces: string[]
  /** Where the key Secrets and the Lease live. */
  keyNamespace: string
  keyRenewPeriodMs: number
  /** Keys created before this no longer seal (they still open); a newer key is generated once it has passed. */
  keyCutoff?: Date
  keyBits: number
  listen: string
  leaderElect: boolean
  leaseName: string
  leaseDurationMs: number
  renewDeadlineMs: number
  retryPeriodMs: number
  /** This replica's name in the Lease and in Events. */
  identity: string
  workers: number
  /** Re-check every SealedSecret this often (0: never): a safety net behind the watch on the Secrets it wrote. */
  resyncPeriodMs: number
  /** `/v1/rotate` requests a second, sustained (0: no limit), and how many may come at once. */
  rotateRateLimit: number
  rotateRateBurst: number
  /** Sync ExternalSecrets from their stores (the kseal.dev/v1 ExternalSecret, SecretStore and ClusterSecretStore CRDs must be installed). */
  externalSecrets: boolean
  /** Remote calls a second to one store, sustained, and how many may go at once after a quiet spell. */
  storeRateLimit: number
  storeRateBurst: number
  /** HTTP listener limits: header and request timeouts, connection cap. */
  httpLimits?: Partial<HttpLimits>
  logLevel: Level
  /** Also serve sealed-secrets' `bitnami.com/v1alpha1` SealedSecrets (and their /v1/verify, /v1/rotate). */
  bitnami: boolean
}

/** One flag: its oclif type (durations and times are strings), default and help. */
export interface FlagRow {
  type: 'string' | 'integer' | 'boolean'
  default?: string | number | boolean
  description: string
  hidden?: boolean
  allowNo?: boolean
  options?: readonly string[]
}

/** The flags, in the order `--help` lists them. */
export const CONTROLLER_FLAGS = {
  kubeconfig: {type: 'string', description: 'Kubeconfig file. [default: in-cluster config, else $KUBECONFIG or ~/.kube/config]'},
  context: {type: 'string', description: 'Kubeconfig context to use.'},
  namespaces: {type: 'string', description: 'Comma-separated namespaces to watch. [default: all]'},
  'key-namespace': {
    type: 'string',
    description: `Namespace of the key Secrets and the leader Lease. [default: $POD_NAMESPACE or ${CONTROLLER_NAMESPACE}]`,
  },
  'key-renew-period': {
    type: 'string',
    default: '30d',
    description: 'Generate a new sealing key when the newest is this old (e.g. 30d, 720h); 0 disables renewal.',
  },
  'key-cutoff': {
    type: 'string',
    description:
      'RFC 3339 time: keys created before it no longer seal (they still open old SealedSecrets); once it has passed, a newer key is generated if needed.',
  },
  'key-bits': {type: 'integer', default: 4096, hidden: true, description: 'RSA modulus size of generated keys (tests use 2048).'},
  listen: {type: 'string', default: ':8080', description: 'HTTP address for /v1/cert.pem, /healthz, /readyz and /metrics.'},
  'leader-elect': {
    type: 'boolean',
    default: true,
    allowNo: true,
    description: 'Elect a leader with a coordination.k8s.io Lease; only the leader reconciles.',
  },
  'lease-name': {type: 'string', default: CONTROLLER_NAME, description: 'Name of the leader Lease (in --key-namespace).'},
  'lease-duration': {
    type: 'string',
    default: '15s',
    description: 'How long a standby waits before taking over a Lease that is not renewed.',
  },
  'renew-deadline': {
    type: 'string',
    default: '10s',
    description:
      'How long the leader keeps trying to renew before it steps down; it writes only within this long of its last successful renewal.',
  },
  'retry-period': {type: 'string', default: '2s', description: 'How often to try to acquire or renew the Lease.'},
  identity: {type: 'string', description: "This replica's name in the Lease and Events. [default: $POD_NAME, else HOSTNAME_PID]"},
  workers: {type: 'integer', default: 16, description: 'SealedSecrets reconciled concurrently (RSA work runs on all cores).'},
  'resync-period': {
    type: 'string',
    default: '10m',
    description: 'Re-check every SealedSecret this often, a safety net behind the watch on the Secrets it wrote; 0 disables.',
  },
  'rotate-rate-limit': {
    type: 'integer',
    default: 10,
    description:
      '/v1/rotate requests a second, sustained; more are answered 429 with Retry-After (kseal reseal waits and retries). 0: no limit.',
  },
  'rotate-rate-burst': {type: 'integer', default: 20, description: '/v1/rotate requests allowed at once above the sustained rate.'},
  'external-secrets': {
    type: 'boolean',
    default: true,
    allowNo: true,
    description: 'Sync ExternalSecrets from their SecretStores and ClusterSecretStores (AWS Secrets Manager, SSM, Vault KV, kubernetes).',
  },
  'store-rate-limit': {
    type: 'integer',
    default: 10,
    description:
      'Remote calls a second to one store (SecretStore or ClusterSecretStore), sustained; a store that throttles is paused for its Retry-After.',
  },
  'store-rate-burst': {type: 'integer', default: 20, description: 'Remote calls one store may get at once after a quiet spell.'},
  'http-header-timeout': {
    type: 'string',
    default: formatDuration(HTTP_LIMITS.headersTimeoutMs),
    description: 'How long a client may take to send its request headers; then the connection is closed.',
  },
  'http-request-timeout': {
    type: 'string',
    default: formatDuration(HTTP_LIMITS.requestTimeoutMs),
    description: 'How long a client may take to send a whole request.',
  },
  'http-max-connections': {
    type: 'integer',
    default: HTTP_LIMITS.maxConnections,
    description: 'Connections open at once; more are closed as they arrive.',
  },
  'log-level': {type: 'string', default: 'info', options: LEVELS, description: 'Least severe level logged.'},
  bitnami: {
    type: 'boolean',
    default: false,
    description:
      "Also unseal sealed-secrets' bitnami.com/v1alpha1 SealedSecrets (with the keys imported by kseal keys --import), and answer kubeseal's /v1/verify and /v1/rotate for them.",
  },
} as const satisfies Record<string, FlagRow>

export type ControllerFlag = keyof typeof CONTROLLER_FLAGS
/** Parsed flag values, as oclif hands them over (every flag with a default has a value). */
export type FlagValues = {[K in ControllerFlag]?: string | number | boolean}

/** A replica's identity: POD_NAME in a cluster, else host and process id. */
function defaultIdentity(env: Record<string, string | undefined> = process.env): string {
  return env.POD_NAME || `${os.hostname()}_${process.pid}`
}

/** The options the flags name, each checked (ERR_USAGE, naming the flag); unset flags take their row's default. */
export function controllerOptions(given: FlagValues, env: Record<string, string | undefined> = process.env): ControllerOptions {
  const flags = {...defaults(), ...Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined))} as FlagValues
  const str = (k: ControllerFlag) => flags[k] as string | undefined
  const int = (k: ControllerFlag) => flags[k] as number
  const d = (k: ControllerFlag) => parseDuration(String(flags[k]), k)
  if (int('workers') < 1) throw new KsealError('ERR_USAGE', '--workers must be at least 1')
  if (int('rotate-rate-limit') < 0 || int('rotate-rate-burst') < 1)
    throw new KsealError('ERR_USAGE', '--rotate-rate-limit must be 0 or more and --rotate-rate-burst at least 1')
  if (int('store-rate-limit') < 1 || int('store-rate-burst') < 1)
    throw new KsealError('ERR_USAGE', '--store-rate-limit and --store-rate-burst must be at least 1')
  if (int('http-max-connections') < 1) throw new KsealError('ERR_USAGE', '--http-max-connections must be at least 1')
  if (!(d('http-header-timeout') > 0 && d('http-header-timeout') <= d('http-request-timeout'))) {
    throw new KsealError('ERR_USAGE', 'the HTTP timeouts need 0 < --http-header-timeout <= --http-request-timeout')
  }
  if (int('key-bits') < 2048 || int('key-bits') % 8 !== 0)
    throw new KsealError('ERR_USAGE', '--key-bits must be a multiple of 8, at least 2048')
  const leaseDurationMs = d('lease-duration')
  const renewDeadlineMs = d('renew-deadline')
  const retryPeriodMs = d('retry-period')
  if (flags['leader-elect'] && !(retryPeriodMs > 0 && retryPeriodMs < renewDeadlineMs && renewDeadlineMs < leaseDurationMs)) {
    throw new KsealError('ERR_USAGE', 'leader election needs 0 < --retry-period < --renew-deadline < --lease-duration')
  }
  const cutoff = str('key-cutoff')
  const keyCutoff = cutoff === undefined ? undefined : parseTime(cutoff, 'key-cutoff')
  return {
    kubeconfig: str('kubeconfig'),
    context: str('context'),
    namespaces: (str('namespaces') ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    keyNamespace: str('key-namespace') ?? (env.POD_NAMESPACE || CONTROLLER_NAMESPACE),
    keyRenewPeriodMs: d('key-renew-period'),
    keyCutoff,
    keyBits: int('key-bits'),
    listen: str('listen')!,
    leaderElect: flags['leader-elect'] as boolean,
    leaseName: str('lease-name')!,
    leaseDurationMs,
    renewDeadlineMs,
    retryPeriodMs,
    identity: str('identity') ?? defaultIdentity(env),
    workers: int('workers'),
    resyncPeriodMs: d('resync-period'),
    rotateRateLimit: int('rotate-rate-limit'),
    rotateRateBurst: int('rotate-rate-burst'),
    externalSecrets: flags['external-secrets'] as boolean,
    storeRateLimit: int('store-rate-limit'),
    storeRateBurst: int('store-rate-burst'),
    httpLimits: {
      headersTimeoutMs: d('http-header-timeout'),
      requestTimeoutMs: d('http-request-timeout'),
      maxConnections: int('http-max-connections'),
    },
    logLevel: str('log-level') as Level,
    bitnami: flags.bitnami as boolean,
  }
}

function defaults(): FlagValues {
  const out: FlagValues = {}
  for (const [k, row] of Object.entries(CONTROLLER_FLAGS) as [ControllerFlag, FlagRow][])
    if (row.default !== undefined) out[k] = row.default
  return out
}

/** The options every flag's default gives (no kubeconfig, all namespaces, the install's key namespace); tests and library callers spread it and set the rest. */
export const DEFAULTS: Omit<ControllerOptions, 'identity'> = (({identity: _identity, ...rest}) => rest)(controllerOptions({}, {}))
