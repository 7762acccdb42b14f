// dispatchline console: the ticket's card. Below the hand-off chain (chains.js) it
// shows the deadline's countdown, the time the ticket spent in each status, every
// call about it with its recording playable in place and the company's rating of
// the call, comments (internal ones marked), ratings of the work, supplier
// tickets, and the one status change with the version check. Keys: Escape closes
// the card, Alt+↓ / Alt+↑ open the next / previous ticket of the list.
"use strict";

(() => {
  const D = () => window.dispatchline;
  const el = (...a) => D().el(...a);
  const str = (v) => (v === null || v === undefined ? "" : String(v));

  const STATUS = {
    registered: "Зарегистрирована", accepted: "Принята", in_progress: "В работе",
    done: "Выполнена", closed: "Закрыта", cancelled: "Отменена",
  };
  const NEXT = {
    registered: ["accepted", "in_progress", "done", "cancelled"],
    accepted: ["in_progress", "done", "cancelled"],
    in_progress: ["done", "cancelled"],
    done: ["closed", "in_progress"],
  };
  const KIND = {
    inbound: "звонок жителя", outbound: "исходящий", handoff: "передача исполнителю",
    "status-check": "уточнение статуса", survey: "опрос жителя", callback: "перезвон жителю",
    "staff-callback": "перезвон сотруднику", "supplier-handoff": "передача в РСО", "supplier-query": "запрос в РСО",
  };
  const DISPOSITION = {
    answered: "отвечен", abandoned: "брошен", "callback-scheduled": "перезвон назначен", rejected: "отклонён",
    failed: "сбой", busy: "занято", "no-answer": "нет ответа", unreachable: "недоступен", cancelled: "отменён",
  };
  const SUPPLIER = { pending: "ждёт передачи", handed_over: "передана", done: "выполнена", cancelled: "отменена" };
  const METRIC = { csi: "Удовлетворённость (CSI)", ces: "Усилия жителя (CES)", nps: "NPS" };

  /** "1 ч 05 мин", "7 мин", "45 с". */
  function span(seconds) {
    const s = Math.max(0, Math.round(seconds));
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d) return `${d} д ${h} ч`;
    if (h) return `${h} ч ${String(m).padStart(2, "0")} мин`;
    if (m) return `${m} мин`;
    return `${s} с`;
  }

  /** The deadline line: "осталось 1 ч 05 мин" or "просрочена на 12 мин", red when late. */
  function deadlineText(node) {
    const ts = node.dataset.deadlineAt;
    if (!ts) return;
    const left = (new Date(ts) - Date.now()) / 1000;
    node.textContent = left >= 0 ? `осталось ${span(left)}` : `просрочена на ${span(-left)}`;
    node.classList.toggle("overdue", left < 0);
  }
  setInterval(() => document.querySelectorAll("[data-deadline-at]").forEach(deadlineText), 1000);

  const role = () => (D().me() || {}).role;
  const canWrite = () => ["operator", "supervisor", "tenant-admin"].includes(role());
  const canReview = () => ["supervisor", "tenant-admin", "tenant-viewer"].includes(role());

  function audio(id) {
    return el("audio", {
      controls: true, preload: "none", "data-testid": "call-recording",
      src: `/api/v1/recordings/${id}?token=${encodeURIComponent(D().token())}`,
    });
  }

  function reviewForm(call, reviews, reload) {
    const mine = reviews.find((r) => r.call_id === call.id && r.reviewer === (D().me() || {}).extension);
    const shown = reviews.filter((r) => r.call_id === call.id)
      .map((r) => el("div", { class: "review", "data-testid": "call-review" }, `★${r.score} · ${str(r.reviewer)}${r.comment ? ` · «${r.comment}»` : ""}`));
    if (!canReview()) return shown;
    const score = el("select", { "aria-label": "Оценка звонка", "data-testid": "review-score" },
      ...[5, 4, 3, 2, 1].map((n) => el("option", { value: n, selected: mine && mine.score === n }, `${n}`)));
    const comment = el("input", { type: "text", maxlength: 2000, placeholder: "комментарий", "aria-label": "Комментарий к оценке", value: mine ? mine.comment : "", "data-testid": "review-comment" });
    const error = el("span", { class: "error", role: "alert" });
    const send = async () => {
      try {
        await D().api(`/calls/${encodeURIComponent(call.id)}/review`, { method: "POST", json: { score: Number(score.value), comment: comment.value } });
        reload();
      } catch (e) { error.textContent = e.message; }
    };
    return [...shown, el("div", { class: "review-form" }, "Оценка линии: ", score, " ", comment, " ",
      el("button", { type: "button", "data-testid": "review-send", onclick: send }, mine ? "Изменить" : "Оценить"), " ", error)];
  }

  function callsBlock(t, reload) {
    const reviews = t.reviews || [];
    const rows = (t.calls || []).map((c) => el("tr", { "data-call": c.id, "data-kind": c.kind },
      el("td", { class: "num" }, D().when(c.offered_at)),
      el("td", {}, KIND[c.kind] || c.kind),
      el("td", {}, `${str(c.from_number)} → ${str(c.to_number)}`),
      el("td", {}, str(c.operator_extension) || "—"),
      el("td", {}, `${DISPOSITION[c.disposition] || str(c.disposition) || "—"}${c.talk_seconds ? ` · ${span(c.talk_seconds)}` : ""}`),
      el("td", {}, c.recording_id ? audio(c.recording_id) : "—"),
      el("td", {}, reviewForm(c, reviews, reload))));
    return [el("h4", {}, "Звонки по заявке"), rows.length
      ? el("table", { class: "grid compact", "data-testid": "ticket-calls" },
        el("thead", {}, el("tr", {}, ["Время", "Что", "Номера", "Оператор", "Итог", "Запись", "Оценка"].map((h) => el("th", {}, h)))),
        el("tbody", {}, rows))
      : el("p", { class: "muted" }, "Звонков нет")];
  }

  function statusBlock(t) {
    const items = (t.status_times || []).map((s) => el("li", { "data-status": s.status, class: s.current ? "current" : null },
      el("strong", {}, STATUS[s.status] || s.status), `: ${span(s.seconds)}${s.current ? " (сейчас)" : ""}`));
    return [el("h4", {}, "Время в статусах"), el("ul", { class: "status-times", "data-testid": "status-times" }, items)];
  }

  function commentsBlock(t, reload) {
    const list = el("ul", { class: "comments", "data-testid": "comments" }, (t.comments || []).map((c) =>
      el("li", { class: c.internal ? "internal" : null }, `${D().when(c.at)} · ${str(c.author)}${c.internal ? " · внутренний" : ""}: `, c.text)));
    if (!canWrite()) return [el("h4", {}, "Комментарии"), list];
    const text = el("textarea", { rows: 2, maxlength: 4000, "aria-label": "Комментарий", "data-testid": "comment-text" });
    const internal = el("input", { type: "checkbox", "data-testid": "comment-internal" });
    const error = el("span", { class: "error", role: "alert" });
    const send = async () => {
      try {
        await D().api(`/tickets/${t.id}/comments`, { method: "POST", json: { text: text.value, internal: internal.checked } });
        reload();
      } catch (e) { error.textContent = e.message; }
    };
    return [el("h4", {}, "Комментарии"), list, el("div", { class: "comment-form" }, text,
      el("label", { class: "inline" }, internal, " внутренний (жителю не сообщается)"),
      el("button", { type: "button", onclick: send }, "Добавить"), " ", error)];
  }

  function changeBlock(t, reload) {
    const next = NEXT[t.status] || [];
    if (!canWrite() || !next.length) return [];
    const to = el("select", { "aria-label": "Новый статус", "data-testid": "status-to" }, next.map((s) => el("option", { value: s }, STATUS[s])));
    const note = el("input", { type: "text", maxlength: 1000, placeholder: "примечание", "aria-label": "Примечание" });
    const error = el("span", { class: "error", role: "alert", "data-testid": "status-error" });
    const send = async () => {
      try {
        await D().api(`/tickets/${t.id}/status`, { method: "POST", json: { status: to.value, note: note.value, version: t.version } });
        reload();
      } catch (e) {
        error.textContent = e.status === 409 ? "Заявку уже изменили: карточка обновлена, проверьте и повторите." : e.message;
        if (e.status === 409) setTimeout(reload, 1500);
      }
    };
    return [el("div", { class: "status-change" }, "Статус → ", to, " ", note, " ",
      el("button", { type: "button", class: "primary", "data-testid": "status-apply", onclick: send }, "Изменить"), " ", error)];
  }

  /** Opens an attached file (fetched with the token, shown from a blob). */
  async function openFile(t, a, node) {
    try {
      const r = await fetch(`/api/v1/tickets/${t.id}/attachments/${a.id}`, { headers: { Authorization: `Bearer ${D().token()}` } });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const url = URL.createObjectURL(await r.blob());
      node.replaceWith(a.content_type.startsWith("image/")
        ? el("img", { src: url, alt: a.file_name, class: "attachment-photo" })
        : el("a", { href: url, target: "_blank", rel: "noopener" }, a.file_name));
    } catch (e) { node.textContent = `${a.file_name}: ${e.message}`; }
  }

  function filesBlock(t, reload) {
    const items = (t.attachments || []).map((a) => {
      const li = el("li", {}, `${a.file_name} · ${Math.max(1, Math.round(a.bytes / 1024))} КБ · ${str(a.uploaded_by)} `);
      const button = el("button", { type: "button", class: "link" }, "открыть");
      button.addEventListener("click", () => openFile(t, a, button));
      li.append(button);
      return li;
    });
    const list = items.length ? el("ul", { "data-testid": "attachments" }, items) : el("p", { class: "muted" }, "Файлов нет");
    if (!canWrite()) return [el("h4", {}, "Файлы"), list];
    const input = el("input", { type: "file", accept: "image/jpeg,image/png,image/webp,application/pdf", "aria-label": "Прикрепить файл" });
    const error = el("span", { class: "error", role: "alert" });
    input.addEventListener("change", async () => {
      const f = input.files && input.files[0];
      if (!f) return;
      try {
        const r = await fetch(`/api/v1/tickets/${t.id}/attachments${D().qs({ name: f.name })}`, {
          method: "POST", headers: { Authorization: `Bearer ${D().token()}`, "Content-Type": f.type || "application/octet-stream" }, body: f,
        });
        if (!r.ok) { const b = await r.json().catch(() => ({})); throw new Error(b.error || `HTTP ${r.status}`); }
        reload();
      } catch (e) { error.textContent = e.message; }
    });
    return [el("h4", {}, "Файлы"), list, el("label", { class: "inline" }, "Прикрепить фото или акт (до 10 МБ): ", input), " ", error];
  }

  /** Appends the card's sections to the ticket detail `box` chains.js drew for `t`. */
  function extend(box, t, reload) {
    const overdue = t.deadline_left_s !== null && t.deadline_left_s !== undefined && t.deadline_left_s < 0;
    const ratings = (t.ratings || []).map((r) => el("li", {}, `${METRIC[r.metric] || r.metric}: ${r.score}${r.executor_name ? ` · исполнитель ${r.executor_name}` : ""} · ${D().when(r.answered_at)}`));
    const suppliers = (t.supplier_tickets || []).map((s) => el("li", {}, `${str(s.supplier)}${s.supplier_number ? ` № ${s.supplier_number}` : ""} · ${SUPPLIER[s.status] || s.status}${s.recheck_at ? ` · перепроверка ${D().when(s.recheck_at)}` : ""}`));
    box.dataset.ticketId = t.id;
    box.append(el("section", { class: "ticket-card", "data-testid": "ticket-card", "data-version": t.version },
      el("div", { class: "detail-grid" },
        el("div", {}, el("div", { class: "muted" }, "До срока"), t.status && NEXT[t.status] && ["registered", "accepted", "in_progress"].includes(t.status)
          ? el("span", { class: `deadline-left${overdue ? " overdue" : ""}`, "data-testid": "deadline-left", "data-deadline-at": t.deadline_at }, "")
          : el("span", { class: "muted" }, "закрыта")),
        el("div", {}, el("div", { class: "muted" }, "Ответственный"), str(t.responsible_name) || "—"),
        el("div", {}, el("div", { class: "muted" }, "Описание"), str(t.description) || "—")),
      ...changeBlock(t, reload),
      ...statusBlock(t),
      ...callsBlock(t, reload),
      ...commentsBlock(t, reload),
      ...filesBlock(t, reload),
      el("h4", {}, "Оценки работы"), ratings.length ? el("ul", { "data-testid": "ratings" }, ratings) : el("p", { class: "muted" }, "Оценок нет"),
      suppliers.length ? [el("h4", {}, "Заявки в РСО"), el("ul", {}, suppliers)] : null));
    box.querySelectorAll("[data-deadline-at]").forEach(deadlineText);
  }

  document.addEventListener("keydown", (e) => {
    const box = document.getElementById("ticket-detail");
    if (!box || box.hidden || !D() || !D().token()) return;
    if (e.key === "Escape") { box.hidden = true; return; }
    if (!e.altKey || (e.key !== "ArrowDown" && e.key !== "ArrowUp")) return;
    const items = D().state.tickets.items || [];
    const current = Number(box.dataset.ticketId);
    const i = items.findIndex((t) => t.id === current);
    const j = e.key === "ArrowDown" ? i + 1 : i - 1;
    if (i >= 0 && j >= 0 && j < items.length && window.dispatchlineChains) {
      e.preventDefault();
      window.dispatchlineChains.openTicket(items[j].id);
    }
  });

  window.dispatchlineTicket = { extend, span };
})();
