// The taskboard page: the task list with its three actions, and the
// notification bell, fed by Herald's browser SDK (served from sdk/js).
import { HeraldClient } from '/herald.js';

const $ = (sel, root = document) => root.querySelector(sel);

// api calls the taskboard's JSON API and throws an Error with its message.
async function api(path, body) {
  const init = body === undefined ? {} : {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  };
  const res = await fetch(path, { credentials: 'same-origin', ...init });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error(data.error || `${res.status} ${res.statusText}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

function setStatus(text, isError = false) {
  const el = $('#status');
  el.textContent = text;
  el.classList.toggle('error', isError);
}

// --- tasks ---

function renderTasks(tasks) {
  const list = $('#tasks');
  list.replaceChildren(...tasks.map(renderTask));
  const wanted = location.pathname.match(/^\/tasks\/(\d+)/);
  if (wanted) document.getElementById('task-' + wanted[1])?.classList.add('focus');
}

function renderTask(task) {
  const el = $('#task-template').content.firstElementChild.cloneNode(true);
  el.id = 'task-' + task.id;
  el.dataset.id = task.id;
  $('.task-id', el).textContent = '#' + task.id;
  $('.task-title', el).textContent = task.title;
  $('.assignee', el).textContent = task.assignee || 'nobody';
  $('.watchers', el).textContent = task.watchers.join(', ') || 'none';
  $('.blocked-flag', el).hidden = !task.blocked;
  const reason = $('.blocked-reason', el);
  reason.hidden = !task.blocked_reason;
  reason.textContent = task.blocked_reason ? 'Blocked: ' + task.blocked_reason : '';
  $('.comments', el).replaceChildren(...task.comments.map((c) => {
    const li = document.createElement('li');
    li.id = 'comment-' + c.id;
    const who = document.createElement('strong');
    who.textContent = c.author + ': ';
    li.append(who, c.text);
    return li;
  }));

  const action = (selector, path, field, done) => {
    const form = $(selector, el);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const value = form.elements[field].value.trim();
      try {
        const res = await api(`/api/tasks/${task.id}/${path}`, { [field]: value });
        setStatus(done(res));
        await refreshTasks();
      } catch (err) {
        setStatus(err.message, true);
      }
    });
  };
  const notified = (res) => res.notified.length ? 'notified ' + res.notified.join(', ') : 'nobody to notify';
  action('.assign', 'assign', 'assignee', (res) => `Task ${task.id} assigned to ${res.task.assignee}; ${notified(res)}.`);
  action('.comment', 'comments', 'text', (res) => `Comment added; ${notified(res)}.`);
  action('.block', 'block', 'reason', (res) => `Task ${task.id} flagged blocked; ${notified(res)}.`);
  return el;
}

async function refreshTasks() {
  renderTasks((await api('/api/tasks')).tasks);
}

// --- the bell ---

function renderBell(client) {
  const count = $('#bell-count');
  count.dataset.count = String(client.unreadCount);
  count.textContent = client.unreadCount > 99 ? '99+' : String(client.unreadCount);
  count.hidden = client.unreadCount === 0;

  const newestFirst = [...client.unread].reverse();
  $('#bell-list').replaceChildren(...newestFirst.map((n) => {
    const li = document.createElement('li');
    li.className = 'notification';
    li.dataset.id = n.id;
    li.dataset.type = n.type;
    const title = document.createElement('a');
    title.href = n.link || '#';
    title.textContent = n.title;
    title.addEventListener('click', () => client.markRead(n.id));
    const body = document.createElement('p');
    body.textContent = n.body || '';
    const when = document.createElement('time');
    when.dateTime = n.created_at;
    when.textContent = new Date(n.created_at).toLocaleString();
    const read = document.createElement('button');
    read.type = 'button';
    read.textContent = 'Mark read';
    read.addEventListener('click', () => client.markRead(n.id));
    li.append(title, body, when, read);
    return li;
  }));
  $('#bell-empty').hidden = client.unread.length > 0;
}

function setBellState(state, detail = '') {
  const el = $('#bell-state');
  el.dataset.state = state;
  el.textContent = { open: 'live', connecting: 'connecting…', waiting: 'reconnecting…', failed: 'offline' }[state] ?? state;
  el.title = detail ? `connection to Herald: ${detail}` : 'connection to Herald';
}

async function connectBell() {
  // The connect token is short-lived; the SDK asks for a fresh one through
  // getToken whenever it reconnects with an expired or refused token.
  const first = await api('/api/herald-token');
  const client = new HeraldClient({
    url: first.url,
    token: first.token,
    getToken: async () => (await api('/api/herald-token')).token,
  });
  const render = () => renderBell(client);
  for (const ev of ['sync', 'notification', 'read', 'read_all', 'deleted', 'count']) client.on(ev, render);
  client.on('open', () => setBellState('open'));
  client.on('reconnecting', ({ delay, code }) => setBellState('waiting', `closed with ${code}, retry in ${delay} ms`));
  client.on('failed', ({ reason }) => setBellState('failed', reason));
  client.on('error', ({ code, message }) => console.warn('herald:', code, message));

  $('#bell-button').addEventListener('click', () => {
    const panel = $('#bell-panel');
    panel.hidden = !panel.hidden;
    $('#bell-button').setAttribute('aria-expanded', String(!panel.hidden));
  });
  $('#mark-all').addEventListener('click', () => client.markAllRead());
  setBellState('connecting');
  client.connect();
  window.heraldClient = client; // for the browser console
}

async function main() {
  let user;
  try {
    user = (await api('/api/session')).user;
  } catch (err) {
    if (err.status !== 401) throw err;
    $('#login').hidden = false;
    return;
  }
  $('#user-name').textContent = user;
  $('#who').hidden = false;
  $('#bell').hidden = false;
  $('#board').hidden = false;
  $('#new-task').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const form = ev.target;
    try {
      const { task } = await api('/api/tasks', { title: form.elements.title.value.trim() });
      form.reset();
      setStatus(`Task ${task.id} added.`);
      await refreshTasks();
    } catch (err) {
      setStatus(err.message, true);
    }
  });
  await refreshTasks();
  try {
    await connectBell();
  } catch (err) {
    setBellState('failed', err.message);
  }
}

main().catch((err) => setStatus(err.message, true));
