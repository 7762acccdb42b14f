// dispatchline console: summary analytics and the journal's exports (supervisors
// and the companies' staff). A date range cut into days, weeks or months: tickets
// by category and work type (bars and a table), time to accept and to complete,
// calls against Rules №416 per company and city, CSI/CES and the executors'
// ratings; a figure opens the tickets it was made of. The export buttons download
// the ticket journal (CSV, XLSX, PDF) and the call journal (CSV, XLSX).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const D = () => window.dispatchline;
  const el = (...a) => D().el(...a);
  const str = (v) => (v === null || v === undefined ? "" : String(v));
  const CATEGORY = { emergency: "Аварийные", planned: "Плановые", paid: "Платные" };
  const ROLES = ["supervisor", "tenant-admin", "tenant-viewer"];
  const A = { built: false, data: null, range: null };
  const span = (s) => (s === null || s === undefined ? "—" : window.dispatchlineTicket ? window.dispatchlineTicket.span(s) : `${s} с`);
  const pct = (n, of) => (of ? `${Math.round((100 * n) / of)}%` : "—");

  function monthStart(d) { return new Date(d.getFullYear(), d.getMonth(), 1); }
  function iso(d) { return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`; }

  function build() {
    if (A.built) return;
    A.built = true;
    const now = new Date();
    const form = el("form", { class: "filters", id: "a-form" },
      el("label", {}, "УК ", el("select", { id: "a-tenant" }, el("option", { value: "" }, "Все"),
        ...D().tenants().map((t) => el("option", { value: t.code }, t.name)))),
      el("label", {}, "С ", el("input", { type: "date", id: "a-from", value: iso(monthStart(now)) })),
      el("label", {}, "По ", el("input", { type: "date", id: "a-to", value: iso(now) })),
      el("label", {}, "Шаг ", el("select", { id: "a-bucket" },
        el("option", { value: "day" }, "день"), el("option", { value: "week" }, "неделя"), el("option", { value: "month" }, "месяц"))),
      el("button", { type: "submit" }, "Показать"));
    form.addEventListener("submit", (e) => { e.preventDefault(); load(); });
    const exports = el("div", { class: "exports", "data-testid": "exports" }, "Выгрузить журнал заявок: ",
      ...["csv", "xlsx", "pdf"].map((f) => el("button", { type: "button", "data-export": `tickets.${f}`, onclick: () => download("tickets", f) }, f.toUpperCase())),
      " · журнал звонков: ",
      ...["csv", "xlsx"].map((f) => el("button", { type: "button", "data-export": `calls.${f}`, onclick: () => download("calls", f) }, f.toUpperCase())),
      el("span", { id: "a-export-state", class: "muted", role: "status" }));
    $("view-analytics").replaceChildren(el("h2", {}, "Аналитика"), form, exports, el("div", { id: "a-body" }), el("div", { id: "a-drill" }));
  }

  function range() {
    const from = new Date(`${$("a-from").value}T00:00:00`);
    const to = new Date(new Date(`${$("a-to").value}T00:00:00`).getTime() + 86400000);
    return { from: from.toISOString(), to: to.toISOString(), tenant: $("a-tenant").value };
  }

  async function download(journal, format) {
    const r = range();
    const state = $("a-export-state");
    state.textContent = " готовим файл…";
    try {
      const response = await fetch(`/api/v1/export/${journal}.${format}${D().qs(r)}`, { headers: { Authorization: `Bearer ${D().token()}` } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const blob = await response.blob();
      const a = el("a", { href: URL.createObjectURL(blob), download: `${journal}-${$("a-from").value}-${$("a-to").value}.${format}` });
      document.body.append(a);
      a.click();
      a.remove();
      state.textContent = ` готово: ${Math.round(blob.size / 1024)} КБ`;
      state.dataset.done = `${journal}.${format}`;
    } catch (e) { state.textContent = ` не удалось: ${e.message}`; }
  }

  async function load() {
    A.range = range();
    try {
      A.data = await D().api(`/analytics${D().qs({ ...A.range, bucket: $("a-bucket").value })}`);
      render();
    } catch (e) { $("a-body").replaceChildren(el("p", { class: "error" }, e.message)); }
  }

  async function drill(title, filter) {
    try {
      const page = await D().api(`/analytics/tickets${D().qs({ ...A.range, ...filter, limit: 100 })}`);
      $("a-drill").replaceChildren(el("h3", {}, `${title}: ${page.total}`), el("table", { class: "grid compact", "data-testid": "drill" },
        el("tbody", {}, page.items.map((t) => el("tr", { class: `row-${t.category}` },
          el("td", {}, el("button", { type: "button", class: "link", onclick: () => window.dispatchlineChains && window.dispatchlineChains.openTicket(t.id) }, t.number)),
          el("td", {}, D().when(t.created_at)), el("td", {}, str(t.address)), el("td", {}, str(t.reason)), el("td", {}, str(t.executor_name)))))));
    } catch (e) { $("a-drill").replaceChildren(el("p", { class: "error" }, e.message)); }
  }

  /** A bar `percent` wide (CSSOM: the page's CSP allows no inline styles). */
  function bar(percent, category) {
    const node = el("div", { class: `bar cat-${category}` });
    node.style.width = `${percent}%`;
    return node;
  }

  function render() {
    const s = A.data;
    const groups = new Map();
    for (const c of s.tickets) {
      const key = `${c.category}|${c.work_type}`;
      groups.set(key, (groups.get(key) || 0) + c.tickets);
    }
    const max = Math.max(1, ...groups.values());
    const bars = [...groups.entries()].map(([key, n]) => {
      const [category, work_type] = key.split("|");
      return [el("span", { class: "drill", onclick: () => drill(`${CATEGORY[category] || category} · ${work_type}`, { category, work_type }) }, `${CATEGORY[category] || category} · ${work_type}`),
        bar((100 * n) / max, category), el("span", { class: "num" }, n)];
    }).flat();
    const buckets = [...new Set(s.tickets.map((c) => c.bucket))];
    const perBucket = buckets.map((b) => el("tr", {}, el("td", {}, b),
      ...["emergency", "planned", "paid"].map((cat) => el("td", { class: "num" }, s.tickets.filter((c) => c.bucket === b && c.category === cat).reduce((a, c) => a + c.tickets, 0)))));
    const times = (rows) => rows.map((p) => el("tr", {}, el("td", {}, p.key === "all" ? "все" : CATEGORY[p.key] || p.key), el("td", { class: "num" }, p.count), el("td", { class: "num" }, span(p.median_s)), el("td", { class: "num" }, span(p.p90_s))));
    const avg = (m) => { const r = s.ratings.find((x) => x.metric === m); return r && r.average !== null ? `${r.average.toFixed(2)} (${r.answers})` : "—"; };
    $("a-body").replaceChildren(
      el("h3", {}, "Заявки по категориям и видам работ"), el("div", { class: "analytics-bars", "data-testid": "a-bars" }, bars),
      el("table", { class: "grid compact", "data-testid": "a-buckets" }, el("thead", {}, el("tr", {}, ["Период", "Аварийные", "Плановые", "Платные"].map((h) => el("th", {}, h)))), el("tbody", {}, perBucket)),
      el("h3", {}, "Сроки"), el("table", { class: "grid compact" },
        el("thead", {}, el("tr", {}, ["", "Заявок", "Медиана", "90-й процентиль"].map((h) => el("th", {}, h)))),
        el("tbody", {}, el("tr", {}, el("th", { colspan: 4 }, "Время до принятия")), times(s.time_to_accept),
          el("tr", {}, el("th", { colspan: 4 }, "Время до выполнения")), times(s.time_to_complete))),
      el("h3", {}, "Звонки (Правила №416)"), el("table", { class: "grid compact", "data-testid": "a-calls" },
        el("thead", {}, el("tr", {}, ["УК", "Город", "Звонков", "Отвечено", "≤ 30 с", "≤ 5 мин", "Перезвон ≤ 10 мин"].map((h) => el("th", {}, h)))),
        el("tbody", {}, s.calls.map((c) => el("tr", {}, el("td", {}, c.tenant ? D().tenantName(c.tenant) : "не определена"), el("td", {}, str(c.city)),
          el("td", { class: "num" }, c.calls), el("td", { class: "num" }, c.answered), el("td", { class: "num" }, pct(c.within_30s, c.within_30s_of)),
          el("td", { class: "num" }, pct(c.within_5min, c.within_5min_of)), el("td", { class: "num" }, pct(c.callbacks_within_10min, c.callbacks_due)))))),
      el("h3", {}, `Оценки: CSI ${avg("csi")} · CES ${avg("ces")}`), el("table", { class: "grid compact", "data-testid": "a-executors" },
        el("thead", {}, el("tr", {}, ["Исполнитель", "1", "2", "3", "4", "5", "Средняя", "Выполнено", "Доля оценённых"].map((h) => el("th", {}, h)))),
        el("tbody", {}, s.executors.map((e) => el("tr", {}, el("td", {}, el("span", { class: "drill", onclick: () => drill(e.name, { executor_id: e.executor_id }) }, e.name)),
          ...e.scores.map((n, i) => el("td", { class: "num" }, n ? el("span", { class: "drill", onclick: () => drill(`${e.name}: оценка ${i + 1}`, { executor_id: e.executor_id, csi: i + 1 }) }, n) : "0")),
          el("td", { class: "num" }, e.average === null ? "—" : e.average.toFixed(2)), el("td", { class: "num" }, e.completed),
          el("td", { class: "num" }, e.share_rated === null ? "—" : `${Math.round(100 * e.share_rated)}%`))))));
  }

  setInterval(() => {
    if (!D() || !D().me()) return;
    const tab = $("tab-analytics");
    if (tab) tab.hidden = !ROLES.includes(D().me().role);
    if (D().state.tab === "analytics" && !A.built) { build(); load(); }
  }, 500);

  window.dispatchlineAnalytics = { open: () => { build(); load(); }, download };
})();
