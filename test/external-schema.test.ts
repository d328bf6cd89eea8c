/**
 * ExternalSecret, SecretStore and ClusterSecretStore validation as untrusted input: manifests
 * written for external-secrets.io v1 move over by changing apiVersion; everything kseal does not
 * implement is refused by name; lists are bounded; templates, regexps and property paths are
 * compiled up front; references cannot reach another namespace; which stores an ExternalSecret may
 * use (checkStoreUse); the per-store limiter; and a fuzz of the validator.
 */
import {describe, expect, it} from '@jest/globals'
import fc from 'fast-check'
import {isKsealError} from '../src/core/errors.js'
import {StoreLimiter} from '../src/external/limiter.js'
import {compileRe2} from '../src/core/regex.js'
import {parseExternalSecret, parseSecretStore} from '../src/external/schema.js'
import {checkStoreUse} from '../src/external/store.js'
import {es, esManifest, store, storeManifest} from './support/external.js'
import {failure} from './support/failure.js'

const NS = 'apps'
const spec = (extra: Record<string, unknown> = {}) => ({
  secretStoreRef: {name: 'aws', kind: 'SecretStore'},
  data: [{secretKey: 'k', remoteRef: {key: 'r'}}],
  ...extra,
})
const refuse = (s: Record<string, unknown>) => () => parseExternalSecret(esManifest('db', NS, s))
const aws = {aws: {service: 'SecretsManager', region: 'eu-west-1'}}

describe('ExternalSecret', () => {
  it('reads a manifest written for external-secrets (as kubectl shows it, defaults filled in) after changing apiVersion', () => {
    const m = esManifest('db', NS, {
      refreshInterval: '1h30m',
      refreshPolicy: 'Periodic',
      secretStoreRef: {kind: 'ClusterSecretStore', name: 'shared'},
      target: {
        name: 'db-secret',
        creationPolicy: 'Owner',
        deletionPolicy: 'Retain',
        template: {
          engineVersion: 'v2',
          mergePolicy: 'Replace',
          type: 'kubernetes.io/basic-auth',
          metadata: {labels: {app: 'db'}, annotations: {note: 'x'}},
          data: {username: '{{ .user }}', password: '{{ .pass | trim }}'},
        },
      },
      data: [
        {
          secretKey: 'user',
          remoteRef: {
            key: 'prod/db',
            property: 'username',
            conversionStrategy: 'Default',
            decodingStrategy: 'None',
            metadataPolicy: 'None',
          },
        },
        {secretKey: 'pass', remoteRef: {key: 'prod/db', property: 'password', version: 'AWSCURRENT'}},
      ],
      dataFrom: [
        {extract: {key: 'prod/extra', conversionStrategy: 'Default', decodingStrategy: 'Auto', metadataPolicy: 'None'}},
        {find: {name: {regexp: '^prod/'}, tags: {team: 'db'}, conversionStrategy: 'Unicode'}},
      ],
    })
    const e = parseExternalSecret(m)
    expect(e).toEqual({
      metadata: {name: 'db', namespace: NS},
      secretStoreRef: {name: 'shared', kind: 'ClusterSecretStore'},
      refreshIntervalMs: 5_400_000,
      target: {
        name: 'db-secret',
        creationPolicy: 'Owner',
        deletionPolicy: 'Retain',
        immutable: false,
        template: {
          type: 'kubernetes.io/basic-auth',
          labels: {app: 'db'},
          annotations: {note: 'x'},
          data: {username: '{{ .user }}', password: '{{ .pass | trim }}'},
          mergePolicy: 'Replace',
        },
      },
      data: [
        {
          secretKey: 'user',
          remoteRef: {key: 'prod/db', property: 'username', version: undefined, conversionStrategy: 'Default', decodingStrategy: 'None'},
        },
        {
          secretKey: 'pass',
          remoteRef: {key: 'prod/db', property: 'password', version: 'AWSCURRENT', conversionStrategy: 'Default', decodingStrategy: 'None'},
        },
      ],
      dataFrom: [
        {extract: {key: 'prod/extra', property: undefined, version: undefined, conversionStrategy: 'Default', decodingStrategy: 'Auto'}},
        {find: {path: undefined, nameRegexp: '^prod/', tags: {team: 'db'}, conversionStrategy: 'Unicode', decodingStrategy: 'None'}},
      ],
    })
    // The defaults: a Secret named after the ExternalSecret, owned by it, refreshed hourly.
    expect(es('db', NS, spec())).toMatchObject({
      refreshIntervalMs: 3_600_000,
      target: {name: 'db', creationPolicy: 'Owner', deletionPolicy: 'Retain', immutable: false},
      secretStoreRef: {kind: 'SecretStore'},
    })
    expect(
      parseExternalSecret({...esManifest('db', NS, spec()), metadata: {name: 'db'}}, {defaultNamespace: 'dflt'}).metadata.namespace,
    ).toBe('dflt')
  })

  it('refreshInterval: Go durations, 0 to fetch once, nothing faster than 10s', () => {
    expect(es('db', NS, spec({refreshInterval: '0'})).refreshIntervalMs).toBe(0)
    expect(es('db', NS, spec({refreshInterval: '15s'})).refreshIntervalMs).toBe(15_000)
    expect(refuse(spec({refreshInterval: '1s'}))).toThrow(
      'ExternalSecret apps/db: spec.refreshInterval: must be 0 (fetch once) or at least 10s',
    )
    expect(refuse(spec({refreshInterval: 'soon'}))).toThrow(
      'ExternalSecret apps/db: spec.refreshInterval: "soon" is not a duration such as 1h, 30m, 1h30m, 15s or 0',
    )
  })

  it('refuses what kseal does not implement, by name, instead of ignoring it', () => {
    const cases: [Record<string, unknown>, string][] = [
      [
        spec({data: [{secretKey: 'k', remoteRef: {key: 'r'}, sourceRef: {storeRef: {name: 'x'}}}]}),
        'spec.data[0].sourceRef: sourceRef (a store or generator per entry) is not supported; an ExternalSecret reads from its secretStoreRef',
      ],
      [
        spec({dataFrom: [{find: {name: {regexp: 'x'}}, rewrite: [{regexp: {source: 'a', target: 'b'}}]}]}),
        'spec.dataFrom[0].rewrite: rewrite is not supported; name the keys with data[] or a template',
      ],
      [
        spec({target: {template: {templateFrom: [{configMap: {name: 'x'}}]}}}),
        'spec.target.template.templateFrom: templateFrom (templates in ConfigMaps or Secrets) is not supported; write them in template.data',
      ],
      [
        spec({data: [{secretKey: 'k', remoteRef: {key: 'r', metadataPolicy: 'Fetch'}}]}),
        'spec.data[0].remoteRef.metadataPolicy: Fetch (tags or labels as values) is not supported',
      ],
      [spec({target: {creationPolicy: 'None'}}), 'spec.target.creationPolicy: None (no Secret) is not supported'],
      [
        spec({target: {deletionPolicy: 'Merge'}}),
        'spec.target.deletionPolicy: Merge (remove only the keys) is not supported; Retain or Delete',
      ],
      [
        spec({target: {template: {engineVersion: 'v1'}}}),
        'spec.target.template.engineVersion: engine v1 is not supported; kseal speaks v2',
      ],
      [spec({refreshPolicy: 'CreatedOnce'}), 'spec.refreshPolicy: CreatedOnce is not supported; refreshInterval: 0 fetches once'],
      [spec({surprise: true}), 'spec.surprise: unknown field (kseal does not implement it; see docs/external-secrets.md)'],
    ]
    for (const [s, msg] of cases) expect(refuse(s)).toThrow(`ExternalSecret apps/db: ${msg}`)
  })

  it('checks names, keys, duplicates, bounds, and that there is something to fetch', () => {
    expect(refuse(spec({data: [{secretKey: 'a b', remoteRef: {key: 'r'}}]}))).toThrow(
      'spec.data[0].secretKey: "a b" is not a valid Secret key ([-._a-zA-Z0-9]+)',
    )
    expect(
      refuse(
        spec({
          data: [
            {secretKey: 'k', remoteRef: {key: 'a'}},
            {secretKey: 'k', remoteRef: {key: 'b'}},
          ],
        }),
      ),
    ).toThrow('spec.data[1].secretKey: "k" appears twice')
    expect(refuse(spec({data: Array.from({length: 501}, (_, i) => ({secretKey: `k${i}`, remoteRef: {key: 'r'}}))}))).toThrow(
      'spec.data: has more than 500 entries',
    )
    expect(refuse(spec({target: {name: 'Not_A_Name'}}))).toThrow('spec.target.name: "Not_A_Name" is not a valid Secret name')
    expect(refuse(spec({data: [{secretKey: 'k', remoteRef: {key: ''}}]}))).toThrow('spec.data[0].remoteRef.key: is required')
    expect(refuse(spec({data: [{secretKey: 'k', remoteRef: {key: 'x'.repeat(2049)}}]}))).toThrow(
      'spec.data[0].remoteRef.key: longer than 2048 characters',
    )
    expect(refuse(spec({dataFrom: [{find: {tags: Object.fromEntries(Array.from({length: 10}, (_, i) => [`t${i}`, 'v']))}}]}))).toThrow(
      'spec.dataFrom[0].find.tags: has more than 9 entries',
    )
    expect(refuse(spec({dataFrom: [{find: {path: 'x'}}]}))).toThrow('spec.dataFrom[0].find: needs name.regexp or tags')
    expect(refuse(spec({dataFrom: [{extract: {key: 'a'}, find: {tags: {a: 'b'}}}]}))).toThrow(
      'spec.dataFrom[0]: needs exactly one of extract and find',
    )
    expect(refuse({secretStoreRef: {name: 'aws'}})).toThrow(
      'ExternalSecret apps/db: spec: has nothing to fetch: give data, dataFrom or target.template.data',
    )
    expect(refuse(spec({secretStoreRef: {name: 'aws', kind: 'Vault'}}))).toThrow(
      'spec.secretStoreRef.kind: must be one of SecretStore, ClusterSecretStore, not "Vault"',
    )
    expect(() =>
      parseExternalSecret({apiVersion: 'external-secrets.io/v1', kind: 'ExternalSecret', metadata: {name: 'x'}, spec: spec()}),
    ).toThrow('expected apiVersion kseal.dev/v1 and kind ExternalSecret, not "external-secrets.io/v1" "ExternalSecret"')
  })

  it('compiles templates, regexps and property paths up front, naming where they are', () => {
    expect(refuse(spec({target: {template: {data: {cfg: 'x\n{{ .a | pkcs12cert }}'}}}}))).toThrow(
      `ExternalSecret apps/db: spec.target.template.data.cfg: line 2, column 9: function "pkcs12cert" is not supported by kseal's template language`,
    )
    expect(refuse(spec({dataFrom: [{find: {name: {regexp: '(?=lookahead)'}}}]}))).toThrow(
      'ExternalSecret apps/db: spec.dataFrom[0].find.name.regexp "(?=lookahead)": not an RE2 regular expression: invalid or unsupported Perl syntax: `(?=`',
    )
    expect(refuse(spec({dataFrom: [{find: {name: {regexp: '(a)\\1'}}}]}))).toThrow(
      'not an RE2 regular expression: invalid escape sequence: `\\1`',
    )
    expect(refuse(spec({dataFrom: [{find: {name: {regexp: 'a'.repeat(513)}}}]}))).toThrow('longer than 512 characters')
    expect(refuse(spec({data: [{secretKey: 'k', remoteRef: {key: 'r', property: 'items.*.name'}}]}))).toThrow(
      'spec.data[0].remoteRef.property: wildcards (* and ?) are not supported; escape them with \\ to match them literally',
    )
    expect(refuse(spec({data: [{secretKey: 'k', remoteRef: {key: 'r', property: 'friends.#(age>40)'}}]}))).toThrow(
      'spec.data[0].remoteRef.property: queries (#(...)) are not supported',
    )
  })

  it('RE2 regexps match in linear time: patterns that stall a backtracking engine on a long name do not', () => {
    // With JavaScript's RegExp the third takes hours on this name (n^6 steps), the first two 2^4096.
    const name = 'a'.repeat(4096)
    for (const p of ['(a|a)*$x', '^(a+)+$b', '^.*.*.*.*.*.*x$']) expect(compileRe2(p, 't').test(name)).toBe(false)
    expect(compileRe2('(?i)^PROD/', 't').test('prod/db')).toBe(true)
  })

  it("template metadata: kseal's own keys, templated values and token Secrets are refused", () => {
    expect(refuse(spec({target: {template: {metadata: {labels: {'kseal.dev/sealing-key': 'active'}}}}}))).toThrow(
      'spec.target.template.metadata.labels["kseal.dev/sealing-key"]: keys starting with kseal.dev/ are kseal\'s own; a template cannot set them',
    )
    expect(refuse(spec({target: {template: {metadata: {annotations: {note: '{{ .password }}'}}}}}))).toThrow(
      'spec.target.template.metadata.annotations["note"]: kseal does not render templates in labels or annotations (values are written as they are); remove {{ }}',
    )
    expect(refuse(spec({target: {template: {metadata: {labels: {app: 'not valid!'}}}}}))).toThrow('"not valid!" is not a valid label value')
    expect(
      refuse(
        spec({
          target: {
            template: {
              type: 'kubernetes.io/service-account-token',
              metadata: {annotations: {'kubernetes.io/service-account.name': 'admin'}},
            },
          },
        }),
      ),
    ).toThrow(
      'spec.target.template.type: kubernetes.io/service-account-token would have Kubernetes mint a token for a ServiceAccount; kseal does not create such Secrets',
    )
  })

  it('fuzz: whatever the spec holds, validation answers or refuses with a KsealError', () => {
    const leaf = fc.oneof(
      fc.string({maxLength: 12}),
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      fc.constantFrom('SecretStore', 'Owner', 'Merge', '{{ .a }}', '^x$', '1h', 'a.b', 'v2'),
    )
    const keys = fc.constantFrom(
      'secretStoreRef',
      'name',
      'kind',
      'data',
      'dataFrom',
      'secretKey',
      'remoteRef',
      'key',
      'property',
      'version',
      'extract',
      'find',
      'regexp',
      'tags',
      'target',
      'template',
      'metadata',
      'labels',
      'type',
      'refreshInterval',
      'creationPolicy',
      'decodingStrategy',
    )
    const tree = fc.letrec((tie) => ({
      node: fc.oneof({depthSize: 'small'}, leaf, fc.array(tie('node'), {maxLength: 3}), fc.dictionary(keys, tie('node'), {maxKeys: 4})),
    })).node
    fc.assert(
      fc.property(tree, (s) => {
        try {
          parseExternalSecret(esManifest('db', NS, s as Record<string, unknown>))
        } catch (e) {
          if (!isKsealError(e)) throw e
        }
      }),
      {numRuns: 2000},
    )
  })
})

describe('SecretStore and ClusterSecretStore', () => {
  const refuseStore =
    (ns: string | undefined, provider: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
    () =>
      parseSecretStore(storeManifest('s', ns, provider, extra))

  it("reads each provider with external-secrets' field names and defaults", () => {
    expect(
      store('s', NS, {
        aws: {
          service: 'ParameterStore',
          region: 'eu-west-1',
          role: 'arn:aws:iam::111122223333:role/r',
          auth: {jwt: {serviceAccountRef: {name: 'sa'}}},
        },
      }).provider,
    ).toEqual({
      type: 'aws',
      service: 'ParameterStore',
      region: 'eu-west-1',
      role: 'arn:aws:iam::111122223333:role/r',
      externalId: undefined,
      auth: {kind: 'jwt', serviceAccount: {name: 'sa', audiences: []}},
    })
    expect(
      store('s', NS, {
        vault: {server: 'https://vault.example:8200/', namespace: 'team', auth: {kubernetes: {role: 'r', secretRef: {name: 'jwt'}}}},
      }).provider,
    ).toEqual({
      type: 'vault',
      server: 'https://vault.example:8200',
      path: 'secret',
      namespace: 'team',
      caBundle: undefined,
      caSecretRef: undefined,
      auth: {kind: 'kubernetes', mountPath: 'kubernetes', role: 'r', serviceAccount: undefined, secretRef: {name: 'jwt', key: 'token'}},
      authNamespace: undefined,
    })
    expect(store('s', NS, {kubernetes: {server: {url: 'kubernetes.default'}, auth: {serviceAccount: {name: 'reader'}}}}).provider).toEqual({
      type: 'kubernetes',
      remoteNamespace: 'default',
      server: undefined,
      caBundle: undefined,
      auth: {kind: 'serviceAccount', serviceAccount: {name: 'reader', audiences: []}},
    })
  })

  it('refuses unsupported providers and auth methods, and unsafe settings', () => {
    expect(refuseStore(NS, {gcpsm: {projectID: 'p'}})).toThrow(
      'SecretStore apps/s: spec.provider.gcpsm: this provider is not supported by kseal (it has aws, vault and kubernetes)',
    )
    expect(refuseStore(NS, {aws: aws.aws, vault: {server: 'https://v'}})).toThrow('spec.provider: must name exactly one provider, not 2')
    expect(refuseStore(NS, {aws: {region: 'eu-west-1'}})).toThrow('spec.provider.aws.service: is required (SecretsManager, ParameterStore)')
    expect(refuseStore(NS, {aws: {...aws.aws, role: 'admin'}})).toThrow('spec.provider.aws.role: "admin" is not an IAM role ARN')
    expect(refuseStore(NS, {aws: {...aws.aws, additionalRoles: ['x']}})).toThrow(
      "spec.provider.aws.additionalRoles: is not supported by kseal's aws provider",
    )
    expect(refuseStore(NS, {vault: {server: 'https://v', version: 'v1', auth: {tokenSecretRef: {name: 't', key: 't'}}}})).toThrow(
      'spec.provider.vault.version: KV version 1 is not supported; kseal reads KV v2',
    )
    expect(refuseStore(NS, {vault: {server: 'https://v', auth: {appRole: {path: 'approle'}}}})).toThrow(
      'spec.provider.vault.auth.appRole: is not supported by kseal (it has tokenSecretRef and kubernetes)',
    )
    expect(refuseStore(NS, {vault: {server: 'https://v', auth: {kubernetes: {role: 'r'}}}})).toThrow(
      "spec.provider.vault.auth.kubernetes: needs exactly one of serviceAccountRef and secretRef (kseal never logs in with the controller's own ServiceAccount)",
    )
    expect(refuseStore(NS, {vault: {server: 'https://user:pw@v', auth: {tokenSecretRef: {name: 't', key: 't'}}}})).toThrow(
      'spec.provider.vault.server: "https://v" is not an http(s) URL without credentials',
    )
    expect(
      refuseStore(NS, {vault: {server: 'https://v', headers: {'X-Vault-Token': 'x'}, auth: {tokenSecretRef: {name: 't', key: 't'}}}}),
    ).toThrow("spec.provider.vault.headers: is not supported by kseal's vault provider")
    expect(refuseStore(NS, {kubernetes: {server: {url: 'http://10.0.0.1'}, auth: {serviceAccount: {name: 'x'}}}})).toThrow(
      'spec.provider.kubernetes.server.url: "http://10.0.0.1" is not an https URL without credentials (a ServiceAccount token is sent to it)',
    )
    expect(refuseStore(NS, {kubernetes: {authRef: {name: 'kubeconfig'}}})).toThrow(
      'spec.provider.kubernetes.authRef: authRef (a kubeconfig in a Secret) is not supported',
    )
  })

  it("references resolve in the ExternalSecret's namespace: a SecretStore may not name another, a ClusterSecretStore names none", () => {
    const keys = (namespace?: string) => ({
      aws: {
        ...aws.aws,
        auth: {secretRef: {accessKeyIDSecretRef: {name: 'k', key: 'id', namespace}, secretAccessKeySecretRef: {name: 'k', key: 's'}}},
      },
    })
    expect(store('s', NS, keys(NS)).provider).toMatchObject({auth: {kind: 'secretRef', accessKeyId: {name: 'k', key: 'id'}}})
    expect(refuseStore(NS, keys('kseal-system'))).toThrow(
      `SecretStore apps/s: spec.provider.aws.auth.secretRef.accessKeyIDSecretRef.namespace: a SecretStore's references resolve in its own namespace (apps), not "kseal-system"`,
    )
    expect(refuseStore(undefined, keys('kseal-system'))).toThrow(
      "ClusterSecretStore s: spec.provider.aws.auth.secretRef.accessKeyIDSecretRef.namespace: a ClusterSecretStore's references resolve in the namespace of each ExternalSecret that uses it; remove namespace",
    )
    expect(
      refuseStore(undefined, {
        vault: {server: 'https://v', auth: {kubernetes: {role: 'r', serviceAccountRef: {name: 'sa', namespace: 'kseal-system'}}}},
      }),
    ).toThrow("spec.provider.vault.auth.kubernetes.serviceAccountRef.namespace: a ClusterSecretStore's references")
    expect(refuseStore(NS, aws, {conditions: [{namespaces: ['x']}]})).toThrow(
      'SecretStore apps/s: spec.conditions: only a ClusterSecretStore has conditions; a SecretStore serves its own namespace',
    )
  })

  it('ClusterSecretStore conditions are validated: selectors, names, RE2 regexps', () => {
    const cond = (c: Record<string, unknown>) => refuseStore(undefined, aws, {conditions: [c]})
    expect(cond({})).toThrow('spec.conditions[0]: needs namespaceSelector, namespaces or namespaceRegexes')
    expect(cond({namespaceSelector: {matchExpressions: [{key: 'env', operator: 'In'}]}})).toThrow(
      'spec.conditions[0].namespaceSelector.matchExpressions[0].values: must not be empty for In',
    )
    expect(cond({namespaces: ['Bad_Name']})).toThrow('spec.conditions[0].namespaces[0]: "Bad_Name" is not a namespace name')
    expect(cond({namespaceRegexes: ['(?<!x)y']})).toThrow('spec.conditions[0].namespaceRegexes[0] "(?<!x)y": not an RE2 regular expression')
  })
})

describe('which store an ExternalSecret may use', () => {
  const e = (kind = 'SecretStore', ns = NS) => es('db', ns, spec({secretStoreRef: {name: 'aws', kind}}))
  const labels: Record<string, Record<string, string>> = {apps: {env: 'prod', team: 'a'}, dev: {env: 'dev'}, tools: {}}
  const nsLabels = async (ns: string) => labels[ns] ?? {}

  it('a SecretStore serves only its own namespace, and only the ExternalSecret naming it', async () => {
    await checkStoreUse(e(), store('aws', NS, aws))
    expect(await failure(checkStoreUse(e(), store('aws', 'other', aws)))).toMatchObject({
      code: 'ERR_DENIED',
      message: 'ExternalSecret apps/db: SecretStore other/aws serves only ExternalSecrets in namespace other, not apps',
    })
    expect((await failure(checkStoreUse(e(), store('gcp', NS, aws)))).message).toBe(
      'ExternalSecret apps/db: SecretStore apps/gcp is not the store it names (SecretStore aws)',
    )
    expect((await failure(checkStoreUse(e('ClusterSecretStore'), store('aws', NS, aws)))).code).toBe('ERR_DENIED')
  })

  it('a ClusterSecretStore serves every namespace, or those its conditions name, match or select', async () => {
    await checkStoreUse(e('ClusterSecretStore'), store('aws', undefined, aws))
    const limited = store('aws', undefined, aws, {
      conditions: [
        {namespaces: ['tools']},
        {namespaceRegexes: ['^team-[a-z]+$']},
        {
          namespaceSelector: {
            matchLabels: {env: 'prod'},
            matchExpressions: [
              {key: 'team', operator: 'In', values: ['a', 'b']},
              {key: 'frozen', operator: 'DoesNotExist'},
            ],
          },
        },
      ],
    })
    for (const ns of ['tools', 'team-x', 'apps']) await checkStoreUse(e('ClusterSecretStore', ns), limited, nsLabels)
    for (const ns of ['dev', 'team-1']) {
      expect(await failure(checkStoreUse(e('ClusterSecretStore', ns), limited, nsLabels))).toMatchObject({
        code: 'ERR_DENIED',
        message: `ExternalSecret ${ns}/db: ClusterSecretStore aws does not serve namespace ${ns} (its spec.conditions leave it out)`,
      })
    }
    labels.apps.frozen = 'yes'
    expect((await failure(checkStoreUse(e('ClusterSecretStore'), limited, nsLabels))).code).toBe('ERR_DENIED')
    expect(await failure(checkStoreUse(e('ClusterSecretStore', 'dev'), limited))).toMatchObject({
      code: 'ERR_CONFIG',
      message:
        'ExternalSecret dev/db: ClusterSecretStore aws selects namespaces by label, and the labels of namespace dev are not available',
    })
  })
})

describe('StoreLimiter', () => {
  it('paces each store with its own bucket and pauses a store that throttled', () => {
    let now = 1_000_000
    const l = new StoreLimiter({rate: 2, burst: 2, now: () => now})
    expect([l.reserve('a'), l.reserve('a'), l.reserve('a')]).toEqual([0, 0, 500])
    expect(l.reserve('b')).toBe(0)
    now += 500
    expect(l.reserve('a')).toBe(0)
    l.throttled('b', 3000)
    expect(l.reserve('b')).toBe(3000)
    now += 3000
    // After the pause: one call, then the steady rate, no burst.
    expect([l.reserve('b'), l.reserve('b')]).toEqual([0, 500])
  })
})
