// The retention team's dashboard: reads the API's JSON routes and draws cards, an SVG trend chart,
// a sortable segment table and a paged, filterable call list. Plain JavaScript, no dependencies.
// Every value is inserted with textContent (never as HTML), so data cannot inject markup.
// When the server requires an API key, a 401 shows a small form; the key is kept in sessionStorage
// (this tab only, gone when it closes) and sent as "Authorization: Bearer <key>" with every data call.
"use strict";

const SEGMENT_TYPES = {
  contract: "Contract",
  tenure_band: "Tenure band",
  internet_service: "Internet service",
  payment_method: "Payment method",
};
const SVG_NS = "http://www.w3.org/2000/svg";

const state = {
  date: null,          // snapshot shown (YYYY-MM-DD)
  segments: [],        // segment_kpis rows of that day
  segmentType: "contract",
  sort: { key: "revenue_at_risk", descending: true },
  offset: 0,
};

const $ = (id) => document.getElementById(id);
const integer = (n) => Number(n).toLocaleString("en-US");
const money = (x) => "$" + Number(x).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const percent = (x) => (x === null || x === undefined ? "–" : (100 * x).toFixed(1) + "%");
const shortMoney = (x) => {
  const abs = Math.abs(x);
  if (abs >= 1e6) return "$" + (x / 1e6).toFixed(abs >= 1e7 ? 0 : 1) + "M";
  if (abs >= 1e3) return "$" + (x / 1e3).toFixed(abs >= 1e4 ? 0 : 1) + "k";
  return "$" + x.toFixed(0);
};

const KEY_STORAGE = "churn-api-key";
let apiKey = readStoredKey();

function readStoredKey() {
  try { return sessionStorage.getItem(KEY_STORAGE) || null; } catch { return null; }  // storage may be disabled
}

function storeKey(key) {
  apiKey = key || null;
  try {
    if (apiKey) sessionStorage.setItem(KEY_STORAGE, apiKey); else sessionStorage.removeItem(KEY_STORAGE);
  } catch { /* kept in memory only */ }
  $("forget-key").hidden = !apiKey;
}

const authHeaders = () => (apiKey ? { Authorization: "Bearer " + apiKey } : {});

// The server answered 401: no key, or a wrong one. Shown as the key form, not as an error.
class KeyNeeded extends Error {}

async function failure(response, path) {
  const body = await response.json().catch(() => ({}));
  const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail || body);
  return response.status === 401 ? new KeyNeeded(detail) : new Error(`${response.status} from ${path}: ${detail}`);
}

async function getJson(path, params) {
  const query = new URLSearchParams(Object.entries(params || {}).filter(([, v]) => v !== null && v !== "" && v !== undefined));
  const url = path + (query.toString() ? "?" + query : "");
  const response = await fetch(url, { headers: { Accept: "application/json", ...authHeaders() } });
  if (!response.ok) throw await failure(response, path);
  return response.json();
}

function askForKey(error) {
  const refused = apiKey !== null;
  storeKey(null);  // a refused key is forgotten at once
  $("key-message").textContent = refused
    ? `The API key was refused: ${error.message}. Enter a valid key.`
    : "This dashboard's data needs an API key (ask whoever runs the churn API). Enter it to continue.";
  $("key-form").classList.toggle("refused", refused);
  $("key-form").hidden = false;
  $("key-input").value = "";
  $("key-input").focus();
  showError(null);
  document.body.dataset.loaded = refused ? "key-refused" : "key-needed";
}

function showError(error) {
  const box = $("error");
  box.textContent = error ? String(error.message || error) : "";
  box.hidden = !error;
}

function el(tag, attributes, text) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG_NS, tag.slice(4)) : document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function setCard(id, field, value, text, note) {
  const valueNode = $(id).querySelector(".value");
  valueNode.dataset.value = value;
  valueNode.textContent = text;
  $(id + "-note").textContent = note;
}

// ---- cards and trend ------------------------------------------------------------------------------

function renderCards(kpis, model) {
  const k = kpis;
  setCard("card-active", "active_customers", k.active_customers, integer(k.active_customers),
    `monthly revenue ${money(k.monthly_revenue)}`);
  setCard("card-churners", "predicted_churners", k.predicted_churners, integer(Math.round(k.predicted_churners)),
    `${percent(k.predicted_churn_rate)} predicted` + (k.actual_churn_rate === null ? "" : `, ${percent(k.actual_churn_rate)} actual last window`));
  setCard("card-risk", "revenue_at_risk", k.revenue_at_risk, money(k.revenue_at_risk),
    `next ${k.horizon_months} months · High ${shortMoney(k.revenue_at_risk_high)} · Medium ${shortMoney(k.revenue_at_risk_medium)} · Low ${shortMoney(k.revenue_at_risk_low)}`);
  setCard("card-high", "high_risk_customers", k.high_risk_customers, integer(k.high_risk_customers),
    `call ${integer(k.campaign_list_size)} for the best campaign profit (${money(k.campaign_expected_profit)})`);
  const quality = model
    ? `ROC-AUC ${model.roc_auc.toFixed(3)} ± ${model.roc_auc_std.toFixed(3)} · ${model.algorithm} · trained on ${model.snapshot_date}`
    : "not found in model_runs";
  setCard("card-model", "model_version", k.model_version, k.model_version, quality);
  $("card-model").querySelector(".value").dataset.rocAuc = model ? model.roc_auc : "";
}

function renderTrend(history) {
  const svg = $("trend-chart");
  svg.replaceChildren();
  const width = 900, height = 260, left = 70, right = 20, top = 16, bottom = 34;
  if (!history.length) {
    svg.append(el("svg:text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "empty" }, "No KPIs stored"));
    return;
  }
  const maxY = Math.max(...history.map((d) => d.revenue_at_risk)) * 1.1 || 1;
  const n = history.length;
  const x = (i) => (n === 1 ? (left + width - right) / 2 : left + (i * (width - left - right)) / (n - 1));
  const y = (v) => top + (height - top - bottom) * (1 - v / maxY);
  for (let t = 0; t <= 4; t++) {
    const value = (maxY * t) / 4;
    svg.append(el("svg:line", { x1: left, x2: width - right, y1: y(value), y2: y(value), class: "axis" }));
    svg.append(el("svg:text", { x: left - 8, y: y(value) + 4, "text-anchor": "end", class: "tick" }, shortMoney(value)));
  }
  const step = Math.max(1, Math.ceil(n / 8));
  history.forEach((d, i) => {
    if (i % step === 0 || i === n - 1) {
      const anchor = n === 1 ? "middle" : i === 0 ? "start" : i === n - 1 ? "end" : "middle";
      svg.append(el("svg:text", { x: x(i), y: height - 12, "text-anchor": anchor, class: "tick" }, d.snapshot_date));
    }
  });
  const path = (key) => history.map((d, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(d[key]).toFixed(1)}`).join(" ");
  if (n > 1) {
    svg.append(el("svg:path", { d: `${path("revenue_at_risk")} L${x(n - 1)},${y(0)} L${x(0)},${y(0)} Z`, class: "area" }));
    svg.append(el("svg:path", { d: path("revenue_at_risk"), class: "total" }));
    svg.append(el("svg:path", { d: path("revenue_at_risk_high"), class: "high" }));
  }
  history.forEach((d, i) => {
    const dot = el("svg:circle", { cx: x(i), cy: y(d.revenue_at_risk), r: d.snapshot_date === state.date ? 6 : 4, class: "dot" });
    dot.append(el("svg:title", {}, `${d.snapshot_date}: ${money(d.revenue_at_risk)} at risk (High ${money(d.revenue_at_risk_high)})`));
    svg.append(dot);
    svg.append(el("svg:circle", { cx: x(i), cy: y(d.revenue_at_risk_high), r: 3, class: "dot high" }));
  });
}

// ---- segments -------------------------------------------------------------------------------------

function renderSegmentTabs() {
  const tabs = $("segment-tabs");
  tabs.replaceChildren();
  for (const [type, label] of Object.entries(SEGMENT_TYPES)) {
    const button = el("button", { type: "button", role: "tab", "aria-selected": String(type === state.segmentType), "data-type": type }, label);
    button.addEventListener("click", () => { state.segmentType = type; renderSegmentTabs(); renderSegments(); });
    tabs.append(button);
  }
}

function renderSegments() {
  const rows = state.segments.filter((s) => s.segment_type === state.segmentType);
  const { key, descending } = state.sort;
  rows.sort((a, b) => {
    const av = a[key], bv = b[key];
    const order = typeof av === "string" ? av.localeCompare(bv) : (av ?? -1) - (bv ?? -1);
    return descending ? -order : order;
  });
  const maxRisk = Math.max(1, ...rows.map((r) => r.revenue_at_risk));
  const body = $("segments-table").querySelector("tbody");
  body.replaceChildren();
  for (const s of rows) {
    const tr = el("tr", { "data-segment-type": s.segment_type, "data-segment-value": s.segment_value, title: "Show this segment's call list" });
    tr.append(el("td", {}, s.segment_value));
    tr.append(el("td", { class: "num" }, integer(s.active_customers)));
    tr.append(el("td", { class: "num" }, percent(s.predicted_churn_rate)));
    tr.append(el("td", { class: "num" }, percent(s.actual_churn_rate)));
    tr.append(el("td", { class: "num", "data-value": s.revenue_at_risk }, money(s.revenue_at_risk)));
    const bar = el("svg:svg", { class: "bar", viewBox: "0 0 160 12", width: 160, height: 12, role: "img", "aria-label": "share of revenue at risk" });
    bar.append(el("svg:rect", { x: 0, y: 1, height: 10, rx: 2, width: ((160 * s.revenue_at_risk) / maxRisk).toFixed(1) }));
    const cell = el("td");
    cell.append(bar);
    tr.append(cell);
    tr.addEventListener("click", () => {
      $("segment-filter").value = `${s.segment_type}=${s.segment_value}`;
      state.offset = 0;
      loadCallList();
      $("calls-title").scrollIntoView({ behavior: "smooth" });
    });
    body.append(tr);
  }
  for (const th of $("segments-table").querySelectorAll("th[data-sort]")) {
    th.setAttribute("aria-sort", th.dataset.sort === key ? (descending ? "descending" : "ascending") : "none");
  }
}

function fillSegmentFilter() {
  const select = $("segment-filter");
  const current = select.value;
  select.replaceChildren(el("option", { value: "" }, "All"));
  for (const [type, label] of Object.entries(SEGMENT_TYPES)) {
    const group = el("optgroup", { label });
    for (const s of state.segments.filter((r) => r.segment_type === type)) {
      group.append(el("option", { value: `${type}=${s.segment_value}` }, s.segment_value));
    }
    select.append(group);
  }
  select.value = [...select.options].some((o) => o.value === current) ? current : "";
}

// ---- call list ------------------------------------------------------------------------------------

function callListFilters() {
  const filters = { date: state.date, tier: $("tier-filter").value };
  const segment = $("segment-filter").value;
  if (segment) {
    const [type, ...value] = segment.split("=");
    filters.segment_type = type;
    filters.segment_value = value.join("=");
  }
  return filters;
}

let callListTicket = 0;  // only the newest request may draw, however the responses arrive

async function loadCallList() {
  const ticket = ++callListTicket;
  const filters = callListFilters();
  const limit = Number($("page-size").value);
  const query = new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
  $("csv-download").href = "customers/at-risk.csv?" + query;
  $("call-list").dataset.state = "loading";
  try {
    const page = await getJson("customers/at-risk", { ...filters, limit, offset: state.offset });
    if (ticket !== callListTicket) return;
    renderCallList(page);
    $("call-list").dataset.state = "ready";
    showError(null);
  } catch (error) {
    if (ticket !== callListTicket) return;
    $("call-list").dataset.state = "error";
    if (error instanceof KeyNeeded) askForKey(error); else showError(error);
  }
}

function renderCallList(page) {
  const body = $("call-list").querySelector("tbody");
  body.replaceChildren();
  for (const c of page.customers) {
    const tr = el("tr", { "data-customer-id": c.customer_id, "data-rank": c.priority_rank });
    tr.append(el("td", { class: "num" }, integer(c.priority_rank)));
    tr.append(el("td", {}, c.customer_id));
    const tier = el("td");
    tier.append(el("span", { class: `tier ${c.risk_tier}` }, c.risk_tier));
    tr.append(tier);
    tr.append(el("td", { class: "num" }, c.churn_probability.toFixed(3)));
    tr.append(el("td", { class: "num" }, money(c.monthly_charges)));
    tr.append(el("td", { class: "num", "data-value": c.expected_revenue_loss }, money(c.expected_revenue_loss)));
    tr.append(el("td", {}, `${c.contract} · ${c.tenure_band} · ${c.internet_service}`));
    tr.append(el("td", { class: "reasons" }, c.top_reasons.join("; ")));
    body.append(tr);
  }
  const first = page.total ? page.offset + 1 : 0;
  const last = page.offset + page.customers.length;
  $("call-list-status").textContent = `Showing ${integer(first)}–${integer(last)} of ${integer(page.total)} customers`;
  $("call-list-status").dataset.total = page.total;
  $("prev-page").disabled = page.offset === 0;
  $("next-page").disabled = last >= page.total;
}

// ---- loading --------------------------------------------------------------------------------------

async function loadDay(date) {
  try {
    const kpis = await getJson("kpis", { date, history_days: 365 });
    state.date = kpis.latest.snapshot_date;
    fillDates(kpis.history);
    renderCards(kpis.latest, kpis.model);
    renderTrend(kpis.history);
    const segments = await getJson("segments", { date: state.date });
    state.segments = segments.segments;
    renderSegmentTabs();
    renderSegments();
    fillSegmentFilter();
    state.offset = 0;
    await loadCallList();
    if ($("call-list").dataset.state === "ready") document.body.dataset.loaded = state.date;
  } catch (error) {
    if (error instanceof KeyNeeded) {
      askForKey(error);
      return;
    }
    showError(error);
    document.body.dataset.loaded = "error";
  }
}

// The CSV link streams straight to disk when no key is needed. With a key, the browser cannot add a
// header to a plain link, so the file is fetched with the key and handed over as a download.
async function downloadCsv(event) {
  if (!apiKey) return;
  event.preventDefault();
  const link = $("csv-download");
  try {
    const response = await fetch(link.href, { headers: authHeaders() });
    if (!response.ok) throw await failure(response, "customers/at-risk.csv");
    const disposition = response.headers.get("Content-Disposition") || "";
    const name = (disposition.match(/filename="([^"]+)"/) || [null, "call_list.csv"])[1];
    const url = URL.createObjectURL(await response.blob());
    const save = el("a", { href: url, download: name, hidden: "" });
    document.body.append(save);
    save.click();
    save.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (error) {
    if (error instanceof KeyNeeded) askForKey(error); else showError(error);
  }
}

function fillDates(history) {
  const select = $("date-select");
  if (select.options.length && [...select.options].some((o) => o.value === state.date)) {
    select.value = state.date;
    return;
  }
  select.replaceChildren(...history.slice().reverse().map((d) => el("option", { value: d.snapshot_date }, d.snapshot_date)));
  select.value = state.date;
}

function wire() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) return;
    storeKey(key);
    $("key-input").value = "";
    $("key-form").hidden = true;
    document.body.dataset.loaded = "loading";
    loadDay(state.date);
  });
  $("forget-key").addEventListener("click", () => {
    storeKey(null);
    location.reload();
  });
  $("forget-key").hidden = !apiKey;
  $("csv-download").addEventListener("click", downloadCsv);
  $("date-select").addEventListener("change", (event) => loadDay(event.target.value));
  for (const id of ["tier-filter", "segment-filter", "page-size"]) {
    $(id).addEventListener("change", () => { state.offset = 0; loadCallList(); });
  }
  $("prev-page").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - Number($("page-size").value));
    loadCallList();
  });
  $("next-page").addEventListener("click", () => {
    state.offset += Number($("page-size").value);
    loadCallList();
  });
  for (const th of $("segments-table").querySelectorAll("th[data-sort]")) {
    th.addEventListener("click", () => {
      const key = th.dataset.sort;
      state.sort = { key, descending: state.sort.key === key ? !state.sort.descending : key !== "segment_value" };
      renderSegments();
    });
  }
}

wire();
loadDay(null);
