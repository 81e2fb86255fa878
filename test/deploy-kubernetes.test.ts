/**
 * The Kubernetes manifests of deploy/kubernetes (issue 13), checked offline: `kubectl --dry-run`
 * and kustomize need a cluster or a binary this machine does not have.
 *
 * - every YAML document is a Kubernetes object whose apiVersion/kind has a model in
 *   kubernetes-models or @kubernetes-models/prometheus-operator (an unknown kind fails), and
 *   passes that model's validate() (the bundled OpenAPI schemas: types, required fields,
 *   patterns);
 * - the schemas accept fields they do not know, as a lenient API server would; a strict one
 *   (kubectl's default field validation) refuses them, so every object is also type-checked by
 *   the TypeScript compiler against the models' generated interfaces, whose excess-property
 *   check catches a misspelt field (`readinesProbe`);
 * - the kustomizations are resolved as kustomize does for the fields they use (resources,
 *   namespace, images), for each variant (bundled Redis, managed Redis, prometheus-adapter);
 * - cross-references: selectors, ports, probes, the HPA's target and metric, the PDB, the
 *   ServiceMonitor, Secrets, volumes, the grace period against the engine's shutdown bound;
 * - the PrometheusRule is the shipped rule files, and prometheus-adapter's queries are valid
 *   PromQL (promtool, on a temporary rule file), on the metric the HPA reads;
 * - the pod, as far as it runs without a cluster: a real redis-server on the shipped redis.conf,
 *   and the engine container's command and environment (ports, host and paths made local)
 *   started as a real process against it: its probes answer, /learn takes the admin token and is
 *   kept in Redis, and SIGTERM drains it to exit 0 within its own bound.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';
import { parse, parseAllDocuments } from 'yaml';
import { OPTIONS } from '../src/config';
import { ALERT_RULES, RECORDING_RULES, REPO_ROOT } from './helpers/monitoring-files';
import { runTool } from './helpers/run-tool';
import { requireBuilt, requireTool } from './helpers/requirements';
import { requireRedis, startRedis, type RedisServer } from './helpers/redis';
import { freePort, startChild, stopChild, waitReady, type Child } from '../bench/lib/procs';
import { request } from '../bench/lib/request';

const promtool = requireTool('promtool');
const redisServer = requireRedis();
const builtCli = requireBuilt(path.join('src', 'cli', 'main.js'));

const K8S_DIR = path.join(REPO_ROOT, 'deploy', 'kubernetes');
const rel = (file: string) => path.relative(REPO_ROOT, file);

/** YAML files under deploy/kubernetes that are not Kubernetes objects, and what they are. */
const NOT_OBJECTS: Record<string, string> = {
  'prometheus-adapter/values.yaml': 'Helm values of the prometheus-adapter chart',
};
/** The kustomizations one applies (the others are their parts). */
const ROOTS = ['.', 'overlays/managed-redis', 'prometheus-adapter'];
/** The only kustomization fields the resolver below implements. */
const KUSTOMIZATION_FIELDS = ['apiVersion', 'kind', 'namespace', 'resources', 'images'];

// ---------------------------------------------------------------------------------------------
// Reading the manifests
// ---------------------------------------------------------------------------------------------

// The manifests' shapes are the Kubernetes API's; the checks below walk them freely.
type K8sObject = any;

interface Doc {
  file: string;
  index: number;
  obj: K8sObject;
}

function yamlFilesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const file = path.join(dir, name);
    if (statSync(file).isDirectory()) out.push(...yamlFilesUnder(file));
    else if (/\.ya?ml$/.test(name)) out.push(file);
  }
  return out;
}

const isKustomization = (file: string) => path.basename(file) === 'kustomization.yaml';

/** Every document of a YAML file, parsed strictly (a syntax error or duplicate key throws). */
function docsOf(file: string): Doc[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'), { uniqueKeys: true });
  const out: Doc[] = [];
  docs.forEach((d, index) => {
    if (d.errors.length) throw new Error(`${rel(file)} document ${index}: ${d.errors.map((e) => e.message).join('; ')}`);
    const obj = d.toJS();
    if (obj !== null && obj !== undefined) out.push({ file, index, obj });
  });
  return out;
}

const allYaml = yamlFilesUnder(K8S_DIR);
const manifestFiles = allYaml.filter((f) => !isKustomization(f) && !(path.relative(K8S_DIR, f) in NOT_OBJECTS));
const objectDocs: Doc[] = manifestFiles.flatMap(docsOf);
const where = (d: Doc) => `${rel(d.file)}#${d.index} ${d.obj?.kind ?? '?'}/${d.obj?.metadata?.name ?? '?'}`;

// ---------------------------------------------------------------------------------------------
// Models: apiVersion/kind → the module of kubernetes-models that has the class and interface
// ---------------------------------------------------------------------------------------------

function modelModule(apiVersion: string, kind: string): string | null {
  if (!/^[A-Z][A-Za-z0-9]*$/.test(kind)) return null;
  if (apiVersion === 'v1') return `kubernetes-models/v1/${kind}`;
  const m = /^([a-z0-9.-]+)\/(v\d+(?:(?:alpha|beta)\d+)?)$/.exec(apiVersion);
  if (!m) return null;
  const [, group, version] = m;
  if (group === 'monitoring.coreos.com') return `@kubernetes-models/prometheus-operator/${group}/${version}/${kind}`;
  return `kubernetes-models/${group}/${version}/${kind}`;
}

/** The model class of an object, or null when the packages have none for its apiVersion/kind. */
async function modelClass(obj: K8sObject): Promise<(new (data: unknown) => { validate(): void }) | null> {
  const spec = typeof obj?.apiVersion === 'string' && typeof obj?.kind === 'string' ? modelModule(obj.apiVersion, obj.kind) : null;
  if (!spec) return null;
  // ESM-only packages: loaded with import() (their `exports` have no require condition).
  const load = (s: string): Promise<Record<string, unknown>> => import(s);
  try {
    const mod = await load(spec);
    const cls = mod[obj.kind] as (new (data: unknown) => { validate(): void }) | undefined;
    return typeof cls === 'function' ? cls : null;
  } catch {
    return null;
  }
}

async function schemaErrors(obj: K8sObject): Promise<string | null> {
  const cls = await modelClass(obj);
  if (!cls) return `no model for apiVersion ${obj?.apiVersion} kind ${obj?.kind}`;
  try {
    new cls(obj).validate();
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * TypeScript diagnostics of `const x: I<Kind> = <object>` for each object: the excess-property
 * check reports fields the generated interfaces (the API's OpenAPI) do not have.
 */
function strictFieldErrors(objs: Array<{ name: string; obj: K8sObject }>): string[] {
  // Inside node_modules so that the packages resolve from the file; removed afterwards.
  const cacheDir = path.join(REPO_ROOT, 'node_modules', '.cache');
  mkdirSync(cacheDir, { recursive: true });
  const dir = mkdtempSync(path.join(cacheDir, 'k8s-fields-'));
  try {
    const lines: string[] = [];
    const names: string[] = [];
    objs.forEach(({ name, obj }, i) => {
      const spec = modelModule(obj.apiVersion, obj.kind);
      if (!spec) throw new Error(`${name}: no model`);
      lines.push(`import type { I${obj.kind} as T${i} } from ${JSON.stringify(spec)};`);
      lines.push(`export const o${i}: T${i} = ${JSON.stringify(obj)};`);
      names.push(name);
    });
    const file = path.join(dir, 'manifests.mts');
    writeFileSync(file, lines.join('\n') + '\n');
    const program = ts.createProgram([file], {
      strict: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      skipLibCheck: true,
      types: [],
    });
    const source = program.getSourceFile(file)!;
    return ts.getPreEmitDiagnostics(program).map((d) => {
      const text = ts.flattenDiagnosticMessageText(d.messageText, '\n');
      if (d.file !== source || d.start === undefined) return text;
      const line = source.getLineAndCharacterOfPosition(d.start).line;
      // Line 2k is object k's import, 2k+1 its value.
      return `${names[Math.floor(line / 2)] ?? `line ${line + 1}`}: ${text}`;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// kustomize, for the fields used here
// ---------------------------------------------------------------------------------------------

const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'PersistentVolume', 'StorageClass']);

function kustomizationOf(dir: string): K8sObject {
  const file = path.join(dir, 'kustomization.yaml');
  if (!existsSync(file)) throw new Error(`${rel(dir)} has no kustomization.yaml`);
  return parse(readFileSync(file, 'utf8'));
}

/** The objects `kustomize build dir` gives, and every file it read. */
function build(dir: string, read: Set<string> = new Set()): K8sObject[] {
  const k = kustomizationOf(dir);
  read.add(path.join(dir, 'kustomization.yaml'));
  const unknown = Object.keys(k).filter((key) => !KUSTOMIZATION_FIELDS.includes(key));
  if (unknown.length) throw new Error(`${rel(dir)}/kustomization.yaml uses ${unknown.join(', ')}, which this test does not resolve`);
  const objs: K8sObject[] = [];
  for (const r of k.resources ?? []) {
    const target = path.resolve(dir, r);
    if (!existsSync(target)) throw new Error(`${rel(dir)}/kustomization.yaml: resource ${r} does not exist`);
    // kustomize's load restrictor: nothing outside the kustomization's own folder, except other
    // kustomizations (directories).
    if (statSync(target).isDirectory()) objs.push(...build(target, read));
    else {
      if (path.relative(dir, target).startsWith('..')) throw new Error(`${rel(dir)}: file ${r} is outside the kustomization's folder`);
      read.add(target);
      objs.push(...docsOf(target).map((d) => structuredClone(d.obj)));
    }
  }
  if (k.namespace) for (const o of objs) if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
  for (const image of k.images ?? []) {
    for (const o of objs) {
      for (const c of podSpecOf(o)?.containers ?? []) {
        const [name] = String(c.image).split(':');
        if (name === image.name) c.image = `${image.newName ?? name}${image.newTag ? `:${image.newTag}` : ''}`;
      }
    }
  }
  return objs;
}

function podSpecOf(o: K8sObject): K8sObject | undefined {
  return o?.spec?.template?.spec;
}

const variants = Object.fromEntries(ROOTS.map((r) => [r, build(path.join(K8S_DIR, r))])) as Record<string, K8sObject[]>;
const full = variants['.']!;
const find = (objs: K8sObject[], kind: string, name: string): K8sObject => {
  const o = objs.find((x) => x.kind === kind && x.metadata?.name === name);
  if (!o) throw new Error(`no ${kind} ${name}`);
  return o;
};
const matches = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels?.[k] === v);

const deployment = find(full, 'Deployment', 'tradeflow');
const pod = podSpecOf(deployment);
const engine = pod.containers.find((c: K8sObject) => c.name === 'tradeflow');
const envOf = (name: string) => engine.env.find((e: K8sObject) => e.name === name);
const podLabels = deployment.spec.template.metadata.labels;
const containerPortNames = new Set<string>(engine.ports.map((p: K8sObject) => p.name));
const containerPortNumbers = new Set<number>(engine.ports.map((p: K8sObject) => p.containerPort));

// ---------------------------------------------------------------------------------------------

describe('every manifest in deploy/kubernetes', () => {
  it('is a YAML document of a known apiVersion and kind that passes its model\'s schema validation', async () => {
    expect(objectDocs.length).toBeGreaterThan(10);
    const failures: string[] = [];
    for (const d of objectDocs) {
      const err = await schemaErrors(d.obj);
      if (err) failures.push(`${where(d)}: ${err}`);
    }
    console.log(`deploy-kubernetes: ${objectDocs.length} objects in ${manifestFiles.length} files validated: ${[...new Set(objectDocs.map((d) => `${d.obj.apiVersion} ${d.obj.kind}`))].sort().join(', ')}`);
    expect(failures).toEqual([]);
  });

  it('has only fields the API knows (TypeScript checks each object against the models\' interfaces)', () => {
    const errors = strictFieldErrors(objectDocs.map((d) => ({ name: where(d), obj: d.obj })));
    expect(errors).toEqual([]);
  }, 60_000);

  it('would catch an unknown kind, a wrong type and a misspelt field (controls)', async () => {
    expect(await schemaErrors({ apiVersion: 'apps/v1', kind: 'Deploymnet', metadata: { name: 'x' } })).toMatch(/no model/);
    expect(await schemaErrors({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'x' } })).toMatch(/no model/);
    const broken = structuredClone(deployment);
    podSpecOf(broken).containers[0].ports[0].containerPort = 'eight thousand';
    expect(await schemaErrors(broken)).toMatch(/containerPort must be integer/);
    const misspelt = structuredClone(deployment);
    const c = podSpecOf(misspelt).containers[0];
    c.readinesProbe = c.readinessProbe;
    delete c.readinessProbe;
    expect(await schemaErrors(misspelt), 'the schemas alone accept unknown fields').toBeNull();
    const monitor = structuredClone(find(full, 'ServiceMonitor', 'tradeflow'));
    monitor.spec.endpoints[0].metricPath = monitor.spec.endpoints[0].path;
    const errors = strictFieldErrors([
      { name: 'misspelt', obj: misspelt },
      { name: 'monitor', obj: monitor },
      { name: 'intact', obj: deployment },
    ]);
    expect(errors).toHaveLength(2);
    expect(errors[0]).toMatch(/^misspelt: .*readinesProbe.* does not exist in type 'IContainer'/);
    expect(errors[1]).toMatch(/^monitor: .*metricPath.* does not exist/);
  }, 60_000);

  it('is part of a kustomization, and every file a kustomization names exists', () => {
    const read = new Set<string>();
    for (const r of ROOTS) build(path.join(K8S_DIR, r), read);
    const unread = allYaml.filter((f) => !read.has(f) && !(path.relative(K8S_DIR, f) in NOT_OBJECTS));
    expect(unread.map(rel)).toEqual([]);
    for (const [file, what] of Object.entries(NOT_OBJECTS)) expect(existsSync(path.join(K8S_DIR, file)), what).toBe(true);
  });

  it('gives each variant unique objects, in the namespace tradeflow (the adapter\'s rule in monitoring)', () => {
    for (const [root, objs] of Object.entries(variants)) {
      const keys = objs.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`);
      expect(new Set(keys).size, root).toBe(keys.length);
      const ns = root === 'prometheus-adapter' ? 'monitoring' : 'tradeflow';
      for (const o of objs) if (o.kind !== 'Namespace') expect(o.metadata.namespace, `${root}: ${o.kind}/${o.metadata.name}`).toBe(ns);
    }
    expect(find(full, 'Namespace', 'tradeflow')).toBeDefined();
  });
});

describe('the engine Deployment', () => {
  it('selects its own pods and is labelled as they are', () => {
    expect(matches(deployment.spec.selector.matchLabels, podLabels)).toBe(true);
    expect(matches(deployment.spec.selector.matchLabels, deployment.metadata.labels)).toBe(true);
  });

  it('probes readiness, liveness and start-up on the engine\'s own paths and a declared port', () => {
    expect(engine.readinessProbe.httpGet.path).toBe('/monitoring/health/readiness');
    expect(engine.startupProbe.httpGet.path).toBe('/monitoring/health/readiness');
    expect(engine.livenessProbe.httpGet.path).toBe('/monitoring/health/liveness');
    for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
      const port = engine[probe].httpGet.port;
      expect(typeof port === 'string' ? containerPortNames.has(port) : containerPortNumbers.has(port), `${probe} port ${port}`).toBe(true);
    }
    // The engine listens where the container port says.
    expect(containerPortNumbers.has(Number(envOf('PORT').value))).toBe(true);
    expect(envOf('HOST').value).toBe('0.0.0.0');
  });

  it('has the probes monitoring/README.md shows', () => {
    const readme = readFileSync(path.join(REPO_ROOT, 'monitoring', 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('\n## Kubernetes'));
    const shown = parse(/```yaml\n([\s\S]*?)```/.exec(section)![1]!).containers[0];
    for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe']) expect(shown[probe], probe).toEqual(engine[probe]);
    expect(shown.ports).toEqual(engine.ports.map(({ name, containerPort }: K8sObject) => ({ name, containerPort })));
  });

  it('gives the drain its time: grace period > preStop pause + SHUTDOWN_TIMEOUT_MS', () => {
    const sleep = engine.lifecycle.preStop.sleep?.seconds;
    expect(sleep, 'a preStop pause').toBeGreaterThan(0);
    const option = OPTIONS.find((o) => o.env === 'SHUTDOWN_TIMEOUT_MS')!;
    const shutdownMs = envOf('SHUTDOWN_TIMEOUT_MS') ? Number(envOf('SHUTDOWN_TIMEOUT_MS').value) : Number(option.default(2));
    expect(shutdownMs).toBeGreaterThan(0);
    const grace = pod.terminationGracePeriodSeconds;
    expect(grace, `grace ${grace} s, preStop ${sleep} s, shutdown bound ${shutdownMs} ms`).toBeGreaterThan(sleep + shutdownMs / 1000);
    // The readiness probe notices the drain before the grace period is half gone.
    expect(engine.readinessProbe.periodSeconds * engine.readinessProbe.failureThreshold).toBeLessThan(grace / 2);
  });

  it('takes ADMIN_TOKEN and REDIS_URL from Secrets, the latter naming the Redis Service', () => {
    const admin = envOf('ADMIN_TOKEN');
    expect(admin.value).toBeUndefined();
    expect(admin.valueFrom.secretKeyRef).toMatchObject({ name: expect.any(String), key: expect.any(String) });
    const redis = envOf('REDIS_URL').valueFrom.secretKeyRef;
    const secret = find(full, 'Secret', redis.name);
    const url = new URL(secret.stringData[redis.key]);
    expect(url.protocol).toMatch(/^rediss?:$/);
    const service = find(full, 'Service', url.hostname);
    expect(service.spec.ports.map((p: K8sObject) => p.port)).toContain(Number(url.port || 6379));
    // The managed variant has no Redis of its own and leaves that Secret to the user.
    const managed = variants['overlays/managed-redis']!;
    expect(managed.filter((o) => o.metadata.labels?.['app.kubernetes.io/name'] === 'redis')).toEqual([]);
    expect(managed.find((o) => o.kind === 'Secret')).toBeUndefined();
    expect(find(managed, 'Deployment', 'tradeflow')).toEqual(deployment);
  });

  it('sets only settings the engine has (src/config.ts OPTIONS, SPEC §7\'s REDIS_URL and FEEDBACK_STREAM)', () => {
    const known = new Set([...OPTIONS.map((o) => o.env), 'REDIS_URL', 'FEEDBACK_STREAM']);
    expect(engine.env.map((e: K8sObject) => e.name).filter((n: string) => !known.has(n))).toEqual([]);
  });

  it('keeps STATE_DIR on a pod volume, and the root filesystem read-only', () => {
    const mount = engine.volumeMounts.find((m: K8sObject) => m.mountPath === envOf('STATE_DIR').value);
    expect(mount, 'STATE_DIR is a volume mount').toBeDefined();
    const volume = pod.volumes.find((v: K8sObject) => v.name === mount.name);
    expect(volume.emptyDir ?? volume.persistentVolumeClaim, 'an emptyDir or a PVC').toBeDefined();
    expect(engine.securityContext.readOnlyRootFilesystem).toBe(true);
    for (const m of engine.volumeMounts) expect(pod.volumes.map((v: K8sObject) => v.name), m.name).toContain(m.name);
  });

  it('requests the CPUs its threads use and bounds its memory', () => {
    const cpu = engine.resources.requests.cpu;
    const cores = /m$/.test(cpu) ? Number(cpu.slice(0, -1)) / 1000 : Number(cpu);
    // One HTTP thread plus WORKERS inference workers (os.cpus() would see the node's cores).
    expect(Number(envOf('WORKERS').value) + 1).toBeLessThanOrEqual(cores);
    expect(engine.resources.limits.memory).toBeDefined();
    expect(engine.resources.requests.memory).toBe(engine.resources.limits.memory);
  });

  it('runs `tradeflow serve` with node itself, as the package\'s bin and the Dockerfile\'s CMD say', () => {
    const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8'));
    expect(engine.command).toEqual(['node', pkg.bin.tradeflow, 'serve']);
    const dockerfile = readFileSync(path.join(REPO_ROOT, 'deploy', 'docker', 'Dockerfile'), 'utf8');
    const cmd = /^CMD (\[.*\])$/m.exec(dockerfile);
    expect(JSON.parse(cmd![1]!)).toEqual(engine.command);
    // Everything the Dockerfile copies from the repository exists.
    for (const m of dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) for (const src of m[1]!.split(/\s+/)) expect(existsSync(path.join(REPO_ROOT, src)), src).toBe(true);
  });

  it('runs a pinned image (kustomize images) in every variant', () => {
    for (const [root, objs] of Object.entries(variants)) {
      for (const o of objs) for (const c of podSpecOf(o)?.containers ?? []) expect(c.image, `${root}: ${o.kind}/${o.metadata.name}`).toMatch(/^[\w./-]+:[\w.-]*\d[\w.-]*$/);
    }
  });
});

describe('Service, HPA, PDB and ServiceMonitor of the engine', () => {
  const service = find(full, 'Service', 'tradeflow');
  const hpa = find(full, 'HorizontalPodAutoscaler', 'tradeflow');
  const pdb = find(full, 'PodDisruptionBudget', 'tradeflow');
  const monitor = find(full, 'ServiceMonitor', 'tradeflow');

  it('the Service selects the engine pods on a port they declare', () => {
    expect(matches(service.spec.selector, podLabels)).toBe(true);
    for (const p of service.spec.ports) expect(containerPortNames.has(p.targetPort) || containerPortNumbers.has(p.targetPort), `targetPort ${p.targetPort}`).toBe(true);
  });

  it('the HPA scales the Deployment on each pod\'s ml_queue_depth (autoscaling/v2)', () => {
    expect(hpa.apiVersion).toBe('autoscaling/v2');
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: deployment.apiVersion, kind: 'Deployment', name: deployment.metadata.name });
    const queue = hpa.spec.metrics.find((m: K8sObject) => m.type === 'Pods');
    expect(queue.pods.metric.name).toBe('ml_queue_depth');
    expect(queue.pods.target.type).toBe('AverageValue');
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2);
    expect(hpa.spec.maxReplicas).toBeGreaterThan(hpa.spec.minReplicas);
    expect(deployment.spec.replicas).toBeGreaterThanOrEqual(hpa.spec.minReplicas);
  });

  it('the PDB covers the engine pods and leaves some serving at the HPA\'s minimum', () => {
    expect(pdb.apiVersion).toBe('policy/v1');
    expect(matches(pdb.spec.selector.matchLabels, podLabels)).toBe(true);
    const allowed = pdb.spec.maxUnavailable ?? hpa.spec.minReplicas - pdb.spec.minAvailable;
    expect(allowed).toBeGreaterThanOrEqual(1);
    expect(allowed).toBeLessThan(hpa.spec.minReplicas);
  });

  it('the ServiceMonitor scrapes the Service\'s port at /monitoring/metrics every 10s as job ml-api', () => {
    expect(matches(monitor.spec.selector.matchLabels, service.metadata.labels)).toBe(true);
    const [endpoint] = monitor.spec.endpoints;
    expect(service.spec.ports.map((p: K8sObject) => p.name)).toContain(endpoint.port);
    expect(endpoint).toMatchObject({ path: '/monitoring/metrics', interval: '10s' });
    expect(endpoint.relabelings).toContainEqual({ action: 'replace', targetLabel: 'job', replacement: 'ml-api' });
  });

  it('the PrometheusRule holds exactly the shipped alert and recording rules', () => {
    const rule = find(full, 'PrometheusRule', 'tradeflow');
    const shipped = [ALERT_RULES, RECORDING_RULES].flatMap((f) => parse(readFileSync(f, 'utf8')).groups);
    expect(rule.spec.groups, 'regenerate with: node deploy/kubernetes/sync-prometheusrule.mjs').toEqual(shipped);
  });
});

describe('the bundled Redis', () => {
  const sts = find(full, 'StatefulSet', 'tradeflow-redis');
  const spec = podSpecOf(sts);
  const redis = spec.containers[0];
  const redisLabels = sts.spec.template.metadata.labels;

  it('runs with an append-only file fsynced on every write, on its persistent volume, never evicting', () => {
    const configVolume = spec.volumes.find((v: K8sObject) => v.configMap);
    const config = find(full, 'ConfigMap', configVolume.configMap.name);
    const mount = redis.volumeMounts.find((m: K8sObject) => m.name === configVolume.name);
    const file = redis.command.find((a: string) => a.startsWith(mount.mountPath + '/'));
    const conf = config.data[path.posix.basename(file)] as string;
    const setting = (key: string) => conf.split('\n').map((l) => l.trim().split(/\s+/)).find((w) => w[0] === key)?.slice(1).join(' ');
    expect(setting('appendonly')).toBe('yes');
    expect(setting('appendfsync')).toBe('always');
    expect(setting('maxmemory-policy')).toBe('noeviction');
    const claim = sts.spec.volumeClaimTemplates[0];
    const dataMount = redis.volumeMounts.find((m: K8sObject) => m.name === claim.metadata.name);
    expect(setting('dir')).toBe(dataMount.mountPath);
    expect(claim.spec.accessModes).toEqual(['ReadWriteOnce']);
  });

  it('is reached through its Services, only from the engine pods', () => {
    const headless = find(full, 'Service', sts.spec.serviceName);
    expect(headless.spec.clusterIP).toBe('None');
    const redisPorts = new Set(redis.ports.map((p: K8sObject) => p.name));
    for (const s of full.filter((o) => o.kind === 'Service' && matches(o.spec.selector, redisLabels))) {
      for (const p of s.spec.ports) expect(redisPorts.has(p.targetPort), `${s.metadata.name} ${p.targetPort}`).toBe(true);
    }
    const policy = find(full, 'NetworkPolicy', 'tradeflow-redis');
    expect(matches(policy.spec.podSelector.matchLabels, redisLabels)).toBe(true);
    expect(matches(policy.spec.ingress[0].from[0].podSelector.matchLabels, podLabels)).toBe(true);
    expect(redisPorts.has(policy.spec.ingress[0].ports[0].port)).toBe(true);
    expect(matches(sts.spec.selector.matchLabels, redisLabels)).toBe(true);
  });
});

describe('prometheus-adapter\'s rule for the HPA', () => {
  const configMap = find(variants['prometheus-adapter']!, 'ConfigMap', 'prometheus-adapter');
  const rules = parse(configMap.data['config.yaml']).rules as K8sObject[];
  const values = parse(readFileSync(path.join(K8S_DIR, 'prometheus-adapter', 'values.yaml'), 'utf8'));
  let dir: string | undefined;

  beforeAll(() => {
    dir = mkdtempSync(path.join(REPO_ROOT, 'node_modules', '.cache', 'adapter-rules-'));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('is the same in the ConfigMap and the Helm values, and serves the metric the HPA reads', () => {
    expect(values.rules.custom).toEqual(rules);
    const hpa = find(full, 'HorizontalPodAutoscaler', 'tradeflow');
    const metric = hpa.spec.metrics.find((m: K8sObject) => m.type === 'Pods').pods.metric.name;
    const rule = rules.find((r) => r.name.as === metric);
    expect(rule, `a rule exposing ${metric}`).toBeDefined();
    expect(rule.seriesQuery).toMatch(new RegExp(`^${metric}\\{`));
    expect(rule.resources.overrides).toEqual({ namespace: { resource: 'namespace' }, pod: { resource: 'pod' } });
  });

  it.skipIf(promtool.skip)('has a seriesQuery and metricsQuery that are valid PromQL (promtool check rules)', () => {
    // The adapter fills the template in per request: <<.Series>> is the series' name,
    // <<.LabelMatchers>> selects the namespace and the pods asked for, <<.GroupBy>> is "pod".
    const fill = (q: string) => q.replaceAll('<<.Series>>', 'ml_queue_depth').replaceAll('<<.LabelMatchers>>', 'namespace="tradeflow",pod=~"tradeflow-a|tradeflow-b"').replaceAll('<<.GroupBy>>', 'pod');
    const exprs = rules.flatMap((r) => [r.seriesQuery, fill(r.metricsQuery)]);
    for (const e of exprs) expect(e, 'no template left').not.toMatch(/<<|>>/);
    const file = path.join(dir!, 'adapter.rules.yml');
    writeFileSync(file, JSON.stringify({ groups: [{ name: 'adapter', rules: exprs.map((expr, i) => ({ record: `adapter:query:${i}`, expr })) }] }));
    const r = runTool(promtool.get(), ['check', 'rules', file]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain(`SUCCESS: ${exprs.length} rules found`);
    // Control: a broken query is refused.
    writeFileSync(file, JSON.stringify({ groups: [{ name: 'adapter', rules: [{ record: 'x', expr: fill('max by (<<.GroupBy>>) (avg_over_time(<<.Series>>{<<.LabelMatchers>>}[1m])') }] }] }));
    expect(runTool(promtool.get(), ['check', 'rules', file]).code).not.toBe(0);
  });
});

describe.skipIf(redisServer.skip || builtCli.skip)('the pod, run locally: the container\'s command and environment against a real Redis', () => {
  const redisSts = find(full, 'StatefulSet', 'tradeflow-redis');
  const conf: string = find(full, 'ConfigMap', 'tradeflow-redis').data['redis.conf'];
  let redis: Child | undefined;
  let redisDir: string | undefined;
  let engineProc: Child | undefined;
  let stream: RedisServer | undefined;

  afterAll(async () => {
    if (engineProc && !engineProc.exited) await stopChild(engineProc, 10_000);
    if (redis && !redis.exited) await stopChild(redis, 5000);
    await stream?.destroy();
    if (redisDir) rmSync(redisDir, { recursive: true, force: true });
  }, 30_000);

  it('redis-server runs the shipped redis.conf with AOF fsynced on every write and no eviction', async () => {
    const binary = redisServer.get();
    redisDir = mkdtempSync(path.join(REPO_ROOT, 'node_modules', '.cache', 'redis-conf-'));
    const port = await freePort();
    // The file as the pod mounts it, with only where it writes and listens made local: Redis
    // changes to `dir` as it reads that line (the pod's /data is the volume), and the command
    // line's --port/--bind come after the file's lines.
    expect(conf).toMatch(/^dir \/data$/m);
    writeFileSync(path.join(redisDir, 'redis.conf'), conf.replace(/^dir \/data$/m, `dir ${redisDir}`));
    expect(redisSts.spec.template.spec.containers[0].command).toEqual(['redis-server', '/etc/redis/redis.conf']);
    redis = startChild('redis-conf', binary, [path.join(redisDir, 'redis.conf'), '--port', String(port), '--bind', '127.0.0.1'], { capture: true });
    const cli = async (...args: string[]) => {
      const { createClient } = await import('redis');
      const c = createClient({ url: `redis://127.0.0.1:${port}` });
      await c.connect();
      try {
        return await c.sendCommand(args);
      } finally {
        await c.quit();
      }
    };
    let pong: unknown = null;
    for (let i = 0; i < 200 && pong !== 'PONG' && !redis.exited; i++) {
      pong = await cli('PING').catch(() => null);
      if (pong !== 'PONG') await new Promise((r) => setTimeout(r, 50));
    }
    expect(pong, redis.output()).toBe('PONG');
    // CONFIG GET answers a map (RESP3) or a flat [name, value] list (RESP2).
    const configGet = async (key: string) => {
      const r = (await cli('CONFIG', 'GET', key)) as Record<string, string> | string[];
      return Array.isArray(r) ? r[1] : r[key];
    };
    expect(await configGet('appendonly')).toBe('yes');
    expect(await configGet('appendfsync')).toBe('always');
    expect(await configGet('maxmemory-policy')).toBe('noeviction');
    expect(await configGet('maxmemory')).toBe(String(768 * 1024 * 1024));
    expect(await configGet('dir')).toBe(redisDir);
    await cli('XADD', 'probe', '*', 'k', 'v');
    expect(readdirSync(redisDir).some((f) => /appendonly/.test(f)), 'the append-only file is written').toBe(true);
  }, 30_000);

  it('the engine container starts, answers its probes, takes /learn with the token, and drains on SIGTERM to exit 0', async () => {
    stream = await startRedis(redisServer.get());
    const port = await freePort();
    const stateDir = mkdtempSync(path.join(REPO_ROOT, 'node_modules', '.cache', 'pod-state-'));
    const token = 'test-admin-token';
    // The container's env, with values from Secrets filled in and the node-specific parts local.
    const env: Record<string, string> = {};
    for (const e of engine.env) env[e.name] = e.value ?? '';
    Object.assign(env, { PORT: String(port), HOST: '127.0.0.1', STATE_DIR: stateDir, REDIS_URL: stream.url, ADMIN_TOKEN: token, LOG_LEVEL: 'warn' });
    const [cmd, script, ...args] = engine.command;
    expect(cmd).toBe('node');
    engineProc = startChild('pod-engine', process.execPath, [path.join(REPO_ROOT, script), ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env }, capture: true });
    try {
      // The start-up probe's budget (period x failures) is the manifest's promise.
      await waitReady(engineProc, port, engine.startupProbe.httpGet.path, engine.startupProbe.periodSeconds * engine.startupProbe.failureThreshold * 1000);
      expect((await request(port, 'GET', engine.livenessProbe.httpGet.path)).status).toBe(200);
      expect((await request(port, 'GET', engine.readinessProbe.httpGet.path)).status).toBe(200);
      const row = Array.from({ length: 16 }, (_, i) => i / 16);
      const body = JSON.stringify({ features: row, label: 1 });
      const json = { 'content-type': 'application/json' };
      expect((await request(port, 'POST', '/learn', Buffer.from(body), json)).status, 'no token').toBe(401);
      const learned = await request(port, 'POST', '/learn', Buffer.from(body), { ...json, authorization: `Bearer ${token}` });
      expect(learned.status, learned.body.toString('utf8')).toBe(202);
      expect(Number(await stream.command(['XLEN', env.FEEDBACK_STREAM!]))).toBe(1);

      // Kubernetes: the preStop pause, then SIGTERM. The engine drains and exits 0; 3 would mean
      // it reached its SHUTDOWN_TIMEOUT_MS bound, which the grace period is sized on.
      engineProc.proc.kill('SIGTERM');
      await engineProc.exitPromise;
      expect(engineProc.exitCode, engineProc.output()).toBe(0);
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
  }, 180_000);
});
