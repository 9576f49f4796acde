// Tokens against a real `herald serve`: getToken renews a refused or expired
// token; a static token that is refused makes the client give up.

import test from 'node:test';
import assert from 'node:assert/strict';

import { HeraldServer, connectClient, nextEvent, record, until } from './helpers.mjs';

test('getToken is asked again after a refused handshake', async (t) => {
  const srv = await HeraldServer.start(t);
  const user = 'js-token-refused';
  await srv.notify(user, 'hello');
  const issued = [];
  const c = connectClient(t, {
    url: srv.wsURL,
    getToken: async () => {
      // First a token the server refuses (401 before the upgrade), then a good one.
      const tok = issued.length === 0 ? 'not-a-jwt' : await srv.token(user);
      issued.push(tok);
      return tok;
    },
  });
  const events = record(c, ['close', 'open']);
  await until(() => c.syncs === 1, { message: 'sync with the second token' });
  assert.equal(issued.length, 2);
  assert.equal(events[0].type, 'close', 'the refused handshake ended first');
  assert.equal(events[0].detail.willReconnect, true);
  assert.equal(c.unreadCount, 1);
});

test('a cached token is reused on reconnect while it is fresh', async (t) => {
  const srv = await HeraldServer.start(t);
  const user = 'js-token-cache';
  let calls = 0;
  const c = connectClient(t, {
    url: srv.wsURL,
    getToken: async () => { calls++; return srv.token(user, '1h'); },
  });
  const events = record(c, ['open', 'close']);
  await until(() => c.syncs === 1, { message: 'first sync' });
  await srv.stop();
  await srv.start();
  await until(() => c.syncs === 2, { timeout: 15_000, message: 'resync after restart' });
  // The restart itself needs no new token. Reconnect tries that found the
  // server still down are refused handshakes (a close with no open before
  // it): the first of such a run asks for one more token, in case the old
  // one was the reason.
  let runs = 0;
  let opened = false;
  let inRun = false;
  for (const e of events) {
    if (e.type === 'open') {
      opened = true;
      inRun = false;
      continue;
    }
    if (!opened && !inRun) runs++; // a close with no open before it
    inRun = !opened;
    opened = false;
  }
  assert.equal(calls, 1 + runs, `getToken calls for events ${events.map((e) => e.type)}`);
});

test('a token about to expire is renewed before connecting', async (t) => {
  const srv = await HeraldServer.start(t);
  const user = 'js-token-margin';
  const ttls = [];
  const c = connectClient(t, {
    url: srv.wsURL, tokenRefreshMargin: 60_000,
    getToken: async () => {
      const ttl = ttls.length === 0 ? '30s' : '1h'; // the first is inside the margin
      ttls.push(ttl);
      return srv.token(user, ttl);
    },
  });
  await until(() => c.syncs === 1, { message: 'first sync' });
  await srv.stop();
  await srv.start();
  await until(() => c.syncs === 2, { timeout: 15_000, message: 'resync after restart' });
  // More 1h tokens when a try found the server still down (see above).
  assert.deepEqual(ttls.slice(0, 2), ['30s', '1h']);
  assert.ok(ttls.slice(2).every((x) => x === '1h'), `ttls ${ttls}`);
});

test('token expiry on an open socket: 1008, then a fresh token from getToken', async (t) => {
  // No leeway, so the 3 s token really ends 3 s after it was issued.
  const srv = await HeraldServer.start(t, { args: ['--jwt-leeway', '0s'] });
  const user = 'js-token-expiry';
  const ttls = [];
  const c = connectClient(t, {
    url: srv.wsURL, tokenRefreshMargin: 0,
    getToken: async () => {
      const ttl = ttls.length === 0 ? '3s' : '1h';
      ttls.push(ttl);
      return srv.token(user, ttl);
    },
  });
  const closes = record(c, ['close']);
  await until(() => c.syncs === 1, { message: 'first sync' });
  await until(() => c.syncs === 2, { timeout: 30_000, message: 'resync with a fresh token' });
  assert.equal(closes[0].detail.code, 1008, `close ${JSON.stringify(closes[0].detail)}`);
  assert.match(closes[0].detail.reason, /expired/i);
  assert.deepEqual(ttls, ['3s', '1h']);
  const live = nextEvent(c, 'notification');
  await srv.notify(user, 'after renewal');
  await live;
});

test('a static token the server refuses: the client gives up after a few tries', async (t) => {
  const srv = await HeraldServer.start(t);
  const c = connectClient(t, { url: srv.wsURL, token: 'not-a-jwt', giveUpAfter: 500 });
  const events = record(c, ['close', 'reconnecting', 'failed', 'open']);
  await until(() => c.state === 'failed', { message: 'state failed' });
  const types = events.map((e) => e.type);
  assert.ok(!types.includes('open'), 'never opened');
  assert.ok(types.filter((x) => x === 'close').length >= 3, `at least 3 tries: ${types}`);
  assert.deepEqual(types.slice(-2), ['close', 'failed']);
  assert.match(events.at(-1).detail.reason, /^cannot connect: \d+ handshakes failed in \d+ s$/);
  assert.equal(events.at(-2).detail.willReconnect, false);
  assert.equal(c.connected, false);
});
