// The example page's script: a bell with the unread count and the unread
// list, kept live by the Herald SDK.
//
// Configuration comes from the page URL's query:
//   ws        WebSocket URL of Herald (default: /ws on this page's host)
//   tokenURL  an endpoint of the host application that answers a connect
//             token as plain text (default: ./token); asked again when the
//             token expires or is refused
//   token     a fixed token instead of tokenURL (for quick trials only: a
//             token in a page URL ends up in the browser history)
//   backoffMax, restartDelay  reconnect timings in ms (the SDK's defaults otherwise)

import { HeraldClient } from '../../sdk/js/herald.js';

const query = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);

const options = {
  url: query.get('ws') ?? `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`,
};
if (query.get('token')) {
  options.token = query.get('token');
} else {
  const tokenURL = query.get('tokenURL') ?? 'token';
  options.getToken = async () => {
    const res = await fetch(tokenURL, { credentials: 'same-origin', cache: 'no-store' });
    if (!res.ok) throw new Error(`token endpoint answered ${res.status}`);
    return (await res.text()).trim();
  };
}
if (query.get('backoffMax')) options.backoff = { max: Number(query.get('backoffMax')) };
if (query.get('restartDelay')) options.restartDelay = Number(query.get('restartDelay'));

const client = new HeraldClient(options);

function renderBadge() {
  const badge = $('badge');
  const n = client.unreadCount;
  badge.textContent = n > 99 ? '99+' : String(n);
  badge.dataset.count = String(n);
  badge.classList.toggle('empty', n === 0);
  document.title = n > 0 ? `(${n}) Herald example` : 'Herald example';
}

function renderList() {
  const list = $('list');
  list.replaceChildren(...[...client.unread].reverse().map((n) => {
    const li = document.createElement('li');
    li.dataset.id = n.id;
    const title = document.createElement('div');
    title.className = 'title';
    title.textContent = n.title;
    const meta = document.createElement('div');
    meta.className = 'meta';
    meta.textContent = `${n.type} · ${new Date(n.created_at).toLocaleString()}`;
    li.append(title, meta);
    if (n.body) {
      const body = document.createElement('div');
      body.textContent = n.body;
      li.append(body);
    }
    li.addEventListener('click', () => client.markRead([n.id]));
    return li;
  }));
  $('empty').hidden = client.unread.length > 0;
}

function setStatus(text, cls = '') {
  const el = $('status');
  el.textContent = text;
  el.className = cls;
}

for (const type of ['sync', 'notification', 'read', 'read_all', 'deleted']) {
  client.on(type, renderList);
}
client.on('count', renderBadge);
client.on('sync', renderBadge);
client.on('open', () => setStatus('connected', 'connected'));
client.on('reconnecting', ({ delay }) => setStatus(`reconnecting in ${Math.ceil(delay / 1000)} s`));
client.on('failed', ({ reason }) => setStatus(`offline: ${reason}`, 'failed'));
client.on('error', ({ code, message }) => console.warn('herald:', code, message));

$('mark-all').addEventListener('click', () => client.markAllRead());
$('bell').addEventListener('click', () => $('list').scrollIntoView({ behavior: 'smooth' }));

window.herald = client; // for the browser console
client.connect();
