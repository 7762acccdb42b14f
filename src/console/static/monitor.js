// dispatchline console: the monitor of open tickets (supervisors and the
// companies' staff). Open, unassigned, due soon and overdue tickets with filters,
// per executor and per category and work type. Live: it reloads on
// `ticket.changed` events, and a ticket turns red the second its deadline passes,
// without a reload.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const D = () => window.dispatchline;
  const el = (...a) => D().el(...a);
  const str = (v) => (v === null || v === undefined ? "" : String(v));
  const CATEGORY = { emergency: "Аварийные", planned: "Плановые", paid: "Платные" };
  const STATUS = { registered: "Зарегистрирована", accepted: "Принята", in_progress: "В работе" };
  const ROLES = ["supervisor", "tenant-admin", "tenant-viewer"];
  const M = { data: null, loading: false, again: false, built: false };

  const visible = () => D() && D().state.tab === "monitor";
  const span = (s) => (window.dispatchlineTicket ? window.dispatchlineTicket.span(s) : `${Math.round(s)} с`);

  function build() {
    if (M.built) return;
    M.built = true;
    const tenants = el("select", { id: "m-tenant" }, el("option", { value: "" }, "Все"),
      ...D().tenants().map((t) => el("option", { value: t.code }, t.name)));
    const form = el("form", { class: "filters", id: "monitor-filters" },
      el("label", {}, "УК ", tenants),
      el("label", {}, "Категория ", el("select", { id: "m-category" }, el("option", { value: "" }, "Все"),
        ...Object.entries(CATEGORY).map(([k, v]) => el("option", { value: k }, v)))),
      el("label", {}, "Вид работ ", el("input", { id: "m-work-type", size: 10, placeholder: "код" })),
      el("label", {}, "С ", el("input", { type: "date", id: "m-from" })),
      el("label", {}, "По ", el("input", { type: "date", id: "m-to" })),
      el("label", {}, "«Скоро срок», мин ", el("input", { type: "number", id: "m-soon", min: 1, max: 1440, value: 60, class: "narrow" })),
      el("button", { type: "submit" }, "Показать"));
    form.addEventListener("submit", (e) => { e.preventDefault(); load(); });
    $("view-monitor").replaceChildren(el("h2", {}, "Монитор заявок ", el("span", { id: "m-updated", class: "muted" })),
      form, el("div", { id: "m-tiles", class: "tiles" }), el("div", { class: "monitor-grid" },
        el("section", {}, el("h3", {}, "Заявки"), el("table", { class: "grid compact", "data-testid": "monitor-tickets" },
          el("thead", {}, el("tr", {}, ["№", "Категория", "Статус", "Адрес", "Причина", "Исполнитель", "Срок"].map((h) => el("th", {}, h)))),
          el("tbody", { id: "m-tickets" }))),
        el("section", {}, el("h3", {}, "По исполнителям"), el("table", { class: "grid compact", "data-testid": "monitor-executors" },
          el("thead", {}, el("tr", {}, ["Исполнитель", "Открыто", "Не принято", "Просрочено"].map((h) => el("th", {}, h)))),
          el("tbody", { id: "m-executors" })),
        el("h3", {}, "По категориям и видам работ"), el("table", { class: "grid compact" },
          el("thead", {}, el("tr", {}, ["Группа", "Открыто", "Просрочено"].map((h) => el("th", {}, h)))),
          el("tbody", { id: "m-groups" })))));
  }

  function day(id, plus) {
    const v = $(id).value;
    if (!v) return "";
    return new Date(new Date(`${v}T00:00:00`).getTime() + (plus ? 86400000 : 0)).toISOString();
  }

  async function load() {
    if (M.loading) { M.again = true; return; }
    M.loading = true;
    try {
      const q = D().qs({
        tenant: $("m-tenant").value, category: $("m-category").value, work_type: $("m-work-type").value.trim(),
        from: day("m-from"), to: day("m-to", true), soon_minutes: $("m-soon").value,
      });
      M.data = await D().api(`/monitor${q}`);
      render();
    } catch (e) {
      $("m-updated").textContent = `не обновлено: ${e.message}`;
    } finally {
      M.loading = false;
      if (M.again) { M.again = false; load(); }
    }
  }

  function tile(title, n, cls, testid) {
    return el("div", { class: `tile ${cls || ""}`, "data-testid": testid }, el("div", { class: "muted" }, title), el("strong", {}, String(n)));
  }

  function row(t, soonMinutes) {
    const tr = el("tr", { class: `row-${t.category}`, "data-ticket": t.id, "data-deadline": t.deadline_at, "data-soon": soonMinutes },
      el("td", { class: "num" }, el("button", { type: "button", class: "link", onclick: () => window.dispatchlineChains && window.dispatchlineChains.openTicket(t.id) }, t.number)),
      el("td", {}, el("span", { class: `cat cat-${t.category}` }, CATEGORY[t.category] || t.category)),
      el("td", {}, STATUS[t.status] || t.status),
      el("td", {}, `${str(t.address)}${t.apartment ? `, кв. ${t.apartment}` : ""}`),
      el("td", {}, str(t.reason)),
      el("td", {}, str(t.executor_name) || el("strong", {}, "не назначен")),
      el("td", { class: "num deadline-cell" }, ""));
    mark(tr);
    return tr;
  }

  /** Colours a row by its deadline now; true if it just became overdue. */
  function mark(tr) {
    const left = (new Date(tr.dataset.deadline) - Date.now()) / 1000;
    const soon = Number(tr.dataset.soon || 60) * 60;
    const was = tr.classList.contains("overdue");
    tr.classList.toggle("overdue", left < 0);
    tr.classList.toggle("due-soon", left >= 0 && left < soon);
    tr.dataset.state = left < 0 ? "overdue" : left < soon ? "due-soon" : "open";
    const cell = tr.querySelector(".deadline-cell");
    if (cell) cell.textContent = left < 0 ? `просрочена на ${span(-left)}` : `осталось ${span(left)}`;
    return left < 0 && !was;
  }

  function render() {
    const m = M.data;
    if (!m) return;
    $("m-updated").textContent = `· ${D().when(m.now)}`;
    $("m-tiles").replaceChildren(
      tile("Открыто", m.open, "", "m-open"), tile("Без исполнителя", m.unassigned, m.unassigned ? "warn" : "", "m-unassigned"),
      tile(`Срок в ближайшие ${m.soon_minutes} мин`, m.due_soon, m.due_soon ? "warn" : "", "m-due-soon"),
      tile("Просрочено", m.overdue, m.overdue ? "overdue-count" : "", "m-overdue"));
    const tickets = [...m.overdue_tickets, ...m.due_soon_tickets, ...m.open_tickets];
    $("m-tickets").replaceChildren(...(tickets.length ? tickets.map((t) => row(t, m.soon_minutes))
      : [el("tr", {}, el("td", { colspan: 7, class: "muted" }, "Открытых заявок нет"))]));
    $("m-executors").replaceChildren(...m.by_executor.map((e) => el("tr", { class: e.overdue ? "overdue" : null },
      el("td", {}, e.name), el("td", { class: "num" }, e.open), el("td", { class: "num" }, e.not_accepted), el("td", { class: "num" }, e.overdue))));
    $("m-groups").replaceChildren(
      ...m.by_category.map((g) => el("tr", {}, el("td", {}, CATEGORY[g.key] || g.key), el("td", { class: "num" }, g.open), el("td", { class: "num" }, g.overdue))),
      ...m.by_work_type.map((g) => el("tr", {}, el("td", {}, `вид работ: ${g.key}`), el("td", { class: "num" }, g.open), el("td", { class: "num" }, g.overdue))));
  }

  // Every second: rows follow their deadlines; one that just became overdue also
  // brings fresh counts.
  setInterval(() => {
    if (!D() || !D().me()) return;
    const tab = $("tab-monitor");
    if (tab) tab.hidden = !ROLES.includes(D().me().role);
    if (!visible()) return;
    if (!M.data && !M.loading) { build(); load(); return; }
    let flipped = false;
    for (const tr of document.querySelectorAll("#m-tickets tr[data-deadline]")) flipped = mark(tr) || flipped;
    if (flipped) load();
  }, 1000);

  let timer = null;
  document.addEventListener("dispatchline:event", (e) => {
    if (e.detail.type !== "ticket.changed" || !visible() || timer) return;
    timer = setTimeout(() => { timer = null; load(); }, 500);
  });
  document.addEventListener("DOMContentLoaded", () => {
    const tab = $("tab-monitor");
    if (tab) tab.addEventListener("click", () => { build(); load(); });
  });

  window.dispatchlineMonitor = { open: () => { build(); load(); } };
})();
