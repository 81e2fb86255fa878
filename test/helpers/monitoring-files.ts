/** Where the shipped monitoring stack lives (SPEC §5): the files the monitoring tests read. */
import * as path from 'node:path';
import { projectRoot } from '../../src/paths';

export const REPO_ROOT = projectRoot();
export const MONITORING_DIR = path.join(REPO_ROOT, 'monitoring');
export const PROMETHEUS_CONFIG = path.join(MONITORING_DIR, 'prometheus', 'prometheus.yml');
export const ALERT_RULES = path.join(MONITORING_DIR, 'prometheus', 'alert_rules.yml');
export const RECORDING_RULES = path.join(MONITORING_DIR, 'prometheus', 'recording_rules.yml');
/** The Prometheus config for a Prometheus inside Kubernetes (pods found by Kubernetes discovery). */
export const PROMETHEUS_K8S_CONFIG = path.join(MONITORING_DIR, 'prometheus', 'prometheus.kubernetes.yml');
export const RULE_TESTS_DIR = path.join(MONITORING_DIR, 'prometheus', 'tests');
export const ALERTMANAGER_CONFIG = path.join(MONITORING_DIR, 'alertmanager', 'config.yml');
export const DASHBOARDS_DIR = path.join(MONITORING_DIR, 'grafana', 'dashboards');
export const DASHBOARD = path.join(DASHBOARDS_DIR, 'ml_monitoring.json');
export const COMPOSE_FILE = path.join(REPO_ROOT, 'docker-compose.monitoring.yml');
