// pagekeeperd dashboard: polls the command API once a second and draws pressure and hit rate
// per pool on <canvas> (no libraries). Once a chart has drawn points from real data it writes
// the number of points into data-points on the canvas and the total into
// <body data-rendered>, which the headless-Chromium test reads.
"use strict";

const POLL_MS = 1000;
const HISTORY = 300;           // points kept per pool
const COLORS = ["#1565c0", "#c62828", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f", "#5d4037", "#ad1457"];

const history = new Map();     // pool name -> {pressure: [[t, v]], hitrate: [[t, v]], last: stats}
let colorOf = new Map();

async function command(name) {
  const res = await fetch("/api/" + name, {
    method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"
  });
  if (!res.ok) throw new Error(name + ": HTTP " + res.status);
  return res.json();
}

function color(name) {
  if (!colorOf.has(name)) colorOf.set(name, COLORS[colorOf.size % COLORS.length]);
  return colorOf.get(name);
}

function push(series, point) {
  series.push(point);
  if (series.length > HISTORY) series.shift();
}

function record(snapshot, now) {
  for (const pool of snapshot.pools) {
    let h = history.get(pool.name);
    if (!h) { h = {pressure: [], hitrate: [], last: null}; history.set(pool.name, h); }
    push(h.pressure, [now, pool.pressure]);
    const s = pool.stats;
    // Hit rate over the last interval; the cumulative rate for the first sample.
    let hits = s.hitCount, lookups = s.hitCount + s.missCount;
    if (h.last && s.hitCount >= h.last.hitCount && s.missCount >= h.last.missCount) {
      hits -= h.last.hitCount;
      lookups -= h.last.hitCount + h.last.missCount;
    }
    if (lookups > 0) push(h.hitrate, [now, 100 * hits / lookups]);
    h.last = s;
  }
}

function drawChart(canvas, legend, key, fixedMax, unit) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 48, R = 10, T = 10, B = 24;
  ctx.clearRect(0, 0, W, H);
  let tMin = Infinity, tMax = -Infinity, vMax = fixedMax;
  for (const h of history.values()) {
    for (const [t, v] of h[key]) {
      tMin = Math.min(tMin, t); tMax = Math.max(tMax, t); vMax = Math.max(vMax, v);
    }
  }
  if (tMax === tMin) { tMin -= POLL_MS; }
  const x = t => L + (W - L - R) * (t - tMin) / (tMax - tMin);
  const y = v => T + (H - T - B) * (1 - v / vMax);
  ctx.strokeStyle = "#e3e6eb"; ctx.fillStyle = "#7a8294"; ctx.font = "11px sans-serif"; ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = vMax * i / 4;
    ctx.beginPath(); ctx.moveTo(L, y(v)); ctx.lineTo(W - R, y(v)); ctx.stroke();
    ctx.fillText(unit === "%" ? v.toFixed(0) + "%" : v.toFixed(2), 4, y(v) + 4);
  }
  if (isFinite(tMax)) ctx.fillText(Math.round((tMax - tMin) / 1000) + " s", W - R - 30, H - 6);
  let points = 0;
  legend.textContent = "";
  for (const [name, h] of history) {
    const series = h[key];
    const item = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = color(name);
    item.appendChild(swatch);
    const last = series.length ? series[series.length - 1][1] : null;
    item.appendChild(document.createTextNode(name + (last === null ? "" :
        " " + (unit === "%" ? last.toFixed(1) + "%" : last.toFixed(3)))));
    legend.appendChild(item);
    if (series.length === 0) continue;
    ctx.strokeStyle = color(name); ctx.lineWidth = 2;
    ctx.beginPath();
    series.forEach(([t, v], i) => (i ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
    ctx.stroke();
    if (series.length === 1) {
      ctx.fillStyle = color(name);
      ctx.fillRect(x(series[0][0]) - 2, y(series[0][1]) - 2, 4, 4);
    }
    points += series.length;
  }
  canvas.dataset.points = String(points);
  return points;
}

function fmtBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function renderTable(snapshot) {
  const body = document.querySelector("#pools tbody");
  body.textContent = "";
  for (const p of snapshot.pools) {
    const s = p.stats, lookups = s.hitCount + s.missCount;
    const cells = [p.name, p.tier, p.pressure.toFixed(3), fmtBytes(s.totalBytes),
      p.managed ? fmtBytes(s.maxBytes) : "unmanaged", s.entryCount, s.pinnedCount, s.hitCount,
      s.missCount, lookups ? (100 * s.hitCount / lookups).toFixed(1) + "%" : "–", s.evictionCount];
    const tr = document.createElement("tr");
    for (const c of cells) { const td = document.createElement("td"); td.textContent = c; tr.appendChild(td); }
    body.appendChild(tr);
  }
}

function renderAlerts(data) {
  const list = document.getElementById("alerts");
  document.getElementById("alerts-total").textContent = "(" + data.alertsTotal + " in total)";
  list.textContent = "";
  if (data.alerts.length === 0) {
    const li = document.createElement("li"); li.className = "muted"; li.textContent = "none"; list.appendChild(li);
    return;
  }
  for (const a of data.alerts.slice().reverse()) {
    const li = document.createElement("li");
    li.textContent = new Date(a.atMs).toLocaleTimeString() + "  " + a.tier + "  " + a.tierName +
      "  pressure " + a.pressure.toFixed(3) + "  freed " + fmtBytes(a.bytesFreed) +
      (a.bytesFreed === 0 ? "  (hot and stuck)" : "") + "  [" + a.cause + "]";
    list.appendChild(li);
  }
}

async function poll() {
  try {
    const [snapshot, alerts] = await Promise.all([command("system/pressure-broker-state"),
                                                  command("system/pressure-alerts")]);
    record(snapshot, Date.now());
    const tier = document.getElementById("tier");
    tier.textContent = snapshot.globalTier + " " + snapshot.globalPressure.toFixed(3);
    tier.className = "tier tier-" + snapshot.globalTier;
    const drawn =
        drawChart(document.getElementById("pressure-chart"), document.getElementById("pressure-legend"),
                  "pressure", 1.0, "") +
        drawChart(document.getElementById("hitrate-chart"), document.getElementById("hitrate-legend"),
                  "hitrate", 100, "%");
    renderTable(snapshot);
    renderAlerts(alerts);
    document.body.dataset.rendered = String(drawn);
    document.getElementById("status").textContent =
        "updated " + new Date().toLocaleTimeString() + " · " + snapshot.pools.length + " pools · broker " +
        (snapshot.running ? "running" : "stopped");
  } catch (e) {
    document.getElementById("status").textContent = "error: " + e.message;
  }
}

poll();
setInterval(poll, POLL_MS);
