/**
 * The deployment examples are real configs, not prose: the compose stack gives Moat longer to stop
 * than it drains and checks its health with what the image has (node, on /healthz); the
 * docker-compose profile `scale` (HAProxy with PROXY v2 in front of two Moat instances and Redis)
 * passes `docker-compose config` and `haproxy -c`; the Kubernetes manifests hold together (every
 * resource the kustomization names exists, probes point at the admin endpoint, the pod outlives
 * Moat's drain, the NetworkPolicies select the pods they mean); every shipped Moat config passes
 * `moat check --no-files` as it is, and the policies load once their certificates and password
 * files exist.
 * docker-compose and haproxy come from Debian's packages, which .ci/run installs; on a machine
 * without them those checks are skipped with a notice, never under CI=true.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { parse, parseAllDocuments } from 'yaml'
import { makeDevCerts } from '../../src/certs.js'
import { ConfigFiles } from '../../src/config/file-reads.js'
import { loadConfig } from '../../src/config/load.js'
import { runCli } from '../helpers/cli.js'
import { MoatProcess } from '../helpers/moat-process.js'
import { freePort } from '../helpers/mosquitto.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const k8s = join(root, 'deploy/kubernetes')

function tool(name: string): boolean {
  const found = spawnSync('sh', ['-c', `command -v ${name}`]).status === 0
  if (!found && process.env.CI === 'true') throw new Error(`CI=true but ${name} is not installed (.ci/run installs it)`)
  if (!found) console.warn(`${name} not installed: skipping its check (apt-get install ${name})`)
  return found
}

interface Resource { kind: string; metadata: { name: string }; spec?: any }

function manifests(file: string): Resource[] {
  return parseAllDocuments(readFileSync(join(k8s, file), 'utf8')).map((d) => d.toJS() as Resource)
}

const dirs: string[] = []
function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'moat-deploy-'))
  dirs.push(dir)
  return dir
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

/** Every file under `dir` (recursively) whose name ends in .yaml. */
function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => e.isDirectory() ? yamlFiles(join(dir, e.name)) : e.name.endsWith('.yaml') ? [join(dir, e.name)] : [])
}

describe('every shipped Moat config', () => {
  // A Moat config is a mapping with `listeners`; the other YAML files are Kubernetes manifests.
  const configs = [...yamlFiles(join(root, 'deploy')), ...yamlFiles(join(root, 'policies'))]
    .filter((f) => {
      const docs = parseAllDocuments(readFileSync(f, 'utf8'))
      return docs.length === 1 && (docs[0]!.toJS() as Record<string, unknown> | null)?.listeners !== undefined
    })

  it('is found: the compose, scale and Kubernetes policies and the three in policies/', () => {
    expect(configs.map((f) => f.slice(root.length)).sort()).toEqual([
      'deploy/kubernetes/moat.yaml', 'deploy/moat.yaml', 'deploy/scale/moat.yaml', 'policies/example.yaml', 'policies/hardened.yaml', 'policies/minimal.yaml',
    ])
  })

  it.each(configs.map((f) => [f.slice(root.length), f]))('%s passes moat check --no-files, which names the files it did not read', async (_, file) => {
    const result = await runCli(['check', '--config', file!, '--no-files'])
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/: valid without its files \(\d+ listener\(s\), upstream [^)]+\)\n(not read \(--no-files\); check them where they exist:\n( {2}\S+ +\S+\n)+|it names no files\n)$/)
    // What it names are the files a full load would read.
    const files = new ConfigFiles(false)
    loadConfig(file!, files)
    for (const skipped of files.skipped) expect(result.stdout).toContain(skipped.path)
  })
})

describe('the compose stack', () => {
  const compose = parse(readFileSync(join(root, 'docker-compose.yml'), 'utf8')) as { services: Record<string, { stop_grace_period?: string; healthcheck?: { test: string[] }; command?: string[] }> }
  const seconds = (d: string): number => Number(/^(\d+)s$/.exec(d)![1])

  it('gives each Moat longer to stop than its shutdown.gracePeriod, and a healthcheck', () => {
    for (const [name, policy] of [['moat', 'deploy/moat.yaml'], ['moat-a', 'deploy/scale/moat.yaml'], ['moat-b', 'deploy/scale/moat.yaml']] as const) {
      const service = compose.services[name]!
      expect(service.command).toEqual(['--config', `/etc/moat/${policy.slice('deploy/'.length)}`])
      const config = loadConfig(join(root, policy), new ConfigFiles(false))
      expect(seconds(service.stop_grace_period!) * 1000, name).toBeGreaterThan(config.shutdown.gracePeriodMs)
      expect(service.healthcheck!.test.slice(0, 3)).toEqual(['CMD', 'node', '-e'])
      expect(service.healthcheck!.test[3]).toContain(`http://127.0.0.1:${config.admin!.port}/healthz`)
    }
  })

  it('the healthcheck, run with node as the image runs it, passes against a running Moat and fails when Moat is gone', async () => {
    const script = compose.services.moat!.healthcheck!.test[3]!
    const dir = scratch()
    const moat = await MoatProcess.start(dir, 'moat.yaml', {
      listeners: [{ name: 'mqtt', protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
      upstream: { host: '127.0.0.1', port: await freePort() },
      admin: { host: '127.0.0.1', port: 0 },
    })
    const check = (port: number): number | null => spawnSync(process.execPath, ['-e', script.replace(':9464/', `:${port}/`)]).status
    try {
      expect(check(moat.adminPort)).toBe(0)
    } finally {
      await moat.stop()
    }
    expect(check(moat.adminPort)).toBe(1)
  })

  it('passes docker-compose config, with the plain-MQTT override too', () => {
    if (!tool('docker-compose')) return
    for (const files of [['-f', 'docker-compose.yml'], ['-f', 'docker-compose.yml', '-f', 'docker-compose.plain.yml']]) {
      const check = spawnSync('docker-compose', [...files, 'config', '--quiet'], { cwd: root, encoding: 'utf8' })
      expect(check.status, check.stderr).toBe(0)
    }
  })
})

describe('docker-compose profile scale', () => {
  it('adds HAProxy, two Moat instances and Redis; only HAProxy is published', () => {
    if (!tool('docker-compose')) return
    const config = execFileSync('docker-compose', ['--profile', 'scale', '-f', 'docker-compose.yml', 'config'], { cwd: root, encoding: 'utf8' })
    const stack = parse(config) as { services: Record<string, { ports?: unknown[]; profiles?: string[]; command?: string[] }> }
    const scaled = Object.entries(stack.services).filter(([, s]) => s.profiles?.includes('scale')).map(([name]) => name)
    expect(scaled.sort()).toEqual(['haproxy', 'moat-a', 'moat-b', 'redis'])
    for (const name of ['moat-a', 'moat-b', 'redis']) expect(stack.services[name]!.ports).toBeUndefined()
    expect(stack.services['moat-a']!.command).toEqual(['--config', '/etc/moat/scale/moat.yaml'])
    expect(config).toMatch(/published: 9883/)
  })

  it('haproxy accepts its config: TCP mode, PROXY v2 to both instances, health from /readyz', () => {
    const cfg = readFileSync(join(root, 'deploy/scale/haproxy.cfg'), 'utf8')
    expect(cfg.match(/^\s*server moat-[ab] .*send-proxy-v2 check port 9464$/gm)).toHaveLength(2)
    expect(cfg).toMatch(/option httpchk GET \/readyz/)
    if (!tool('haproxy')) return
    const check = spawnSync('haproxy', ['-c', '-f', join(root, 'deploy/scale/haproxy.cfg')], { encoding: 'utf8' })
    expect(check.status, check.stderr).toBe(0)
  })

  it("the instances' policy is a valid config, reading PROXY headers and sharing state through Redis", () => {
    const dir = scratch()
    makeDevCerts({ out: join(dir, 'certs') })
    mkdirSync(join(dir, 'scale'))
    writeFileSync(join(dir, 'scale/moat.yaml'), readFileSync(join(root, 'deploy/scale/moat.yaml'), 'utf8').replaceAll('/certs/', `${dir}/certs/`))
    copyFileSync(join(root, 'deploy/passwd'), join(dir, 'passwd'))
    const config = loadConfig(join(dir, 'scale/moat.yaml'))
    expect(config.listeners[0]).toMatchObject({ protocol: 'mqtts', proxyProtocol: true })
    expect(config.auth.anonymous).toBe(false)
    expect(JSON.stringify((config as unknown as { cluster: unknown }).cluster)).toMatch(/redis:\/\/redis:6379/)
  })
})

describe('Kubernetes manifests', () => {
  const kustomization = parse(readFileSync(join(k8s, 'kustomization.yaml'), 'utf8')) as { resources: string[]; configMapGenerator: Array<{ name: string; files: string[] }> }
  const resources = kustomization.resources.flatMap(manifests)
  const find = (kind: string, name: string): Resource => {
    const found = resources.find((r) => r.kind === kind && r.metadata.name === name)
    if (found === undefined) throw new Error(`no ${kind} ${name}`)
    return found
  }

  it('has a Deployment, a Service, a PodDisruptionBudget and Redis, all selecting the same pods', () => {
    expect(resources.map((r) => `${r.kind}/${r.metadata.name}`).sort()).toEqual([
      'Deployment/moat', 'Deployment/moat-redis', 'Namespace/moat', 'NetworkPolicy/moat-redis', 'PodDisruptionBudget/moat', 'Service/moat', 'Service/moat-redis',
    ])
    const labels = find('Deployment', 'moat').spec.template.metadata.labels
    expect(find('Service', 'moat').spec.selector).toEqual(labels)
    expect(find('PodDisruptionBudget', 'moat').spec.selector.matchLabels).toEqual(labels)
    expect(find('Deployment', 'moat').spec.replicas).toBeGreaterThanOrEqual(2)
  })

  it('lets only Moat\'s pods reach Redis, and ships a policy for the broker\'s namespace that lets only them reach the broker', () => {
    const moatLabels = find('Deployment', 'moat').spec.template.metadata.labels
    const redis = find('NetworkPolicy', 'moat-redis').spec
    expect(redis.podSelector.matchLabels).toEqual(find('Deployment', 'moat-redis').spec.template.metadata.labels)
    expect(redis.policyTypes).toEqual(['Ingress'])
    expect(redis.ingress).toEqual([{ from: [{ podSelector: { matchLabels: moatLabels } }], ports: [{ protocol: 'TCP', port: 6379 }] }])
    // The broker's policy lives in the broker's namespace: outside the kustomization, which would move it into `moat`.
    expect(kustomization.resources).not.toContain('broker-networkpolicy.yaml')
    const [broker] = manifests('broker-networkpolicy.yaml') as Array<Resource & { metadata: { namespace: string } }>
    const policy = parse(readFileSync(join(k8s, 'moat.yaml'), 'utf8')) as { upstream: { host: string; port: number } }
    expect(broker!.kind).toBe('NetworkPolicy')
    expect(broker!.metadata.namespace).toBe(policy.upstream.host.split('.')[1])
    expect(broker!.spec.policyTypes).toEqual(['Ingress'])
    expect(broker!.spec.ingress).toEqual([{
      from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': find('Namespace', 'moat').metadata.name } }, podSelector: { matchLabels: moatLabels } }],
      ports: [{ protocol: 'TCP', port: policy.upstream.port }],
    }])
  })

  it('probes /readyz and /healthz on the admin port, and outlives the drain on SIGTERM', () => {
    const pod = find('Deployment', 'moat').spec.template.spec
    const container = pod.containers[0]
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'admin' })
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'admin' })
    const policy = parse(readFileSync(join(k8s, 'moat.yaml'), 'utf8')) as { admin: { port: number }; shutdown: { gracePeriod: string } }
    expect(container.ports).toContainEqual({ name: 'admin', containerPort: policy.admin.port })
    const graceSeconds = Number.parseInt(policy.shutdown.gracePeriod, 10)
    const preStopSeconds = Number(container.lifecycle.preStop.exec.command[1])
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(graceSeconds + preStopSeconds)
    const mounts = Object.fromEntries(container.volumeMounts.map((m: { name: string; mountPath: string }) => [m.name, m.mountPath]))
    expect(container.args).toEqual(['--config', `${mounts.policy}/moat.yaml`])
  })

  it('the ConfigMap policy is a valid config with its Secrets mounted beside it', () => {
    expect(kustomization.configMapGenerator).toEqual([{ name: 'moat-policy', files: ['moat.yaml'] }])
    const dir = scratch()
    // The pod's layout: /etc/moat/{policy,tls,passwd}.
    const certs = makeDevCerts({ out: join(dir, 'certs') })
    for (const sub of ['policy', 'tls', 'passwd']) mkdirSync(join(dir, sub))
    copyFileSync(certs.server.cert, join(dir, 'tls/tls.crt'))
    copyFileSync(certs.server.key, join(dir, 'tls/tls.key'))
    copyFileSync(join(root, 'deploy/passwd'), join(dir, 'passwd/passwd'))
    copyFileSync(join(k8s, 'moat.yaml'), join(dir, 'policy/moat.yaml'))
    const config = loadConfig(join(dir, 'policy/moat.yaml'))
    expect(config.listeners.map((l) => l.port)).toEqual([8883])
    expect(config.admin).toMatchObject({ host: '0.0.0.0', port: 9464 })
    expect(JSON.stringify((config as unknown as { cluster: unknown }).cluster)).toMatch(/redis:\/\/moat-redis:6379/)
  })
})
