// The client against a real `herald serve`: the first unread_sync, live
// notifications, read state shared between tabs, and list paging.

import test from 'node:test';
import assert from 'node:assert/strict';

import { HeraldServer, connectClient, nextEvent, until } from './helpers.mjs';

test('against a real herald serve', async (t) => {
  const srv = await HeraldServer.start(t);
  const user = 'js-user-1';
  const token = await srv.token(user);
  const first = await srv.notify(user, 'first');
  const second = await srv.notify(user, 'second');

  await t.test('first unread_sync brings the unread list, oldest first', async (t) => {
    const c = connectClient(t, { url: srv.wsURL, token });
    await until(() => c.syncs === 1, { message: 'unread_sync' });
    assert.equal(c.connected, true);
    assert.equal(c.state, 'open');
    assert.deepEqual(c.unread.map((n) => n.title), ['first', 'second']);
    assert.deepEqual(c.unread.map((n) => n.id), [first.id, second.id]);
    assert.equal(c.unreadCount, 2);
    assert.equal(c.truncated, false);
  });

  await t.test('a live notification arrives and the count follows', async (t) => {
    const c = connectClient(t, { url: srv.wsURL, token });
    await until(() => c.syncs === 1, { message: 'unread_sync' });
    const counts = [];
    c.on('count', (v) => counts.push(v));
    const arrived = nextEvent(c, 'notification', (n) => n.title === 'live');
    const created = await srv.notify(user, 'live');
    const n = await arrived;
    assert.equal(n.id, created.id);
    assert.equal(n.user_id, user);
    assert.equal(n.is_read, false);
    assert.equal(c.unreadCount, 3);
    assert.deepEqual(counts, [3]);
    assert.equal(c.unread.at(-1).id, created.id, 'newest last');
  });

  await t.test('markRead in one tab updates the other; markAllRead clears both', async (t) => {
    const a = connectClient(t, { url: srv.wsURL, token });
    const b = connectClient(t, { url: srv.wsURL, token });
    await until(() => a.syncs === 1 && b.syncs === 1, { message: 'both synced' });
    assert.equal(b.unreadCount, 3);

    const readInB = nextEvent(b, 'read');
    const readInA = nextEvent(a, 'read');
    assert.equal(a.markRead([first.id]), true);
    assert.deepEqual((await readInB).ids, [first.id]);
    await readInA; // the tab that marked it hears it too
    for (const c of [a, b]) {
      assert.equal(c.unreadCount, 2);
      assert.ok(!c.unread.some((n) => n.id === first.id));
    }

    const other = nextEvent(b, 'read_all');
    assert.equal(a.markAllRead(), true);
    await other;
    await until(() => a.unreadCount === 0 && b.unreadCount === 0, { message: 'both at 0' });
    assert.deepEqual(b.unread, []);
  });

  await t.test('a frame the server refuses comes back as an error event', async (t) => {
    const c = connectClient(t, { url: srv.wsURL, token });
    await until(() => c.syncs === 1, { message: 'unread_sync' });
    const err = nextEvent(c, 'error');
    assert.equal(c.markRead(['01ARZ3NDEKTSV4RRFFQ69G5FAV']), true); // an id of no one
    const e = await err;
    assert.equal(e.code, 'not_found');
    assert.equal(e.ref, 'mark_read');
    assert.equal(c.connected, true, 'the connection stays open');
  });

  await t.test('list pages newest first and answers in order', async (t) => {
    const c = connectClient(t, { url: srv.wsURL, token });
    await until(() => c.syncs === 1, { message: 'unread_sync' });
    // Three notifications exist, all read by now: a page of 2, then one of 1.
    const [p1, unread] = await Promise.all([c.list({ limit: 2 }), c.list({ unreadOnly: true, limit: 10 })]);
    assert.deepEqual(p1.notifications.map((n) => n.title), ['live', 'second']);
    assert.deepEqual(unread.notifications, []);
    const p2 = await c.list({ before: p1.next, limit: 2 });
    assert.deepEqual(p2.notifications.map((n) => n.title), ['first']);
    assert.ok(!p2.next, 'no next page at the end');
  });
});
