// Unit tests of the client's frame handling against a scripted socket, for
// what a real server cannot be made to do on demand: skip a seq number,
// send frames for ids the tab never saw, answer a list with an error.
// Everything else is tested against a real `herald serve`.

import test from 'node:test';
import assert from 'node:assert/strict';

import { HeraldClient } from '../herald.js';
import { until } from './helpers.mjs';

// ScriptedSocket is the part of the WebSocket interface the SDK uses. The
// test plays the server: open(), frame(obj), and reads what the client sent.
class ScriptedSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    ScriptedSocket.all.push(this);
  }
  send(s) { this.sent.push(JSON.parse(s)); }
  close() { this.readyState = 3; }
  open() { this.readyState = 1; this.onopen?.({}); }
  frame(obj) { this.onmessage?.({ data: JSON.stringify(obj) }); }
}

function newClient(t, options = {}) {
  ScriptedSocket.all = [];
  const c = new HeraldClient({
    url: 'ws://herald.invalid/ws', token: 'secret-token', WebSocket: ScriptedSocket,
    backoff: { initial: 1, max: 5 }, pingInterval: 0, ...options,
  });
  t.after(() => c.close());
  c.connect();
  return c;
}

const n = (id, extra = {}) => ({ id, user_id: 'u1', type: 't', title: id, is_read: false, ...extra });

test('the token rides in the query, url-encoded', async (t) => {
  newClient(t, { url: 'ws://herald.invalid/ws?v=1', token: 'a+b/c=' });
  await until(() => ScriptedSocket.all.length === 1);
  assert.equal(ScriptedSocket.all[0].url, 'ws://herald.invalid/ws?v=1&token=a%2Bb%2Fc%3D');
});

test('unread state follows sync, notification, read, deleted, read_all', async (t) => {
  const c = newClient(t);
  await until(() => ScriptedSocket.all.length === 1);
  const ws = ScriptedSocket.all[0];
  const counts = [];
  c.on('count', (v) => counts.push(v));
  ws.open();
  ws.frame({ type: 'unread_sync', seq: 7, notifications: [n('01B'), n('01A')], unread_count: 5, truncated: true });
  assert.deepEqual(c.unread.map((x) => x.id), ['01A', '01B'], 'sorted oldest first');
  assert.equal(c.truncated, true);
  ws.frame({ type: 'notification', seq: 8, notification: n('01C') });
  ws.frame({ type: 'notification', seq: 9, notification: n('01C') }); // the same again: no double count
  ws.frame({ type: 'read', seq: 10, ids: ['01A', '01Z'], unread_count: 5 });
  ws.frame({ type: 'deleted', seq: 11, ids: ['01B'], unread_count: 4 });
  assert.deepEqual(c.unread.map((x) => x.id), ['01C']);
  ws.frame({ type: 'read_all', seq: 12, unread_count: 0 });
  assert.deepEqual(c.unread, []);
  assert.deepEqual(counts, [5, 6, 5, 4, 0]);
});

test('a seq gap drops the socket and resyncs on a new one', async (t) => {
  const c = newClient(t);
  const gaps = [];
  c.on('gap', (g) => gaps.push(g));
  await until(() => ScriptedSocket.all.length === 1);
  const first = ScriptedSocket.all[0];
  first.open();
  first.frame({ type: 'unread_sync', seq: 3, notifications: [], unread_count: 0 });
  first.frame({ type: 'notification', seq: 5, notification: n('01A') });
  assert.deepEqual(gaps, [{ expected: 4, got: 5 }]);
  assert.equal(c.unread.length, 0, 'the frame after the gap is not applied');
  assert.equal(first.readyState, 3, 'old socket closed');

  await until(() => ScriptedSocket.all.length === 2, { message: 'a new socket' });
  const second = ScriptedSocket.all[1];
  second.open();
  second.frame({ type: 'unread_sync', seq: 9, notifications: [n('01A')], unread_count: 1 });
  assert.equal(c.unreadCount, 1);
  first.frame({ type: 'read_all', unread_count: 0 }); // late frame of the old socket: ignored
  assert.equal(c.unreadCount, 1);
});

test('list answers match requests in order; an error frame rejects its request', async (t) => {
  const c = newClient(t);
  await until(() => ScriptedSocket.all.length === 1);
  const ws = ScriptedSocket.all[0];
  ws.open();
  const a = c.list({ limit: 2 });
  const b = c.list({ before: '01X', unreadOnly: true, limit: 100 });
  assert.deepEqual(ws.sent, [
    { type: 'list', unread_only: false, limit: 2 },
    { type: 'list', unread_only: true, limit: 100, before: '01X' },
  ]);
  ws.frame({ type: 'page', notifications: [n('01B'), n('01A')], next: '01A' });
  ws.frame({ type: 'error', code: 'rate_limited', message: 'slow down', ref: 'list' });
  assert.deepEqual((await a).notifications.map((x) => x.id), ['01B', '01A']);
  await assert.rejects(b, { name: 'HeraldError', code: 'rate_limited' });
  const pending = c.list();
  ws.onclose({ code: 1006, reason: '' });
  await assert.rejects(pending, { code: 'disconnected' });
  await assert.rejects(c.list(), { code: 'not_connected' });
});

test('a listener that throws does not break the client', async (t) => {
  const reported = [];
  const c = newClient(t, { onListenerError: (err) => reported.push(err.message) });
  const seen = [];
  c.on('sync', () => { throw new Error('listener bug'); });
  c.on('sync', () => seen.push('second listener ran'));
  await until(() => ScriptedSocket.all.length === 1);
  ScriptedSocket.all[0].open();
  ScriptedSocket.all[0].frame({ type: 'unread_sync', notifications: [], unread_count: 0 });
  assert.deepEqual(reported, ['listener bug']);
  assert.deepEqual(seen, ['second listener ran']);
  assert.equal(c.connected, true);
});

test('close() and connect() while getToken runs open one socket, not two', async (t) => {
  ScriptedSocket.all = [];
  const pending = [];
  const c = new HeraldClient({
    url: 'ws://herald.invalid/ws', WebSocket: ScriptedSocket, pingInterval: 0,
    getToken: () => new Promise((resolve) => pending.push(resolve)),
  });
  t.after(() => c.close());
  c.connect();
  c.close();
  c.connect();
  assert.equal(pending.length, 2);
  pending[0]('first');
  pending[1]('second');
  await until(() => ScriptedSocket.all.length > 0);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(ScriptedSocket.all.map((s) => s.url), ['ws://herald.invalid/ws?token=second']);
});
