#!/usr/bin/env node
// Writes engine/prometheusrule.yaml from monitoring/prometheus/alert_rules.yml and
// recording_rules.yml: the Prometheus Operator takes rules as a PrometheusRule object, and
// kustomize cannot read files outside deploy/kubernetes. test/deploy-kubernetes.test.ts fails
// when the copy and the rule files differ. Run from the repository root:
//   node deploy/kubernetes/sync-prometheusrule.mjs
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';

const here = dirname(fileURLToPath(import.meta.url));
const rulesDir = join(here, '..', '..', 'monitoring', 'prometheus');
const groups = ['alert_rules.yml', 'recording_rules.yml'].flatMap((f) => parse(readFileSync(join(rulesDir, f), 'utf8')).groups);

const rule = {
  apiVersion: 'monitoring.coreos.com/v1',
  kind: 'PrometheusRule',
  metadata: {
    name: 'tradeflow',
    labels: {
      'app.kubernetes.io/name': 'tradeflow',
      'app.kubernetes.io/component': 'engine',
      'app.kubernetes.io/part-of': 'tradeflow',
      // kube-prometheus-stack selects rules by its Helm release label, as for ServiceMonitors.
      release: 'prometheus',
    },
  },
  spec: { groups },
};
const header = [
  '# GENERATED from monitoring/prometheus/alert_rules.yml and recording_rules.yml by',
  '# node deploy/kubernetes/sync-prometheusrule.mjs: edit those files, then run it again.',
  '# The alert and recording rules for the Prometheus Operator (with a plain Prometheus, mount the',
  '# rule files themselves: monitoring/prometheus/prometheus.kubernetes.yml).',
  '',
].join('\n');
writeFileSync(join(here, 'engine', 'prometheusrule.yaml'), header + stringify(rule, { lineWidth: 0 }));
