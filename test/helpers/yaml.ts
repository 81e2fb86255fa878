/** The YAML files we ship (Prometheus, Alertmanager, compose), read as data. */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

// The shapes differ per file and the tests navigate them freely.
export function loadYaml(file: string): any {
  return parse(readFileSync(file, 'utf8'));
}
