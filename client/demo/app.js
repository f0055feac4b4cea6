// The demo page: chat rooms with presence and direct messages, on the SDK's browser bundle. Served by
// `rtgw standalone` in development mode, which hands out tokens at /dev/token.
import { RtgwClient } from '/sdk/rtgw.js';

const $ = (id) => document.getElementById(id);
/** Room name -> { room, entries: <li>[], members: Set<user> } */
const rooms = new Map();
let client;
let current;

$('login').addEventListener('submit', (e) => {
  e.preventDefault();
  start($('name').value.trim());
});

function start(name) {
  $('login').hidden = true;
  $('app').hidden = false;
  $('me').textContent = name;
  client = new RtgwClient({
    url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`,
    // A restarted development server has a new key: the SDK asks again after a 4001.
    getToken: async () => {
      const res = await fetch(`/dev/token?user=${encodeURIComponent(name)}`);
      if (!res.ok) throw new Error(`token: HTTP ${res.status}`);
      return (await res.json()).token;
    },
  });
  client.on('state', ({ state }) => {
    $('status').dataset.state = state;
    $('status').textContent = state;
  });
  client.on('error', (e) => console.warn('rtgw:', e.message));
  client.onDirect((dm) => addDirect(dm.from, dm.data?.text, `#${dm.seq}`));
  client.connect();
  joinRoom('lobby');
}

function joinRoom(name) {
  if (rooms.has(name)) return show(name);
  const entry = { room: undefined, entries: [], members: new Set() };
  rooms.set(name, entry);
  const room = client.join(name, (m) => addMessage(name, m.from, m.data?.text, m.seq), { presence: true });
  entry.room = room;
  room.on('subscribed', () => refreshMembers(name));
  room.on('presence', () => refreshMembers(name));
  room.on('unrecovered', (u) => addNote(name, `messages ${u.since + 1}..${u.seq} could not be recovered`));
  room.on('error', (e) => addNote(name, `could not join: ${e.message}`));
  renderRooms();
  show(name);
}

function show(name) {
  current = name;
  $('room-title').textContent = name;
  $('log').replaceChildren(...rooms.get(name).entries);
  $('log').scrollTop = $('log').scrollHeight;
  renderRooms();
  renderMembers();
}

function renderRooms() {
  $('rooms').replaceChildren(
    ...[...rooms.keys()].map((name) => {
      const li = document.createElement('li');
      li.textContent = name;
      li.dataset.room = name;
      li.setAttribute('aria-current', String(name === current));
      li.onclick = () => show(name);
      return li;
    }),
  );
}

async function refreshMembers(name) {
  const entry = rooms.get(name);
  try {
    const { users } = await entry.room.presence();
    entry.members = new Set(users);
  } catch (e) {
    console.warn('presence:', e.message);
  }
  if (name === current) renderMembers();
}

function renderMembers() {
  const users = [...(rooms.get(current)?.members ?? [])].sort();
  $('members').replaceChildren(
    ...users.map((u) => {
      const li = document.createElement('li');
      li.textContent = u;
      li.dataset.testid = 'member';
      return li;
    }),
  );
}

/** One line of a room's log; `seq` is filled in when known (own messages: once the server answered). */
function line(from, text, seq, own) {
  const li = document.createElement('li');
  li.dataset.testid = 'msg';
  li.className = own ? 'own' : '';
  const who = document.createElement('span');
  who.className = 'from';
  who.textContent = from;
  const body = document.createElement('span');
  body.className = 'text';
  body.textContent = text ?? '';
  const s = document.createElement('span');
  s.className = 'seq';
  li.append(who, body, s);
  li.setSeq = (n) => {
    li.dataset.seq = String(n);
    s.textContent = `#${n}`;
  };
  if (seq !== undefined) li.setSeq(seq);
  else s.textContent = 'sending…';
  return li;
}

function append(name, li) {
  const entry = rooms.get(name);
  entry.entries.push(li);
  if (name === current) {
    $('log').append(li);
    $('log').scrollTop = $('log').scrollHeight;
  }
}

function addMessage(name, from, text, seq) {
  append(name, line(from, text, seq, false));
}

function addNote(name, text) {
  const li = document.createElement('li');
  li.className = 'note';
  li.textContent = text;
  append(name, li);
}

function addDirect(from, text, meta) {
  const li = document.createElement('li');
  li.dataset.testid = 'dm';
  li.innerHTML = '<span class="from"></span><span class="text"></span><span class="meta"></span>';
  li.querySelector('.from').textContent = from;
  li.querySelector('.text').textContent = text ?? '';
  li.querySelector('.meta').textContent = meta;
  $('dms').append(li);
  $('dms').scrollTop = $('dms').scrollHeight;
}

$('join-form').addEventListener('submit', (e) => {
  e.preventDefault();
  joinRoom($('join-name').value.trim());
  $('join-name').value = '';
});

$('send-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('text').value;
  $('text').value = '';
  const name = current;
  const li = line($('me').textContent, text, undefined, true);
  append(name, li);
  // Kept in the SDK's outbox across reconnects: it resolves once the server has stored it.
  client.publish(name, { text }).then(
    (seq) => li.setSeq(seq),
    (err) => (li.querySelector('.seq').textContent = `not sent: ${err.message}`),
  );
});

$('dm-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const to = $('dm-to').value.trim();
  const text = $('dm-text').value;
  $('dm-text').value = '';
  client.sendDirect(to, { text }).then(
    (seq) => addDirect(`→ ${to}`, text, `stored #${seq}`),
    (err) => addDirect(`→ ${to}`, text, `not sent: ${err.message}`),
  );
});
