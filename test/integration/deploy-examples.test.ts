/**
 * The scale-out deployment examples are real configs, not prose: the docker-compose profile
 * `scale` (HAProxy with PROXY v2 in front of two Moat instances and Redis) passes
 * `docker-compose config` and `haproxy -c`, the Kubernetes manifests hold together (every resource
 * the kustomization names exists, probes point at the admin endpoint, the pod outlives Moat's
 * drain), and both policies load once their certificates and password files exist.
 * docker-compose and haproxy come from Debian's packages, which .ci/run installs; on a machine
 * without them those checks are skipped with a notice, never under CI=true.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { parse, parseAllDocuments } from 'yaml'
import { makeDevCerts } from '../../src/certs.js'
import { loadConfig } from '../../src/config/load.js'

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
      'Deployment/moat', 'Deployment/moat-redis', 'Namespace/moat', 'PodDisruptionBudget/moat', 'Service/moat', 'Service/moat-redis',
    ])
    const labels = find('Deployment', 'moat').spec.template.metadata.labels
    expect(find('Service', 'moat').spec.selector).toEqual(labels)
    expect(find('PodDisruptionBudget', 'moat').spec.selector.matchLabels).toEqual(labels)
    expect(find('Deployment', 'moat').spec.replicas).toBeGreaterThanOrEqual(2)
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
