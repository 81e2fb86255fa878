/**
 * The admin surface from a client that is not on loopback. The engine and its clients run inside
 * a network namespace the test makes (a veth pair whose both ends stay in it, one holding
 * 192.0.2.1, a documentation address), so a request can come from a non-loopback address while no
 * packet leaves the namespace.
 *
 * Without ADMIN_TOKEN, mutating endpoints take loopback clients only, and no header (such as
 * X-Forwarded-For) makes a remote client look local; with a token, the token decides.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/engine';
import { REPO_ROOT, requireNetns } from '../helpers/requirements';

const netns = requireNetns();
const NS = `tf-admin-${process.pid}`;
const ADDRESS = '192.0.2.1';
const CLI = path.join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');

interface Answer {
  status: number;
  body: any;
}

/** One HTTP request made from inside the namespace, by a node process there. */
function inside(host: string, port: number, method: string, url: string, headers: Record<string, string> = {}, body = ''): Answer {
  const script = `
    const http = require('node:http');
    const req = http.request({ host: ${JSON.stringify(host)}, port: ${port}, method: ${JSON.stringify(method)}, path: ${JSON.stringify(url)}, headers: ${JSON.stringify(headers)} }, (res) => {
      let b = ''; res.on('data', (c) => (b += c)); res.on('end', () => { process.stdout.write(JSON.stringify({ status: res.statusCode, body: b })); });
    });
    req.on('error', (e) => { process.stdout.write(JSON.stringify({ status: 0, body: String(e) })); });
    req.end(${JSON.stringify(body)});`;
  const r = spawnSync(netns.get(), ['netns', 'exec', NS, process.execPath, '-e', script], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`client in ${NS} failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout) as { status: number; body: string };
  let parsed: unknown = out.body;
  try {
    parsed = JSON.parse(out.body);
  } catch {
    // not JSON: keep the text
  }
  return { status: out.status, body: parsed };
}

interface Served {
  child: ChildProcess;
  port: number;
  logs(): string;
}

async function serveInside(env: Record<string, string>, dirs: string[]): Promise<Served> {
  const stateDir = mkdtempSync(path.join(tmpdir(), 'tradeflow-admin-'));
  dirs.push(stateDir);
  const child = spawn(netns.get(), ['netns', 'exec', NS, process.execPath, CLI, 'serve'], {
    env: { ...process.env, PORT: '0', HOST: '0.0.0.0', LOG_LEVEL: 'info', STATE_DIR: stateDir, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d.toString()));
  child.stderr!.on('data', (d) => (out += d.toString()));
  await waitFor(() => /"msg":"listening"/.test(out) || child.exitCode !== null, 'the engine in the namespace to listen', 30_000);
  const m = /"port":(\d+)/.exec(out.split('\n').find((l) => l.includes('"msg":"listening"')) ?? '');
  if (!m) throw new Error('engine did not start: ' + out);
  return { child, port: Number(m[1]), logs: () => out };
}

describe.skipIf(netns.skip)('admin surface from a non-loopback client', () => {
  const dirs: string[] = [];
  const children: ChildProcess[] = [];

  beforeAll(() => {
    const ip = netns.get();
    const run = (...args: string[]): void => {
      const r = spawnSync(ip, args, { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
    };
    run('netns', 'add', NS);
    run('-n', NS, 'link', 'set', 'lo', 'up');
    run('-n', NS, 'link', 'add', 'tf0', 'type', 'veth', 'peer', 'name', 'tf1');
    run('-n', NS, 'addr', 'add', `${ADDRESS}/24`, 'dev', 'tf0');
    run('-n', NS, 'link', 'set', 'tf0', 'up');
    run('-n', NS, 'link', 'set', 'tf1', 'up');
  });

  afterAll(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    if (!netns.missing) spawnSync(netns.get(), ['netns', 'del', NS]);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('without a token, takes loopback clients only, and trusts no forwarding header', async () => {
    const s = await serveInside({}, dirs);
    children.push(s.child);
    const reset = (host: string, headers: Record<string, string> = {}): Answer => inside(host, s.port, 'POST', '/monitoring/drift/reset', headers);
    // The same request, from the two addresses of the same namespace.
    expect(reset('127.0.0.1').status).toBe(200);
    const remote = reset(ADDRESS);
    expect(remote.status).toBe(403);
    expect(remote.body.error.code).toBe('FORBIDDEN');
    expect(remote.body.error.message).toContain(ADDRESS);
    for (const h of [{ 'X-Forwarded-For': '127.0.0.1' }, { 'X-Real-IP': '127.0.0.1' }, { Forwarded: 'for=127.0.0.1' }, { Host: 'localhost' }]) {
      expect(reset(ADDRESS, h).status, JSON.stringify(h)).toBe(403);
    }
    // Reading is open to everyone.
    expect(inside(ADDRESS, s.port, 'GET', '/monitoring/drift/status').status).toBe(200);
    expect(s.logs()).toMatch(/no ADMIN_TOKEN configured/);
  });

  it('with a token, the token decides, wherever the client is', async () => {
    const s = await serveInside({ ADMIN_TOKEN: 'correct horse battery staple' }, dirs);
    children.push(s.child);
    const reset = (host: string, headers: Record<string, string>): Answer => inside(host, s.port, 'POST', '/monitoring/drift/reset', headers);
    expect(reset(ADDRESS, { Authorization: 'Bearer correct horse battery staple' }).status).toBe(200);
    expect(reset(ADDRESS, {}).status).toBe(401);
    for (const bad of ['Bearer correct horse battery stapl', 'Bearer correct horse battery staplee', 'Bearer ', 'Basic Y29ycmVjdA==', 'Bearer CORRECT HORSE BATTERY STAPLE']) {
      const r = reset(ADDRESS, { Authorization: bad });
      expect([401, 403], bad).toContain(r.status);
    }
    // Loopback gets no pass once a token is configured.
    expect(reset('127.0.0.1', {}).status).toBe(401);
  });
});
