// dispatchline operator console. Plain modern JavaScript, no framework, no build
// step. Talks to /api/v1 (REST, bearer token) and /ws (events, docs/events.md).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = "dispatchline.token";
  const ME_KEY = "dispatchline.me";
  // Where the stream was left (epoch and position) and the call cards, so a reload
  // (F5) resumes with since= instead of losing the call in progress.
  const RESUME_KEY = "dispatchline.resume";
  const CARDS_KEY = "dispatchline.cards";
  const THEME_KEY = "dispatchline.theme";
  const stored = (key) => { try { return JSON.parse(sessionStorage.getItem(key) || "null"); } catch (_) { return null; } };
  const resume = stored(RESUME_KEY) || {};

  // ---------------------------------------------------------------- state
  const S = {
    token: sessionStorage.getItem(TOKEN_KEY),
    me: JSON.parse(sessionStorage.getItem(ME_KEY) || "null"),
    tenants: [], // [{code, name, city}]
    tenantsError: null, // why the tenants the principal serves could not be read
    position: typeof resume.position === "number" ? resume.position : null, // every event up to this seq has been handled
    epoch: resume.epoch || null, // the engine run the position belongs to
    resyncReason: null, // why the engine refused a resume, until the socket closes
    ws: null,
    attempt: 0,
    offlineSince: null,
    lastFrame: 0,
    heartbeatS: 15,
    reconnectTimer: null,
    // call id -> card state; a choice of УК in flight when the page was left is not.
    calls: new Map((stored(CARDS_KEY) || []).map((c) => [c.id, { ...c, tenantPending: null }])),
    myState: null,
    tickets: { offset: 0, limit: 25, total: 0, selected: new Set(), items: [] },
    journal: { offset: 0, limit: 25, total: 0 },
    board: null,
    boardFetchedAt: 0,
    tab: "call",
    boardCity: "",
    connLog: [], // connection states shown, newest last
    lastHello: null,
    demo: false, // `dispatchline demo`: the softphone is simulated and driven from the card
  };

  // ---------------------------------------------------------------- words
  const CATEGORY = { emergency: "АВАРИЙНАЯ", planned: "ПЛАНОВАЯ", paid: "ПЛАТНАЯ" };
  const STATUS = {
    registered: "Зарегистрирована", accepted: "Принята", in_progress: "В работе",
    done: "Выполнена", closed: "Закрыта", cancelled: "Отменена",
  };
  const OP_STATE = {
    ready: "Готов", busy: "Занят", "wrap-up": "Поствызов", paused: "Пауза", "logged-out": "Не в линии",
  };
  const NUMBER_KIND = {
    tenant: "номер УК", citywide: "городской номер", legacy: "старый номер",
    dispatch: "диспетчерская", forward: "переадресация",
  };
  const DISPOSITION = {
    answered: "Отвечен", abandoned: "Брошен", "callback-scheduled": "Перезвон назначен",
    rejected: "Отклонён", failed: "Сбой", busy: "Занято", "no-answer": "Нет ответа",
    unreachable: "Недоступен", returned: "Возвращён в очередь", cancelled: "Отменён: заявку уже приняли",
  };
  const PURPOSE = {
    callback: "перезвон жителю", handoff: "передача аварийной заявки исполнителю",
    informer: "информатор: оповещение исполнителей", "status-check": "уточнение статуса заявки",
    survey: "опрос жителя о качестве", "staff-callback": "перезвон сотруднику",
    "supplier-handoff": "передача заявки в РСО", "supplier-query": "запрос в РСО о ходе работ",
    broadcast: "оповещение об отключении",
  };
  const JOB_STATE = { pending: "ждёт", claimed: "набирается" };
  const TRUNK_HEALTH = { up: "работает", down: "не работает", unknown: "нет данных" };

  // ---------------------------------------------------------------- helpers
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }
  const str = (v) => (v === null || v === undefined ? "" : String(v));
  const hhmm = (d) => d.toLocaleTimeString("ru-RU", { hour: "2-digit", minute: "2-digit" });
  function when(ts) {
    if (!ts) return "";
    const d = new Date(ts);
    if (Number.isNaN(d.getTime())) return "";
    const today = new Date();
    const sameDay = d.toDateString() === today.toDateString();
    return sameDay ? hhmm(d) : d.toLocaleString("ru-RU", { day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit" });
  }
  function secs(s) {
    if (s === null || s === undefined || Number.isNaN(Number(s))) return "";
    s = Math.max(0, Math.floor(Number(s)));
    const m = Math.floor(s / 60);
    return m ? `${m}:${String(s % 60).padStart(2, "0")}` : `${s} с`;
  }
  function categoryBadge(cat) {
    if (!cat) return el("span", { class: "cat" }, "—");
    return el("span", { class: `cat cat-${cat}`, "data-category": cat }, CATEGORY[cat] || cat);
  }
  function rubles(kopecks) {
    const v = Number(kopecks) / 100;
    return v.toLocaleString("ru-RU", { minimumFractionDigits: 2, maximumFractionDigits: 2 }) + " ₽";
  }
  function tenantName(code) {
    const t = S.tenants.find((x) => x.code === code);
    return t ? t.name : code || "";
  }
  function show(node, on) { node.hidden = !on; }
  function setError(node, message) { node.textContent = message || ""; show(node, !!message); }

  // ---------------------------------------------------------------- REST
  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.error) || `HTTP ${status}`);
      this.status = status;
      this.field = body && body.field;
    }
  }
  async function api(path, options = {}) {
    const headers = { Accept: "application/json" };
    if (S.token) headers.Authorization = `Bearer ${S.token}`;
    let body;
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.json);
    }
    const response = await fetch(`/api/v1${path}`, { method: options.method || "GET", headers, body });
    let data = null;
    const text = await response.text();
    if (text) { try { data = JSON.parse(text); } catch (_) { data = { error: text }; } }
    if (response.status === 401 && path !== "/auth/token") {
      signOut("Сессия истекла — войдите снова.");
      throw new ApiError(401, data);
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }
  const qs = (params) => {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined) p.set(k, v);
    const s = p.toString();
    return s ? `?${s}` : "";
  };

  // ---------------------------------------------------------------- login
  async function login(event) {
    event.preventDefault();
    setError($("login-error"), "");
    try {
      const answer = await api("/auth/token", {
        method: "POST",
        json: { extension: $("login-extension").value.trim(), password: $("login-password").value },
      });
      S.token = answer.token;
      S.me = { extension: $("login-extension").value.trim(), role: answer.role, tenants: answer.tenants };
      sessionStorage.setItem(TOKEN_KEY, S.token);
      sessionStorage.setItem(ME_KEY, JSON.stringify(S.me));
      $("login-password").value = "";
      start();
    } catch (e) {
      setError($("login-error"), e.status === 401 ? "Неверный номер или пароль." : `Ошибка входа: ${e.message}`);
    }
  }

  function signOut(message, revoke) {
    // Log-out ends the token on the server too; an expired session has nothing to end.
    if (revoke && S.token) {
      fetch("/api/v1/auth/token", { method: "DELETE", headers: { Authorization: `Bearer ${S.token}` }, keepalive: true })
        .catch(() => { /* it expires by itself */ });
    }
    S.token = null;
    S.me = null;
    for (const key of [TOKEN_KEY, ME_KEY, RESUME_KEY, CARDS_KEY]) sessionStorage.removeItem(key);
    if (S.ws) { S.ws.onclose = null; S.ws.close(); S.ws = null; }
    clearTimeout(S.reconnectTimer);
    S.position = null;
    S.epoch = null;
    S.calls.clear();
    renderCalls();
    showBanner(null);
    show($("app"), false);
    show($("login-view"), true);
    setError($("login-error"), message || "");
    $("login-extension").focus();
  }

  async function start() {
    show($("login-view"), false);
    show($("app"), true);
    const ROLE = { supervisor: "старший смены", operator: "оператор", "tenant-admin": "администратор УК", "tenant-viewer": "наблюдатель УК" };
    const staff = S.me.role === "tenant-admin" || S.me.role === "tenant-viewer";
    $("me-name").textContent = `${S.me.extension} · ${ROLE[S.me.role] || S.me.role}`;
    show($("tab-board"), S.me.role === "supervisor");
    show($("tab-call"), !staff);
    show($("tab-settings"), S.me.role === "supervisor" || S.me.role === "tenant-admin");
    show($("status-bar"), S.me.role === "operator");
    await loadTenants();
    refreshMyState();
    // In `dispatchline demo` the operator's softphone is simulated; its buttons
    // appear on the call card.
    try { S.demo = (await fetch("/demo")).ok; } catch (_) { S.demo = false; }
    renderCalls();
    // Cards kept over a reload are checked against the calls really in progress.
    loadActiveCalls();
    connect();
    selectTab({ supervisor: "board", "tenant-admin": "settings", "tenant-viewer": "tickets" }[S.me.role] || "call");
  }

  // The token slides: renewed every half hour while the console is open, so a
  // shift that runs over is not logged out in the middle of a call.
  setInterval(() => {
    if (S.token) api("/auth/token/renew", { method: "POST" }).catch(() => { /* 401 signs out */ });
  }, 30 * 60 * 1000);

  /** The tenants the principal serves (УК lists: the card's choice, the forms' filters). */
  async function loadTenants() {
    try {
      S.tenants = (await api("/tenants")).map((t) => ({
        code: t.code, name: t.name, city: t.city && t.city.code, cityName: t.city && t.city.name,
      }));
      S.tenantsError = null;
    } catch (e) {
      S.tenants = [];
      S.tenantsError = e.message;
    }
    fillTenantSelects();
    renderCalls();
  }

  function fillTenantSelects() {
    for (const id of ["tf-tenant", "f-tenant", "j-tenant"]) {
      const select = $(id);
      const keep = id === "tf-tenant" ? [el("option", { value: "" }, "— выберите УК —")] : [el("option", { value: "" }, "Все")];
      select.replaceChildren(...keep, ...S.tenants.map((t) => el("option", { value: t.code }, t.name)));
    }
  }

  // ---------------------------------------------------------------- operator state
  async function refreshMyState() {
    if (!S.me || S.me.role !== "operator") return;
    try {
      const ops = await api("/operators");
      const mine = ops.find((o) => o.extension === S.me.extension);
      if (mine) showMyState(mine);
    } catch (_) { /* shown by the connection indicator */ }
  }
  function showMyState(view) {
    S.myState = view;
    const chip = $("my-state");
    chip.dataset.state = view.state;
    chip.textContent = `Статус: ${OP_STATE[view.state]}` + (view.state === "paused" && view.reason ? ` (${view.reason})` : "");
    if (view.state !== "paused" && view.reason) chip.textContent += ` (затем пауза: ${view.reason})`;
    $("btn-ready").setAttribute("aria-pressed", String(view.state === "ready"));
    $("btn-pause").setAttribute("aria-pressed", String(view.state === "paused"));
    $("btn-logout-line").setAttribute("aria-pressed", String(view.state === "logged-out"));
    if (view.state === "ready" && S.calls.size === 0) $("calls-empty").textContent = "Ожидание звонка…";
    if (view.state !== "ready" && S.calls.size === 0) $("calls-empty").textContent = "Входящих звонков нет. Нажмите «Готов», чтобы принимать звонки.";
  }
  async function setMyState(state) {
    setError($("state-error"), "");
    const json = { state };
    if (state === "paused") json.reason = $("pause-reason").value;
    try {
      showMyState(await api(`/operators/${encodeURIComponent(S.me.extension)}/state`, { method: "POST", json }));
    } catch (e) {
      if (e.status !== 401) setError($("state-error"), e.message);
    }
  }

  // ---------------------------------------------------------------- websocket
  function setConn(kind) {
    S.connLog.push(kind);
    if (S.connLog.length > 50) S.connLog.shift();
    const node = $("conn");
    node.dataset.conn = kind;
    let text;
    if (kind === "live") text = "На связи";
    else {
      const since = S.offlineSince ? ` с ${hhmm(S.offlineSince)}` : "";
      text = kind === "reconnecting" ? `Переподключение… (нет связи${since})` : `Нет связи${since}`;
    }
    $("conn-text").textContent = text;
    // Offline: a banner across the page and the cards greyed, since they may be stale.
    document.body.classList.toggle("stale", kind !== "live" && !!S.token);
    if (kind !== "live" && S.token && S.offlineSince) {
      showBanner("offline", `Нет связи с сервером с ${hhmm(S.offlineSince)}. Карточки и списки могут быть устаревшими. Переподключение…`);
    } else if (kind === "live" && S.banner === "offline") {
      showBanner(null);
    }
  }

  /** The full-width notice under the top bar: `offline`, `resynced`, or none. */
  function showBanner(kind, text) {
    S.banner = kind;
    const node = $("banner");
    if (!node) return;
    node.dataset.kind = kind || "";
    $("banner-text").textContent = text || "";
    show($("banner-close"), kind === "resynced");
    show(node, !!kind);
  }

  function saveResume() {
    if (!S.token) return;
    sessionStorage.setItem(RESUME_KEY, JSON.stringify({ position: S.position, epoch: S.epoch }));
  }
  function saveCards() {
    if (!S.token) return;
    const cards = [...S.calls.values()].map((c) => ({ ...c, event: undefined }));
    try { sessionStorage.setItem(CARDS_KEY, JSON.stringify(cards)); } catch (_) { /* full: not kept */ }
  }

  function connect() {
    if (!S.token) return;
    clearTimeout(S.reconnectTimer);
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    let since = "";
    if (S.position !== null) {
      since = `&since=${S.position}`;
      if (S.epoch) since += `&epoch=${encodeURIComponent(S.epoch)}`;
    }
    let ws;
    try {
      ws = new WebSocket(`${proto}//${location.host}/ws?token=${encodeURIComponent(S.token)}${since}`);
    } catch (_) { scheduleReconnect(); return; }
    S.ws = ws;
    let opened = false;
    ws.onopen = () => { opened = true; };
    ws.onmessage = (m) => {
      S.lastFrame = Date.now();
      let data;
      try { data = JSON.parse(m.data); } catch (_) { return; }
      onFrame(data);
    };
    ws.onclose = (ev) => {
      if (S.ws !== ws) return;
      S.ws = null;
      if (!S.offlineSince) S.offlineSince = new Date();
      if (ev.code === 4401) { signOut("Сессия истекла — войдите снова."); return; }
      if (ev.code === 4002 || ev.code === 4003 || S.resyncReason) {
        resync(S.resyncReason || (ev.code === 4002 ? "since-too-old" : "since-in-future"));
        // Reconnect at once, from now: the state was just reloaded.
        S.attempt = 0;
        connect();
        return;
      }
      if (!opened) {
        // Refused before the upgrade: a bad token, or the engine is down.
        api("/operators").then(() => scheduleReconnect(), (e) => { if (e.status !== 401) scheduleReconnect(); });
        setConn(S.attempt > 2 ? "offline" : "reconnecting");
        return;
      }
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    if (!S.token) return;
    S.attempt += 1;
    setConn(S.attempt > 3 ? "offline" : "reconnecting");
    const base = Math.min(15000, 500 * 2 ** Math.min(S.attempt - 1, 5));
    const delay = base / 2 + Math.random() * base / 2;
    S.reconnectTimer = setTimeout(connect, delay);
  }

  // A connection silent for 2.5 heartbeats is dead even if the socket says open.
  setInterval(() => {
    if (S.ws && S.ws.readyState === WebSocket.OPEN && S.lastFrame &&
        Date.now() - S.lastFrame > S.heartbeatS * 2500) {
      const ws = S.ws;
      S.ws = null;
      ws.onclose = null;
      ws.close();
      if (!S.offlineSince) S.offlineSince = new Date(S.lastFrame);
      scheduleReconnect();
    }
  }, 2000);
  window.addEventListener("offline", () => { if (!S.offlineSince) S.offlineSince = new Date(); setConn("offline"); });
  window.addEventListener("online", () => { if (!S.ws) connect(); });

  // The engine cannot replay what we missed (history too short, or it restarted):
  // start the stream over from now and reload the state, including the calls in
  // progress. This is the only place the position goes back.
  function resync(reason) {
    S.resyncReason = null;
    S.position = null;
    S.epoch = null;
    saveResume();
    loadActiveCalls();
    refreshMyState();
    refreshVisible();
    S.resyncs = (S.resyncs || 0) + 1;
    const why = reason === "since-too-old"
      ? "Связь прерывалась дольше, чем сервер хранит события: часть событий пропущена."
      : "Сервер перезапускался: события до перезапуска недоступны.";
    showBanner("resynced", `${why} Звонки, статус и списки загружены заново — проверьте карточки.`);
  }

  /** Rebuilds the call cards from the calls really in progress. */
  async function loadActiveCalls() {
    if (!S.token) return;
    // The answer is a snapshot taken now: what the stream says after this moment
    // is newer and wins.
    const asked = Date.now();
    let active;
    try { active = await api("/calls/active"); } catch (_) { return; }
    const stale = (card) => (card.seenAt || 0) < asked;
    const ids = new Set();
    for (const a of active) {
      const id = str(a.call);
      ids.add(id);
      const status = STAGE_STATUS[a.stage] || "offered";
      const mine = a.operator && S.me && a.operator === S.me.extension;
      const others = a.operator && S.me && !mine && (status === "ringing" || status === "answered");
      if (others || !wantsCard(a.screen_pop || {})) continue;
      const card = S.calls.get(id);
      if (card) {
        if (card.status !== "ended" && stale(card)) card.status = status;
        if (a.tenant && card.tenant !== a.tenant && stale(card)) setCardTenant(card, a.tenant);
        if (!card.info && a.screen_pop && a.screen_pop.caller !== undefined) applyPayload(card, a.screen_pop);
      } else {
        const fresh = newCard(id, a.screen_pop || {}, a.tenant, null, status);
        S.calls.set(id, fresh);
      }
    }
    // Cards of calls no longer in progress ended while we were away.
    for (const card of S.calls.values()) {
      if (card.status !== "ended" && !ids.has(card.id) && !card.synthetic && stale(card)) card.status = "ended";
    }
    renderCalls();
  }

  const raise = (current, seen) => (typeof seen === "number" && (current === null || seen > current) ? seen : current);

  function onFrame(data) {
    if (typeof data.seq === "number") {
      // Dedupe: the stream is ordered, so anything at or below the position was seen.
      if (S.position !== null && data.seq <= S.position) return;
      S.position = data.seq;
      onEvent(data);
      saveResume();
      return;
    }
    switch (data.type) {
      case "hello": {
        const wasOffline = S.offlineSince;
        S.lastHello = data;
        S.attempt = 0;
        S.offlineSince = null;
        S.heartbeatS = data.heartbeat_s || 15;
        S.epoch = data.epoch || null;
        S.position = raise(S.position, data.position);
        saveResume();
        setConn("live");
        if (wasOffline) { refreshMyState(); refreshVisible(); }
        break;
      }
      case "heartbeat":
        S.position = raise(S.position, data.position);
        saveResume();
        setConn("live");
        break;
      case "error":
        if (["since-too-old", "since-in-future", "epoch-changed"].includes(data.error)) {
          // Handled when the close that follows arrives.
          S.resyncReason = data.error;
        } else {
          // A slow-consumer cut: resume from there, but never move backwards.
          S.position = raise(S.position, data.position);
          saveResume();
        }
        break;
      default:
        break;
    }
  }

  function onEvent(ev) {
    const p = ev.payload || {};
    const mine = p.operator && S.me && p.operator === S.me.extension;
    switch (ev.type) {
      case "call.offered": callOffered(ev); break;
      case "call.ringing":
        if (p.operator && S.me && !mine) dropCard(p.call);
        else {
          // Rung for me (again, perhaps after another operator missed it): the
          // card is built from the payload if it was dropped meanwhile.
          ensureCard(ev, "ringing");
          if (S.me && S.me.role === "operator" && S.tab !== "call") selectTab("call");
        }
        break;
      case "call.queued": updateCard(p.call, { status: "queued" }); break;
      case "call.tenant": {
        // The УК of the call was chosen (here or by another operator).
        const card = S.calls.get(str(p.call));
        if (card && (p.tenant || ev.tenant)) { setCardTenant(card, p.tenant || ev.tenant); renderCalls(); }
        break;
      }
      case "trunk.health":
        if (S.board) patchBoardTrunk(p, ev.ts);
        break;
      case "call.answered":
        updateCard(p.call, { status: "answered", wait: p.wait_ms, operator: p.operator });
        if (p.operator && S.me && !mine) dropCard(p.call);
        break;
      case "call.ended":
        updateCard(p.call, { status: "ended", disposition: p.disposition });
        if (S.tab === "journal") throttle("journal", loadJournal, 1000);
        break;
      case "operator.state":
        if (S.me && p.extension === S.me.extension) showMyState(p);
        break;
      case "ticket.changed":
        if (S.tab === "tickets") throttle("tickets", loadTickets, 500);
        break;
      case "recording.ready":
        if (S.tab === "journal") throttle("journal", loadJournal, 1000);
        break;
      default: break;
    }
    if (window.dispatchlineChains) window.dispatchlineChains.onEvent(ev);
    if (window.dispatchlineFollowUps) window.dispatchlineFollowUps.onEvent(ev);
    // The journal's views (monitor.js) follow ticket changes too.
    document.dispatchEvent(new CustomEvent("dispatchline:event", { detail: ev }));
    if (S.tab === "board" && /^(call|operator|dial|callback|chain|trunk|node)\./.test(ev.type)) {
      if (ev.type === "operator.state" && S.board) patchBoardOperator(p);
      // At most one reload a second, however steady the traffic.
      throttle("board", loadBoard, 1000);
    }
    saveCards();
  }

  const timers = {};
  function debounce(key, fn, ms) {
    clearTimeout(timers[key]);
    timers[key] = setTimeout(fn, ms);
  }
  /** Runs `fn` within `ms` of the first call, however often it is called meanwhile. */
  function throttle(key, fn, ms) {
    if (timers[key]) return;
    timers[key] = setTimeout(() => { timers[key] = null; fn(); }, ms);
  }

  // ---------------------------------------------------------------- call cards
  const STAGE_STATUS = {
    setup: "offered", lookingup: "offered", announcing: "offered", menu: "offered",
    queued: "queued", ringing: "ringing", connected: "answered", leaving: "answered",
  };

  /** Legacy and forward numbers involve no operator: no card. */
  function wantsCard(p) {
    return p.number_kind !== "legacy" && p.number_kind !== "forward";
  }

  /** The screen-pop's lookup (already trimmed for us by the engine) as card info. */
  function applyPayload(card, p) {
    if (p.caller === undefined) return false;
    const info = Object.assign({ address: null, other_addresses: [], open_tickets: [], outages: [] }, p.caller || {});
    info.tenant = p.tenant ? { code: p.tenant, name: p.tenant_name || tenantName(p.tenant) } : null;
    info.city = p.city || null;
    card.info = info;
    if (!card.tenant && p.tenant) card.tenant = p.tenant;
    if (p.caller === null) card.lookupError = "нет данных";
    return true;
  }

  function newCard(id, p, tenant, ts, status) {
    const card = { id, payload: p, tenant: tenant || p.tenant || null, status, info: null, offeredAt: ts || new Date().toISOString(), seenAt: Date.now() };
    if (!applyPayload(card, p) && p.direction !== "outbound" && p.from) lookupCaller(card);
    if (p.direction === "outbound" && p.original_call) loadOriginal(card);
    return card;
  }

  function callOffered(ev) {
    const p = ev.payload || {};
    const id = str(p.call) || `seq-${ev.seq}`;
    if (S.calls.has(id) || !wantsCard(p)) return;
    const card = newCard(id, p, ev.tenant, ev.ts, "offered");
    if (!p.call) card.synthetic = true;
    S.calls.set(id, card);
    // Keep the list short: drop ended cards beyond the newest five.
    const ended = [...S.calls.values()].filter((c) => c.status === "ended" && !c.ticketStarted);
    while (S.calls.size > 6 && ended.length) S.calls.delete(ended.shift().id);
    renderCalls();
  }

  /** The card of the event's call, built from its payload if there is none. */
  function ensureCard(ev, status) {
    const p = ev.payload || {};
    const id = str(p.call);
    if (!id || !wantsCard(p)) return;
    const card = S.calls.get(id);
    if (card) {
      card.status = status;
      card.seenAt = Date.now();
      if (!card.info) applyPayload(card, p);
    } else {
      S.calls.set(id, newCard(id, p, ev.tenant, ev.ts, status));
    }
    renderCalls();
  }

  // Only for events that carry no lookup (none of the engine's screen-pops).
  async function lookupCaller(card) {
    try {
      const info = await api(`/caller${qs({ phone: card.payload.from, tenant: card.tenant || "", city: card.payload.city || "" })}`);
      card.info = info;
      if (!card.tenant && info.tenant) card.tenant = info.tenant.code;
    } catch (e) {
      card.lookupError = e.status === 422 ? "номер не распознан" : e.message;
    }
    renderCalls();
    saveCards();
  }

  /** The call a callback returns: when the resident called and how long they waited. */
  async function loadOriginal(card) {
    try {
      card.original = await api(`/calls/${encodeURIComponent(card.payload.original_call)}`);
    } catch (_) { card.original = null; }
    renderCalls();
    saveCards();
  }

  function updateCard(id, patch) {
    const card = S.calls.get(str(id));
    if (!card) return;
    Object.assign(card, Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)));
    card.seenAt = Date.now();
    renderCalls();
  }
  function dropCard(id) {
    const card = S.calls.get(str(id));
    if (card && !card.ticketStarted) { S.calls.delete(card.id); renderCalls(); }
  }

  /**
   * The call's УК is known now (chosen by an operator, `call.tenant`): the card
   * names it, and a ticket form opened for this call takes it.
   */
  function setCardTenant(card, tenant) {
    card.tenant = tenant;
    card.tenantError = null;
    if (card.info) card.info.tenant = { code: tenant, name: tenantName(tenant) };
    if ($("tf-call").value === card.id && $("tf-tenant").value !== tenant) {
      const before = $("tf-tenant").value;
      $("tf-tenant").value = S.tenants.some((t) => t.code === tenant) ? tenant : "";
      // A house picked under another УК is not this one's.
      if (before) { $("tf-house").value = ""; $("tf-house-q").value = ""; }
      markTenantNeeded();
      previewAssignment();
    }
  }

  /** The operator picks the УК of an untenanted call on its card. */
  async function chooseCallTenant(card, tenant) {
    if (!tenant || card.tenantPending) return;
    card.tenantPending = tenant;
    card.tenantError = null;
    renderCalls();
    try {
      const set = await api(`/calls/${encodeURIComponent(card.id)}/tenant`, { method: "POST", json: { tenant } });
      setCardTenant(card, set.tenant || tenant);
    } catch (e) {
      if (e.status === 404 && !e.field) card.tenantError = "Звонок уже завершён — УК не назначена. Выберите УК в форме заявки.";
      else if (e.status === 403) card.tenantError = `Нет доступа к этой УК: ${e.message}`;
      else if (e.status !== 401) card.tenantError = `Не удалось назначить УК: ${e.message}`;
    } finally {
      card.tenantPending = null;
      renderCalls();
      saveCards();
    }
  }

  /**
   * «Выберите УК» on a live call whose УК is not known: the УК the operator serves
   * in the call's city (all they serve when the city has none of them), one button
   * each, or a list when there are many.
   */
  function tenantPicker(card, cityCode) {
    const inCity = S.tenants.filter((t) => t.city === cityCode);
    const choices = inCity.length ? inCity : S.tenants;
    const pending = !!card.tenantPending;
    let options;
    if (!choices.length) {
      options = el("div", { class: "error", role: "alert", "data-testid": "tenant-error" },
        `Список УК не загружен${S.tenantsError ? `: ${S.tenantsError}` : ""}. `,
        el("button", { type: "button", onclick: () => loadTenants() }, "Загрузить снова"));
    } else if (choices.length <= 6) {
      options = el("div", { class: "tenant-options" }, choices.map((t) => el("button", {
        type: "button", "data-tenant": t.code, disabled: pending,
        "aria-busy": card.tenantPending === t.code ? "true" : null,
        onclick: () => chooseCallTenant(card, t.code),
      }, t.name, card.tenantPending === t.code ? " …" : "")));
    } else {
      // Cards are redrawn on every event: the choice is kept on the card.
      const select = el("select", {
        "aria-label": "УК звонка", disabled: pending,
        onchange: (e) => { card.tenantChoice = e.target.value; },
      },
        el("option", { value: "" }, "— выберите УК —"),
        choices.map((t) => el("option", { value: t.code, selected: t.code === card.tenantChoice }, t.name)));
      options = el("div", { class: "tenant-options" }, select,
        el("button", { type: "button", disabled: pending, onclick: () => chooseCallTenant(card, select.value) }, pending ? "Назначается…" : "Назначить"));
    }
    return el("div", { class: "tenant-pick", role: "group", "aria-label": "Выберите УК", "data-testid": "tenant-pick" },
      el("div", { class: "tenant-pick-title" }, "Выберите УК"),
      el("div", { class: "muted" }, "Звонок на городской номер, адрес жителя не известен: спросите, какая у него управляющая компания."),
      options,
      card.tenantError ? el("p", { class: "error", role: "alert", "data-testid": "tenant-error" }, card.tenantError) : null);
  }

  const CALL_STATUS = { offered: "Входящий", queued: "В очереди", ringing: "Звонит", answered: "Разговор", ended: "Завершён" };

  function renderCalls() {
    const cards = [...S.calls.values()].reverse();
    show($("calls-empty"), cards.length === 0);
    $("call-cards").replaceChildren(...cards.map(renderCard));
  }

  function renderCard(card) {
    const p = card.payload;
    const info = card.info || {};
    const outbound = p.direction === "outbound";
    const address = info.address;
    const tenant = card.tenant || (address && address.tenant);
    const tname = (info.tenant && info.tenant.name) || (address && address.tenant_name) || tenantName(tenant) || "УК не определена";
    const cityCode = p.city || info.city || (address && address.city) || "";
    const known = S.tenants.find((t) => t.city === cityCode);
    const city = (known && known.cityName) || cityCode;
    const status = card.status === "ended" && card.disposition
      ? `${CALL_STATUS.ended}: ${DISPOSITION[card.disposition] || card.disposition}` : CALL_STATUS[card.status] || card.status;

    const flags = el("div", { class: "flags" });
    const handoff = p.handoff && window.dispatchlineChains ? window.dispatchlineChains.handoffBlock(card) : null;
    const followUp = !handoff && p.follow_up && window.dispatchlineFollowUps ? window.dispatchlineFollowUps.followUpBlock(card) : null;
    if (handoff) {
      flags.append(handoff);
    } else if (followUp) {
      flags.append(followUp);
    } else if (outbound) {
      // Whom the engine is calling and why, with the call being returned.
      const purpose = PURPOSE[p.purpose] || p.purpose || "исходящий вызов";
      const whom = info.staff ? `${str(info.staff.name)} (сотрудник)` : address ? `житель, ${str(address.address)}${address.apartment ? `, кв. ${address.apartment}` : ""}` : "житель";
      const o = card.original;
      const why = o
        ? `Звонил ${when(o.offered_at)} на ${str(o.to_number)}, ждал ${secs(o.wait_seconds)} — ${DISPOSITION[o.disposition] || "без ответа"}`
        : p.original_call ? "Исходный звонок загружается…" : "";
      flags.append(el("div", { class: "flag outbound", "data-testid": "outbound" },
        el("div", {}, el("strong", {}, `Автодозвон: ${purpose}`)),
        el("div", {}, `Звоним: ${str(p.to) || "—"} · ${whom}`),
        why ? el("div", { "data-testid": "original-call" }, why) : null));
    }
    for (const o of info.outages || []) {
      flags.append(el("div", { class: "flag outage", "data-testid": "outage" },
        `⚠ Отключение${o.until ? ` до ${when(o.until)}` : ""}: ${str(o.text)}`));
    }
    if (info.debtor) {
      flags.append(el("div", { class: "flag debtor", "data-testid": "debtor" },
        `₽ Должник: ${rubles(info.debtor.amount_kopecks)}`));
    }
    if (info.staff) {
      flags.append(el("div", { class: "flag staff" }, `Сотрудник: ${str(info.staff.name)} — не отвечать, будет перезвон`));
    }

    const addressLine = address
      ? el("div", { class: "address", "data-testid": "caller-address" },
        `${str(address.address)}${address.apartment ? `, кв. ${address.apartment}` : ""}`)
      : el("div", { class: "address unknown", "data-testid": "caller-address" },
        outbound ? "" : card.info ? "Адрес не известен — спросите у жителя" : card.lookupError ? `Адрес: ${card.lookupError}` : "Поиск адреса…");

    const tickets = (info.open_tickets || []).map((t) => el("li", {},
      categoryBadge(t.category), ` № ${str(t.number)} · ${str(t.reason)} · ${STATUS[t.status] || t.status}`,
      t.apartment ? ` · кв. ${t.apartment}` : " · весь дом",
      t.same_apartment ? " · эта квартира" : ""));

    // An untenanted live call: the operator chooses its УК here.
    const picker = !outbound && !tenant && !card.synthetic && card.status !== "ended" ? tenantPicker(card, cityCode) : null;
    if (!picker && card.tenantError && card.status === "ended" && !tenant) flags.append(el("p", { class: "error", role: "alert", "data-testid": "tenant-error" }, card.tenantError));

    return el("article", { class: "call-card", "data-call": card.id, "data-status": card.status, "data-testid": "call-card" },
      el("header", {},
        el("span", { class: `tenant${tenant ? "" : " unknown"}`, "data-testid": "card-tenant", "data-tenant": tenant || "" }, tname, city ? ` · ${city}` : ""),
        el("span", { class: "call-status" }, status)),
      el("div", { class: "phone", "data-testid": "caller-phone" }, outbound ? str(p.to) : str(p.from) || "номер скрыт"),
      addressLine,
      picker,
      el("dl", {},
        el("dt", {}, outbound ? "Откуда" : "Набран номер"),
        el("dd", {}, outbound ? str(p.from) : str(p.to), p.number_kind ? el("span", { class: "kind" }, NUMBER_KIND[p.number_kind] || p.number_kind) : ""),
        el("dt", {}, "Поступил"), el("dd", {}, when(card.offeredAt)),
        card.wait !== undefined ? [el("dt", {}, "Ожидание"), el("dd", {}, secs(card.wait / 1000))] : null),
      flags,
      tickets.length ? [el("h3", {}, `Открытые заявки по дому (${tickets.length})`), el("ul", { class: "open-tickets" }, tickets)] : null,
      el("div", { class: "card-actions" },
        S.demo && card.status === "ringing" ? el("button", { type: "button", class: "primary", "data-testid": "demo-answer", onclick: () => softphone("answer") }, "📞 Ответить") : null,
        S.demo && card.status === "answered" ? el("button", { type: "button", "data-testid": "demo-hangup", onclick: () => softphone("hangup") }, "Положить трубку") : null,
        outbound ? null : el("button", { type: "button", class: "primary", "data-testid": "start-ticket", onclick: () => startTicket(card) }, "Создать заявку"),
        el("button", { type: "button", onclick: () => { S.calls.delete(card.id); renderCalls(); saveCards(); } }, "Скрыть")));
  }

  /** Drives the demo's simulated softphone of the logged-in operator. */
  async function softphone(action) {
    try {
      await fetch(`/demo/softphones/${encodeURIComponent(S.me.extension)}/${action}`, {
        method: "POST", headers: { Authorization: `Bearer ${S.token}` },
      });
    } catch (_) { /* the card's status shows what happened */ }
  }

  // ---------------------------------------------------------------- ticket form
  function startTicket(card) {
    card.ticketStarted = true;
    clearTicketForm();
    const info = card.info || {};
    const a = info.address;
    $("tf-call").value = card.id.startsWith("seq-") ? "" : card.id;
    $("tf-phone").value = str(card.payload.from);
    const tenant = card.tenant || (a && a.tenant);
    // An unknown citywide caller: the operator picks the УК (nothing is carried
    // over from the previous call).
    $("tf-tenant").value = tenant && S.tenants.some((t) => t.code === tenant) ? tenant : "";
    markTenantNeeded();
    if (a) {
      $("tf-house").value = a.house_id;
      $("tf-house-q").value = a.address;
      $("tf-apartment").value = a.apartment || "";
    }
    if ($("tf-tenant").value) $("tf-reason-q").focus(); else $("tf-tenant").focus();
  }

  function markTenantNeeded() {
    $("tf-tenant").setAttribute("aria-invalid", String(!$("tf-tenant").value));
  }

  function clearTicketForm() {
    for (const id of ["tf-call", "tf-phone", "tf-house", "tf-house-q", "tf-apartment", "tf-reason", "tf-reason-q", "tf-description", "tf-tenant"]) $(id).value = "";
    $("tf-tenant").removeAttribute("aria-invalid");
    show($("tf-reason-chosen"), false);
    show($("tf-reason-results"), false);
    show($("tf-house-results"), false);
    show($("tf-assignment"), false);
    setError($("tf-error"), "");
  }

  /** Shows the executor chain the ticket would get, as soon as УК, house and reason are known. */
  async function previewAssignment() {
    const tenant = $("tf-tenant").value;
    const house = Number($("tf-house").value);
    const reason = Number($("tf-reason").value);
    const box = $("tf-assignment");
    if (!tenant || !house || !reason) { show(box, false); return; }
    const asked = `${tenant}/${house}/${reason}`;
    box.dataset.asked = asked;
    let chain;
    try { chain = await api(`/assignment${qs({ tenant, house, reason })}`); } catch (e) {
      if (box.dataset.asked !== asked) return;
      box.replaceChildren(el("div", { class: "muted" }, `Исполнитель: не удалось определить (${e.message})`));
      show(box, true);
      return;
    }
    if (box.dataset.asked !== asked) return; // a newer choice is being asked
    const executors = (chain.executors || []).map((x) => el("li", {}, `${str(x.employee && x.employee.name)}`, el("span", { class: "muted" }, ` · уровень ${x.level}`)));
    box.replaceChildren(
      el("div", {}, el("strong", {}, "Исполнитель будет назначен:")),
      executors.length ? el("ol", { "data-testid": "assignment-preview" }, executors)
        : el("div", { class: "error", "data-testid": "assignment-preview" }, "Нет исполнителя на смене — заявка уйдёт ответственному."),
      chain.responsible ? el("div", { class: "muted" }, `Ответственный: ${chain.responsible.name}`) : null);
    show(box, true);
  }

  async function searchReasons() {
    const q = $("tf-reason-q").value.trim();
    $("tf-reason").value = "";
    show($("tf-reason-chosen"), false);
    show($("tf-assignment"), false);
    if (q.length < 2) { show($("tf-reason-results"), false); return; }
    try {
      const reasons = await api(`/reasons${qs({ q, tenant: $("tf-tenant").value })}`);
      const box = $("tf-reason-results");
      box.replaceChildren(...reasons.slice(0, 12).map((r) => el("button", {
        type: "button", role: "option", "data-reason": r.id, onclick: () => chooseReason(r),
      }, categoryBadge(r.category), r.title)));
      if (!reasons.length) box.replaceChildren(el("div", { class: "muted pad" }, "Ничего не найдено"));
      show(box, true);
    } catch (_) { /* the operator retypes */ }
  }
  function chooseReason(r) {
    $("tf-reason").value = r.id;
    $("tf-reason-q").value = r.title;
    show($("tf-reason-results"), false);
    const box = $("tf-reason-chosen");
    box.className = `reason-chosen ${r.category}`;
    box.replaceChildren(categoryBadge(r.category), " ", el("strong", {}, r.title),
      el("div", { class: "muted" }, `Срок: ${r.deadline_minutes >= 1440 ? `${Math.round(r.deadline_minutes / 1440)} сут.` : r.deadline_minutes >= 60 ? `${Math.round(r.deadline_minutes / 60)} ч` : `${r.deadline_minutes} мин`}`),
      el("div", { class: "say" }, "Скажите жителю: ", str(r.operator_text)));
    show(box, true);
    previewAssignment();
    $("tf-description").focus();
  }

  async function searchHouses() {
    const q = $("tf-house-q").value.trim();
    $("tf-house").value = "";
    show($("tf-assignment"), false);
    if (q.length < 2) { show($("tf-house-results"), false); return; }
    try {
      const page = await api(`/houses${qs({ q, tenant: $("tf-tenant").value, limit: 10 })}`);
      const box = $("tf-house-results");
      box.replaceChildren(...page.items.map((h) => el("button", {
        type: "button", role: "option", onclick: () => {
          $("tf-house").value = h.id; $("tf-house-q").value = h.address;
          if (h.tenant) $("tf-tenant").value = h.tenant;
          markTenantNeeded();
          show(box, false); previewAssignment(); $("tf-apartment").focus();
        },
      }, h.address, el("span", { class: "muted" }, ` · ${tenantName(h.tenant)}`))));
      show(box, page.items.length > 0);
    } catch (_) { /* retype */ }
  }

  async function submitTicket(event) {
    if (event) event.preventDefault();
    setError($("tf-error"), "");
    const house = Number($("tf-house").value);
    const reason = Number($("tf-reason").value);
    if (!$("tf-tenant").value) { markTenantNeeded(); setError($("tf-error"), "Выберите УК: звонок на городской номер, житель не известен."); $("tf-tenant").focus(); return; }
    if (!house) { setError($("tf-error"), "Выберите дом из списка."); $("tf-house-q").focus(); return; }
    if (!reason) { setError($("tf-error"), "Выберите причину из списка."); $("tf-reason-q").focus(); return; }
    const json = {
      tenant: $("tf-tenant").value, house_id: house, reason_id: reason,
      apartment: $("tf-apartment").value.trim() || null, description: $("tf-description").value.trim(),
      source: "phone",
    };
    if ($("tf-phone").value) json.caller_phone = $("tf-phone").value;
    if ($("tf-call").value) json.call_id = $("tf-call").value;
    $("tf-submit").disabled = true;
    try {
      const registered = await api("/tickets", { method: "POST", json });
      showTicketResult(registered);
      clearTicketForm();
    } catch (e) {
      const field = { house_id: "дом", reason_id: "причина", apartment: "квартира", tenant: "УК", caller_phone: "телефон" }[e.field];
      setError($("tf-error"), field ? `${field}: ${e.message}` : e.message);
    } finally {
      $("tf-submit").disabled = false;
    }
  }

  function showTicketResult(registered) {
    const t = registered.ticket;
    const chain = registered.chain || {};
    $("ticket-number").textContent = `№ ${t.number}`;
    $("ticket-result-category").replaceChildren(categoryBadge(t.category), ` ${str(t.reason)} · ${str(t.address)}${t.apartment ? `, кв. ${t.apartment}` : ""} · срок ${when(t.deadline_at)}`);
    const executors = (chain.executors || []).map((x) => el("li", {}, `${str(x.employee && x.employee.name)} (уровень ${x.level})`));
    $("ticket-chain").replaceChildren(
      el("div", {}, el("strong", {}, "Исполнитель назначен автоматически:")),
      executors.length ? el("ol", { "data-testid": "executor-chain" }, executors) : el("div", { class: "error" }, "Нет исполнителя на смене — сообщите старшему смены."),
      chain.responsible ? el("div", { class: "muted" }, `Ответственный: ${chain.responsible.name}`) : null);
    show($("ticket-result"), true);
  }

  // ---------------------------------------------------------------- tickets list
  async function loadTickets() {
    const f = {
      category: $("f-category").value, tenant: $("f-tenant").value,
      offset: S.tickets.offset, limit: S.tickets.limit,
    };
    const status = $("f-status").value;
    if (status === "") f.open = "true";
    else if (status !== "any") f.status = status;
    if ($("f-from").value) f.from = new Date(`${$("f-from").value}T00:00:00`).toISOString();
    if ($("f-to").value) f.to = new Date(new Date(`${$("f-to").value}T00:00:00`).getTime() + 86400000).toISOString();
    try {
      const page = await api(`/tickets${qs(f)}`);
      S.tickets.total = page.total;
      S.tickets.items = page.items;
      const ids = new Set(page.items.map((t) => t.id));
      for (const id of [...S.tickets.selected]) if (!ids.has(id)) S.tickets.selected.delete(id);
      renderTickets();
    } catch (_) { /* keep what is shown */ }
  }
  function renderTickets() {
    const rows = S.tickets.items.map((t) => el("tr", {
      class: `row-${t.category}${S.tickets.selected.has(t.id) ? " selected" : ""}`, "data-ticket": t.id, "data-category": t.category,
    },
      el("td", {}, el("input", {
        type: "checkbox", "aria-label": `Выбрать ${t.number}`, checked: S.tickets.selected.has(t.id),
        onchange: (e) => { if (e.target.checked) S.tickets.selected.add(t.id); else S.tickets.selected.delete(t.id); renderTickets(); },
      })),
      el("td", { class: "num" }, el("button", {
        type: "button", class: "link", "data-open-ticket": t.id, title: "Открыть заявку и её передачу",
        onclick: () => window.dispatchlineChains && window.dispatchlineChains.openTicket(t.id),
      }, t.number)), el("td", {}, categoryBadge(t.category)),
      el("td", {}, STATUS[t.status] || t.status), el("td", {}, tenantName(t.tenant)),
      el("td", {}, `${str(t.address)}${t.apartment ? `, кв. ${t.apartment}` : ""}`),
      el("td", {}, str(t.reason)), el("td", {}, str(t.executor_name) || "—"),
      el("td", {}, when(t.deadline_at)), el("td", {}, when(t.created_at))));
    $("tickets-body").replaceChildren(...rows);
    if (!rows.length) $("tickets-body").append(el("tr", {}, el("td", { colspan: 10, class: "muted" }, "Заявок нет")));
    const n = S.tickets.selected.size;
    $("bulk-count").textContent = `Выбрано: ${n}`;
    $("bulk-apply").disabled = n === 0;
    $("t-all").checked = n > 0 && n === S.tickets.items.length;
    pager("t", S.tickets);
  }
  function pager(prefix, page) {
    const from = page.total ? page.offset + 1 : 0;
    const to = Math.min(page.offset + page.limit, page.total);
    $(`${prefix}-page`).textContent = `${from}–${to} из ${page.total}`;
    $(`${prefix}-prev`).disabled = page.offset === 0;
    $(`${prefix}-next`).disabled = to >= page.total;
  }
  // Changing many tickets at once is asked to be confirmed, with a note for the history.
  function bulkAsk() {
    setError($("bulk-error"), "");
    const n = S.tickets.selected.size;
    if (!n) return;
    const status = $("bulk-status");
    $("bulk-question").textContent = `Сменить статус ${n} заявк${n === 1 ? "и" : "ам"} на «${status.options[status.selectedIndex].text}»?`;
    $("bulk-note").value = "";
    show($("bulk-confirm"), true);
    $("bulk-note").focus();
  }
  async function bulkApply() {
    setError($("bulk-error"), "");
    const ids = [...S.tickets.selected];
    const note = $("bulk-note").value.trim();
    if (!ids.length) return;
    if (!note) { setError($("bulk-error"), "Напишите примечание: почему меняется статус."); $("bulk-note").focus(); return; }
    try {
      await api("/tickets/status", { method: "POST", json: { ids, status: $("bulk-status").value, note } });
      S.tickets.selected.clear();
      show($("bulk-confirm"), false);
      loadTickets();
    } catch (e) { setError($("bulk-error"), e.message); }
  }

  // ---------------------------------------------------------------- journal
  async function loadJournal() {
    const f = {
      direction: $("j-direction").value, tenant: $("j-tenant").value, operator: $("j-operator").value.trim(),
      offset: S.journal.offset, limit: S.journal.limit,
    };
    if ($("j-from").value) f.from = new Date(`${$("j-from").value}T00:00:00`).toISOString();
    if ($("j-to").value) f.to = new Date(new Date(`${$("j-to").value}T00:00:00`).getTime() + 86400000).toISOString();
    try {
      const page = await api(`/calls${qs(f)}`);
      S.journal.total = page.total;
      const rows = page.items.map((c) => el("tr", { "data-call": c.id },
        el("td", {}, when(c.offered_at)), el("td", {}, c.direction === "outbound" ? "Исх." : "Вх."),
        el("td", {}, str(c.from_number)), el("td", {}, str(c.to_number), c.number_kind ? el("span", { class: "kind" }, NUMBER_KIND[c.number_kind] || c.number_kind) : ""),
        el("td", {}, tenantName(c.tenant)), el("td", {}, DISPOSITION[c.disposition] || str(c.disposition) || "идёт"),
        el("td", {}, secs(c.wait_seconds)), el("td", {}, secs(c.talk_seconds)), el("td", {}, str(c.operator_extension)),
        el("td", {}, c.recording_id ? el("button", { type: "button", "data-testid": "play", onclick: (e) => play(e.target, c.recording_id) }, "▶ Прослушать") : "—")));
      $("journal-body").replaceChildren(...rows);
      if (!rows.length) $("journal-body").append(el("tr", {}, el("td", { colspan: 10, class: "muted" }, "Звонков нет")));
      pager("j", S.journal);
    } catch (_) { /* keep */ }
  }
  // The recording is fetched with the Authorization header (the token never goes
  // into a URL, where logs and the browser history would keep it) and played from
  // a blob URL.
  async function play(button, id) {
    button.disabled = true;
    button.textContent = "Загрузка…";
    try {
      const response = await fetch(`/api/v1/recordings/${id}`, { headers: { Authorization: `Bearer ${S.token}` } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const url = URL.createObjectURL(await response.blob());
      const audio = el("audio", { controls: true, preload: "auto", "data-testid": "recording", src: url });
      button.replaceWith(audio);
      audio.play().catch(() => { /* autoplay may be refused; the controls remain */ });
    } catch (e) {
      button.disabled = false;
      button.textContent = `▶ Повторить (${e.message})`;
    }
  }

  // ---------------------------------------------------------------- board
  async function loadBoard() {
    if (!S.me || S.me.role !== "supervisor") return;
    try {
      S.board = await api(`/board${qs({ city: S.boardCity })}`);
      S.boardFetchedAt = Date.now();
      renderBoard();
      if (window.dispatchlineChains) window.dispatchlineChains.loadBoard();
      if (window.dispatchlineFollowUps) window.dispatchlineFollowUps.loadBoard();
    } catch (_) { /* keep */ }
  }
  function patchBoardOperator(view) {
    const ops = S.board.operators || [];
    // Only operators the board already shows (REST decides whom a supervisor oversees).
    const i = ops.findIndex((o) => o.extension === view.extension);
    if (i < 0) return;
    ops[i] = Object.assign({}, ops[i], view);
    renderBoardOperators();
  }
  /** A `trunk.health` event: the trunk's tile changes at once (the board reloads after). */
  function patchBoardTrunk(p, ts) {
    const trunks = S.board.trunks || (S.board.trunks = []);
    const i = trunks.findIndex((t) => t.name === p.trunk);
    const patch = { health: p.health, reason: p.reason || null, since: ts || new Date().toISOString() };
    if (i < 0) trunks.push(Object.assign({ name: p.trunk, registered: null, usable: p.health !== "down" }, patch));
    else trunks[i] = Object.assign({}, trunks[i], patch, { usable: p.health !== "down" && trunks[i].registered !== false });
    renderTrunks();
  }
  /** The SIP trunks: green when up, red when down, grey before the first probe. */
  function renderTrunks() {
    const trunks = (S.board && S.board.trunks) || [];
    const tiles = trunks.map((t) => {
      const health = TRUNK_HEALTH[t.health] ? t.health : "unknown";
      const registration = t.registered === true ? "регистрация есть"
        : t.registered === false ? "нет регистрации" : null;
      return el("div", {
        class: "trunk", "data-testid": "trunk", "data-trunk": t.name, "data-health": health,
        "data-usable": String(!!t.usable), title: str(t.reason),
      },
        el("div", { class: "trunk-name" }, t.name),
        el("div", { class: "trunk-health" }, el("span", { class: "trunk-dot", "aria-hidden": "true" }), TRUNK_HEALTH[health]),
        el("div", { class: "sub", "data-testid": "trunk-since" },
          t.since ? `с ${when(t.since)}` : health === "unknown" ? "проверок ещё не было" : "",
          registration ? ` · ${registration}` : ""),
        t.reason ? el("div", { class: "sub" }, t.reason) : null,
        t.register_error ? el("div", { class: "sub error" }, t.register_error) : null,
        health === "up" && !t.usable ? el("div", { class: "sub error" }, "перезвоны через него не идут") : null);
    });
    $("b-trunks").replaceChildren(...(tiles.length ? tiles : [el("div", { class: "muted" }, "Транки не настроены")]));
    const down = trunks.filter((t) => t.health === "down").length;
    const unknown = trunks.filter((t) => t.health !== "up" && t.health !== "down").length;
    const count = $("b-trunks-count");
    count.textContent = !trunks.length ? "" : down ? `не работает: ${down} из ${trunks.length}`
      : unknown ? `без проверки: ${unknown} из ${trunks.length}` : `все ${trunks.length} работают`;
    count.dataset.level = down ? "bad" : unknown ? "none" : "good";
  }
  /** The engine's nodes: green while alive, red once dead (and who took its calls over), grey when stopped. */
  function renderNodes() {
    const nodes = (S.board && S.board.nodes) || [];
    const tiles = nodes.map((n) => {
      const stopped = !n.alive && n.recovered_by === n.id;
      const health = n.alive ? "up" : stopped ? "unknown" : "down";
      const state = n.alive ? "работает" : stopped ? "остановлен" : "не отвечает";
      const detail = n.alive ? `запущен ${when(n.started_at)}`
        : stopped ? `остановлен ${when(n.recovered_at)}`
        : n.recovered_by ? `с ${when(n.alive_until)} · его звонки и задания принял ${n.recovered_by}`
        : `с ${when(n.alive_until)} · его звонки и задания переходят к другим узлам`;
      return el("div", { class: "trunk node", "data-testid": "node", "data-node": n.id, "data-health": health },
        el("div", { class: "trunk-name" }, n.id, n.this ? el("span", { class: "muted" }, " · этот узел") : null),
        el("div", { class: "trunk-health" }, el("span", { class: "trunk-dot", "aria-hidden": "true" }), state),
        el("div", { class: "sub" }, detail));
    });
    $("b-nodes").replaceChildren(...(tiles.length ? tiles : [el("div", { class: "muted" }, "Узлы ещё не отметились")]));
    const down = nodes.filter((n) => !n.alive && n.recovered_by !== n.id).length;
    const alive = nodes.filter((n) => n.alive).length;
    const count = $("b-nodes-count");
    count.textContent = !nodes.length ? "" : down ? `не отвечает: ${down}, работает: ${alive}` : `работает: ${alive}`;
    count.dataset.level = down ? "bad" : "good";
  }
  function pct(tile) {
    return tile && tile.share !== null && tile.share !== undefined ? `${Math.round(tile.share * 1000) / 10}%` : "—";
  }
  function tile(title, t, target) {
    const level = !t || t.share === null || t.share === undefined ? "none" : t.share >= target ? "good" : "bad";
    return el("div", { class: "tile", "data-level": level, "data-testid": "tile" },
      el("div", {}, title), el("div", { class: "value" }, pct(t)),
      el("div", { class: "sub" }, t ? `${t.met} из ${t.total}` : "", ` · цель ${Math.round(target * 100)}%`));
  }
  function renderBoard() {
    const b = S.board;
    if (!b) return;
    const c = b.compliance;
    const cities = b.cities || [];
    const picker = $("b-city-select");
    picker.replaceChildren(...cities.map((x) => el("option", { value: x.code, selected: c && x.code === c.city }, x.name)));
    show($("b-city-label"), cities.length > 1);
    const shown = cities.find((x) => c && x.code === c.city);
    $("b-city").textContent = c ? `· ${shown ? shown.name : c.city}, ${c.date}` : "";
    $("b-updated").textContent = `обновлено ${hhmm(new Date())}`;
    $("b-tiles").replaceChildren(
      tile("Ответ за 30 секунд", c && c.answered_30s, 0.8),
      tile("Ответ за 5 минут (ПП №416)", c && c.answered_5m, 1),
      tile("Перезвон за 10 минут", c && c.callbacks_10m, 1));
    renderTrunks();
    renderNodes();
    renderWaiting();
    renderBoardOperators();
    $("b-chart").replaceChildren(chart(c ? c.hourly : []));
    const jobs = (b.dial_jobs || []).map((j) => el("tr", {},
      el("td", {}, PURPOSE[j.kind] || j.kind), el("td", {}, tenantName(j.tenant)), el("td", {}, str(j.target)),
      el("td", {}, j.ticket_id ? `#${j.ticket_id}` : "—"),
      el("td", {}, `${j.attempts_made} / ${j.max_attempts}`), el("td", {}, JOB_STATE[j.state] || j.state),
      el("td", {}, when(j.due_at))));
    $("b-jobs").replaceChildren(...(jobs.length ? jobs : [el("tr", {}, el("td", { colspan: 7, class: "muted" }, "Нет"))]));
  }
  function renderWaiting() {
    const b = S.board;
    if (!b) return;
    const elapsed = (Date.now() - S.boardFetchedAt) / 1000;
    const rows = (b.waiting || []).map((w) => {
      const waited = (w.waited_s || 0) + elapsed;
      return el("tr", {},
        el("td", { class: `num${waited >= 240 ? " wait-long" : ""}` }, secs(waited), waited >= 240 ? " !" : ""),
        el("td", {}, str(w.caller)), el("td", {}, tenantName(w.tenant) || "—"),
        el("td", {}, NUMBER_KIND[w.number_kind] || str(w.number_kind)));
    });
    $("b-waiting").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { class: "muted" }, "Никто не ждёт"))]));
    $("b-waiting-count").textContent = String(rows.length);
  }
  function renderBoardOperators() {
    const ops = (S.board && S.board.operators) || [];
    const groups = ["ready", "busy", "wrap-up", "paused", "logged-out"].map((state) => {
      const list = ops.filter((o) => o.state === state);
      return el("div", { class: "op-group", "data-state": state },
        el("h4", {}, `${OP_STATE[state]}: ${list.length}`),
        list.map((o) => el("span", { class: "op" }, `${o.extension} ${str(o.name)}`,
          o.reason ? ` (${o.reason})` : "", o.registered ? "" : " · телефон не в сети",
          o.since ? ` · ${secs((Date.now() - new Date(o.since)) / 1000)}` : "")));
    });
    $("b-operators").replaceChildren(...groups);
  }
  // Stacked bars per local hour: within 30 s, 30 s–5 min, missed 5 min, other.
  function chart(hourly) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    // Drawn in CSS pixels at the panel's width, so the text is 14 px, not scaled down.
    const W = Math.max(480, Math.round(($("b-chart").clientWidth || 960) - 4)), H = 220, left = 40, bottom = 26, top = 10;
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("width", W);
    svg.setAttribute("height", H);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "Звонки по часам");
    const max = Math.max(1, ...hourly.map((h) => h.offered));
    const bw = (W - left) / 24;
    const y = (v) => H - bottom - (v / max) * (H - bottom - top);
    const add = (tag, attrs, text) => {
      const n = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
      if (text !== undefined) n.textContent = text;
      svg.append(n);
      return n;
    };
    for (const v of [0, Math.ceil(max / 2), max]) {
      add("line", { x1: left, x2: W, y1: y(v), y2: y(v), class: "grid-line" });
      add("text", { x: left - 4, y: y(v) + 4, "text-anchor": "end", "font-size": 14, class: "axis" }, String(v));
    }
    const colours = [["#1e6b34", "answered_30s"], ["#c79a00", "mid"], ["#b3261e", "missed_5m"], ["#9aa5b1", "other"]];
    for (const h of hourly) {
      const parts = {
        answered_30s: h.answered_30s, mid: h.answered_5m - h.answered_30s, missed_5m: h.missed_5m,
        other: Math.max(0, h.offered - h.answered_5m - h.missed_5m),
      };
      let acc = 0;
      const x = left + h.hour * bw + 2;
      for (const [colour, key] of colours) {
        const v = parts[key];
        if (v > 0) {
          const r = add("rect", { x, width: bw - 4, y: y(acc + v), height: y(acc) - y(acc + v), fill: colour, class: "bar" });
          const t = document.createElementNS(ns, "title");
          t.textContent = `${h.hour}:00 — ${v}`;
          r.append(t);
        }
        acc += v;
      }
      add("text", { x: x + (bw - 4) / 2, y: H - 6, "text-anchor": "middle", "font-size": 14, class: "axis" }, String(h.hour));
    }
    const legend = el("div", { class: "legend" },
      el("span", {}, el("span", { class: "swatch s30" }), "до 30 с"),
      el("span", {}, el("span", { class: "swatch s5m" }), "30 с – 5 мин"),
      el("span", {}, el("span", { class: "swatch smiss" }), "позже 5 мин / без ответа"),
      el("span", {}, el("span", { class: "swatch sother" }), "брошены быстро / идут"));
    const wrap = el("div");
    wrap.append(svg, legend);
    return wrap;
  }
  setInterval(() => { if (S.tab === "board") { renderWaiting(); } }, 1000);
  setInterval(() => { if (S.tab === "board") loadBoard(); }, 15000);

  // ---------------------------------------------------------------- tabs and keys
  function selectTab(tab, focus) {
    if (tab === "board" && (!S.me || S.me.role !== "supervisor")) return;
    if (tab === "settings" && (!S.me || !["supervisor", "tenant-admin"].includes(S.me.role))) return;
    if (tab === "call" && S.me && ["tenant-admin", "tenant-viewer"].includes(S.me.role)) return;
    S.tab = tab;
    for (const b of document.querySelectorAll(".tabs button")) {
      const on = b.dataset.tab === tab;
      b.setAttribute("aria-selected", String(on));
      b.tabIndex = on ? 0 : -1;
      if (on && focus) b.focus();
    }
    for (const v of document.querySelectorAll(".view")) v.hidden = v.dataset.view !== tab;
    refreshVisible();
  }
  // Arrow keys, Home and End move along the tabs (WAI-ARIA tabs pattern).
  function tabKeys(e) {
    const tabs = [...document.querySelectorAll(".tabs button")].filter((b) => !b.hidden);
    const i = tabs.indexOf(e.target);
    if (i < 0) return;
    let next = null;
    if (e.key === "ArrowRight") next = tabs[(i + 1) % tabs.length];
    else if (e.key === "ArrowLeft") next = tabs[(i - 1 + tabs.length) % tabs.length];
    else if (e.key === "Home") next = tabs[0];
    else if (e.key === "End") next = tabs[tabs.length - 1];
    if (next) { e.preventDefault(); selectTab(next.dataset.tab, true); }
  }

  // Light, dark (low glare for night shifts) or as the system says.
  function applyTheme(theme) {
    if (theme === "dark" || theme === "light") document.documentElement.dataset.theme = theme;
    else delete document.documentElement.dataset.theme;
    const label = { dark: "Тема: тёмная", light: "Тема: светлая" }[theme] || "Тема: как в системе";
    const button = $("btn-theme");
    if (button) {
      button.textContent = { dark: "☾ Тёмная", light: "☀ Светлая" }[theme] || "◐ Авто";
      button.title = `${label} (нажмите, чтобы сменить)`;
      button.setAttribute("aria-label", label);
    }
  }
  function cycleTheme() {
    const order = ["auto", "dark", "light"];
    const now = localStorage.getItem(THEME_KEY) || "auto";
    const next = order[(order.indexOf(now) + 1) % order.length];
    localStorage.setItem(THEME_KEY, next);
    applyTheme(next);
    if (S.tab === "board") renderBoard();
  }
  function refreshVisible() {
    if (S.tab === "tickets") loadTickets();
    else if (S.tab === "journal") loadJournal();
    else if (S.tab === "board") loadBoard();
    else if (S.tab === "settings" && window.dispatchlineSettings) window.dispatchlineSettings.open();
  }

  document.addEventListener("keydown", (e) => {
    if (!S.token) return;
    if (e.altKey && ["1", "2", "3", "4"].includes(e.key)) {
      e.preventDefault();
      selectTab(["call", "tickets", "journal", "board"][Number(e.key) - 1]);
    } else if (e.altKey && (e.key === "r" || e.key === "к")) { e.preventDefault(); setMyState("ready"); }
    else if (e.altKey && (e.key === "p" || e.key === "з")) { e.preventDefault(); setMyState("paused"); }
    else if (e.ctrlKey && e.key === "Enter" && S.tab === "call") { e.preventDefault(); submitTicket(); }
    else if (e.key === "Escape") { show($("tf-reason-results"), false); show($("tf-house-results"), false); }
  });

  // ---------------------------------------------------------------- wiring
  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", login);
    $("btn-signout").addEventListener("click", () => signOut("", true));
    $("btn-theme").addEventListener("click", cycleTheme);
    applyTheme(localStorage.getItem(THEME_KEY) || "auto");
    $("banner-close").addEventListener("click", () => showBanner(null));
    // The chains module redraws cards after recording a hand-off's result, and
    // raises alarms supervisors must not miss.
    document.addEventListener("dispatchline:cards", () => { renderCalls(); saveCards(); });
    document.addEventListener("dispatchline:alarm", (e) => showBanner("alarm", e.detail));
    $("b-city-select").addEventListener("change", (e) => { S.boardCity = e.target.value; loadBoard(); });
    $("tf-tenant").addEventListener("change", () => {
      markTenantNeeded();
      previewAssignment();
      // Choosing the УК in the form of a live untenanted call chooses it for the
      // call too (its journal row, recording and callback), as the card's control does.
      const card = S.calls.get($("tf-call").value);
      const untenanted = card && !card.tenant && !(card.info && card.info.address && card.info.address.tenant);
      if (untenanted && !card.synthetic && card.status !== "ended" && card.payload.direction !== "outbound" && $("tf-tenant").value) {
        chooseCallTenant(card, $("tf-tenant").value);
      }
    });
    $("bulk-cancel").addEventListener("click", () => { show($("bulk-confirm"), false); setError($("bulk-error"), ""); });
    $("bulk-ok").addEventListener("click", bulkApply);
    $("btn-ready").addEventListener("click", () => setMyState("ready"));
    $("btn-pause").addEventListener("click", () => setMyState("paused"));
    $("btn-logout-line").addEventListener("click", () => setMyState("logged-out"));
    for (const b of document.querySelectorAll(".tabs button")) {
      b.addEventListener("click", () => selectTab(b.dataset.tab));
      b.addEventListener("keydown", tabKeys);
    }
    $("ticket-form").addEventListener("submit", submitTicket);
    $("tf-clear").addEventListener("click", clearTicketForm);
    $("tf-reason-q").addEventListener("input", () => debounce("reasons", searchReasons, 200));
    $("tf-house-q").addEventListener("input", () => debounce("houses", searchHouses, 250));
    // Keyboard: Enter takes the first match, arrows move through the matches.
    for (const [input, box] of [["tf-reason-q", "tf-reason-results"], ["tf-house-q", "tf-house-results"]]) {
      $(input).addEventListener("keydown", (e) => {
        const first = $(box).hidden ? null : $(box).querySelector("button");
        if (!first) return;
        if (e.key === "Enter" && !e.ctrlKey) { e.preventDefault(); first.click(); }
        else if (e.key === "ArrowDown") { e.preventDefault(); first.focus(); }
      });
      $(box).addEventListener("keydown", (e) => {
        const target = e.target.closest("button");
        if (!target) return;
        if (e.key === "ArrowDown" && target.nextElementSibling) { e.preventDefault(); target.nextElementSibling.focus(); }
        else if (e.key === "ArrowUp") { e.preventDefault(); (target.previousElementSibling || $(input)).focus(); }
      });
    }
    $("ticket-filters").addEventListener("submit", (e) => { e.preventDefault(); S.tickets.offset = 0; loadTickets(); });
    $("t-prev").addEventListener("click", () => { S.tickets.offset = Math.max(0, S.tickets.offset - S.tickets.limit); loadTickets(); });
    $("t-next").addEventListener("click", () => { S.tickets.offset += S.tickets.limit; loadTickets(); });
    $("t-all").addEventListener("change", (e) => {
      for (const t of S.tickets.items) { if (e.target.checked) S.tickets.selected.add(t.id); else S.tickets.selected.delete(t.id); }
      renderTickets();
    });
    $("bulk-apply").addEventListener("click", bulkAsk);
    $("journal-filters").addEventListener("submit", (e) => { e.preventDefault(); S.journal.offset = 0; loadJournal(); });
    $("j-prev").addEventListener("click", () => { S.journal.offset = Math.max(0, S.journal.offset - S.journal.limit); loadJournal(); });
    $("j-next").addEventListener("click", () => { S.journal.offset += S.journal.limit; loadJournal(); });
    setConn("offline");
    if (S.token && S.me) start(); else signOut("");
  });

  // For tests and debugging: what the console has seen.
  window.dispatchline = {
    state: S, api, el, show, setError, qs, when, tenantName,
    token: () => S.token, me: () => S.me, tenants: () => S.tenants,
  };
})();
