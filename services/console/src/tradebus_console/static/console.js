// tradebus console: one live page. Every string from the services is rendered as text (textContent,
// never innerHTML); amounts are shown as the decimal strings the services give; times in UTC with
// the local time on hover. State arrives over server-sent events: a snapshot, then deltas.
"use strict";

const LWC = window.LightweightCharts;
const INTERVALS = ["1m", "5m", "15m", "1h", "4h", "1d", "1w"];
const INTERVAL_S = { "1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14400, "1d": 86400, "1w": 604800 };
const MONDAY_OFFSET_S = 4 * 86400; // 1970-01-01 was a Thursday; weeks open on Monday

const params = new URLSearchParams(location.search);
const view = { symbol: params.get("symbol") || "", interval: INTERVALS.includes(params.get("interval")) ? params.get("interval") : "1h" };
let state = null;
let lastCandleTime = 0;
let candleTimes = new Set();
let priceLines = [];
let chartRequest = 0;

// ------------------------------------------------------------------ small helpers
function $(id) { return document.getElementById(id); }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (key === "class") node.className = value; else node.setAttribute(key, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function text(id, value) { $(id).textContent = value === null || value === undefined ? "–" : String(value); }

function utc(iso) {
  // "2024-03-05T13:45:00Z" -> a <time> showing UTC, the local time in its title
  if (!iso) return el("span", {}, "–");
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return el("span", {}, String(iso));
  const shown = date.toISOString().replace("T", " ").replace(/:\d\d\.\d+Z$|:\d\dZ$|\.\d+Z$/, "") + " UTC";
  return el("time", { datetime: date.toISOString(), title: date.toLocaleString() + " (local)" }, shown);
}

function seconds(iso) { return Math.floor(Date.parse(iso) / 1000); }

function amount(value) { return value === null || value === undefined ? "–" : String(value); }

function signed(value) {
  const s = amount(value);
  return el("span", { class: s.startsWith("-") ? "neg" : (s === "–" || /^0(\.0*)?$/.test(s) ? "" : "pos") }, s);
}

// A decimal string times 100, by moving the point: "0.6667" -> "66.67", "1" -> "100", "0.5" -> "50".
function percent(value) {
  const raw = String(value);
  if (!/^-?\d+(\.\d+)?$/.test(raw)) return raw;
  const negative = raw.startsWith("-");
  const [whole, frac = ""] = raw.replace("-", "").split(".");
  const digits = whole + frac.padEnd(2, "0");
  const point = whole.length + 2;
  let intPart = digits.slice(0, point).replace(/^0+(?=\d)/, "");
  let fracPart = digits.slice(point).replace(/0+$/, "");
  return (negative ? "-" : "") + intPart + (fracPart ? "." + fracPart : "");
}

function bucket(sec, interval) {
  const size = INTERVAL_S[interval];
  if (interval === "1w") return Math.floor((sec - MONDAY_OFFSET_S) / size) * size + MONDAY_OFFSET_S;
  return Math.floor(sec / size) * size;
}

function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

// ------------------------------------------------------------------ charts
const chart = LWC.createChart($("chart"), chartOptions());
const candles = chart.addSeries(LWC.CandlestickSeries, {});
const volume = chart.addSeries(LWC.HistogramSeries, { priceFormat: { type: "volume" }, priceScaleId: "" });
volume.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
const markers = LWC.createSeriesMarkers(candles, []);
const equityChart = LWC.createChart($("equity"), { ...chartOptions(), rightPriceScale: { borderVisible: false } });
const equityLine = equityChart.addSeries(LWC.LineSeries, { lineWidth: 2 });

function chartOptions() {
  return {
    autoSize: true,
    layout: { background: { type: "solid", color: css("--card") }, textColor: css("--muted"), attributionLogo: false },
    grid: { vertLines: { color: css("--line") }, horzLines: { color: css("--line") } },
    timeScale: { timeVisible: true, secondsVisible: false, borderColor: css("--line") },
    rightPriceScale: { borderColor: css("--line") },
  };
}

function colourCharts() {
  chart.applyOptions(chartOptions());
  equityChart.applyOptions(chartOptions());
  candles.applyOptions({ upColor: css("--up"), downColor: css("--down"), wickUpColor: css("--up"), wickDownColor: css("--down"), borderVisible: false });
  equityLine.applyOptions({ color: css("--accent") });
}

function chartMessage(message) {
  const node = $("chart-message");
  node.hidden = !message;
  node.textContent = message || "";
}

async function loadChart() {
  const ticket = ++chartRequest;
  const { symbol, interval } = view;
  text("chart-title", `${symbol || "–"} · ${interval}`);
  for (const button of $("intervals").children) button.setAttribute("aria-pressed", String(button.dataset.interval === interval));
  $("chart").dataset.interval = interval;
  $("chart").dataset.candles = "0";
  candles.setData([]); volume.setData([]); candleTimes = new Set(); lastCandleTime = 0;
  if (!symbol) { chartMessage("no symbol to show yet"); return; }
  let rows;
  try {
    const response = await fetch(`/v1/console/bars?${new URLSearchParams({ symbol, interval, limit: "500" })}`);
    const body = await response.json();
    if (!response.ok) throw new Error(typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail));
    rows = body;
  } catch (error) {
    if (ticket === chartRequest) chartMessage(`cannot show ${symbol} ${interval}: ${error.message}`);
    return;
  }
  if (ticket !== chartRequest) return; // the user switched meanwhile
  if (!rows.length) { chartMessage(`no ${interval} bars for ${symbol} yet (unknown symbol, or nothing aggregated)`); return; }
  chartMessage("");
  candles.setData(rows.map(candle));
  volume.setData(rows.map(volumeBar));
  candleTimes = new Set(rows.map((r) => seconds(r.open_time)));
  lastCandleTime = Math.max(...candleTimes);
  $("chart").dataset.candles = String(rows.length);
  chart.timeScale().fitContent();
  drawMarkers();
  drawPositionLines();
}

function candle(bar) {
  return { time: seconds(bar.open_time), open: Number(bar.open), high: Number(bar.high), low: Number(bar.low), close: Number(bar.close) };
}

function volumeBar(bar) {
  const up = Number(bar.close) >= Number(bar.open);
  return { time: seconds(bar.open_time), value: Number(bar.volume), color: up ? "rgba(38,166,154,0.45)" : "rgba(239,83,80,0.45)" };
}

function liveBar(bar) {
  if (bar.symbol !== view.symbol || bar.interval !== view.interval || !candleTimes.size) return;
  const point = candle(bar);
  if (point.time < lastCandleTime) return; // a corrected older bar: shown on the next load
  candles.update(point);
  volume.update(volumeBar(bar));
  if (!candleTimes.has(point.time)) {
    candleTimes.add(point.time);
    $("chart").dataset.candles = String(candleTimes.size);
  }
  lastCandleTime = point.time;
}

function drawMarkers() {
  const list = (state && state.markers[view.symbol]) || [];
  const byTime = new Map();
  for (const m of list) {
    const time = bucket(seconds(m.time), view.interval);
    if (candleTimes.has(time)) byTime.set(time, m);
  }
  markers.setMarkers([...byTime.entries()].sort((a, b) => a[0] - b[0]).map(([time, m]) => {
    const buy = m.state.endsWith("BUY");
    return { time, position: buy ? "belowBar" : "aboveBar", shape: buy ? "arrowUp" : "arrowDown", color: buy ? css("--up") : css("--down"), text: m.state.startsWith("STRONG") ? "strong" : "" };
  }));
}

function drawPositionLines() {
  for (const line of priceLines) candles.removePriceLine(line);
  priceLines = [];
  const position = state && state.positions[view.symbol];
  if (!position) return;
  const add = (price, title, colour, style) => {
    if (price === null || price === undefined || Number.isNaN(Number(price))) return;
    priceLines.push(candles.createPriceLine({ price: Number(price), title, color: colour, lineWidth: 1, lineStyle: style, axisLabelVisible: true }));
  };
  add(position.entry_price, "entry", css("--accent"), LWC.LineStyle.Solid);
  add(position.stop, "stop", css("--down"), LWC.LineStyle.Dashed);
  (position.targets || []).forEach((t, i) => add(t, `target ${i + 1}`, css("--up"), LWC.LineStyle.Dashed));
}

function drawEquity() {
  const byTime = new Map();
  for (const p of state.equity) byTime.set(seconds(p.time), Number(p.equity));
  const points = [...byTime.entries()].sort((a, b) => a[0] - b[0]).map(([time, value]) => ({ time, value }));
  equityLine.setData(points);
  $("equity").dataset.points = String(points.length);
  if (points.length) equityChart.timeScale().fitContent();
}

// ------------------------------------------------------------------ panels
function renderReadiness() {
  const r = state.readiness;
  const banner = $("readiness");
  banner.dataset.status = r ? r.status : "UNKNOWN";
  text("readiness-status", r ? r.status : "readiness unknown (telemetry has not answered)");
  $("readiness-checked").replaceChildren(r ? el("span", {}, " checked ", utc(r.checked_at)) : "");
  const failing = r ? r.failure_points.filter((p) => !p.ok) : [];
  $("readiness-failing").replaceChildren(...failing.map((p) => el("li", { class: p.severity }, el("strong", {}, p.name), ` (${p.severity}): `, p.detail)));
}

function renderSymbols() {
  const select = $("symbol");
  const symbols = [...state.symbols];
  if (view.symbol && !symbols.includes(view.symbol)) symbols.push(view.symbol);
  if (!view.symbol) view.symbol = symbols[0] || "";
  select.replaceChildren(...symbols.map((s) => el("option", { value: s }, s)));
  select.value = view.symbol;
}

function renderSignal() {
  const signal = state.signals[view.symbol];
  $("signal-empty").hidden = !!signal;
  $("signal-body").hidden = !signal;
  $("signal").dataset.eventId = signal ? signal.event_id : "";
  if (!signal) { text("signal-time", ""); return; }
  $("signal-time").replaceChildren(signal.interval, " bar of ", utc(signal.bar_time));
  const stateNode = $("signal-state");
  stateNode.textContent = signal.state.replace("_", " ");
  stateNode.dataset.state = signal.state;
  text("signal-direction", signal.direction);
  text("signal-confidence", signal.confidence);
  text("signal-agreement", `${percent(signal.consensus.agreement_score)}%`);
  text("signal-price", signal.price);
  $("horizons").tBodies[0].replaceChildren(...signal.horizons.map((h) => el("tr", {},
    el("td", {}, h.interval), el("td", {}, h.direction), el("td", {}, h.strength), el("td", {}, h.confidence), el("td", {}, h.bars))));
  const plan = signal.plan;
  const figures = plan
    ? [["entry", plan.entry], ["stop", plan.stop], ["targets", plan.targets.join(" · ")], ["risk/reward", plan.risk_reward]]
    : [["plan", "none (no trade suggested)"]];
  $("plan").replaceChildren(...figures.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v))));
  text("explanation", signal.explanation || (signal.rationale || []).join("\n"));
}

function cashFigures(account) {
  // cash per quote asset when risk gives it per asset, else the one cash balance
  const perAsset = account.cash_by_asset || account.balances || (typeof account.cash === "object" ? account.cash : null);
  if (perAsset && typeof perAsset === "object") return Object.entries(perAsset).map(([asset, v]) => [`cash ${asset}`, amount(v)]);
  return [["cash", amount(account.cash)]];
}

function renderAccount() {
  const a = state.account;
  if (!a) { $("account-figures").replaceChildren(el("p", { class: "muted" }, "risk has not answered yet")); }
  else {
    const figures = [
      ["equity", amount(a.equity)], ...cashFigures(a),
      ["today's net P&L", signed(a.day_realized_pnl)], ["net P&L", signed(a.net_pnl)],
      ["unrealised P&L", signed(a.unrealized_pnl)], ["drawdown", amount(a.drawdown)],
      ["trading", a.frozen ? "frozen (drawdown limit)" : "on"],
    ];
    $("account-figures").replaceChildren(...figures.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v))));
  }
  const rows = Object.values(state.positions).sort((x, y) => x.symbol.localeCompare(y.symbol));
  $("positions-empty").hidden = rows.length > 0;
  $("positions").tBodies[0].replaceChildren(...rows.map((p) => el("tr", { "data-symbol": p.symbol },
    el("td", {}, p.symbol), el("td", {}, amount(p.quantity)), el("td", {}, amount(p.entry_price)), el("td", {}, amount(p.stop)),
    el("td", {}, (p.targets || []).join(" · ") || "–"), el("td", {}, amount(p.mark_price)), el("td", {}, signed(p.unrealized_pnl)))));
}

function renderDecisions() {
  const items = [...state.decisions].reverse();
  $("decisions-empty").hidden = items.length > 0;
  $("decisions").replaceChildren(...items.map((d) => el("li", { "data-outcome": d.outcome, "data-event-id": d.event_id },
    el("span", { class: "badge" }, d.outcome), el("strong", {}, d.symbol), utc(d.time),
    el("span", { class: "why" }, d.reason, d.detail ? ` — ${d.detail}` : ""))));
}

function renderDaily() {
  const rows = [...state.daily].reverse();
  $("daily-empty").hidden = rows.length > 0;
  $("daily").tBodies[0].replaceChildren(...rows.map((r) => el("tr", {},
    el("td", {}, r.day), el("td", {}, r.trades), el("td", {}, r.wins), el("td", {}, amount(r.win_rate)),
    el("td", {}, signed(r.net_pnl)), el("td", {}, amount(r.fees)), el("td", {}, amount(r.max_drawdown)),
    el("td", {}, amount(r.profit_factor)), el("td", {}, amount(r.sharpe)))));
}

function renderAll() {
  renderSymbols(); renderReadiness(); renderSignal(); renderAccount(); renderDecisions(); renderDaily(); drawEquity();
  drawMarkers(); drawPositionLines();
}

// ------------------------------------------------------------------ live stream
function apply(delta) {
  const d = delta.data;
  switch (delta.kind) {
    case "snapshot": state = d; renderAll(); loadChart(); return;
    case "bar": state.bars[`${d.symbol}|${d.interval}`] = d; liveBar(d); return;
    case "signal":
      state.signals[d.symbol] = d;
      if (delta.marker) (state.markers[d.symbol] = state.markers[d.symbol] || []).push(delta.marker);
      if (!state.symbols.includes(d.symbol)) { state.symbols.push(d.symbol); renderSymbols(); }
      if (d.symbol === view.symbol) { renderSignal(); drawMarkers(); }
      return;
    case "position":
      if (d.status === "closed") delete state.positions[d.symbol]; else state.positions[d.symbol] = d;
      renderAccount(); if (d.symbol === view.symbol) drawPositionLines(); return;
    case "account": state.account = d; renderAccount(); return;
    case "equity": state.equity.push(d); drawEquity(); return;
    case "decision": state.decisions.push(d); if (state.decisions.length > 50) state.decisions.shift(); renderDecisions(); return;
    case "readiness": state.readiness = d; renderReadiness(); return;
    case "daily": state.daily = state.daily.filter((r) => r.day !== d.day).concat([d]).sort((a, b) => a.day.localeCompare(b.day)); renderDaily(); return;
    default: return;
  }
}

function connect() {
  const source = new EventSource("/v1/console/stream");
  const pill = $("connection");
  source.addEventListener("snapshot", (e) => { pill.dataset.state = "live"; pill.textContent = "live"; apply({ kind: "snapshot", data: JSON.parse(e.data) }); });
  source.addEventListener("delta", (e) => apply(JSON.parse(e.data)));
  source.onerror = () => { pill.dataset.state = "reconnecting"; pill.textContent = "reconnecting…"; };
}

// ------------------------------------------------------------------ controls
function setView(symbol, interval) {
  view.symbol = symbol; view.interval = interval;
  const url = new URL(location.href);
  url.searchParams.set("symbol", symbol); url.searchParams.set("interval", interval);
  history.replaceState(null, "", url);
  if (state) { renderSignal(); drawPositionLines(); }
  loadChart();
}

function setTheme(theme) {
  document.documentElement.dataset.theme = theme;
  $("theme").textContent = theme === "dark" ? "☀ light" : "☾ dark";
  localStorage.setItem("tradebus-theme", theme);
  colourCharts(); if (state) { drawMarkers(); drawPositionLines(); }
}

$("intervals").replaceChildren(...INTERVALS.map((iv) => {
  const button = el("button", { type: "button", "data-interval": iv, "aria-pressed": "false" }, iv);
  button.addEventListener("click", () => setView(view.symbol, iv));
  return button;
}));
$("symbol").addEventListener("change", (e) => setView(e.target.value, view.interval));
$("theme").addEventListener("click", () => setTheme(document.documentElement.dataset.theme === "dark" ? "light" : "dark"));

const dialog = $("reset-dialog");
$("reset").addEventListener("click", () => { $("reset-result").hidden = true; dialog.showModal(); });
$("reset-cancel").addEventListener("click", () => { $("reset-token").value = ""; dialog.close(); });
$("reset-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = $("reset-token").value;
  $("reset-token").value = ""; // held only for this one request
  const result = $("reset-result");
  try {
    const response = await fetch("/v1/console/risk/reset", { method: "POST", headers: { Authorization: `Bearer ${token}` } });
    const body = await response.json();
    result.textContent = response.ok ? "risk reset: trading resumes" : `refused (${response.status}): ${typeof body.detail === "string" ? body.detail : JSON.stringify(body)}`;
  } catch (error) {
    result.textContent = `failed: ${error.message}`;
  }
  result.hidden = false;
});

setTheme(localStorage.getItem("tradebus-theme") || (matchMedia("(prefers-color-scheme: light)").matches ? "light" : "dark"));
connect();
