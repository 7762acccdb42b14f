// dispatchline console: the settings screens of supervisors and tenant admins —
// the go-live check, the questionnaire upload (dry run, then apply), houses (with
// the executor chain a ticket would get), employees and their absences, accounts
// and the admin log. Uses the console's helpers (window.dispatchline).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const D = () => window.dispatchline;
  const KIND = { vacation: "отпуск", sick_leave: "больничный", other: "другое" };
  const ROLE = { operator: "оператор", supervisor: "старший смены", "tenant-admin": "администратор УК", "tenant-viewer": "наблюдатель УК" };
  const SHEET = {
    company: "Компания", houses: "Дома", apartments: "Квартиры", employees: "Сотрудники", shifts: "Смены",
    absences: "Отсутствия", reasons: "Причины", responsibility: "Ответственность", suppliers: "Поставщики", contacts: "Контакты",
  };
  const CHECK = {
    numbers: "Номера настроены", houses: "Дома загружены", matrix: "Матрица ответственности: три уровня по каждой аварийной работе",
    duty: "Кто-то на смене в любой час недели", greeting: "Приветствие записано",
  };
  const P = { pane: "ready", houses: [], employees: [], house: null, employee: null, checked: null };

  const tenant = () => $("st-tenant").value;
  const el = (...a) => D().el(...a);

  function fail(e) { D().setError($("st-error"), e && e.message ? e.message : String(e || "")); }

  /** Shows an API error next to its field; other errors above the pane. */
  function fieldErrors(form, error) {
    for (const span of form.querySelectorAll(".field-error")) span.textContent = "";
    for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
    if (!error) return;
    const base = error.field ? error.field.replace(/\[.*$/, "") : null;
    const span = base && form.querySelector(`.field-error[data-for="${base}"]`);
    if (span) {
      span.textContent = error.message;
      const input = form.elements[base];
      if (input && input.setAttribute) { input.setAttribute("aria-invalid", "true"); input.focus(); }
    } else {
      fail(error);
    }
  }
  function saved(form, text) {
    const s = form.querySelector(".saved");
    if (s) { s.textContent = text; setTimeout(() => { s.textContent = ""; }, 3000); }
  }
  /** Client-side checks before anything is sent: required fields and number bounds. */
  function validate(form) {
    for (const input of form.querySelectorAll("input")) {
      const problem = input.required && !input.value.trim() ? "обязательное поле"
        : input.validity && !input.validity.valid ? (input.validationMessage || "неверное значение") : "";
      if (problem) { fieldErrors(form, { field: input.name, message: problem }); return false; }
    }
    fieldErrors(form, null);
    return true;
  }

  async function open() {
    D().setError($("st-error"), "");
    const select = $("st-tenant");
    const keep = select.value;
    select.replaceChildren(...D().tenants().map((t) => el("option", { value: t.code }, t.name)));
    if (keep && [...select.options].some((o) => o.value === keep)) select.value = keep;
    showPane(P.pane);
  }

  function showPane(name) {
    P.pane = name;
    for (const b of document.querySelectorAll(".subtabs button")) b.setAttribute("aria-pressed", String(b.dataset.pane === name));
    for (const p of document.querySelectorAll("#view-settings .pane")) p.hidden = p.dataset.pane !== name;
    ({ ready: loadReadiness, workbook: () => {}, houses: loadHouses, employees: loadEmployees, users: loadUsers, log: loadLog }[name] || (() => {}))();
  }

  // ------------------------------------------------------------ readiness
  async function loadReadiness() {
    if (!tenant()) return;
    try {
      const r = await D().api(`/tenants/${encodeURIComponent(tenant())}/readiness`);
      $("rd-verdict").textContent = r.ready ? "— всё готово" : "— не готово";
      $("rd-verdict").dataset.ready = String(r.ready);
      $("rd-checks").replaceChildren(...r.checks.map((c) => el("li", { class: c.ok ? "ok" : "missing", "data-check": c.check },
        el("strong", {}, `${c.ok ? "✓" : "✗"} ${CHECK[c.check] || c.check}`),
        c.missing.length ? el("ul", {}, c.missing.map((m) => el("li", {}, m))) : null)));
    } catch (e) { fail(e); }
  }

  // ------------------------------------------------------------ the questionnaire
  async function upload(dryRun) {
    const file = $("ob-file").files[0];
    if (!file) { $("ob-status").textContent = "Выберите файл анкеты."; return; }
    $("ob-status").textContent = dryRun ? "Проверка…" : "Загрузка…";
    $("ob-apply").disabled = true;
    const response = await fetch(`/api/v1/onboarding${D().qs({ tenant: tenant(), dry_run: dryRun })}`, {
      method: "POST", headers: { Authorization: `Bearer ${D().token()}` }, body: file,
    });
    const report = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    if (!report.sheets) { $("ob-status").textContent = `Ошибка: ${report.error}`; return; }
    $("ob-report-body").replaceChildren(...Object.entries(report.sheets).map(([sheet, c]) =>
      el("tr", { "data-sheet": sheet }, el("td", {}, SHEET[sheet] || sheet), el("td", {}, c.created), el("td", {}, c.changed), el("td", {}, c.unchanged))));
    D().show($("ob-report"), true);
    $("ob-faults").replaceChildren(...report.faults.map((f) => el("li", { class: "error" }, `${f.sheet}!${f.cell}: ${f.message}`)));
    const changes = Object.values(report.sheets).reduce((n, c) => n + c.created + c.changed, 0);
    if (report.faults.length) {
      $("ob-status").textContent = `Ошибок в анкете: ${report.faults.length}. Исправьте их и проверьте снова — ничего не загружено.`;
    } else if (dryRun) {
      P.checked = file;
      $("ob-apply").disabled = changes === 0;
      $("ob-status").textContent = changes ? `Ошибок нет. Будет создано или изменено записей: ${changes}. Нажмите «Загрузить».` : "Ошибок нет; всё уже загружено, менять нечего.";
    } else {
      P.checked = null;
      $("ob-status").textContent = report.applied ? `Анкета загружена: создано или изменено записей: ${changes}.` : "Менять нечего.";
      await D().api("/tenants").catch(() => null);
    }
  }
  async function downloadTemplate() {
    const response = await fetch("/api/v1/onboarding/template.xlsx", { headers: { Authorization: `Bearer ${D().token()}` } });
    if (!response.ok) { fail(new Error(`HTTP ${response.status}`)); return; }
    const url = URL.createObjectURL(await response.blob());
    const a = el("a", { href: url, download: "onboarding-template.xlsx" });
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  // ------------------------------------------------------------ houses
  async function loadHouses() {
    try {
      const page = await D().api(`/houses${D().qs({ tenant: tenant(), q: $("hs-q").value.trim(), limit: 100 })}`);
      P.houses = page.items;
      $("hs-body").replaceChildren(...page.items.map((h) => el("tr", { class: "clickable", tabindex: 0, "data-house": h.id, onclick: () => openHouse(h), onkeydown: (e) => { if (e.key === "Enter") openHouse(h); } },
        el("td", {}, h.address), el("td", {}, h.house_group || ""), el("td", {}, h.floors), el("td", {}, h.lifts))));
    } catch (e) { fail(e); }
  }
  async function openHouse(h) {
    P.house = h;
    D().show($("hs-detail"), true);
    $("hs-title").textContent = h.address;
    const f = $("hs-form");
    f.elements.address.value = h.address; f.elements.house_group.value = h.house_group || "";
    f.elements.floors.value = h.floors; f.elements.lifts.value = h.lifts;
    fieldErrors(f, null);
    try {
      const reasons = await D().api(`/reasons${D().qs({ tenant: h.tenant })}`);
      $("hs-reason").replaceChildren(...reasons.map((r) => el("option", { value: r.id }, r.title)));
    } catch (e) { fail(e); }
    preview();
  }
  async function saveHouse(e) {
    e.preventDefault();
    const f = $("hs-form");
    if (!validate(f) || !P.house) return;
    try {
      const h = await D().api(`/houses/${P.house.id}`, { method: "PUT", json: {
        address: f.elements.address.value, house_group: f.elements.house_group.value.trim() || null,
        floors: Number(f.elements.floors.value || 0), lifts: Number(f.elements.lifts.value || 0),
      } });
      P.house = h; saved(f, "Сохранено"); loadHouses();
    } catch (err) { fieldErrors(f, err); }
  }
  async function preview() {
    if (!P.house || !$("hs-reason").value) { $("hs-chain").replaceChildren(); return; }
    try {
      const chain = await D().api(`/assignment${D().qs({ tenant: P.house.tenant, house: P.house.id, reason: $("hs-reason").value })}`);
      const items = chain.executors.map((e) => el("li", { "data-employee": e.employee.id }, `Уровень ${e.level}: ${e.employee.name}`));
      for (const [role, p] of [["Ответственный", chain.responsible], ["Руководитель", chain.manager], ["Директор", chain.head]]) {
        if (p) items.push(el("li", { "data-employee": p.id, class: "escalation" }, `${role}: ${p.name}`));
      }
      for (const p of chain.passed_over || []) items.push(el("li", { class: "muted" }, `пропущен: ${p.name}`));
      $("hs-chain").replaceChildren(...(items.length ? items : [el("li", {}, "никого нет на смене")]));
    } catch (e) { fail(e); }
  }

  // ------------------------------------------------------------ employees
  async function loadEmployees() {
    try {
      P.employees = await D().api(`/employees${D().qs({ tenant: tenant() })}`);
      renderEmployees();
    } catch (e) { fail(e); }
  }
  function renderEmployees() {
    const q = $("em-q").value.trim().toLowerCase();
    const rows = P.employees.filter((e) => !q || [e.name, e.position, ...e.phones].join(" ").toLowerCase().includes(q));
    $("em-body").replaceChildren(...rows.map((e) => el("tr", { class: "clickable", tabindex: 0, "data-employee": e.id, onclick: () => openEmployee(e), onkeydown: (ev) => { if (ev.key === "Enter") openEmployee(e); } },
      el("td", {}, e.name), el("td", {}, e.position), el("td", {}, e.phones.join(", ")), el("td", {}, e.work_types.join(", ")),
      el("td", {}, e.absences.map((a) => `${KIND[a.kind] || a.kind} ${a.starts_on}–${a.ends_on}`).join("; ")))));
  }
  function openEmployee(e) {
    P.employee = e;
    D().show($("em-detail"), true);
    $("em-title").textContent = e.name;
    const f = $("em-form");
    f.elements.name.value = e.name; f.elements.position.value = e.position;
    f.elements.phones.value = e.phones.join(", "); f.elements.active.checked = e.active;
    fieldErrors(f, null);
    $("em-absences").replaceChildren(...e.absences.map((a) => el("li", {}, `${KIND[a.kind] || a.kind}: ${a.starts_on} — ${a.ends_on}`)));
  }
  async function saveEmployee(ev) {
    ev.preventDefault();
    const f = $("em-form");
    const e = P.employee;
    if (!validate(f) || !e) return;
    try {
      const updated = await D().api(`/employees/${e.id}`, { method: "PUT", json: {
        name: f.elements.name.value, position: f.elements.position.value,
        phones: f.elements.phones.value.split(/[,;]/).map((p) => p.trim()).filter(Boolean),
        work_types: e.work_types, shifts: e.shifts.map((s) => ({ weekday: s.weekday, starts: hm(s.starts_min), ends: hm(s.ends_min) })),
        absences: e.absences, active: f.elements.active.checked,
      } });
      saved(f, "Сохранено"); await loadEmployees(); openEmployee(updated);
    } catch (err) { fieldErrors(f, err); }
  }
  const hm = (m) => `${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;
  async function addAbsence(ev) {
    ev.preventDefault();
    const f = $("ab-form");
    const e = P.employee;
    if (!validate(f) || !e) return;
    if (f.elements.ends_on.value < f.elements.starts_on.value) {
      fieldErrors(f, { field: "ends_on", message: "раньше начала" });
      return;
    }
    try {
      const updated = await D().api(`/employees/${e.id}/absences`, { method: "POST", json: {
        kind: f.elements.kind.value, starts_on: f.elements.starts_on.value, ends_on: f.elements.ends_on.value,
      } });
      saved(f, "Добавлено"); await loadEmployees(); openEmployee(updated);
    } catch (err) { fieldErrors(f, err); }
  }

  // ------------------------------------------------------------ users and the log
  async function loadUsers() {
    try {
      const users = await D().api("/users");
      $("us-body").replaceChildren(...users.map((u) => el("tr", { "data-user": u.extension },
        el("td", {}, u.extension), el("td", {}, u.name), el("td", {}, ROLE[u.role] || u.role),
        el("td", {}, u.tenants.length ? u.tenants.map(D().tenantName).join(", ") : "все"), el("td", {}, u.softphone ? "да" : ""),
        el("td", {}, u.extension === D().me().extension ? "" : el("button", { type: "button", class: "link", onclick: () => removeUser(u) }, "Удалить")))));
    } catch (e) { fail(e); }
  }
  async function createUser(ev) {
    ev.preventDefault();
    const f = $("us-form");
    if (!validate(f)) return;
    const role = f.elements.role.value;
    try {
      await D().api("/users", { method: "POST", json: {
        extension: f.elements.extension.value.trim(), name: f.elements.name.value, role,
        tenants: role.startsWith("tenant-") || D().me().tenants.length ? [tenant()] : [],
        password: f.elements.password.value, sip_password: f.elements.sip_password.value || null,
      } });
      f.reset(); saved(f, "Создан"); loadUsers();
    } catch (err) { fieldErrors(f, err); }
  }
  async function removeUser(u) {
    if (!window.confirm(`Удалить пользователя ${u.extension}? Его сеансы будут закрыты сразу.`)) return;
    try { await D().api(`/users/${encodeURIComponent(u.extension)}`, { method: "DELETE" }); loadUsers(); } catch (e) { fail(e); }
  }
  async function loadLog() {
    try {
      const log = await D().api(`/admin-log${D().qs({ tenant: tenant() })}`);
      $("lg-body").replaceChildren(...log.map((e) => el("tr", {},
        el("td", {}, D().when(e.at)), el("td", {}, e.principal), el("td", {}, e.action), el("td", {}, `${e.subject} ${e.subject_id}`),
        el("td", { class: "detail" }, JSON.stringify(e.detail)))));
    } catch (e) { fail(e); }
  }

  let timer = null;
  const soon = (fn) => { clearTimeout(timer); timer = setTimeout(fn, 250); };
  document.addEventListener("DOMContentLoaded", () => {
    for (const b of document.querySelectorAll(".subtabs button")) b.addEventListener("click", () => showPane(b.dataset.pane));
    $("st-tenant").addEventListener("change", () => showPane(P.pane));
    $("ob-check").addEventListener("click", () => upload(true).catch(fail));
    $("ob-apply").addEventListener("click", () => upload(false).catch(fail));
    $("ob-file").addEventListener("change", () => { $("ob-apply").disabled = true; $("ob-status").textContent = ""; });
    $("ob-template").addEventListener("click", () => downloadTemplate().catch(fail));
    $("hs-q").addEventListener("input", () => soon(loadHouses));
    $("hs-form").addEventListener("submit", saveHouse);
    $("hs-reason").addEventListener("change", preview);
    $("em-q").addEventListener("input", renderEmployees);
    $("em-form").addEventListener("submit", saveEmployee);
    $("ab-form").addEventListener("submit", addAbsence);
    $("us-form").addEventListener("submit", createUser);
  });

  window.dispatchlineSettings = { open };
})();
