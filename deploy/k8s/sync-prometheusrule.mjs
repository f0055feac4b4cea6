#!/usr/bin/env node
// Rewrites deploy/k8s/base/prometheusrule.yaml from deploy/prometheus/alerts.yml (the source of truth):
// the PrometheusRule's spec.groups is the rule file's `groups:` block, comments included, indented.
// Run after editing alerts.yml:  node deploy/k8s/sync-prometheusrule.mjs   (test/deploy checks they match)
import { readFileSync, writeFileSync } from 'node:fs';

const alerts = new URL('../prometheus/alerts.yml', import.meta.url);
const out = new URL('base/prometheusrule.yaml', import.meta.url);
const src = readFileSync(alerts, 'utf8');
const start = src.search(/^groups:/m);
if (start < 0) throw new Error('no top-level `groups:` in deploy/prometheus/alerts.yml');
const body = src
  .slice(start)
  .split('\n')
  .map((l) => (l.trim() === '' ? l : `  ${l}`))
  .join('\n');
const header = `# Alert rules for the Prometheus Operator. spec.groups is a copy of the groups in
# deploy/prometheus/alerts.yml (the source of truth); test/deploy asserts they are equal.
# Do not edit here: edit alerts.yml, then run  node deploy/k8s/sync-prometheusrule.mjs
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: rtgw
  labels:
    app.kubernetes.io/name: rtgw
    app.kubernetes.io/part-of: rtgw
spec:
`;
writeFileSync(out, header + body);
