// The mcp-chat page: join a room (or wait in the random queue for a stranger), read it live,
// talk. Text is only ever set with textContent, or made into nodes by the safe Markdown below;
// nothing is parsed as HTML. The client_id travels in the X-Client-Id header, never in a URL.
"use strict";

// In a room: {room_id, client_id, participant_id, display_name}; in the random queue:
// {waiting: true, client_id, display_name, interests}.
const SESSION_KEY = "mcp-chat.session";
const TOKEN_KEY = "mcp-chat.token"; // bearer token, for a server started with an auth token
const NAME_KEY = "mcp-chat.name";

const $ = (id) => document.getElementById(id);
let session = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
let position = null; // read position: the stream resumes after it
let stream = null; // AbortController of the live stream
const shown = new Set(); // seqs on the page: nothing is shown twice

// The server's sentences are written for assistants ("Choose another room_id."); the page
// keeps the stable code and says it in its own words. `room` names the room concerned.
function say(code, room, status) {
  const where = room ? `Room “${room}”` : "The room";
  const trouble = "The server is having trouble right now. Try again in a moment.";
  const sentences = {
    room_full: `${where} is full. Pick another room, or name a new one.`,
    invite_required: `${where} is private: type its invite below to enter.`,
    room_not_private: `${where} is public, so an invite cannot make it private. Pick another name for a private room.`,
    chat_ended: "The chat has ended.",
    too_many_rooms: "The server has as many rooms as it allows. Join one of the open rooms.",
    rate_limited: "That was too fast. Wait a few seconds and try again.",
    message_too_large: "The message is too long.",
    request_too_large: "The message is too long.",
    invalid_argument: "The server did not accept that. Check your name and the room's name.",
    unknown_client: "The server no longer knows you here (it may have restarted). Join again.",
    not_in_room: "You are not in this room any more.",
    room_not_found: `${where} does not exist any more.`,
    not_in_queue: "You are no longer in the queue.",
    too_many_waits: "This room is open in too many of your tabs. Close one.",
    too_many_streams: "This room is open in too many of your tabs. Close one.",
    store_unavailable: trouble,
    internal_error: trouble,
    server_restarting: trouble,
  };
  return sentences[code] || (status ? `The server answered ${status}.` : trouble);
}

class ApiError extends Error {
  constructor(message, code, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

// -- the auth hook ------------------------------------------------------------------------
// ?token=... in the address is moved to sessionStorage (and out of the address bar); every
// request then carries it as a bearer token. A 401 that is not about the client_id asks.

function takeTokenFromAddress() {
  const url = new URL(location.href);
  const token = url.searchParams.get("token");
  if (token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
}

function askForToken() {
  const token = prompt("This server needs an access token:");
  if (!token || !token.trim()) return false;
  sessionStorage.setItem(TOKEN_KEY, token.trim());
  return true;
}

function headers(extra = {}) {
  const h = { Accept: "application/json", ...extra };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) h.Authorization = `Bearer ${token}`;
  if (session) h["X-Client-Id"] = session.client_id;
  return h;
}

function wantsToken(status, data) {
  return status === 401 && data.code !== "unknown_client";
}

const UNREACHABLE = "Cannot reach the server. Check the connection; try again in a moment.";

async function api(method, path, body, room) {
  for (;;) {
    let res;
    try {
      res = await fetch(path, {
        method,
        headers: headers(body ? { "Content-Type": "application/json" } : {}),
        body: body ? JSON.stringify(body) : undefined,
        cache: "no-store",
      });
    } catch (err) {
      throw new ApiError(UNREACHABLE, "unreachable", 0); // not the browser's "Failed to fetch"
    }
    const data = await res.json().catch(() => ({}));
    if (wantsToken(res.status, data) && askForToken()) continue;
    if (!res.ok) {
      throw new ApiError(say(data.code, room || (session && session.room_id), res.status), data.code, res.status);
    }
    return data;
  }
}

const roomPath = (suffix) => `/api/rooms/${encodeURIComponent(session.room_id)}/${suffix}`;

// -- safe Markdown ------------------------------------------------------------------------
// Message text becomes DOM nodes made one by one (createElement, textContent): emphasis,
// inline code, code blocks, lists and links. No text is ever parsed as HTML, so a tag in a
// message is shown as the text it is; a link is made only to http(s) or mailto addresses.

const SAFE_HREF = /^(https?:\/\/|mailto:)/i;
const INLINE = [
  ["code", /`([^`\n]+)`/],
  ["link", /\[([^\]\n]+)\]\(([^)\s]+)\)/],
  ["strong", /\*\*(?=\S)([^\n]*?\S)\*\*|__(?=\S)([^\n]*?\S)__/],
  ["em", /\*(?=[^\s*])([^*\n]*?[^\s*])\*|(?<![A-Za-z0-9])_(?=[^\s_])([^_\n]*?[^\s_])_(?![A-Za-z0-9])/],
  ["url", /\bhttps?:\/\/[^\s<>"]*[^\s<>".,:;!?)\]'*_]/],
];

function renderMarkdown(text) {
  const root = document.createDocumentFragment();
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (/^\s*```/.test(line)) {
      const code = [];
      i += 1;
      while (i < lines.length && !/^\s*```\s*$/.test(lines[i])) code.push(lines[i++]);
      i += 1; // the closing fence (or the end)
      const pre = document.createElement("pre");
      const inner = document.createElement("code");
      inner.textContent = code.join("\n");
      pre.append(inner);
      root.append(pre);
    } else if (listItem(line)) {
      const ordered = listItem(line).ordered;
      const list = document.createElement(ordered ? "ol" : "ul");
      const first = listItem(line);
      if (ordered && first.number !== 1) list.start = first.number;
      while (i < lines.length && listItem(lines[i]) && listItem(lines[i]).ordered === ordered) {
        const li = document.createElement("li");
        inline(listItem(lines[i]).text, li);
        list.append(li);
        i += 1;
      }
      root.append(list);
    } else if (!line.trim()) {
      i += 1;
    } else {
      const para = [];
      while (i < lines.length && lines[i].trim() && !listItem(lines[i]) && !/^\s*```/.test(lines[i])) {
        para.push(lines[i++]);
      }
      const p = document.createElement("p");
      inline(para.join("\n"), p);
      root.append(p);
    }
  }
  return root;
}

function listItem(line) {
  const bullet = /^\s{0,3}[-*+]\s+(.*)$/.exec(line);
  if (bullet) return { ordered: false, text: bullet[1] };
  const numbered = /^\s{0,3}(\d{1,9})[.)]\s+(.*)$/.exec(line);
  if (numbered) return { ordered: true, number: Number(numbered[1]), text: numbered[2] };
  return null;
}

// The earliest of the inline forms in `text`, appended to `parent`; the rest in turn.
function inline(text, parent) {
  while (text) {
    let best = null;
    for (const [kind, pattern] of INLINE) {
      const found = pattern.exec(text);
      if (found && (best === null || found.index < best.found.index)) best = { kind, found };
    }
    if (best === null) {
      parent.append(document.createTextNode(text));
      return;
    }
    const { kind, found } = best;
    if (found.index > 0) parent.append(document.createTextNode(text.slice(0, found.index)));
    parent.append(inlineNode(kind, found));
    text = text.slice(found.index + found[0].length);
  }
}

function inlineNode(kind, found) {
  if (kind === "code") {
    const code = document.createElement("code");
    code.textContent = found[1];
    return code;
  }
  if (kind === "link" || kind === "url") {
    const href = kind === "url" ? found[0] : found[2];
    if (!SAFE_HREF.test(href)) return document.createTextNode(found[0]); // javascript: etc.
    const a = document.createElement("a");
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    if (kind === "url") a.textContent = href;
    else inline(found[1], a);
    return a;
  }
  const node = document.createElement(kind);
  inline(found[1] !== undefined ? found[1] : found[2], node);
  return node;
}

// -- the lobby ----------------------------------------------------------------------------

async function loadRooms() {
  const list = $("rooms");
  let rooms = [];
  try {
    rooms = (await api("GET", "/api/rooms")).rooms;
  } catch (err) {
    $("join-error").textContent = err.message;
  }
  list.replaceChildren();
  for (const room of rooms) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "room";
    const name = document.createElement("span");
    name.className = "room-id";
    name.textContent = room.room_id;
    const seats = document.createElement("span");
    seats.className = "seats";
    const full = room.members >= room.capacity;
    seats.textContent = full ? "full" : `${room.members} of ${room.capacity}`;
    button.append(name, seats);
    button.disabled = full;
    button.addEventListener("click", () => {
      $("room").value = room.room_id;
      checkRoomName();
      if ($("name").value.trim()) $("join-form").requestSubmit();
      else $("name").focus();
    });
    li.append(button);
    list.append(li);
  }
  $("no-rooms").hidden = rooms.length > 0;
}

// The browser's own "Please match the requested format." says nothing of the format.
const ROOM_RULE = "A room name is letters, digits, “.”, “_” and “-”, starting with a letter or digit.";

function checkRoomName() {
  const box = $("room");
  box.setCustomValidity("");
  const broken = box.validity.patternMismatch;
  box.setCustomValidity(broken ? ROOM_RULE : "");
  $("room-rule").classList.toggle("broken", broken);
}

async function join(event) {
  event.preventDefault();
  $("join-error").textContent = "";
  const name = $("name").value.trim();
  localStorage.setItem(NAME_KEY, name);
  const body = { display_name: name, capacity: Number($("capacity").value) || undefined };
  const room = $("room").value.trim();
  if (room) body.room_id = room;
  const invite = $("invite").value;
  if (invite) body.invite = invite;
  $("join").disabled = true;
  try {
    session = null;
    const joined = await api("POST", "/api/join", body, room);
    session = {
      room_id: joined.room_id,
      client_id: joined.client_id,
      participant_id: joined.participant_id,
      display_name: joined.display_name,
    };
    keep(session);
    await enterRoom();
  } catch (err) {
    $("join-error").textContent = err.message;
  } finally {
    $("join").disabled = false;
  }
}

function keep(state) {
  session = state;
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

function showLobby(message = "") {
  if (stream) stream.abort();
  session = null;
  sessionStorage.removeItem(SESSION_KEY);
  $("chat").hidden = true;
  $("waiting").hidden = true;
  $("room-title").hidden = true;
  $("leave").hidden = true;
  $("lobby").hidden = false;
  $("join-error").textContent = message;
  $("random-error").textContent = "";
  loadRooms();
}

// -- the random queue ---------------------------------------------------------------------

async function enterQueue(event) {
  event.preventDefault();
  $("random-error").textContent = "";
  const name = $("name").value.trim();
  if (!name) {
    $("random-error").textContent = "Type your name above first.";
    $("name").focus();
    return;
  }
  localStorage.setItem(NAME_KEY, name);
  const interests = $("interests").value.split(",").map((tag) => tag.trim()).filter(Boolean);
  $("random").disabled = true;
  try {
    await queueUp(name, interests);
  } catch (err) {
    $("random-error").textContent = err.message;
  } finally {
    $("random").disabled = false;
  }
}

async function queueUp(name, interests) {
  session = null;
  const entered = await api("POST", "/api/queue", { display_name: name, interests });
  keep({ waiting: true, client_id: entered.client_id, display_name: name, interests });
  if (entered.status === "matched") return matched(entered);
  showWaiting(entered.position);
  awaitMatch();
}

function showWaiting(position) {
  $("lobby").hidden = true;
  $("chat").hidden = true;
  $("waiting").hidden = false;
  document.title = "Waiting · mcp-chat";
  const tags = session.interests || [];
  $("queue-interests").textContent = tags.length ? `Interests: ${tags.join(", ")}` : "Anyone will do.";
  setPosition(position);
}

function setPosition(position) {
  if (position === null) return;
  const next = position === 1 ? ": you are next" : "";
  $("queue-position").textContent = `Position ${position} in the queue${next}.`;
}

function awaitMatch() {
  follow({
    path: () => "/api/queue/events",
    status: (text) => {
      if (text) $("queue-position").textContent = text;
    },
    onEvent: (name, payload) => {
      if (name === "waiting") setPosition(payload.position);
      else if (name === "matched") matched(payload);
      else if (name === "end") dropped(payload);
      return name === "matched" || name === "end" ? "end" : null;
    },
    onRefused: dropped,
  });
}

function matched(found) {
  keep({
    room_id: found.room_id,
    client_id: session.client_id,
    participant_id: found.participant_id,
    display_name: found.display_name,
    random: true, // "Chat with someone else" enters the queue again with these
    interests: session.interests || [],
  });
  enterRoom();
}

// After a random chat: the queue again, under the same name and interests.
async function chatWithSomeoneElse() {
  if (!session || !session.random) return;
  const { display_name: name, interests } = session;
  if (stream) stream.abort();
  try {
    await api("POST", roomPath("leave"));
  } catch (err) {
    // Ended already: nothing to leave.
  }
  clearOutbox();
  try {
    await queueUp(name, interests);
  } catch (err) {
    showLobby(err.message);
  }
}

// Gone from the queue without asking (silent too long, say): enter it again.
async function dropped(failure) {
  if (!session) return;
  if (failure.code !== "not_in_queue") return showLobby(say(failure.code, null, failure.status));
  const { display_name: name, interests } = session;
  try {
    await queueUp(name, interests);
    $("queue-interests").textContent = "You had dropped out of the queue, so you entered it again.";
  } catch (err) {
    showLobby(err.message);
  }
}

async function cancelQueue() {
  if (!session) return;
  if (stream) stream.abort();
  try {
    await api("POST", "/api/queue/leave");
  } catch (err) {
    // Out of the queue already: either way, back to the rooms.
  }
  showLobby();
}

// -- the room -----------------------------------------------------------------------------

async function enterRoom() {
  $("lobby").hidden = true;
  $("waiting").hidden = true;
  $("chat").hidden = false;
  $("room-title").hidden = false;
  $("leave").hidden = false;
  $("room-name").textContent = session.room_id;
  unread = 0;
  showUnread();
  $("next").hidden = true;
  $("messages").replaceChildren();
  shown.clear();
  position = null;
  setStatus("");
  try {
    const page = await api("GET", `${roomPath("messages")}?limit=100`);
    page.messages.forEach(show);
    position = page.last_seq;
    await loadMembers();
  } catch (err) {
    // The connection dropped as the room opened: stay, and let the stream catch up once it
    // is back (from the read position, so nothing is missed; members load with its events).
    if (!worthRetrying(err)) {
      showLobby(err.message);
      return;
    }
    setStatus("Connection lost; reconnecting…");
  }
  $("text").disabled = false;
  $("send").disabled = false;
  $("text").focus();
  listen();
}

async function loadMembers() {
  const found = await api("GET", roomPath("members"));
  const list = $("members");
  list.replaceChildren();
  for (const member of found.members) {
    const li = document.createElement("li");
    li.className = `presence-${member.presence || "present"}`;
    li.title = member.presence || "present";
    const dot = document.createElement("span");
    dot.className = "avatar";
    dot.style.setProperty("--hue", hue(member.display_name));
    dot.textContent = member.display_name.slice(0, 1).toUpperCase();
    const name = document.createElement("span");
    name.textContent = member.display_name;
    li.append(dot, name);
    if (member.participant_id === session.participant_id) {
      const you = document.createElement("span");
      you.className = "you";
      you.textContent = "you";
      li.append(you);
    }
    list.append(li);
  }
  // Those gone hold no place: a newcomer may have taken theirs.
  const taken = found.members.filter((m) => m.presence !== "gone").length;
  $("places").textContent = `${taken} of ${found.capacity} places taken`;
}

function hue(name) {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.codePointAt(0)) % 360;
  return String(h);
}

function clock(timestamp) {
  const when = new Date(timestamp);
  return when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function show(message) {
  if (shown.has(message.seq)) return false;
  shown.add(message.seq);
  const list = $("messages");
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  const li = document.createElement("li");
  li.dataset.seq = String(message.seq);
  const own = message.sender_id === session.participant_id;
  if (message.system) {
    li.className = "event"; // the server's own sentence: "Bob joined the room."
    li.textContent = `${message.message} · ${clock(message.timestamp)}`;
  } else {
    li.className = own ? "msg own" : "msg";
    if (!own) {
      const who = document.createElement("div");
      who.className = "sender";
      who.style.setProperty("--hue", hue(message.sender));
      who.textContent = message.sender;
      li.append(who);
    }
    const bubble = document.createElement("div");
    bubble.className = "bubble";
    bubble.append(renderMarkdown(message.message));
    const time = document.createElement("time");
    time.dateTime = message.timestamp;
    time.title = new Date(message.timestamp).toLocaleString();
    time.textContent = clock(message.timestamp);
    li.append(bubble, time);
  }
  li.dataset.sender = message.system ? "" : message.sender_id;
  // In seq order, even when a reply overtakes the echo of one's own message; those still
  // waiting to be sent stay last.
  const after = [...list.children].find(
    (el) => el.classList.contains("pending") || Number(el.dataset.seq) > message.seq,
  );
  list.insertBefore(li, after || null);
  group(li);
  if (li.nextElementSibling) group(li.nextElementSibling);
  if (nearBottom || own) list.scrollTop = list.scrollHeight;
  return true;
}

// -- while the tab is hidden: the unread count in its title, and mentions ------------------

let unread = 0;

function showUnread() {
  const base = session && session.room_id ? `#${session.room_id} · mcp-chat` : "mcp-chat";
  document.title = unread ? `(${unread}) ${base}` : base;
}

// A message from someone else, as it arrives.
function arrived(message) {
  if (message.system || message.sender_id === session.participant_id) return;
  if (document.hidden) {
    unread += 1;
    showUnread();
  }
  if (mentions(message.message, session.display_name)) notifyMention(message);
}

function mentions(text, name) {
  const at = `@${name}`.toLowerCase();
  const lower = text.toLowerCase();
  for (let i = lower.indexOf(at); i >= 0; i = lower.indexOf(at, i + 1)) {
    const after = lower.charAt(i + at.length);
    if (!after || !/[\p{L}\p{N}_]/u.test(after)) return true; // @Ada, not @Adam
  }
  return false;
}

const NOTIFY_KEY = "mcp-chat.notify-mentions";

function notifying() {
  return "Notification" in window && Notification.permission === "granted" && localStorage.getItem(NOTIFY_KEY) === "1";
}

function showNotifyButton() {
  const button = $("notify");
  button.hidden = !("Notification" in window);
  const on = notifying();
  button.setAttribute("aria-pressed", String(on));
  button.textContent = on ? "Notifying you of @mentions" : "Notify me of @mentions";
}

// Permission is asked for here, on a click, never when the page loads.
async function toggleNotify() {
  if (notifying()) {
    localStorage.removeItem(NOTIFY_KEY);
  } else {
    const answer = Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
    if (answer === "granted") localStorage.setItem(NOTIFY_KEY, "1");
    else setStatus("Notifications are blocked for this page in the browser's settings.");
  }
  showNotifyButton();
}

function notifyMention(message) {
  if (!notifying() || (!document.hidden && document.hasFocus())) return;
  const text = message.message.length > 200 ? `${message.message.slice(0, 200)}…` : message.message;
  const note = new Notification(`${message.sender} mentioned you in #${session.room_id}`, {
    body: text,
    tag: `mcp-chat-${session.room_id}-${message.seq}`,
  });
  note.onclick = () => window.focus();
}

// A message right after another from the same sender drops the repeated name.
function group(li) {
  const before = li.previousElementSibling;
  const same = Boolean(li.dataset.sender) && before !== null && before.dataset.sender === li.dataset.sender;
  li.classList.toggle("follow", same);
}

function setStatus(text) {
  $("status").textContent = text;
  $("status").hidden = !text;
}

// The room's live stream.
function listen() {
  follow({
    path: () => roomPath("events") + (position === null ? "" : `?after=${position}`),
    status: setStatus,
    onOpen: () => {
      flushOutbox();
      loadMembers().catch(() => {}); // who is here may have changed while it was away
    },
    onEvent: onRoomEvent,
    onRefused: (data) => ended(say(data.code, session && session.room_id, data.status)),
  });
}

// A stream of server-sent events, read with fetch (EventSource cannot send headers), reopened
// with backoff until `onEvent` says "end", the server refuses it, or it is aborted.
async function follow({ path, status, onEvent, onRefused, onOpen }) {
  if (stream) stream.abort();
  const control = new AbortController();
  stream = control;
  let delay = 500;
  while (!control.signal.aborted && session) {
    try {
      const res = await fetch(path(), {
        headers: headers({ Accept: "text/event-stream" }),
        signal: control.signal,
        cache: "no-store",
      });
      if (!res.ok) {
        const data = await res.json().catch(() => ({}));
        if (wantsToken(res.status, data) && askForToken()) continue;
        if (res.status < 500) {
          return onRefused({ ...data, status: res.status });
        }
        throw new Error(`status ${res.status}`);
      }
      status("");
      delay = 500;
      if (onOpen) onOpen();
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const [name, payload] = parseEvent(block);
          if (payload && onEvent(name, payload) === "end") return;
        }
      }
    } catch (err) {
      if (control.signal.aborted) return;
    }
    status("Connection lost; reconnecting…");
    await new Promise((resolve) => setTimeout(resolve, delay)); // backoff before retrying
    delay = Math.min(delay * 2, 8000);
  }
}

function parseEvent(block) {
  let name = "message";
  let data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data += line.slice(5).trim();
  }
  return [name, data ? JSON.parse(data) : null];
}

function onRoomEvent(name, payload) {
  if (name === "messages") {
    for (const message of payload.messages) if (show(message)) arrived(message);
    position = payload.position;
    if (payload.messages.some((m) => m.system)) loadMembers().catch(() => {});
    return null;
  }
  if (name === "end") {
    ended(say(payload.code, session && session.room_id));
    return "end";
  }
  return null;
}

function ended(reason) {
  const random = Boolean(session && session.random);
  setStatus(`${reason} ${random ? "Chat with someone else, or leave" : "Leave"} to go back to the rooms.`);
  $("next").hidden = !random;
  $("text").disabled = true;
  $("send").disabled = true;
  clearOutbox();
}

function randomKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// Messages typed but not yet stored, oldest first: each keeps its key, so that sending it
// again after a lost connection stores it once. Shown greyed out, last, until stored.
const outbox = [];
let flushing = false;

async function send(event) {
  event.preventDefault();
  const box = $("text");
  const text = box.value;
  if (!text.trim() || !session) return;
  box.value = "";
  fitText();
  const item = { text, key: randomKey(), li: pendingItem(text) };
  outbox.push(item);
  await flushOutbox();
}

function pendingItem(text) {
  const li = document.createElement("li");
  li.className = "msg own pending";
  const bubble = document.createElement("div");
  bubble.className = "bubble";
  bubble.append(renderMarkdown(text));
  const time = document.createElement("time");
  time.textContent = "sending…";
  li.append(bubble, time);
  const list = $("messages");
  list.append(li);
  list.scrollTop = list.scrollHeight;
  return li;
}

// Lost connections, a server restarting or busy: worth sending again once it is back.
function worthRetrying(err) {
  return !(err instanceof ApiError) || err.status === 0 || err.status >= 500 || err.code === "server_restarting";
}

async function flushOutbox() {
  if (flushing || !session) return;
  flushing = true;
  try {
    while (outbox.length && session && !session.waiting) {
      const item = outbox[0];
      try {
        const sent = await api("POST", roomPath("messages"), { message: item.text, message_key: item.key });
        outbox.shift();
        item.li.remove();
        show(sent.message);
      } catch (err) {
        if (worthRetrying(err)) {
          setStatus("Connection lost: what you write is kept, and sent once it is back.");
          return; // the stream's next opening flushes again
        }
        outbox.shift();
        item.li.remove();
        const box = $("text");
        if (!box.value) {
          box.value = item.text;
          fitText();
        }
        setStatus(`Not sent: ${err.message}`);
      }
    }
  } finally {
    flushing = false;
  }
}

function clearOutbox() {
  for (const item of outbox.splice(0)) item.li.remove();
}

async function leave() {
  if (!session) return;
  if (stream) stream.abort();
  clearOutbox();
  try {
    await api("POST", roomPath("leave"));
  } catch (err) {
    // Left or ended already: either way, back to the rooms.
  }
  showLobby();
}

function fitText() {
  const box = $("text");
  box.style.height = "auto";
  box.style.height = `${Math.min(box.scrollHeight, 160)}px`;
}

function start() {
  takeTokenFromAddress();
  $("name").value = localStorage.getItem(NAME_KEY) || "";
  $("join-form").addEventListener("submit", join);
  $("room").addEventListener("input", checkRoomName);
  $("random-form").addEventListener("submit", enterQueue);
  $("cancel").addEventListener("click", cancelQueue);
  $("refresh").addEventListener("click", loadRooms);
  $("composer").addEventListener("submit", send);
  $("leave").addEventListener("click", leave);
  $("next").addEventListener("click", chatWithSomeoneElse);
  $("notify").addEventListener("click", toggleNotify);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && unread) {
      unread = 0;
      showUnread();
    }
  });
  showNotifyButton();
  $("text").addEventListener("input", fitText);
  $("text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  if (session && session.waiting) {
    showWaiting(null);
    awaitMatch();
  } else if (session) enterRoom();
  else showLobby();
}

start();
