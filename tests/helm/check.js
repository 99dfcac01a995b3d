#!/usr/bin/env node
// Checks what `helm template` rendered for the curfew chart (a multi-document YAML file).
//
//   node check.js validate FILE [--expect Kind ...]
//       every object is validated against its Kubernetes (kubernetes-models) or
//       prometheus-operator (@kubernetes-models/prometheus-operator) schema with validate();
//       an object of an apiVersion/kind neither package knows is an error too. --expect: at least
//       one object of each listed kind must be there.
//   node check.js extract-config FILE DIR
//       writes the curfew.yaml of every ConfigMap that has one to DIR/<configmap name>.yaml.
//   node check.js pod FILE --style classic|native --config-change rollout|reload [--no-prestop]
//                [--kube-version V] [--no-hold] [--no-app-prestop] [--sized] [--no-run-as-user]
//                [--drain-shorter-ok]
//       every workload whose pod runs curfew has it wired as the chart promises: sidecar style
//       and start/stop order (classic: curfew first with a postStart wait for /readyz; native:
//       init container with restartPolicy Always and a /readyz startup probe; the app's preStop
//       matching curfew's drain), preStop as the sleep action from Kubernetes 1.30 (V, default
//       helm's 1.32.0), probes on the admin port, admin listening on every address in the pod
//       ("*": IPv6 and IPv4), config mounted from a rendered ConfigMap (rollout: named after
//       the config's hash), drain_timeout covering every route's deadline, hardening, grace
//       period vs preStop + drain, the CPU request passed in, scrape annotations, config
//       checksum, listener ports, app pods not labelled as curfew, and a Service that targets
//       curfew rather than the app. --sized: curfew's requests follow config.workers.
//   node check.js restricted FILE
//       every pod passes Pod Security "restricted" (the fields the profile names).
//   node check.js policies FILE [--expect-spread]
//       PodDisruptionBudget, NetworkPolicy (its rules: curfew's listeners open, the admin port to
//       monitoring only, the app's own ports closed), topology spread and HPA (the app
//       container's metrics; the Deployment then sets no replicas) fit the pods they select.
//   node check.js monitoring FILE
//       ServiceMonitor/PodMonitor scrape curfew-admin, the PrometheusRule's alerts and the
//       dashboard cover curfew's metrics.
//   node check.js schema-sync values.schema.json config/internal
//       the schema allows exactly the config keys curfew's decoders accept.
//
// Exits 0 when everything holds; otherwise prints every failure and exits 1. Needs NODE_PATH to
// point at the node_modules that scripts/install-helm-tools.sh installs.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const YAML = require('yaml');

const failures = [];
function fail(message) {
  failures.push(message);
}
function finish(okMessage) {
  if (failures.length) {
    for (const f of failures) console.error(`FAIL: ${f}`);
    console.error(`${failures.length} check(s) failed`);
    process.exit(1);
  }
  console.log(okMessage);
}
function die(message) {
  console.error(`check.js: ${message}`);
  process.exit(2);
}

function loadObjects(file) {
  const text = fs.readFileSync(file, 'utf8');
  const docs = YAML.parseAllDocuments(text, {strict: true, uniqueKeys: true});
  const objects = [];
  docs.forEach((doc, i) => {
    if (doc.errors.length) {
      die(`${file}: document ${i + 1} is not valid YAML: ${doc.errors.map((e) => e.message).join('; ')}`);
    }
    const value = doc.toJS();
    if (value === null || value === undefined) return;
    if (typeof value !== 'object' || Array.isArray(value)) {
      die(`${file}: document ${i + 1} is not a Kubernetes object`);
    }
    objects.push(value);
  });
  if (!objects.length) die(`${file}: no objects rendered`);
  return objects;
}

const id = (o) => `${o.kind || '?'}/${(o.metadata && o.metadata.name) || '?'}`;

// The model class for an apiVersion/kind, or undefined.
function modelFor(apiVersion, kind) {
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') return undefined;
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const modules = group === 'monitoring.coreos.com'
    ? [`@kubernetes-models/prometheus-operator/${group}/${version}`]
    : [group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`];
  for (const name of modules) {
    try {
      const mod = require(name);
      if (typeof mod[kind] === 'function') return mod[kind];
    } catch (e) {
      if (e.code !== 'MODULE_NOT_FOUND' && e.code !== 'ERR_PACKAGE_PATH_NOT_EXPORTED') throw e;
    }
  }
  return undefined;
}

function validate(file, expectKinds) {
  const objects = loadObjects(file);
  const seen = new Set();
  for (const o of objects) {
    const Model = modelFor(o.apiVersion, o.kind);
    if (!Model) {
      fail(`${id(o)}: no schema for apiVersion ${o.apiVersion} kind ${o.kind}`);
      continue;
    }
    try {
      new Model(o).validate();
      seen.add(o.kind);
    } catch (e) {
      const details = (e.errors || []).map((x) => `${x.instancePath || '/'} ${x.message}`);
      fail(`${id(o)} (${o.apiVersion}) is invalid: ${details.length ? details.join('; ') : e.message}`);
    }
  }
  for (const kind of expectKinds) {
    if (!objects.some((o) => o.kind === kind)) fail(`no ${kind} was rendered`);
  }
  finish(`validated ${objects.length} objects: ${objects.map(id).join(', ')}`);
}

function extractConfig(file, dir) {
  const objects = loadObjects(file);
  fs.mkdirSync(dir, {recursive: true});
  let n = 0;
  for (const o of objects) {
    if (o.kind === 'ConfigMap' && o.data && typeof o.data['curfew.yaml'] === 'string') {
      const out = path.join(dir, `${o.metadata.name}.yaml`);
      fs.writeFileSync(out, o.data['curfew.yaml'] + '\n');
      console.log(out);
      n++;
    }
  }
  if (!n) die(`${file}: no ConfigMap with a curfew.yaml`);
}

// curfew's duration syntax, in milliseconds.
function millis(text) {
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m)$/.exec(String(text));
  if (!m) return NaN;
  return Number(m[1]) * {ms: 1, s: 1000, m: 60000}[m[2]];
}

function podSpecs(objects) {
  const out = [];
  for (const o of objects) {
    const spec = o.kind === 'Pod' ? o.spec
      : o.kind === 'CronJob' ? o.spec && o.spec.jobTemplate && o.spec.jobTemplate.spec.template.spec
      : o.spec && o.spec.template && o.spec.template.spec;
    const meta = o.kind === 'Pod' ? o.metadata
      : o.kind === 'CronJob' ? o.spec.jobTemplate.spec.template.metadata
      : o.spec && o.spec.template && o.spec.template.metadata;
    if (spec && (spec.containers || spec.initContainers)) out.push({owner: o, spec, meta: meta || {}});
  }
  return out;
}

// The minor version of a Kubernetes version ("1.30.2", "v1.28.0" -> 30, 28); major must be 1.
function kubeMinor(text) {
  const m = /^v?1\.([0-9]+)/.exec(String(text));
  if (!m) die(`bad --kube-version ${text}`);
  return Number(m[1]);
}

// A lifecycle handler that sleeps, in milliseconds; undefined when it is not a sleep. From
// Kubernetes 1.30 it must be the sleep action (no sleep binary needed in the image).
function sleepMillis(handler, where, what, kube) {
  if (!handler) return 0;
  if (handler.sleep) {
    if (!Number.isInteger(handler.sleep.seconds) || handler.sleep.seconds < 0) {
      fail(`${where}: ${what} sleep action has no whole seconds: ${JSON.stringify(handler.sleep)}`);
      return undefined;
    }
    if (kube < 30) fail(`${where}: ${what} uses the sleep action, which Kubernetes 1.${kube} lacks`);
    return handler.sleep.seconds * 1000;
  }
  const cmd = (handler.exec && handler.exec.command) || [];
  if (!/(^|\/)sleep$/.test(cmd[0] || '') || !(Number(cmd[1]) >= 0)) {
    fail(`${where}: ${what} should be a sleep, is ${JSON.stringify(handler)}`);
    return undefined;
  }
  if (kube >= 30) fail(`${where}: ${what} should use the sleep action on Kubernetes 1.${kube} (no sleep binary needed), is exec ${JSON.stringify(cmd)}`);
  return Number(cmd[1]) * 1000;
}

// The longest deadline curfew gives a call of each route: its timeout (or the listener's
// default_timeout, 1s when unset) or its max_timeout, whichever is longer.
function routeBounds(config) {
  const out = [];
  for (const l of (config && config.listeners) || []) {
    for (const r of l.routes || []) {
      const base = millis(r.timeout !== undefined ? r.timeout : (l.default_timeout !== undefined ? l.default_timeout : '1s'));
      const cap = r.max_timeout !== undefined ? millis(r.max_timeout) : 0;
      out.push({listener: l.name, route: r.name, ms: Math.max(base, cap)});
    }
  }
  return out;
}

function checkPod(file, style, configChange, expectPreStop, opts) {
  const objects = loadObjects(file);
  const pods = podSpecs(objects).filter(({spec}) =>
    [...(spec.containers || []), ...(spec.initContainers || [])].some((c) => c.name === 'curfew'));
  if (!pods.length) fail('no workload runs a container named curfew');
  for (const {owner, spec, meta} of pods) {
    const where = id(owner);
    const containers = spec.containers || [];
    const inits = spec.initContainers || [];
    const inMain = containers.filter((c) => c.name === 'curfew');
    const inInit = inits.filter((c) => c.name === 'curfew');
    if (inMain.length + inInit.length !== 1) fail(`${where}: curfew must appear exactly once in the pod`);
    let curfew;
    if (style === 'classic') {
      if (inMain.length !== 1 || inInit.length) fail(`${where}: classic sidecar must be in containers, not initContainers`);
      curfew = inMain[0] || inInit[0];
      if (curfew && curfew.restartPolicy !== undefined) fail(`${where}: classic sidecar must not set restartPolicy`);
    } else {
      if (inInit.length !== 1 || inMain.length) fail(`${where}: native sidecar must be an init container, not in containers`);
      curfew = inInit[0] || inMain[0];
      if (curfew && curfew.restartPolicy !== 'Always') fail(`${where}: native sidecar needs restartPolicy: Always, has ${curfew.restartPolicy}`);
    }
    if (!curfew) continue;
    const apps = containers.filter((c) => c.name !== 'curfew');
    if (!apps.length) fail(`${where}: the pod has no app container beside curfew`);

    // Start order. Classic: the kubelet starts containers in order and waits for each one's
    // postStart hook, so curfew comes first and its hook waits for /readyz. Native: the app
    // starts once the init container's startup probe (/readyz) passes.
    if (style === 'classic') {
      const at = containers.indexOf(curfew);
      if (at !== 0) fail(`${where}: classic sidecar must be the pod's first container (the kubelet starts them in order), is at ${at}`);
      const hook = curfew.lifecycle && curfew.lifecycle.postStart;
      if (opts.hold) {
        const cmd = (hook && hook.exec && hook.exec.command) || [];
        const adminName = ((curfew.ports || []).find((p) => p.name === 'curfew-admin') || {}).containerPort;
        const script = cmd.join(' ');
        if (!hook) {
          fail(`${where}: curfew has no postStart wait for /readyz, so the app may start before curfew listens`);
        } else if (!script.includes('/readyz') || !script.includes(`/dev/tcp/127.0.0.1/${adminName}`)) {
          fail(`${where}: curfew's postStart does not wait for /readyz on the admin port ${adminName}: ${JSON.stringify(cmd)}`);
        }
      } else if (hook) {
        fail(`${where}: curfew has a postStart hook although holdAppUntilReady is false`);
      }
    } else {
      const sp = curfew.startupProbe && curfew.startupProbe.httpGet;
      if (!sp || sp.path !== '/readyz') fail(`${where}: a native sidecar needs a startup probe on /readyz, which holds the app back until curfew is ready`);
      if (curfew.lifecycle && curfew.lifecycle.postStart) fail(`${where}: a native sidecar needs no postStart wait`);
    }

    // App pods are the app's, not curfew's.
    if ((meta.labels || {})['app.kubernetes.io/name'] === 'curfew') {
      fail(`${where}: the app's pods are labelled app.kubernetes.io/name: curfew`);
    }

    // curfew's CPU request reaches curfew (workers: 0 sizes its loops from it).
    const cpuEnv = (curfew.env || []).find((e) => e.name === 'CURFEW_CPU_REQUEST_MILLICORES');
    const ref = cpuEnv && cpuEnv.valueFrom && cpuEnv.valueFrom.resourceFieldRef;
    if (!ref || ref.containerName !== 'curfew' || ref.resource !== 'requests.cpu' || String(ref.divisor) !== '1m') {
      fail(`${where}: curfew needs env CURFEW_CPU_REQUEST_MILLICORES from resourceFieldRef {containerName: curfew, resource: requests.cpu, divisor: 1m}, has ${JSON.stringify(cpuEnv)}`);
    }

    // The config: a ConfigMap volume mounted (whole directory) where --config points.
    const args = curfew.args || [];
    const configArg = args[args.indexOf('--config') + 1];
    if (args.indexOf('--config') < 0 || !configArg) fail(`${where}: curfew has no --config argument`);
    const logLevel = args[args.indexOf('--log-level') + 1];
    if (args.indexOf('--log-level') < 0 || !['debug', 'info', 'warning', 'error'].includes(logLevel)) {
      fail(`${where}: curfew needs --log-level debug|info|warning|error, has ${logLevel}`);
    }
    const mount = (curfew.volumeMounts || []).find((m) => configArg && configArg.startsWith(m.mountPath + '/'));
    let config;
    let configText;
    if (!mount) {
      fail(`${where}: nothing is mounted where --config ${configArg} points`);
    } else {
      if (mount.subPath) fail(`${where}: the config is mounted with subPath, so ConfigMap updates never reach curfew`);
      if (mount.readOnly !== true) fail(`${where}: the config mount should be readOnly`);
      const volume = (spec.volumes || []).find((v) => v.name === mount.name);
      const cmName = volume && volume.configMap && volume.configMap.name;
      const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === cmName);
      const key = path.basename(configArg);
      if (!cm) {
        fail(`${where}: volume ${mount.name} does not come from a rendered ConfigMap (${cmName})`);
      } else if (!cm.data || typeof cm.data[key] !== 'string') {
        fail(`${where}: ConfigMap ${cmName} has no ${key}`);
      } else {
        configText = cm.data[key];
        config = YAML.parse(configText);
      }
    }

    // Admin: listening on every interface in the pod, on the port the probes and Prometheus use.
    const adminPort = (curfew.ports || []).find((p) => p.name === 'curfew-admin');
    if (!adminPort) fail(`${where}: curfew has no port named curfew-admin`);
    const admin = adminPort && adminPort.containerPort;
    if (config) {
      const address = config.admin && config.admin.address;
      if (address !== `*:${admin}`) {
        fail(`${where}: config admin.address is ${address}, must be *:${admin} (every address, IPv6 too) for the kubelet's probes`);
      }
    }
    const portOf = (p) => (typeof p === 'string' ? ((curfew.ports || []).find((x) => x.name === p) || {}).containerPort : p);
    for (const [probeName, wantPath] of [['livenessProbe', '/healthz'], ['readinessProbe', '/readyz']]) {
      const probe = curfew[probeName];
      const get = probe && probe.httpGet;
      if (!get || get.path !== wantPath || portOf(get.port) !== admin) {
        fail(`${where}: curfew ${probeName} must GET ${wantPath} on the admin port ${admin}, is ${JSON.stringify(probe)}`);
      }
    }
    if (!curfew.startupProbe || !curfew.startupProbe.httpGet || portOf(curfew.startupProbe.httpGet.port) !== admin) {
      fail(`${where}: curfew startupProbe must GET the admin port`);
    }

    // Listeners reachable from outside the pod are container ports named after them.
    if (config) {
      for (const l of config.listeners || []) {
        const m = /^(.*):([0-9]+)$/.exec(l.address);
        const loopback = m && (m[1].startsWith('127.') || m[1] === 'localhost' || m[1] === '[::1]');
        const port = (curfew.ports || []).find((p) => p.name === l.name);
        if (!loopback && (!port || port.containerPort !== Number(m[2]))) {
          fail(`${where}: listener ${l.name} (${l.address}) has no container port ${l.name}:${m && m[2]}`);
        }
        if (loopback && port) fail(`${where}: loopback listener ${l.name} should not be a container port`);
      }
    }

    // Hardening. runAsNonRoot makes the kubelet refuse uid 0; the uid itself may be left to the
    // platform (OpenShift's restricted SCC assigns one).
    const sc = curfew.securityContext || {};
    if (sc.runAsNonRoot !== true) fail(`${where}: curfew must set runAsNonRoot: true`);
    if (sc.runAsUser === 0) fail(`${where}: curfew must run as a non-zero uid`);
    if (opts.runAsUser && !Number.isInteger(sc.runAsUser)) fail(`${where}: curfew sets no runAsUser`);
    if (!opts.runAsUser && (sc.runAsUser !== undefined || sc.runAsGroup !== undefined)) {
      fail(`${where}: runAsUser/runAsGroup are set (${sc.runAsUser}/${sc.runAsGroup}) although the values leave them to the platform`);
    }
    if (sc.readOnlyRootFilesystem !== true) fail(`${where}: curfew must have a read-only root filesystem`);
    if (sc.allowPrivilegeEscalation !== false) fail(`${where}: curfew must set allowPrivilegeEscalation: false`);
    if (sc.privileged === true) fail(`${where}: curfew must not be privileged`);
    const drop = (sc.capabilities && sc.capabilities.drop) || [];
    if (!drop.includes('ALL')) fail(`${where}: curfew must drop ALL capabilities`);
    if (sc.capabilities && (sc.capabilities.add || []).length) fail(`${where}: curfew must add no capabilities`);

    // Shutdown: the grace period covers the preStop delay and the whole drain.
    const grace = spec.terminationGracePeriodSeconds;
    const drainMs = config ? millis(config.drain_timeout === undefined ? '10s' : config.drain_timeout) : NaN;
    const preStopHook = curfew.lifecycle && curfew.lifecycle.preStop;
    const preStopMs = sleepMillis(preStopHook, where, 'curfew preStop', opts.kube) || 0;
    if (expectPreStop && !(preStopMs > 0)) fail(`${where}: curfew has no preStop delay`);
    if (!expectPreStop && preStopHook) fail(`${where}: curfew has a preStop hook although preStopDelay is 0s`);
    // The app's preStop matches curfew's drain. Classic: the app gets SIGTERM only once curfew
    // has stopped forwarding calls to it (curfew's preStop, then its drain). Native: curfew stops
    // after the app anyway; the app waits for endpoints to forget the pod (curfew's preStop).
    const appNeedMs = style === 'classic' ? preStopMs + drainMs : preStopMs;
    if (opts.appPreStop && appNeedMs > 0) {
      for (const app of apps) {
        const hook = app.lifecycle && app.lifecycle.preStop;
        if (!hook) {
          fail(`${where}: app container ${app.name} has no preStop, so it gets SIGTERM while curfew still forwards calls to it`);
          continue;
        }
        const ms = sleepMillis(hook, where, `app container ${app.name} preStop`, opts.kube);
        if (ms !== undefined && ms < appNeedMs) {
          fail(`${where}: app container ${app.name} preStop sleeps ${ms}ms, less than curfew's ${style === 'classic' ? 'preStop + drain' : 'preStop'} (${appNeedMs}ms)`);
        }
      }
    }
    // drain_timeout lets every call in flight finish within its own deadline.
    for (const b of opts.drainCoversRoutes ? routeBounds(config) : []) {
      if (drainMs < b.ms) fail(`${where}: drain_timeout ${drainMs}ms is shorter than route ${b.route} (listener ${b.listener}), whose calls may last ${b.ms}ms`);
    }
    if (opts.sized) {
      const workers = Math.max(1, Number((config && config.workers) || 0));
      const req = (curfew.resources && curfew.resources.requests) || {};
      const cpu = String(req.cpu || '0');
      const milli = cpu.endsWith('m') ? Number(cpu.slice(0, -1)) : Number(cpu) * 1000;
      if (!(milli >= 100 * workers)) fail(`${where}: curfew's CPU request ${req.cpu} is not sized to its ${workers} worker(s) (at least ${100 * workers}m)`);
      if (!req.memory || !(curfew.resources.limits || {}).memory) fail(`${where}: curfew needs a memory request and limit`);
    }
    if (!Number.isInteger(grace)) {
      fail(`${where}: terminationGracePeriodSeconds is not set`);
    } else if (grace * 1000 < preStopMs + drainMs) {
      fail(`${where}: terminationGracePeriodSeconds ${grace}s < preStop ${preStopMs}ms + drain_timeout ${drainMs}ms`);
    }

    // Prometheus scrape annotations and the config checksum.
    const ann = meta.annotations || {};
    if (ann['prometheus.io/scrape'] !== 'true' || ann['prometheus.io/port'] !== String(admin) ||
        ann['prometheus.io/path'] !== '/metrics') {
      fail(`${where}: pod needs prometheus.io/scrape "true", port "${admin}", path /metrics; has ${JSON.stringify(ann)}`);
    }
    if (configText !== undefined) {
      const sum = crypto.createHash('sha256').update(configText).digest('hex');
      const cmName = ((spec.volumes || []).find((v) => mount && v.name === mount.name) || {configMap: {}}).configMap.name;
      const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === cmName);
      if (configChange === 'rollout') {
        if (!String(cmName).endsWith(`-${sum.slice(0, 10)}`)) {
          fail(`${where}: rollout: ConfigMap ${cmName} is not named after its config's hash (${sum.slice(0, 10)}), so running pods would hot-reload a change`);
        }
        if (cm && cm.immutable !== true) fail(`${where}: rollout: the hash-named ConfigMap ${cmName} should be immutable`);
      } else if (/-[0-9a-f]{10}$/.test(String(cmName)) || (cm && cm.immutable)) {
        fail(`${where}: reload: ConfigMap ${cmName} must keep one name and stay mutable, so that curfew reloads its updates`);
      }
      if (configChange === 'rollout') {
        if (ann['checksum/curfew-config'] !== sum) {
          fail(`${where}: checksum/curfew-config is ${ann['checksum/curfew-config']}, the config's sha256 is ${sum}`);
        }
      } else {
        if ('checksum/curfew-config' in ann) fail(`${where}: configChange reload must not roll pods on every config change`);
        if (!/^[0-9a-f]{64}$/.test(ann['checksum/curfew-restart'] || '')) {
          fail(`${where}: configChange reload still needs checksum/curfew-restart (listener changes need a restart)`);
        }
      }
    }

    // A Service selecting these pods sends callers to curfew's listeners, never straight to the app.
    const podLabels = meta.labels || {};
    for (const svc of objects.filter((o) => o.kind === 'Service' && o.spec && o.spec.selector)) {
      const selects = Object.entries(svc.spec.selector).every(([k, v]) => podLabels[k] === v);
      if (!selects) continue;
      for (const p of svc.spec.ports || []) {
        const target = p.targetPort === undefined ? p.port : p.targetPort;
        const isCurfew = (curfew.ports || []).some((cp) => cp.name === target || cp.containerPort === target);
        if (!isCurfew) fail(`${id(svc)} port ${p.name || p.port} targets ${target}, which is not one of curfew's ports`);
      }
    }
  }
  finish(`checked ${pods.length} pod(s) running curfew (${style} sidecar, config change: ${configChange}): ${pods.map((p) => id(p.owner)).join(', ')}`);
}

// Pod Security Standards, "restricted" profile (which includes "baseline"), field by field.
function checkRestricted(file) {
  const objects = loadObjects(file);
  const pods = podSpecs(objects);
  if (!pods.length) fail('no pod rendered');
  const allowedVolumes = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret'];
  const safeSysctls = ['kernel.shm_rmid_forced', 'net.ipv4.ip_local_port_range', 'net.ipv4.ip_unprivileged_port_start',
    'net.ipv4.tcp_syncookies', 'net.ipv4.ping_group_range', 'net.ipv4.ip_local_reserved_ports', 'net.ipv4.tcp_keepalive_time',
    'net.ipv4.tcp_fin_timeout', 'net.ipv4.tcp_keepalive_intvl', 'net.ipv4.tcp_keepalive_probes'];
  for (const {owner, spec} of pods) {
    const where = id(owner);
    const psc = spec.securityContext || {};
    for (const k of ['hostNetwork', 'hostPID', 'hostIPC']) if (spec[k]) fail(`${where}: ${k} is set`);
    for (const v of spec.volumes || []) {
      const type = Object.keys(v).find((k) => k !== 'name');
      if (!allowedVolumes.includes(type)) fail(`${where}: volume ${v.name} is of type ${type}, which restricted forbids`);
    }
    for (const s of psc.sysctls || []) if (!safeSysctls.includes(s.name)) fail(`${where}: unsafe sysctl ${s.name}`);
    if (psc.runAsUser === 0) fail(`${where}: pod runAsUser 0`);
    const podSeccomp = psc.seccompProfile && psc.seccompProfile.type;
    if (podSeccomp && !['RuntimeDefault', 'Localhost'].includes(podSeccomp)) fail(`${where}: pod seccompProfile ${podSeccomp}`);
    const all = [...(spec.initContainers || []), ...(spec.containers || []), ...(spec.ephemeralContainers || [])];
    for (const c of all) {
      const cw = `${where} container ${c.name}`;
      const sc = c.securityContext || {};
      if (sc.privileged) fail(`${cw}: privileged`);
      if (sc.allowPrivilegeEscalation !== false) fail(`${cw}: allowPrivilegeEscalation must be false`);
      const nonRoot = sc.runAsNonRoot !== undefined ? sc.runAsNonRoot : psc.runAsNonRoot;
      if (nonRoot !== true) fail(`${cw}: runAsNonRoot must be true (container or pod)`);
      if (sc.runAsUser === 0) fail(`${cw}: runAsUser 0`);
      const seccomp = (sc.seccompProfile && sc.seccompProfile.type) || podSeccomp;
      if (!['RuntimeDefault', 'Localhost'].includes(seccomp)) fail(`${cw}: seccompProfile must be RuntimeDefault or Localhost (container or pod), is ${seccomp}`);
      const caps = sc.capabilities || {};
      if (!(caps.drop || []).includes('ALL')) fail(`${cw}: capabilities must drop ALL`);
      for (const a of caps.add || []) if (a !== 'NET_BIND_SERVICE') fail(`${cw}: adds capability ${a}`);
      if (sc.procMount && sc.procMount !== 'Default') fail(`${cw}: procMount ${sc.procMount}`);
      if (sc.windowsOptions && sc.windowsOptions.hostProcess) fail(`${cw}: hostProcess`);
      for (const p of c.ports || []) if (p.hostPort) fail(`${cw}: hostPort ${p.hostPort}`);
    }
  }
  finish(`Pod Security "restricted" holds for ${pods.length} pod(s): ${pods.map((p) => id(p.owner)).join(', ')}`);
}

const selects = (matchLabels, labels) => !!matchLabels && Object.keys(matchLabels).length > 0 &&
  Object.entries(matchLabels).every(([k, v]) => (labels || {})[k] === v);

// PodDisruptionBudget, NetworkPolicy, topology spread and HPA against the pods they are for.
function checkPolicies(file, opts) {
  const objects = loadObjects(file);
  const deployments = objects.filter((o) => o.kind === 'Deployment');
  const podOf = (d) => ({labels: d.spec.template.metadata.labels || {}, spec: d.spec.template.spec});
  let n = 0;
  for (const pdb of objects.filter((o) => o.kind === 'PodDisruptionBudget')) {
    n++;
    const sel = pdb.spec.selector && pdb.spec.selector.matchLabels;
    if (!deployments.some((d) => selects(sel, podOf(d).labels))) fail(`${id(pdb)} selects none of the rendered pods`);
    if ((pdb.spec.minAvailable !== undefined) === (pdb.spec.maxUnavailable !== undefined)) {
      fail(`${id(pdb)} needs exactly one of minAvailable and maxUnavailable`);
    }
  }
  for (const np of objects.filter((o) => o.kind === 'NetworkPolicy')) {
    n++;
    const d = deployments.find((x) => selects(np.spec.podSelector && np.spec.podSelector.matchLabels, podOf(x).labels));
    if (!d) { fail(`${id(np)} selects none of the rendered pods`); continue; }
    if (!(np.spec.policyTypes || []).includes('Ingress')) fail(`${id(np)} does not govern Ingress`);
    const {spec} = podOf(d);
    const all = [...(spec.initContainers || []), ...spec.containers];
    const curfew = all.find((c) => c.name === 'curfew');
    const portNumber = (p) => {
      if (typeof p === 'number') return p;
      for (const c of all) for (const cp of c.ports || []) if (cp.name === p) return cp.containerPort;
      return undefined;
    };
    const admin = ((curfew.ports || []).find((p) => p.name === 'curfew-admin') || {}).containerPort;
    const listeners = (curfew.ports || []).filter((p) => p.name !== 'curfew-admin').map((p) => p.containerPort);
    const appPorts = all.filter((c) => c !== curfew).flatMap((c) => (c.ports || []).map((p) => p.containerPort));
    const open = new Set();
    for (const [i, rule] of (np.spec.ingress || []).entries()) {
      if (!rule.ports || !rule.ports.length) {
        fail(`${id(np)} ingress rule ${i} has no ports: it opens every port, the app's ${appPorts.join(', ')} too`);
        continue;
      }
      for (const p of rule.ports) {
        const port = portNumber(p.port);
        if (appPorts.includes(port)) fail(`${id(np)} ingress rule ${i}: the app's own port ${port} is open, so callers can bypass curfew`);
        if (port === admin) {
          const from = rule.from || [];
          if (!from.length) fail(`${id(np)} ingress rule ${i}: the admin port ${admin} is open to every source, not only monitoring`);
          for (const peer of from) {
            const podSel = peer.podSelector && peer.podSelector.matchLabels;
            if (!peer.ipBlock && !(podSel && Object.keys(podSel).length)) {
              fail(`${id(np)} ingress rule ${i}: the admin port ${admin} is open to every pod of ${peer.namespaceSelector ? 'the selected namespaces' : 'the namespace'}, not only monitoring`);
            }
          }
        }
        open.add(port);
      }
    }
    for (const l of listeners) if (!open.has(l)) fail(`${id(np)} leaves curfew's listener port ${l} closed, so callers cannot reach the app`);
    if (!open.has(admin)) fail(`${id(np)} leaves the admin port ${admin} closed to monitoring`);
  }
  for (const d of deployments) {
    const {labels, spec} = podOf(d);
    const spread = spec.topologySpreadConstraints || [];
    for (const c of spread) {
      n++;
      if (!selects(c.labelSelector && c.labelSelector.matchLabels, labels)) {
        fail(`${id(d)}: topology spread on ${c.topologyKey} selects none of its own pods`);
      }
    }
    if (opts.spread && !spread.some((c) => c.topologyKey === 'kubernetes.io/hostname' && c.whenUnsatisfiable === 'ScheduleAnyway')) {
      fail(`${id(d)}: no soft spread (ScheduleAnyway) across nodes`);
    }
    const hpa = objects.find((o) => o.kind === 'HorizontalPodAutoscaler' && o.spec.scaleTargetRef.kind === 'Deployment' &&
      o.spec.scaleTargetRef.name === d.metadata.name);
    if (hpa) {
      n++;
      if (d.spec.replicas !== undefined) fail(`${id(d)} sets replicas although ${id(hpa)} scales it (every helm upgrade would reset the count)`);
      const apps = spec.containers.filter((c) => c.name !== 'curfew').map((c) => c.name);
      const metrics = hpa.spec.metrics || [];
      if (!metrics.length) fail(`${id(hpa)} has no metrics`);
      for (const m of metrics) {
        if (m.type !== 'ContainerResource' || !apps.includes(m.containerResource.container)) {
          fail(`${id(hpa)} does not scale on the app container's metrics: ${JSON.stringify(m)}`);
        }
      }
      if (!(hpa.spec.minReplicas <= hpa.spec.maxReplicas)) fail(`${id(hpa)}: minReplicas > maxReplicas`);
    } else if (!Number.isInteger(d.spec.replicas) && objects.some((o) => o.kind === 'HorizontalPodAutoscaler')) {
      fail(`${id(d)} sets no replicas and no HPA scales it`);
    }
  }
  finish(`checked ${n} PodDisruptionBudget/NetworkPolicy/spread/HPA object(s) against the pods they select`);
}

function checkMonitoring(file) {
  const objects = loadObjects(file);
  const monitors = objects.filter((o) => o.kind === 'ServiceMonitor' || o.kind === 'PodMonitor');
  if (!monitors.length) fail('no ServiceMonitor or PodMonitor rendered');
  for (const m of monitors) {
    const endpoints = m.kind === 'ServiceMonitor' ? m.spec.endpoints : m.spec.podMetricsEndpoints;
    if (!(endpoints || []).some((e) => e.port === 'curfew-admin' && e.path === '/metrics')) {
      fail(`${id(m)} does not scrape port curfew-admin at /metrics`);
    }
    const selector = (m.spec.selector && m.spec.selector.matchLabels) || {};
    if (!Object.keys(selector).length) fail(`${id(m)} selects nothing in particular`);
    if (m.kind === 'ServiceMonitor') {
      const svc = objects.find((o) => o.kind === 'Service' &&
        Object.entries(selector).every(([k, v]) => (o.metadata.labels || {})[k] === v));
      if (svc && !(svc.spec.ports || []).some((p) => p.name === 'curfew-admin')) {
        fail(`${id(m)} selects ${id(svc)}, which has no curfew-admin port`);
      }
    } else {
      const pod = podSpecs(objects).find(({meta}) =>
        Object.entries(selector).every(([k, v]) => (meta.labels || {})[k] === v));
      if (pod && ![...(pod.spec.containers || []), ...(pod.spec.initContainers || [])].some((c) =>
        (c.ports || []).some((p) => p.name === 'curfew-admin'))) {
        fail(`${id(m)} selects ${id(pod.owner)}, whose pod has no curfew-admin port`);
      }
    }
  }

  // The alerts (deploy/prometheus/curfew-alerts.yaml, carried by the chart) cover timeouts,
  // fan-out failures, cancellations, all relative to requests, and failing config reloads.
  const wanted = [['curfew_requests_total'], ['curfew_timeouts_total'], ['curfew_cancellations_total'],
    ['curfew_fanout_failures_total'], ['curfew_config_reloads_total', 'curfew_config_last_reload_successful']];
  const rules = objects.filter((o) => o.kind === 'PrometheusRule');
  if (!rules.length) fail('no PrometheusRule rendered');
  const exprs = [];
  for (const r of rules) {
    for (const g of r.spec.groups || []) {
      for (const rule of g.rules || []) {
        if (!rule.alert && !rule.record) fail(`${id(r)} group ${g.name}: a rule with neither alert nor record`);
        exprs.push(String(rule.expr));
      }
    }
  }
  for (const metrics of wanted) {
    if (rules.length && !exprs.some((e) => metrics.some((m) => e.includes(m)))) {
      fail(`no alert rule uses ${metrics.join(' or ')}`);
    }
  }

  const dashboards = objects.filter((o) => o.kind === 'ConfigMap' && o.data &&
    Object.keys(o.data).some((k) => k.endsWith('.json')));
  if (!dashboards.length) fail('no dashboard ConfigMap rendered');
  for (const cm of dashboards) {
    for (const [key, text] of Object.entries(cm.data).filter(([k]) => k.endsWith('.json'))) {
      let dash;
      try {
        dash = JSON.parse(text);
      } catch (e) {
        fail(`${id(cm)} ${key} is not JSON: ${e.message}`);
        continue;
      }
      const flat = [];
      const walk = (panels) => (panels || []).forEach((p) => { flat.push(p); walk(p.panels); });
      walk(dash.panels);
      const targets = flat.flatMap((p) => p.targets || []).map((t) => String(t.expr || ''));
      if (!dash.title || !flat.length) fail(`${id(cm)} ${key} has no title or no panels`);
      for (const metric of ['curfew_timeouts_total', 'curfew_cancellations_total', 'curfew_fanout_failures_total']) {
        if (!targets.some((e) => e.includes(metric))) fail(`${id(cm)} ${key}: no panel shows ${metric}`);
      }
    }
  }
  finish(`checked ${monitors.length} monitor(s), ${rules.length} PrometheusRule(s) (${exprs.length} rules), ${dashboards.length} dashboard(s)`);
}

// The chart's values.schema.json describes curfew's config keys exactly: every key curfew's
// decoders accept (each `expect_keys({...})` in config/internal/*.cc) is allowed by the schema,
// and the schema allows no key curfew would refuse. Each schema object is matched with the
// decoder's key set through a key only that set has.
function schemaSync(schemaFile, configDir) {
  const schema = JSON.parse(fs.readFileSync(schemaFile, 'utf8'));
  const sets = [];
  for (const f of fs.readdirSync(configDir).filter((n) => n.endsWith('.cc'))) {
    const text = fs.readFileSync(path.join(configDir, f), 'utf8');
    for (const m of text.matchAll(/expect_keys\(\s*\{([^}]*)\}\s*\)/g)) {
      sets.push({file: f, keys: [...m[1].matchAll(/"([^"]+)"/g)].map((k) => k[1])});
    }
  }
  if (sets.length < 10) die(`found only ${sets.length} expect_keys({...}) in ${configDir}`);
  const d = schema.definitions;
  const p = schema.properties;
  // [where in the schema, its properties, a key identifying curfew's set, keys the chart sets itself, chart-only aliases]
  const pairs = [
    ['properties.config', p.config.properties, 'drain_timeout', ['admin', 'drain_timeout'], []],
    ['definitions.listener', d.listener.properties, 'default_timeout', [], []],
    ['definitions.listener.properties.limits', d.listener.properties.limits.properties, 'max_message_bytes', [], []],
    ['definitions.listener.properties.limits.properties.connection',
     d.listener.properties.limits.properties.connection.properties, 'rapid_reset_percent', [], []],
    ['definitions.route', d.route.properties, 'deadline_offset', [], []],
    ['definitions.route.properties.hedge', d.route.properties.hedge.properties, 'max_hedges', [], []],
    ['definitions.match', d.match.properties, 'prefix', [], []],
    ['definitions.retry', d.retry.properties, 'per_try_timeout', [], ['true']],
    ['definitions.retry.properties.backoff', d.retry.properties.backoff.properties, 'base', [], []],
    ['definitions.fanout', d.fanout.properties, 'quorum', [], []],
    ['definitions.mirror', d.mirror.properties, 'percent', [], []],
    ['definitions.upstream', d.upstream.properties, 'endpoints', [], []],
    ['definitions.upstream.properties.tls', d.upstream.properties.tls.properties, 'ca_file', [], []],
    ['definitions.upstream.properties.outlier_detection',
     d.upstream.properties.outlier_detection.properties, 'consecutive_failures', [], []],
  ];
  const used = new Set();
  for (const [where, props, marker, chartSets, aliases] of pairs) {
    const matches = sets.filter((s) => s.keys.includes(marker));
    if (matches.length !== 1) {
      fail(`${where}: expected one expect_keys set with "${marker}" in ${configDir}, found ${matches.length}`);
      continue;
    }
    const curfewKeys = new Set(matches[0].keys);
    used.add(matches[0]);
    const schemaKeys = new Set(Object.keys(props || {}));
    for (const k of curfewKeys) {
      if (!schemaKeys.has(k) && !chartSets.includes(k)) {
        fail(`curfew accepts ${where.replace(/^(definitions|properties)\./, '')} key "${k}" (${matches[0].file}), values.schema.json ${where} does not`);
      }
    }
    for (const k of schemaKeys) {
      if (!curfewKeys.has(k) && !aliases.includes(k)) {
        fail(`values.schema.json ${where} allows "${k}", which curfew refuses (${matches[0].file})`);
      }
    }
    {
      const node = where.split('.').reduce((o, k) => o[k], schema);
      if (node.additionalProperties !== false) fail(`values.schema.json ${where} lets unknown keys through`);
    }
  }
  for (const s of sets.filter((x) => !used.has(x))) {
    // The admin block is the chart's: it sets admin.address itself.
    if (s.keys.join() !== 'address') fail(`curfew has a config block with keys ${s.keys.join(', ')} (${s.file}) that the schema does not describe`);
  }
  finish(`values.schema.json allows exactly curfew's config keys (${used.size} blocks, ${sets.length} expect_keys sets)`);
}

function main(argv) {
  const [command, file, ...rest] = argv;
  if (!command || !file) die('usage: check.js validate|extract-config|pod|monitoring FILE ...');
  const option = (name, fallback) => {
    const i = rest.indexOf(name);
    return i >= 0 ? rest[i + 1] : fallback;
  };
  switch (command) {
    case 'validate': {
      const kinds = [];
      rest.forEach((a, i) => { if (a === '--expect') kinds.push(rest[i + 1]); });
      return validate(file, kinds);
    }
    case 'extract-config':
      if (!rest[0]) die('extract-config needs an output directory');
      return extractConfig(file, rest[0]);
    case 'pod': {
      const style = option('--style');
      const change = option('--config-change', 'rollout');
      if (!['classic', 'native'].includes(style)) die('--style classic|native is required');
      if (!['rollout', 'reload'].includes(change)) die('--config-change must be rollout or reload');
      return checkPod(file, style, change, !rest.includes('--no-prestop'), {
        kube: kubeMinor(option('--kube-version', '1.32.0')),
        hold: !rest.includes('--no-hold'),
        appPreStop: !rest.includes('--no-app-prestop'),
        sized: rest.includes('--sized'),
        runAsUser: !rest.includes('--no-run-as-user'),
        drainCoversRoutes: !rest.includes('--drain-shorter-ok'),
      });
    }
    case 'restricted':
      return checkRestricted(file);
    case 'policies':
      return checkPolicies(file, {spread: rest.includes('--expect-spread')});
    case 'monitoring':
      return checkMonitoring(file);
    case 'schema-sync':
      if (!rest[0]) die('schema-sync needs the config sources directory');
      return schemaSync(file, rest[0]);
    default:
      return die(`unknown command ${command}`);
  }
}

main(process.argv.slice(2));
