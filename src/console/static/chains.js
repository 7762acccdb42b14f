// dispatchline console: tickets' hand-off chains. The operator's card of a
// hand-off call (the ticket, who is being called, attempt n of N, and the result
// the operator records), the supervisors' panel of running chains (countdown to
// the next escalation, exhausted chains in red until someone acts), and the chain
// of a ticket opened from the list, live. Uses the console's helpers
// (window.dispatchline).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const D = () => window.dispatchline;
  const el = (...a) => D().el(...a);
  const str = (v) => (v === null || v === undefined ? "" : String(v));

  const STAGE = {
    "level-1": "Уровень 1", "level-2": "Уровень 2", "level-3": "Уровень 3",
    informer: "Информатор", responsible: "Ответственный", manager: "Руководитель", head: "Директор",
  };
  const PHASE = { "level-1": "Уровень 1", "level-2": "Уровень 2", "level-3": "Уровень 3", final: "Информатор + эскалация" };
  const OUTCOME = {
    answered: "ответил", busy: "занято", "no-answer": "не ответил", rejected: "сбросил",
    unreachable: "недоступен", failed: "сбой связи", cancelled: "отменён", unknown: "неизвестно (перезапуск)",
  };
  const DECISION = {
    accepted: "ПРИНЯЛ", declined: "отказался", taken: "опоздал: уже принята", "no-input": "не нажал ни одной кнопки",
    "not-reached": "не дозвонились",
  };
  const STATE = { running: "идёт", accepted: "принята", exhausted: "ИСЧЕРПАНА", cancelled: "остановлена" };
  const CATEGORY = { emergency: "АВАРИЙНАЯ", planned: "ПЛАНОВАЯ", paid: "ПЛАТНАЯ" };
  const REACH = { "operator-first": "через оператора", informer: "информатор" };

  const C = { board: [], ticket: null, ticketId: null };

  function badge(cat) {
    return el("span", { class: `cat cat-${cat}`, "data-category": cat }, CATEGORY[cat] || cat || "—");
  }
  function clock(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return h ? `${h}:${String(m).padStart(2, "0")}:${String(r).padStart(2, "0")}` : `${m}:${String(r).padStart(2, "0")}`;
  }
  /** "через 12:30" or "просрочен на 3:10" from now to `ts`. */
  function until(ts, late) {
    if (!ts) return "";
    const left = (new Date(ts) - Date.now()) / 1000;
    return left >= 0 ? `через ${clock(left)}` : `${late || "просрочен на"} ${clock(-left)}`;
  }
  /** The attempt in progress (the newest not ended), if any. */
  function current(chain) {
    const open = (chain.attempts || []).filter((a) => a.state !== "ended");
    return open.length ? open[open.length - 1] : null;
  }

  // ------------------------------------------------------------ the operator's card

  /** The hand-off part of a call card: the ticket and what to record. */
  function handoffBlock(card) {
    const h = card.payload.handoff;
    if (!h) return null;
    const t = h.ticket || {};
    const result = card.handoffResult;
    const answered = card.status === "answered" || card.status === "ended";
    const record = async (what) => {
      card.handoffPending = what;
      card.handoffError = null;
      D().state.calls.set(card.id, card);
      rerender();
      try {
        await D().api(`/chains/${h.chain}/attempts/${h.seq}/result`, { method: "POST", json: { result: what } });
        card.handoffResult = what;
      } catch (e) {
        card.handoffError = e.status === 409 ? `Заявка уже не ждёт ответа: ${e.message}` : e.message;
      } finally {
        card.handoffPending = null;
        rerender();
      }
    };
    const button = (what, text, cls) => el("button", {
      type: "button", class: cls || null, "data-result": what, disabled: !!card.handoffPending || !!result,
      onclick: () => record(what),
    }, card.handoffPending === what ? `${text}…` : text);
    return el("section", { class: `handoff handoff-${t.category}`, "data-testid": "handoff" },
      el("div", { class: "handoff-head" }, badge(t.category), el("strong", {}, ` Заявка № ${str(t.number)}`),
        h.transfer ? el("span", { class: "muted" }, " · исполнитель нажал 0 и ждёт диспетчера") : null),
      el("div", { class: "handoff-ticket" },
        el("div", {}, el("strong", {}, str(t.tenant_name)), ` · ${str(t.address)}${t.apartment ? `, кв. ${t.apartment}` : ""}`),
        el("div", {}, str(t.reason), t.description ? ` — «${t.description}»` : ""),
        el("div", { class: "deadline", "data-deadline": str(t.deadline) }, `Срок: ${D().when(t.deadline)} (${until(t.deadline, "просрочена на")})`)),
      el("div", { class: "handoff-who", "data-testid": "handoff-who" },
        `Звоним: ${str(h.person_name)} · ${str(h.phone)} · ${STAGE[h.stage] || str(h.stage)} · попытка ${str(h.attempt)} из ${str(h.tries)}`),
      el("div", { class: "say" }, answered
        ? "Прочитайте заявку исполнителю и отметьте его ответ:"
        : "Когда исполнитель ответит, прочитайте ему заявку."),
      el("div", { class: "card-actions handoff-actions" },
        button("accepted", "✔ Принял заявку", "primary"),
        button("declined", "Отказался"),
        button("not-reached", "Не дозвонились")),
      result ? el("div", { class: "ok", role: "status", "data-testid": "handoff-result" }, `Записано: ${DECISION[result] || result}`) : null,
      card.handoffError ? el("div", { class: "error", role: "alert" }, card.handoffError) : null);
  }

  function rerender() {
    // The console redraws its cards on every event; ask it to now.
    const ev = new CustomEvent("dispatchline:cards");
    document.dispatchEvent(ev);
  }

  // ------------------------------------------------------------ the board's panel

  async function loadBoard() {
    try {
      C.board = await D().api("/chains");
      renderBoard();
    } catch (_) { /* keep what is shown */ }
  }

  function renderBoard() {
    const body = $("b-chains");
    if (!body) return;
    const me = D().me();
    const rows = C.board.map((c) => {
      const a = current(c);
      const exhausted = c.state === "exhausted";
      const phase = PHASE[c.phase] || c.phase;
      const next = c.escalation_ends_at && c.phase === "final" ? c.escalation_ends_at : c.phase_ends_at;
      return el("tr", { class: exhausted ? "chain-exhausted" : "chain-running", "data-chain": c.id, "data-state": c.state },
        el("td", {}, badge(c.category), el("button", { type: "button", class: "link", onclick: () => openTicket(c.ticket_id) }, ` № ${str(c.ticket_number)}`)),
        el("td", {}, D().tenantName(c.tenant)),
        el("td", {}, exhausted ? el("strong", {}, STATE.exhausted) : phase),
        el("td", { "data-testid": "chain-now" }, a
          ? `${str(a.person_name)} · ${str(a.phone)} · ${STAGE[a.stage] || a.stage} · попытка ${a.try_no} из ${a.tries}`
          : exhausted ? "никто не принял" : "ждём следующей попытки"),
        el("td", { class: "num countdown", "data-until": str(next) }, exhausted ? "—" : next ? clock((new Date(next) - Date.now()) / 1000) : "—"),
        el("td", { class: "num" }, until(c.deadline_at)),
        el("td", {}, exhausted && me && me.role === "supervisor" ? [
          el("button", { type: "button", class: "primary", onclick: () => restart(c) }, "Перезапустить"),
          " ",
          el("button", { type: "button", onclick: () => acknowledge(c) }, "Принято, работаю"),
        ] : null));
    });
    body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 7, class: "muted" }, "Нет"))]));
    const count = $("b-chains-count");
    if (count) {
      const bad = C.board.filter((c) => c.state === "exhausted").length;
      count.textContent = C.board.length ? `${C.board.length}${bad ? ` · исчерпано: ${bad}` : ""}` : "";
      count.dataset.level = bad ? "bad" : "good";
    }
  }

  async function restart(c) {
    try { await D().api(`/tickets/${c.ticket_id}/chain/restart`, { method: "POST" }); } catch (e) { alert(e.message); }
    loadBoard();
  }
  async function acknowledge(c) {
    try { await D().api(`/chains/${c.id}/acknowledge`, { method: "POST" }); } catch (e) { alert(e.message); }
    loadBoard();
  }

  /** The countdowns move every second without a reload. */
  function tick() {
    for (const cell of document.querySelectorAll(".countdown[data-until]")) {
      const ts = cell.dataset.until;
      if (ts) cell.textContent = clock((new Date(ts) - Date.now()) / 1000);
    }
    for (const d of document.querySelectorAll(".deadline[data-deadline]")) {
      const ts = d.dataset.deadline;
      if (ts) d.textContent = `Срок: ${D().when(ts)} (${until(ts, "просрочена на")})`;
    }
  }
  setInterval(tick, 1000);

  // ------------------------------------------------------------ a ticket's chain

  async function openTicket(id) {
    C.ticketId = id;
    const box = $("ticket-detail");
    if (!box) return;
    if (D().state.tab !== "tickets") document.querySelector('.tabs button[data-tab="tickets"]').click();
    try {
      C.ticket = await D().api(`/tickets/${id}`);
      renderTicket();
    } catch (e) {
      box.replaceChildren(el("p", { class: "error" }, e.message));
      box.hidden = false;
    }
  }

  function renderTicket() {
    const box = $("ticket-detail");
    const t = C.ticket;
    if (!box || !t) return;
    const chain = t.handoff;
    const STATUS = { registered: "Зарегистрирована", accepted: "Принята", in_progress: "В работе", done: "Выполнена", closed: "Закрыта", cancelled: "Отменена" };
    const attempts = chain ? chain.attempts.map((a) => el("tr", { "data-seq": a.seq, class: a.decision === "accepted" ? "accepted" : null },
      el("td", { class: "num" }, D().when(a.placed_at)),
      el("td", {}, STAGE[a.stage] || a.stage),
      el("td", {}, str(a.person_name)),
      el("td", {}, str(a.phone)),
      el("td", { class: "num" }, `${a.try_no}/${a.tries}`),
      el("td", {}, REACH[a.reach] || a.reach, a.operator ? ` (${a.operator})` : ""),
      el("td", { "data-testid": "attempt-outcome" }, a.state !== "ended" ? (a.state === "ringing" ? "звонит…" : a.state === "answered" ? "разговор…"
        : a.reach === "operator-first" && !a.call_id ? "ждёт свободного оператора" : "набор…")
        : `${OUTCOME[a.outcome] || str(a.outcome)}${a.sip_status ? ` (${a.sip_status})` : ""}`),
      el("td", {}, a.decision ? DECISION[a.decision] || a.decision : ""),
      el("td", {}, a.recording_id ? el("button", { type: "button", class: "link", onclick: (e) => playRecording(e.target, a.recording_id) }, "▶ запись") : ""))) : [];
    const a = chain && current(chain);
    const next = chain && chain.state === "running" ? (chain.phase === "final" && chain.escalation_ends_at ? chain.escalation_ends_at : chain.phase_ends_at) : null;
    box.replaceChildren(
      el("header", { class: `detail-head row-${t.category}` },
        badge(t.category), el("strong", {}, ` № ${str(t.number)}`), ` · ${STATUS[t.status] || t.status} · ${str(t.address)}${t.apartment ? `, кв. ${t.apartment}` : ""} · ${str(t.reason)}`,
        el("button", { type: "button", class: "link close", onclick: () => { box.hidden = true; C.ticketId = null; } }, "Закрыть ✕")),
      el("div", { class: "detail-grid" },
        el("div", {}, el("div", { class: "muted" }, "Исполнитель"), str(t.executor_name) || "—"),
        el("div", {}, el("div", { class: "muted" }, "Срок"), el("span", { class: "deadline", "data-deadline": str(t.deadline_at) }, D().when(t.deadline_at))),
        chain ? el("div", { "data-testid": "chain-state" }, el("div", { class: "muted" }, "Передача по телефону"),
          `${STATE[chain.state] || chain.state} · ${PHASE[chain.phase] || chain.phase}`,
          next ? [" · следующий этап ", el("span", { class: "countdown", "data-until": next }, clock((new Date(next) - Date.now()) / 1000))] : null,
          chain.accepted_by_name ? ` · принял ${chain.accepted_by_name}` : "") : el("div", { class: "muted" }, "Передача по телефону не запускалась"),
        a ? el("div", { "data-testid": "chain-now" }, el("div", { class: "muted" }, "Сейчас звоним"), `${str(a.person_name)} · ${str(a.phone)} · попытка ${a.try_no} из ${a.tries}`) : null),
      chain ? el("table", { class: "grid compact", "data-testid": "chain-attempts" },
        el("thead", {}, el("tr", {}, ["Время", "Этап", "Кому", "Номер", "Попытка", "Как", "Итог", "Ответ", "Запись"].map((h) => el("th", {}, h)))),
        el("tbody", {}, attempts)) : "",
      el("h4", {}, "История"),
      el("ol", { class: "history" }, (t.history || []).map((h) => el("li", {}, `${D().when(h.at)} · ${str(h.actor)} · `,
        h.from !== h.to ? `${STATUS[h.from] || h.from || "—"} → ${STATUS[h.to] || h.to}${h.note ? ` · ${h.note}` : ""}` : str(h.note)))));
    // The rest of the card (ticket.js): status times, calls, comments, ratings.
    if (window.dispatchlineTicket) window.dispatchlineTicket.extend(box, t, () => openTicket(t.id));
    box.hidden = false;
  }

  async function playRecording(button, id) {
    button.disabled = true;
    try {
      const r = await fetch(`/api/v1/recordings/${id}`, { headers: { Authorization: `Bearer ${D().token()}` } });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const audio = el("audio", { controls: true, src: URL.createObjectURL(await r.blob()), "data-testid": "recording" });
      button.replaceWith(audio);
      audio.play().catch(() => {});
    } catch (e) {
      button.disabled = false;
      button.textContent = `▶ повторить (${e.message})`;
    }
  }

  // ------------------------------------------------------------ events

  const pending = {};
  function soon(key, fn, ms) {
    if (pending[key]) return;
    pending[key] = setTimeout(() => { pending[key] = null; fn(); }, ms);
  }

  /** Every event the console receives. */
  function onEvent(ev) {
    const p = ev.payload || {};
    const chainEvent = /^chain\./.test(ev.type) || (/^dial\./.test(ev.type) && p.chain);
    if (!chainEvent && ev.type !== "ticket.changed") return;
    if (D().state.tab === "board") soon("chains-board", loadBoard, 500);
    if (C.ticketId && Number(p.ticket) === Number(C.ticketId)) soon("chains-ticket", () => openTicket(C.ticketId), 300);
    if (ev.type === "chain.exhausted" || (ev.type === "chain.alarm" && D().me() && D().me().role === "supervisor")) {
      const text = ev.type === "chain.exhausted"
        ? `Заявка № ${str(p.number)}: никто не принял — нужны действия старшего смены`
        : p.reason === "deadline-at-risk" ? `Заявка № ${str(p.number)}: срок близко, никто не принял`
          : `Заявка № ${str(p.number)}: нет исполнителей на смене, сразу эскалация`;
      document.dispatchEvent(new CustomEvent("dispatchline:alarm", { detail: text }));
    }
  }

  window.dispatchlineChains = { handoffBlock, onEvent, loadBoard, openTicket };
})();
