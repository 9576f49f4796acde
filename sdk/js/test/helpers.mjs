// Test helpers: a real `herald serve` process per test file, the herald CLI
// for tokens and notifications, and waiting on conditions with deadlines.
//
// The binary comes from $HERALD_BIN (the Go wrapper test builds it), or is
// built once into a temporary directory with `go build`.

import { spawn, execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { HeraldClient } from '../herald.js';

const run = promisify(execFile);
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

let binary;

/** Returns the path of a herald binary, building it on first use. */
export function heraldBinary() {
  binary ??= (async () => {
    if (process.env.HERALD_BIN) return process.env.HERALD_BIN;
    const dir = await mkdtemp(path.join(os.tmpdir(), 'herald-bin-'));
    const out = path.join(dir, 'herald');
    await run('go', ['build', '-o', out, './sidecar/cmd/herald'], { cwd: repoRoot });
    return out;
  })();
  return binary;
}

/** Returns a TCP port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Makes a temporary directory removed by t.after. */
export async function tempDir(t, prefix = 'herald-js-') {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * One `herald serve` process. stop() and start() again keep the port, the
 * data directory and the socket: that is a server restart.
 */
export class HeraldServer {
  constructor({ dataDir, port, socket, args = [] }) {
    this.dataDir = dataDir;
    this.port = port;
    this.socket = socket;
    this.args = args;
    this.proc = null;
    this.stderr = '';
  }

  /** Starts a server on a free port with a fresh data directory; t.after stops it. */
  static async start(t, { args = [] } = {}) {
    const dataDir = await tempDir(t);
    const srv = new HeraldServer({
      dataDir, port: await freePort(), socket: path.join(dataDir, 'herald.sock'), args,
    });
    t.after(() => srv.stop());
    await srv.start();
    return srv;
  }

  get wsURL() { return `ws://127.0.0.1:${this.port}/ws`; }

  async start() {
    const bin = await heraldBinary();
    this.stderr = '';
    const proc = spawn(bin, ['serve',
      '--http-addr', `127.0.0.1:${this.port}`,
      '--data-dir', this.dataDir,
      '--socket', this.socket,
      '--shutdown-timeout', '5s',
      ...this.args,
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = proc;
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (s) => { this.stderr = (this.stderr + s).slice(-20_000); });
    proc.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
    let exited = null;
    proc.exited.then((e) => { exited = e; });
    await until(async () => {
      if (exited) throw new Error(`herald serve exited (${JSON.stringify(exited)}):\n${this.stderr}`);
      try {
        const res = await fetch(`http://127.0.0.1:${this.port}/readyz`);
        return res.status === 200;
      } catch {
        return false;
      }
    }, { timeout: 20_000, message: () => `herald serve not ready on port ${this.port}:\n${this.stderr}` });
  }

  /** Stops the server (SIGTERM: a graceful stop that closes sockets with 1012). */
  async stop(signal = 'SIGTERM') {
    const proc = this.proc;
    if (!proc) return;
    this.proc = null;
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
    await proc.exited;
    clearTimeout(timer);
  }

  /** Pauses (SIGSTOP) or resumes (SIGCONT) the process: a dead, not closed, peer. */
  pause() { this.proc.kill('SIGSTOP'); }
  resume() { this.proc.kill('SIGCONT'); }

  async token(user, ttl = '1h') {
    const { stdout } = await this.cli('token', '--user', user, '--ttl', ttl, '--data-dir', this.dataDir);
    return stdout.trim();
  }

  /** Creates a notification through the CLI (gRPC on the socket); returns it. */
  async notify(user, title, type = 'test.event') {
    const { stdout } = await this.cli('notify', '--socket', this.socket, '--user', user,
      '--type', type, '--title', title);
    return JSON.parse(stdout);
  }

  async cli(...args) {
    try {
      return await run(await heraldBinary(), args, { timeout: 20_000 });
    } catch (err) {
      throw new Error(`herald ${args[0]} failed: ${err.stderr || err.message}`);
    }
  }
}

/**
 * Waits until cond() (sync or async) returns a truthy value and returns it;
 * throws after timeout ms with message (a string or a function).
 */
export async function until(cond, { timeout = 10_000, interval = 20, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${typeof message === 'function' ? message() : message}`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** Resolves with the next `type` event of client whose detail matches pred. */
export function nextEvent(client, type, pred = () => true, timeout = 10_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${timeout} ms waiting for event ${type}`));
    }, timeout);
    const off = client.on(type, (detail) => {
      if (!pred(detail)) return;
      clearTimeout(timer);
      off();
      resolve(detail);
    });
  });
}

/** Records every event of a client, in order, for assertions. */
export function record(client, types) {
  const events = [];
  for (const type of types) client.on(type, (detail) => events.push({ type, detail }));
  return events;
}

/**
 * Makes a client with test-sized timings, connected; t.after closes it.
 * Options override the defaults. client.syncs counts its unread_sync frames.
 */
export function connectClient(t, options) {
  const client = new HeraldClient({
    WebSocket: globalThis.WebSocket,
    backoff: { initial: 50, max: 500, factor: 2, jitter: 1 },
    restartDelay: 200,
    pingInterval: 1_000,
    connectTimeout: 3_000,
    ...options,
  });
  client.syncs = 0;
  client.on('sync', () => { client.syncs++; });
  t.after(() => client.close());
  client.connect();
  return client;
}
