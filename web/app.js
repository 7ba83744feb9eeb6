// pagekeeperd dashboard. The charts come from the daemon's own history (system/history: a
// sample every few seconds, the last hour kept), so a page opens with them filled; the page
// refreshes it, the pools, the models and the alerts every few seconds. Charts are drawn with
// uPlot (served under /vendor/, fetched at setup by scripts/fetch-node-deps.sh).
//
// For the headless-Chromium test, each chart's container carries data-points (the non-null
// values it drew), <body> carries data-rendered (their total), data-scroll-width and
// data-client-width (of the page) and data-overflow (cards whose content is wider than they are).
"use strict";

const COLORS = ["#1565c0", "#c62828", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f", "#5d4037", "#ad1457"];
const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
const charts = new Map();  // container id -> {plot, labels}
let pollMs = 2000;

async function command(name, params = {}) {
  const res = await fetch("/api/" + name, {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(params)
  });
  if (!res.ok) throw new Error(name + ": HTTP " + res.status);
  return res.json();
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; ++i; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function percent(x) { return x === null || x === undefined ? "–" : (100 * x).toFixed(1) + "%"; }

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  td.title = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

// Draws `series` ([{label, values}]) against `xs` (seconds) in the container `id`; `range`
// fixes the y axis ([min, max]) instead of fitting it to the data; `xFormat`, when given,
// makes the x axis plain numbers printed with it instead of times.
function setChart(id, xs, series, format, range, xFormat) {
  const el = document.getElementById(id);
  let points = 0;
  for (const s of series) for (const v of s.values) if (v !== null && v !== undefined) ++points;
  el.dataset.points = String(points);
  if (typeof uPlot === "undefined") {
    el.innerHTML = '<p class="missing">chart library missing: run scripts/fetch-node-deps.sh and rebuild</p>';
    el.dataset.points = "0";
    return 0;
  }
  const labels = series.map((s) => s.label).join("\u0000");
  let chart = charts.get(id);
  if (!chart || chart.labels !== labels) {
    if (chart) chart.plot.destroy();
    const opts = {
      width: Math.max(200, el.clientWidth),
      height: 200,
      legend: {live: false},
      scales: Object.assign({x: {time: !xFormat}}, range ? {y: {range: range}} : {}),
      axes: [xFormat ? {values: (u, ticks) => ticks.map(xFormat)} : {}, {values: (u, ticks) => ticks.map(format), size: 60}],
      series: [{}].concat(series.map((s, i) => ({
        label: s.label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false,
        value: (u, v) => (v === null ? "–" : format(v)),
      }))),
    };
    chart = {plot: new uPlot(opts, [xs].concat(series.map((s) => s.values)), el), labels};
    charts.set(id, chart);
  } else {
    chart.plot.setData([xs].concat(series.map((s) => s.values)));
  }
  return points;
}

function poolNames(samples) {
  const names = [];
  for (const s of samples) for (const p of s.pools) if (!names.includes(p.name)) names.push(p.name);
  return names;
}

function poolSeries(samples, names, value) {
  return names.map((name) => ({
    label: name,
    values: samples.map((s) => {
      const p = s.pools.find((q) => q.name === name);
      return p ? value(p) : null;
    }),
  }));
}

function renderHistory(history) {
  const samples = history.samples;
  const xs = samples.map((s) => s.atMs / 1000);
  const names = poolNames(samples);
  const fixed = (d) => (v) => (v === null ? "–" : v.toFixed(d));
  let total = 0;
  total += setChart("chart-requests", xs, [{label: "requests/s", values: samples.map((s) => s.requestsPerSecond)}],
                    fixed(1));
  total += setChart("chart-latency", xs, [
    {label: "p50", values: samples.map((s) => s.p50Ms)},
    {label: "p95", values: samples.map((s) => s.p95Ms)},
    {label: "p99", values: samples.map((s) => s.p99Ms)},
  ], fixed(2));
  total += setChart("chart-pool-bytes", xs, poolSeries(samples, names, (p) => p.bytes / MIB), fixed(1));
  total += setChart("chart-hit-ratio", xs,
                    poolSeries(samples, names, (p) => (p.hitRatio === null ? null : 100 * p.hitRatio)),
                    (v) => v.toFixed(0) + "%", [0, 100]);
  // Budgets over time: what the broker gave each pool (its budget history, sampled).
  total += setChart("chart-pool-budgets", xs, poolSeries(samples, names, (p) => p.maxBytes / MIB), fixed(1));
  total += setChart("chart-host-memory", xs, [
    {label: "used", values: samples.map((s) => (s.hostUsedBytes === null ? null : s.hostUsedBytes / GIB))},
    {label: "limit", values: samples.map((s) => (s.hostLimitBytes === null ? null : s.hostLimitBytes / GIB))},
  ], fixed(2));
  document.body.dataset.rendered = String(total);
}

// Each pool's estimated miss-ratio curve (pools that sample one), against its budget's
// multiple: 1 is the budget it has now.
function renderCurves(state) {
  const pools = state.pools.filter((p) => p.utility && p.utility.curve.length);
  const el = document.getElementById("chart-curves");
  if (!pools.length) {
    el.dataset.points = "0";
    el.innerHTML = '<p class="muted">no pool samples its curve (set [broker] memory_budget_mb)</p>';
    charts.delete("chart-curves");
    return;
  }
  if (!charts.has("chart-curves")) el.textContent = "";
  const multiples = [0.25, 0.5, 0.75, 1, 1.5, 2];
  const series = pools.map((p) => ({label: p.name, values: p.utility.curve.map((c) => 100 * c.missRatio)}));
  setChart("chart-curves", multiples, series, (v) => v.toFixed(0) + "%", [0, 100], (v) => v + "x");
}

function renderPools(state, history) {
  const tier = document.getElementById("tier");
  tier.textContent = state.globalTier;
  tier.className = "tier tier-" + state.globalTier;
  const last = history.samples.length ? history.samples[history.samples.length - 1] : null;
  const body = document.querySelector("#pools tbody");
  body.textContent = "";
  for (const p of state.pools) {
    const s = p.stats;
    const row = document.createElement("tr");
    cell(row, p.name);
    cell(row, p.tier);
    cell(row, bytes(s.totalBytes));
    cell(row, p.managed === false ? "unmanaged" : bytes(s.maxBytes));
    const fill = cell(row, "");
    const ratio = s.maxBytes > 0 ? Math.min(1, s.totalBytes / s.maxBytes) : 0;
    fill.title = percent(ratio);
    fill.innerHTML = '<span class="fill"><i style="width:' + (100 * ratio).toFixed(1) + '%"></i></span>';
    cell(row, String(s.entryCount));
    const recent = last && last.pools.find((q) => q.name === p.name);
    const lookups = s.hitCount + s.missCount;
    cell(row, recent && recent.hitRatio !== null ? percent(recent.hitRatio)
                                                  : lookups > 0 ? percent(s.hitCount / lookups) : "–");
    cell(row, String(s.evictionCount));
    body.appendChild(row);
  }
}

function renderModels(list) {
  const body = document.querySelector("#models tbody");
  body.textContent = "";
  for (const m of list.models) {
    const row = document.createElement("tr");
    cell(row, m.name + (m.aliases.length ? " (" + m.aliases.join(", ") + ")" : "") + (m.isDefault ? " · default" : ""));
    cell(row, m.backend || "–");
    cell(row, m.dimensions === null || m.dimensions === undefined ? "–" : String(m.dimensions));
    const loaded = m.loaded !== false;
    cell(row, loaded ? "loaded" : "not loaded", loaded ? "loaded" : "unloaded");
    body.appendChild(row);
  }
}

// Alerts grouped by pool, tier and cause, with their count, bytes freed and latest time.
function renderAlerts(data) {
  const groups = new Map();
  for (const a of data.alerts) {
    const key = [a.tierName, a.tier, a.cause || ""].join("\u0000");
    const g = groups.get(key) ||
        {pool: a.tierName, tier: a.tier, cause: a.cause || "", count: 0, freed: 0, last: 0, message: ""};
    g.count += 1;
    g.freed += a.bytesFreed || 0;
    if ((a.atMs || 0) >= g.last) {
      g.last = a.atMs || 0;
      g.message = a.message || "";
    }
    groups.set(key, g);
  }
  document.getElementById("alerts-total").textContent =
      "(" + data.alertsTotal + " raised, the last " + data.alerts.length + " grouped)";
  const table = document.getElementById("alerts");
  table.dataset.alerts = String(data.alerts.length);
  table.dataset.groups = String(groups.size);
  const body = table.querySelector("tbody");
  body.textContent = "";
  if (groups.size === 0) {
    const row = document.createElement("tr");
    const td = cell(row, "none", "muted");
    td.colSpan = 7;
    body.appendChild(row);
    return;
  }
  for (const g of [...groups.values()].sort((x, y) => y.last - x.last)) {
    const row = document.createElement("tr");
    cell(row, g.pool);
    cell(row, g.tier);
    cell(row, g.cause);
    cell(row, String(g.count));
    cell(row, bytes(g.freed));
    cell(row, g.last ? new Date(g.last).toLocaleTimeString() : "–");
    cell(row, g.message, "message");
    body.appendChild(row);
  }
}

function recordLayout() {
  const root = document.documentElement;
  document.body.dataset.scrollWidth = String(root.scrollWidth);
  document.body.dataset.clientWidth = String(root.clientWidth);
  const wide = [];
  for (const card of document.querySelectorAll(".card"))
    if (card.scrollWidth > card.clientWidth + 1) wide.push(card.querySelector("h2").firstChild.textContent.trim());
  document.body.dataset.overflow = wide.join(",");
}

async function refresh() {
  try {
    const [history, state, models, alerts] = await Promise.all([
      command("system/history"), command("system/pressure-broker-state"), command("embedding/model/list"),
      command("system/pressure-alerts"),
    ]);
    pollMs = Math.max(1000, Math.min(history.intervalMs, 10000));
    renderHistory(history);
    renderPools(state, history);
    renderCurves(state);
    renderModels(models);
    renderAlerts(alerts);
    recordLayout();
    document.getElementById("status").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    document.getElementById("status").textContent = "error: " + e.message;
  }
  setTimeout(refresh, pollMs);
}

async function version() {
  try {
    const health = await (await fetch("/healthz")).json();
    if (health.version) document.getElementById("version").textContent = "v" + health.version;
  } catch (e) {
    // The version is decoration; the next refresh reports a dead daemon.
  }
}

window.addEventListener("resize", () => {
  for (const [id, chart] of charts) chart.plot.setSize({width: Math.max(200, document.getElementById(id).clientWidth), height: 200});
});
version();
refresh();
