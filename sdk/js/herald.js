// Herald browser SDK: one dependency-free ES module that keeps a WebSocket to
// Herald open, mirrors the user's unread notifications and reconnects on its
// own. It runs in browsers and in Node 20+ (pass a WebSocket constructor, or
// run Node with --experimental-websocket). See README.md beside this file.
//
// The SDK never logs and never puts the token anywhere but the connect URL.

/** Close codes Herald uses (PROTOCOL.md). */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  ABNORMAL: 1006, // no close frame: network loss, refused handshake, or a dead connection
  POLICY: 1008, // token expired, too many connections
  TOO_BIG: 1009,
  INTERNAL: 1011,
  RESTART: 1012, // server restart: reconnect soon, with jitter
  TRY_AGAIN_LATER: 1013, // slow consumer: back off longer
});

const DEFAULTS = {
  pingInterval: 20_000,
  connectTimeout: 10_000,
  restartDelay: 2_000,
  giveUpAfter: 120_000,
  tokenRefreshMargin: 30_000,
  listLimit: 20,
};
const DEFAULT_BACKOFF = { initial: 500, max: 30_000, factor: 2, jitter: 1 };

// Backoff attempts added after 1013 or a policy refusal: 2^3 = 8 times longer.
const SLOW_DOWN = 3;
// Failed handshakes in a row before giving up is considered at all.
const MIN_TRIES = 3;

/** An error frame from Herald, or a request the client could not complete. */
export class HeraldError extends Error {
  constructor(code, message, ref) {
    super(message);
    this.name = 'HeraldError';
    this.code = code;
    this.ref = ref;
  }
}

/**
 * Returns the delay in ms before reconnect attempt number `attempt` (0 first):
 * exponential growth capped at `max`, then jitter. With jitter 1 (full
 * jitter) the delay is uniform in [0, cap]; with 0 it is exactly the cap.
 */
export function backoffDelay(attempt, backoff = {}, random = Math.random) {
  const { initial, max, factor, jitter } = { ...DEFAULT_BACKOFF, ...backoff };
  const cap = Math.min(max, initial * Math.pow(factor, Math.max(0, attempt)));
  return Math.round(cap - cap * Math.min(1, Math.max(0, jitter)) * random());
}

/**
 * Decides what to do after a socket ended. `end` holds the close `code` and
 * `reason`, whether the socket had `opened`, the current backoff `attempt`,
 * the count of consecutive `failures` before open and for how long they
 * have been failing (`failingFor`, ms), and whether a `getToken` exists.
 * Returns {stop} (a reason to give up) or {delay, attempt, failures,
 * refreshToken}: when to reconnect and the counters to keep.
 */
export function planReconnect(end, options = {}, random = Math.random) {
  const opts = { ...DEFAULTS, ...options, backoff: { ...DEFAULT_BACKOFF, ...options.backoff } };
  const { code, reason = '', opened, attempt, failures, failingFor = 0, hasGetToken } = end;
  const after = (n, extra = {}) => ({
    delay: backoffDelay(n, opts.backoff, random), attempt: attempt + 1, failures: 0, ...extra,
  });

  // A refused handshake (401, 403, a proxy's 5xx) and a server that is down
  // look the same to a browser: a close before open. Retry with backoff, with
  // a fresh token after the first failure of a run (one more would be no
  // better, and an outage should not turn into a getToken storm); give up
  // once they have failed for giveUpAfter ms, since a refusal is permanent
  // and a restart takes less than that.
  if (!opened) {
    const n = failures + 1;
    if (n >= MIN_TRIES && failingFor >= opts.giveUpAfter) {
      const secs = Math.round(failingFor / 1000);
      return { stop: `cannot connect: ${n} handshakes failed in ${secs} s` };
    }
    return { ...after(attempt), failures: n, refreshToken: hasGetToken && failures === 0 };
  }
  switch (code) {
    case CloseCode.RESTART:
      // Every client of a restarting server hears this at once: spread them.
      return { delay: Math.round(random() * opts.restartDelay), attempt: 0, failures: 0 };
    case CloseCode.TRY_AGAIN_LATER:
      return after(attempt + SLOW_DOWN);
    case CloseCode.POLICY:
      if (/expired/i.test(reason)) {
        if (!hasGetToken) return { stop: 'token expired and no getToken to renew it' };
        return after(0, { refreshToken: true });
      }
      return after(attempt + SLOW_DOWN, { refreshToken: hasGetToken });
    default:
      return after(attempt);
  }
}

/**
 * A connection to Herald for one user. Not shared between tabs: each tab (or
 * each Node client) opens its own. Events: open, sync, notification, read,
 * read_all, deleted, count, close, error, reconnecting, gap, failed.
 */
export class HeraldClient {
  constructor(options = {}) {
    if (!options.url) throw new TypeError('HeraldClient: url is required');
    if (!options.token && typeof options.getToken !== 'function') {
      throw new TypeError('HeraldClient: token or getToken is required');
    }
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (typeof this._WebSocket !== 'function') {
      throw new TypeError('HeraldClient: no WebSocket; pass one as options.WebSocket');
    }
    this._opts = { ...DEFAULTS, ...options, backoff: { ...DEFAULT_BACKOFF, ...options.backoff } };
    this._random = options.random ?? Math.random;
    this._onListenerError = options.onListenerError ??
      ((err) => queueMicrotask(() => { throw err; }));
    this._getToken = options.getToken ?? null;
    this._token = options.token ?? null;
    this._tokenStale = false;

    /** Unread notifications, oldest first (the newest ones when `truncated`). */
    this.unread = [];
    /** The user's full unread count, from the server. */
    this.unreadCount = 0;
    /** True when the server had more unread than it sent in unread_sync. */
    this.truncated = false;
    /** True while a socket is open. */
    this.connected = false;
    /** idle, connecting, open, waiting (to reconnect), failed or closed. */
    this.state = 'idle';

    this._listeners = new Map();
    this._ws = null;
    this._attempt = 0;
    this._failures = 0;
    this._failingSince = 0; // when the current run of failed handshakes began
    this._gen = 0; // counts connection tries
    this._seq = null;
    this._pending = []; // resolvers of list requests, in the order sent
    this._timers = { retry: null, ping: null, connect: null };
    this._pingSentAt = null;
    // Browsers: retry at once when the network comes back, and after giving
    // up, when the user returns to the tab.
    this._onOnline = () => {
      if (this.state === 'waiting' || this.state === 'failed') this._reconnectNow();
    };
    this._onVisible = () => {
      if (this.state === 'failed' && globalThis.document?.visibilityState === 'visible') {
        this._reconnectNow();
      }
    };
  }

  /** Adds a listener; returns a function that removes it. */
  on(type, fn) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(fn);
    return () => this.off(type, fn);
  }

  /** Removes a listener added with on. */
  off(type, fn) {
    this._listeners.get(type)?.delete(fn);
  }

  /** Opens the connection; it then stays up, reconnecting, until close(). */
  connect() {
    if (this.state !== 'idle' && this.state !== 'failed' && this.state !== 'closed') return;
    this._attempt = 0;
    this._failures = 0;
    globalThis.addEventListener?.('online', this._onOnline);
    globalThis.document?.addEventListener('visibilitychange', this._onVisible);
    this._open();
  }

  /** Closes the connection for good (until the next connect()). */
  close() {
    if (this.state === 'closed') return;
    globalThis.removeEventListener?.('online', this._onOnline);
    globalThis.document?.removeEventListener('visibilitychange', this._onVisible);
    const ws = this._ws;
    const was = this.state;
    this.state = 'closed';
    this._gen++;
    this._clearTimers();
    if (ws) this._end(ws, CloseCode.NORMAL, 'client closed');
    else if (was !== 'idle') {
      this._emit('close',
        { code: CloseCode.NORMAL, reason: 'client closed', willReconnect: false });
    }
  }

  /** Marks notifications read. Returns false when not connected. */
  markRead(ids) {
    const list = Array.isArray(ids) ? ids : [ids];
    if (list.length === 0) return true;
    return this._send({ type: 'mark_read', ids: list });
  }

  /** Marks all the user's notifications read. Returns false when not connected. */
  markAllRead() {
    return this._send({ type: 'mark_all_read' });
  }

  /**
   * Lists notifications, newest first. Resolves with the `page` frame
   * ({notifications, next}); rejects with a HeraldError on an error frame, or
   * when the connection is down or drops before the answer.
   */
  list({ before, unreadOnly = false, limit = this._opts.listLimit } = {}) {
    const frame = { type: 'list', unread_only: Boolean(unreadOnly), limit };
    if (before) frame.before = before;
    return new Promise((resolve, reject) => {
      if (!this._send(frame)) {
        reject(new HeraldError('not_connected', 'herald: not connected', 'list'));
        return;
      }
      this._pending.push({ resolve, reject });
    });
  }

  // --- connection life cycle ---

  async _open() {
    // gen tells this try from a later one, started by close() and connect()
    // while getToken was running.
    const gen = ++this._gen;
    this.state = 'connecting';
    let token;
    try {
      token = await this._currentToken();
    } catch (err) {
      if (gen !== this._gen || this.state !== 'connecting') return;
      this._emit('error', { code: 'token', message: 'herald: getToken failed', error: err });
      this._afterEnd({ code: CloseCode.ABNORMAL, reason: 'getToken failed', opened: false });
      return;
    }
    if (gen !== this._gen || this.state !== 'connecting') return; // close() while getToken ran

    const ws = new this._WebSocket(withToken(this._opts.url, token));
    this._ws = ws;
    let opened = false;
    this._timers.connect = setTimeout(() => this._end(ws, CloseCode.ABNORMAL, 'connect timeout'),
      this._opts.connectTimeout);
    ws.onopen = () => {
      if (ws !== this._ws) return;
      opened = true;
      clearTimeout(this._timers.connect);
      this._failures = 0;
      this._seq = null;
      this.connected = true;
      this.state = 'open';
      this._pingSentAt = null;
      if (this._opts.pingInterval > 0) {
        this._timers.ping = setInterval(() => this._heartbeat(ws), this._opts.pingInterval);
      }
      this._emit('open', {});
    };
    ws.onmessage = (ev) => {
      if (ws === this._ws) this._onFrame(ws, ev.data);
    };
    ws.onclose = (ev) => this._end(ws, ev.code, ev.reason, opened);
    // An error event means the connection failed, and browsers follow it with
    // a close of code 1006. Node 20's WebSocket fires no close after a refused
    // handshake, so the error is taken as the end.
    ws.onerror = () => this._end(ws, CloseCode.ABNORMAL, '', opened);
  }

  // _end handles the end of socket ws once, whichever way it ended: a close
  // event, or the client giving up on it (connect timeout, dead connection,
  // seq gap, close()). It does not wait for the close handshake, which a dead
  // peer never finishes.
  _end(ws, code, reason, opened = this.connected) {
    if (ws !== this._ws) return;
    this._ws = null;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    if (ws.readyState === 0 || ws.readyState === 1) {
      try { ws.close(CloseCode.NORMAL); } catch { /* already closing */ }
    }
    clearTimeout(this._timers.connect);
    clearInterval(this._timers.ping);
    this.connected = false;
    const pending = this._pending.splice(0);
    for (const p of pending) {
      p.reject(new HeraldError('disconnected', 'herald: connection closed before the answer',
        'list'));
    }
    this._afterEnd({ code, reason: reason ?? '', opened });
  }

  _afterEnd({ code, reason, opened }) {
    if (this.state === 'closed') {
      this._emit('close', { code, reason, willReconnect: false });
      return;
    }
    if (!opened && this._failures === 0) this._failingSince = Date.now();
    const plan = planReconnect({
      code, reason, opened, attempt: this._attempt, failures: this._failures,
      failingFor: opened ? 0 : Date.now() - this._failingSince,
      hasGetToken: Boolean(this._getToken),
    }, this._opts, this._random);
    this._emit('close', { code, reason, willReconnect: !plan.stop });
    if (plan.stop) {
      this.state = 'failed';
      this._emit('failed', { reason: plan.stop });
      return;
    }
    this._attempt = plan.attempt;
    this._failures = plan.failures;
    if (plan.refreshToken) this._tokenStale = true;
    this.state = 'waiting';
    this._emit('reconnecting', { attempt: plan.attempt, delay: plan.delay, code });
    this._timers.retry = setTimeout(() => this._open(), plan.delay);
  }

  _reconnectNow() {
    clearTimeout(this._timers.retry);
    this._failures = 0;
    this._open();
  }

  _clearTimers() {
    clearTimeout(this._timers.retry);
    clearTimeout(this._timers.connect);
    clearInterval(this._timers.ping);
  }

  // _heartbeat sends an application ping and declares the connection dead
  // when a ping has gone unanswered (no frame at all) for two intervals.
  // It measures from the ping, not from the last frame, so that a background
  // tab whose timers the browser slows down is not taken for dead.
  _heartbeat(ws) {
    const now = Date.now();
    if (this._pingSentAt === null) {
      this._pingSentAt = now;
    } else if (now - this._pingSentAt > 1.5 * this._opts.pingInterval) {
      this._end(ws, CloseCode.ABNORMAL, 'ping timeout');
      return;
    }
    this._send({ type: 'ping' });
  }

  async _currentToken() {
    if (!this._getToken) return this._token;
    if (this._token && !this._tokenStale &&
        !expiresWithin(this._token, this._opts.tokenRefreshMargin)) {
      return this._token;
    }
    const token = await this._getToken();
    if (typeof token !== 'string' || token === '') throw new Error('getToken returned no token');
    this._token = token;
    this._tokenStale = false;
    return token;
  }

  _send(frame) {
    if (!this.connected || !this._ws) return false;
    this._ws.send(JSON.stringify(frame));
    return true;
  }

  // --- frames ---

  _onFrame(ws, data) {
    this._pingSentAt = null; // any frame proves the connection alive
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      this._emit('error', { code: 'bad_frame', message: 'herald: server sent invalid JSON' });
      return;
    }
    if (!this._checkSeq(ws, msg)) return;
    switch (msg.type) {
      case 'unread_sync': return this._onSync(msg);
      case 'notification': return this._onNotification(msg);
      case 'read': return this._onRemoved('read', msg);
      case 'deleted': return this._onRemoved('deleted', msg);
      case 'read_all':
        this.unread = [];
        this._emit('read_all', { unreadCount: msg.unread_count ?? 0 });
        return this._setCount(msg.unread_count ?? 0);
      case 'page':
        return this._pending.shift()?.resolve(
          { notifications: msg.notifications ?? [], next: msg.next });
      case 'error':
        if (msg.ref === 'list') {
          this._pending.shift()?.reject(new HeraldError(msg.code, msg.message, msg.ref));
        }
        return this._emit('error', { code: msg.code, message: msg.message, ref: msg.ref });
      default:
        return; // pong, and frame types newer than this SDK
    }
  }

  // _checkSeq follows the per-user seq that server frames carry. A frame
  // that skips one means this tab missed a change: reconnect to get an
  // authoritative unread_sync. Returns false when the frame must be dropped.
  _checkSeq(ws, msg) {
    if (typeof msg.seq !== 'number') return true;
    if (msg.type === 'unread_sync' || this._seq === null) {
      this._seq = msg.seq;
      return true;
    }
    if (msg.seq === this._seq + 1) {
      this._seq = msg.seq;
      return true;
    }
    this._emit('gap', { expected: this._seq + 1, got: msg.seq });
    this._end(ws, CloseCode.ABNORMAL, 'seq gap');
    return false;
  }

  _onSync(msg) {
    this.unread = [...(msg.notifications ?? [])].sort(byID);
    this.truncated = Boolean(msg.truncated);
    this._attempt = 0; // a full sync is the sign of a healthy connection
    const count = msg.unread_count ?? this.unread.length;
    this._emit('sync', { notifications: this.unread, unreadCount: count, truncated: this.truncated });
    this._setCount(count);
  }

  _onNotification(msg) {
    const n = msg.notification;
    if (!n || !n.id) return;
    const known = this.unread.some((u) => u.id === n.id);
    if (!n.is_read && !known) insertSorted(this.unread, n);
    this._emit('notification', n);
    if (typeof msg.unread_count === 'number') this._setCount(msg.unread_count);
    else if (!n.is_read && !known) this._setCount(this.unreadCount + 1);
  }

  _onRemoved(type, msg) {
    const ids = new Set(msg.ids ?? []);
    const before = this.unread.length;
    this.unread = this.unread.filter((n) => !ids.has(n.id));
    const count = msg.unread_count ?? Math.max(0, this.unreadCount - (before - this.unread.length));
    this._emit(type, { ids: [...ids], unreadCount: count });
    this._setCount(count);
  }

  _setCount(n) {
    if (n === this.unreadCount) return;
    this.unreadCount = n;
    this._emit('count', n);
  }

  _emit(type, detail) {
    for (const fn of [...(this._listeners.get(type) ?? [])]) {
      try {
        fn(detail);
      } catch (err) {
        // A failing listener must not break the connection nor the other
        // listeners; by default it is reported as an uncaught error.
        this._onListenerError(err);
      }
    }
  }
}

function withToken(url, token) {
  return url + (url.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token);
}

// expiresWithin tells whether a JWT's exp is less than ms away. A token that
// is not a readable JWT is opaque: it is used until the server refuses it.
function expiresWithin(token, ms) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const { exp } = JSON.parse(atob(part));
    return typeof exp === 'number' && exp * 1000 - Date.now() < ms;
  } catch {
    return false;
  }
}

function byID(a, b) {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

function insertSorted(list, n) {
  let i = list.length;
  while (i > 0 && list[i - 1].id > n.id) i--;
  list.splice(i, 0, n);
}
