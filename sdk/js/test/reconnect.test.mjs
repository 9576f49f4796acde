// Reconnects against a real `herald serve`: a graceful restart (1012), a
// crash (SIGKILL), and a peer that stops answering (SIGSTOP) — each time the
// client comes back on its own and resyncs.

import test from 'node:test';
import assert from 'node:assert/strict';

import { HeraldServer, connectClient, freePort, nextEvent, record, until } from './helpers.mjs';

// notifyWhileDown creates a notification in srv's data directory while srv is
// stopped: through a second herald on another port (no client can reach it),
// stopped again before srv comes back.
async function notifyWhileDown(srv, user, title) {
  const other = new HeraldServer({
    dataDir: srv.dataDir, port: await freePort(), socket: srv.socket + '.2',
  });
  await other.start();
  try {
    return await other.notify(user, title);
  } finally {
    await other.stop();
  }
}

test('server restart: the client reconnects and resyncs', async (t) => {
  const srv = await HeraldServer.start(t);
  const user = 'js-restart';
  await srv.notify(user, 'before');
  const c = connectClient(t, { url: srv.wsURL, token: await srv.token(user) });
  const events = record(c, ['close', 'reconnecting', 'open']);
  await until(() => c.syncs === 1, { message: 'first sync' });
  assert.equal(c.unreadCount, 1);

  await srv.stop();
  await until(() => events.some((e) => e.type === 'close'), { message: 'close event' });
  const close = events.find((e) => e.type === 'close').detail;
  assert.equal(close.code, 1012, `server restart close code (reason ${JSON.stringify(close.reason)})`);
  assert.equal(close.willReconnect, true);
  assert.equal(c.connected, false);

  const missed = await notifyWhileDown(srv, user, 'while down');
  await srv.start();
  await until(() => c.syncs === 2, { timeout: 15_000, message: 'resync after restart' });
  assert.equal(c.connected, true);
  assert.deepEqual(c.unread.map((n) => n.title), ['before', 'while down']);
  assert.equal(c.unread[1].id, missed.id);
  assert.equal(c.unreadCount, 2);
  assert.ok(events.some((e) => e.type === 'reconnecting'), 'reconnecting was announced');

  const live = nextEvent(c, 'notification');
  await srv.notify(user, 'after');
  assert.equal((await live).title, 'after');
  assert.equal(c.unreadCount, 3);
});

test('server crash: the client reconnects with backoff', async (t) => {
  const srv = await HeraldServer.start(t);
  const user = 'js-crash';
  const c = connectClient(t, { url: srv.wsURL, token: await srv.token(user) });
  const reconnecting = record(c, ['reconnecting']);
  await until(() => c.syncs === 1, { message: 'first sync' });

  await srv.stop('SIGKILL');
  // Refused handshakes while the server is down: delays grow (within jitter).
  await until(() => reconnecting.length >= 4, { message: '4 reconnect attempts' });
  const attempts = reconnecting.map((e) => e.detail.attempt);
  assert.deepEqual(attempts.slice(0, 4), [1, 2, 3, 4]);
  await srv.start();
  await until(() => c.syncs === 2, { timeout: 15_000, message: 'resync after crash' });
  const live = nextEvent(c, 'notification');
  await srv.notify(user, 'after crash');
  await live;
  assert.equal(c.unreadCount, 1);
});

test('a peer that stops answering pings is dropped and reconnected', async (t) => {
  const srv = await HeraldServer.start(t);
  t.after(() => { if (srv.proc) srv.resume(); });
  const user = 'js-dead-peer';
  const c = connectClient(t, {
    url: srv.wsURL, token: await srv.token(user), pingInterval: 300, connectTimeout: 1_000,
  });
  const closes = record(c, ['close']);
  await until(() => c.syncs === 1, { message: 'first sync' });

  srv.pause();
  const started = Date.now();
  await until(() => closes.length > 0, { timeout: 10_000, message: 'ping timeout' });
  assert.deepEqual(closes[0].detail, { code: 1006, reason: 'ping timeout', willReconnect: true });
  // Declared dead after two unanswered intervals, not at once and not much later.
  const waited = Date.now() - started;
  assert.ok(waited >= 300 && waited < 5_000, `dead after ${waited} ms`);

  srv.resume();
  await until(() => c.syncs === 2, { timeout: 15_000, message: 'resync after resume' });
  const live = nextEvent(c, 'notification');
  await srv.notify(user, 'after resume');
  await live;
});
