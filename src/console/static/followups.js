// dispatchline console: follow-up calls. The operator's card of a call the engine
// makes after a ticket was handed over (why it calls, whom, what to ask; the
// executor's answer to a status check; the supplier's own reference number for a
// hand-over to a resource supplier), and the supervisors' panel of outage
// broadcasts with their progress, live from `outage.broadcast` events. Uses the
// console's helpers (window.dispatchline).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const D = () => window.dispatchline;
  const el = (...a) => D().el(...a);
  const str = (v) => (v === null || v === undefined ? "" : String(v));

  const PURPOSE = {
    "status-check": "Уточнение статуса заявки у исполнителя",
    survey: "Опрос жителя о качестве работ",
    "staff-callback": "Перезвон сотруднику УК",
    "supplier-handoff": "Передача заявки в РСО",
    "supplier-query": "Запрос в РСО о ходе работ",
    broadcast: "Оповещение жителей об отключении",
  };
  const ANSWER = { done: "Выполнена", "in-progress": "В работе", cannot: "Выполнить невозможно" };
  const SUPPLIER_STATUS = { pending: "ещё не принята", handed_over: "принята РСО", done: "выполнена", cancelled: "отозвана" };
  const CATEGORY = { emergency: "АВАРИЙНАЯ", planned: "ПЛАНОВАЯ", paid: "ПЛАТНАЯ" };

  const F = { broadcasts: new Map() };

  function badge(cat) {
    return el("span", { class: `cat cat-${cat}`, "data-category": cat }, CATEGORY[cat] || cat || "—");
  }

  function rerender() {
    document.dispatchEvent(new CustomEvent("dispatchline:cards"));
  }

  /** A local `datetime-local` value for an ISO time (empty when none). */
  function localInput(ts) {
    if (!ts) return "";
    const d = new Date(ts);
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }

  // ------------------------------------------------------------ the operator's card

  /** Runs `fn` for the card, showing it pending, then done or the error. */
  async function act(card, key, fn) {
    card.followUpPending = key;
    card.followUpError = null;
    rerender();
    try {
      await fn();
      card.followUpDone = key;
    } catch (e) {
      card.followUpError = e.status === 409 || e.status === 422 ? `Не записано: ${e.message}` : e.message;
    } finally {
      card.followUpPending = null;
      rerender();
    }
  }

  function ticketLines(t) {
    if (!t) return null;
    return el("div", { class: "handoff-ticket" },
      el("div", {}, badge(t.category), el("strong", {}, ` Заявка № ${str(t.number)}`)),
      el("div", {}, el("strong", {}, str(t.tenant_name)), ` · ${str(t.address)}${t.apartment ? `, кв. ${t.apartment}` : ""}`),
      el("div", {}, str(t.reason), t.description ? ` — «${t.description}»` : ""),
      t.deadline ? el("div", { class: "deadline", "data-deadline": str(t.deadline) }, `Срок: ${D().when(t.deadline)}`) : null);
  }

  /** The status check's answer: what the executor said, recorded on the ticket. */
  function statusButtons(card, f) {
    const answered = card.status === "answered" || card.status === "ended";
    if (!answered) return el("div", { class: "say" }, "Когда исполнитель ответит, спросите, как идёт работа.");
    const record = (what) => act(card, what, () =>
      D().api(`/dial-jobs/${f.job}/answer`, { method: "POST", json: { answer: what } }));
    const button = (what) => el("button", {
      type: "button", class: card.followUpDone === what ? "primary chosen" : null, "data-answer": what,
      "aria-pressed": card.followUpDone === what ? "true" : null,
      disabled: !!card.followUpPending || !!card.followUpDone, onclick: () => record(what),
    }, card.followUpPending === what ? `${ANSWER[what]}…` : ANSWER[what]);
    return el("div", { class: "card-actions", "data-testid": "status-answers" },
      button("done"), button("in-progress"), button("cannot"));
  }

  /** The supplier's reference number and when to ask them again. */
  function supplierForm(card, f) {
    const s = f.supplier;
    if (!s) return null;
    const form = el("form", { class: "supplier-form", "data-testid": "supplier-form" },
      el("label", {}, "Номер заявки в РСО ",
        el("input", { name: "reference", value: str(s.reference), maxlength: "64", required: "", autocomplete: "off" })),
      el("label", {}, "Спросить снова ",
        el("input", { name: "recheck", type: "datetime-local", value: localInput(s.recheck_at) })),
      el("button", { type: "submit", class: "primary", disabled: !!card.followUpPending }, "Записать"));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const reference = form.elements.reference.value.trim();
      const recheck = form.elements.recheck.value;
      // A reference means the supplier took it (the store moves it to handed_over).
      const body = { supplier_number: reference };
      if (recheck) body.recheck_at = new Date(recheck).toISOString();
      act(card, "supplier", () => D().api(`/supplier-tickets/${s.id}`, { method: "PATCH", json: body }));
    });
    return el("div", {},
      el("div", {}, `РСО: ${str(s.name)} · ${SUPPLIER_STATUS[s.status] || str(s.status)}${s.reference ? ` · № ${s.reference}` : ""}`),
      form);
  }

  /** The follow-up part of a call card, or null when the call is not one. */
  function followUpBlock(card) {
    const f = card.payload.follow_up;
    if (!f) return null;
    const t = f.ticket;
    return el("section", { class: `handoff follow-up${t ? ` handoff-${t.category}` : ""}`, "data-testid": "follow-up", "data-purpose": str(f.purpose) },
      el("div", { class: "handoff-head" }, el("strong", {}, PURPOSE[f.purpose] || str(f.purpose))),
      el("div", { "data-testid": "follow-up-why" }, str(f.why)),
      el("div", { class: "handoff-who" }, `Звоним: ${str(f.party)} · ${str(card.payload.to)} · попытка ${str(f.attempt)} из ${str(f.tries)}`),
      ticketLines(t),
      (f.ask || []).length ? el("ol", { class: "ask", "data-testid": "follow-up-ask" }, ...(f.ask || []).map((line) => el("li", {}, str(line)))) : null,
      f.purpose === "status-check" ? statusButtons(card, f) : null,
      f.purpose === "supplier-handoff" || f.purpose === "supplier-query" ? supplierForm(card, f) : null,
      card.followUpDone ? el("div", { class: "ok", role: "status", "data-testid": "follow-up-result" },
        `Записано: ${ANSWER[card.followUpDone] || "номер РСО сохранён"}`) : null,
      card.followUpError ? el("div", { class: "error", role: "alert" }, card.followUpError) : null);
  }

  // ------------------------------------------------------------ the board's panel

  async function loadBoard() {
    try {
      const list = await D().api("/broadcasts");
      F.broadcasts = new Map(list.map((b) => [b.outage, b]));
      renderBoard();
    } catch (_) { /* keep what is shown */ }
  }

  function bar(b) {
    const total = Math.max(1, b.total);
    // Widths through the CSSOM: the console's CSP forbids inline style attributes.
    const part = (n, cls, label) => {
      if (n <= 0) return null;
      const seg = el("span", { class: `seg ${cls}`, title: `${label}: ${n}` });
      seg.style.width = `${(100 * n) / total}%`;
      return seg;
    };
    return el("div", { class: "progress", role: "img", "aria-label": `${b.called} из ${b.total} обзвонено` },
      part(b.answered, "seg-answered", "ответили"),
      part(b.busy, "seg-busy", "занято"),
      part(b.no_answer, "seg-no-answer", "не ответили"),
      part(b.failed, "seg-failed", "не дозвонились"));
  }

  function renderBoard() {
    const body = $("b-broadcasts");
    if (!body) return;
    const list = [...F.broadcasts.values()].sort((a, b) => b.outage - a.outage);
    const count = $("b-broadcasts-count");
    if (count) count.textContent = list.length ? String(list.length) : "";
    body.replaceChildren(...(list.length ? list.map((b) => el("tr", {
      "data-outage": str(b.outage), "data-testid": "broadcast", class: b.waiting === 0 ? "finished" : "running",
    },
      el("td", {}, D().tenantName(b.tenant) || str(b.tenant)),
      el("td", {}, str(b.text)),
      el("td", { class: "wide-cell" }, bar(b)),
      el("td", { "data-testid": "broadcast-figures" },
        `${b.called} из ${b.total} · ответили ${b.answered} · занято ${b.busy} · нет ответа ${b.no_answer} · не дозвонились ${b.failed}`),
      el("td", {}, b.waiting === 0 ? "завершено" : `в очереди ${b.waiting}`)))
      : [el("tr", {}, el("td", { colspan: "5", class: "muted" }, "Оповещений за сутки не было"))]));
  }

  function onEvent(ev) {
    if (ev.type !== "outage.broadcast") return;
    const p = ev.payload || {};
    const known = F.broadcasts.get(p.outage);
    if (known) {
      Object.assign(known, p);
      renderBoard();
    } else {
      loadBoard();
    }
  }

  window.dispatchlineFollowUps = { followUpBlock, onEvent, loadBoard };
})();
