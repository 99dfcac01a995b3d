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
//       every workload whose pod runs curfew has it wired as the chart promises: sidecar style,
//       probes on the admin port, admin listening on every address in the pod ("*": IPv6 and
//       IPv4), config mounted from a rendered ConfigMap, hardening, grace period vs preStop +
//       drain, scrape annotations, config checksum, listener ports, and a Service that targets
//       curfew rather than the app.
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

function checkPod(file, style, configChange, expectPreStop) {
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

    // Hardening.
    const sc = curfew.securityContext || {};
    const podSc = spec.securityContext || {};
    if (sc.runAsNonRoot !== true) fail(`${where}: curfew must set runAsNonRoot: true`);
    if (sc.runAsUser === 0 || (sc.runAsUser === undefined && !podSc.runAsUser)) fail(`${where}: curfew must run as a non-zero uid`);
    if (sc.readOnlyRootFilesystem !== true) fail(`${where}: curfew must have a read-only root filesystem`);
    if (sc.allowPrivilegeEscalation !== false) fail(`${where}: curfew must set allowPrivilegeEscalation: false`);
    if (sc.privileged === true) fail(`${where}: curfew must not be privileged`);
    const drop = (sc.capabilities && sc.capabilities.drop) || [];
    if (!drop.includes('ALL')) fail(`${where}: curfew must drop ALL capabilities`);
    if (sc.capabilities && (sc.capabilities.add || []).length) fail(`${where}: curfew must add no capabilities`);

    // Shutdown: the grace period covers the preStop delay and the whole drain.
    const grace = spec.terminationGracePeriodSeconds;
    const drainMs = config ? millis(config.drain_timeout === undefined ? '10s' : config.drain_timeout) : NaN;
    const exec = curfew.lifecycle && curfew.lifecycle.preStop && curfew.lifecycle.preStop.exec;
    let preStopMs = 0;
    if (exec) {
      const cmd = exec.command || [];
      if (!/(^|\/)sleep$/.test(cmd[0] || '') || !(Number(cmd[1]) >= 0)) {
        fail(`${where}: curfew preStop should be a sleep, is ${JSON.stringify(cmd)}`);
      } else {
        preStopMs = Number(cmd[1]) * 1000;
      }
    }
    if (expectPreStop && !(preStopMs > 0)) fail(`${where}: curfew has no preStop delay`);
    if (!expectPreStop && exec) fail(`${where}: curfew has a preStop hook although preStopDelay is 0s`);
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
    ['definitions.match', d.match.properties, 'prefix', [], []],
    ['definitions.retry', d.retry.properties, 'per_try_timeout', [], ['true']],
    ['definitions.retry.properties.backoff', d.retry.properties.backoff.properties, 'base', [], []],
    ['definitions.fanout', d.fanout.properties, 'quorum', [], []],
    ['definitions.mirror', d.mirror.properties, 'percent', [], []],
    ['definitions.upstream', d.upstream.properties, 'endpoints', [], []],
    ['definitions.upstream.properties.tls', d.upstream.properties.tls.properties, 'ca_file', [], []],
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
      return checkPod(file, style, change, !rest.includes('--no-prestop'));
    }
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
