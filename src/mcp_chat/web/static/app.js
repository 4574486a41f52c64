// The mcp-chat page: join a room (or wait in the random queue for a stranger), read it live,
// talk. Text is only ever set with textContent; the client_id travels in the X-Client-Id
// header, never in a URL.
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

async function api(method, path, body, room) {
  for (;;) {
    const res = await fetch(path, {
      method,
      headers: headers(body ? { "Content-Type": "application/json" } : {}),
      body: body ? JSON.stringify(body) : undefined,
      cache: "no-store",
    });
    const data = await res.json().catch(() => ({}));
    if (wantsToken(res.status, data) && askForToken()) continue;
    if (!res.ok) {
      throw new ApiError(say(data.code, room || (session && session.room_id), res.status), data.code, res.status);
    }
    return data;
  }
}

const roomPath = (suffix) => `/api/rooms/${encodeURIComponent(session.room_id)}/${suffix}`;

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
  });
  enterRoom();
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
  document.title = `#${session.room_id} · mcp-chat`;
  $("messages").replaceChildren();
  shown.clear();
  setStatus("");
  try {
    const page = await api("GET", `${roomPath("messages")}?limit=100`);
    page.messages.forEach(show);
    position = page.last_seq;
    await loadMembers();
  } catch (err) {
    showLobby(err.message);
    return;
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
  if (shown.has(message.seq)) return;
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
    bubble.textContent = message.message;
    const time = document.createElement("time");
    time.dateTime = message.timestamp;
    time.title = new Date(message.timestamp).toLocaleString();
    time.textContent = clock(message.timestamp);
    li.append(bubble, time);
  }
  li.dataset.sender = message.system ? "" : message.sender_id;
  // In seq order, even when a reply overtakes the echo of one's own message.
  const after = [...list.children].find((el) => Number(el.dataset.seq) > message.seq);
  list.insertBefore(li, after || null);
  group(li);
  if (li.nextElementSibling) group(li.nextElementSibling);
  if (nearBottom || own) list.scrollTop = list.scrollHeight;
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
    onEvent: onRoomEvent,
    onRefused: (data) => ended(say(data.code, session && session.room_id, data.status)),
  });
}

// A stream of server-sent events, read with fetch (EventSource cannot send headers), reopened
// with backoff until `onEvent` says "end", the server refuses it, or it is aborted.
async function follow({ path, status, onEvent, onRefused }) {
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
    payload.messages.forEach(show);
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
  setStatus(`${reason} Leave to go back to the rooms.`);
  $("text").disabled = true;
  $("send").disabled = true;
}

function randomKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function send(event) {
  event.preventDefault();
  const box = $("text");
  const text = box.value;
  if (!text.trim() || !session) return;
  box.value = "";
  fitText();
  try {
    const sent = await api("POST", roomPath("messages"), { message: text, message_key: randomKey() });
    show(sent.message);
  } catch (err) {
    box.value = text;
    fitText();
    setStatus(`Not sent: ${err.message}`);
  }
}

async function leave() {
  if (!session) return;
  if (stream) stream.abort();
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
