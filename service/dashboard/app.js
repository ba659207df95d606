// The dashboard: contents -> screenings -> curves (mean and 95% CI per bucket), moments, norms, live.
// Talks only to this service's /api/v1; draws with Plotly.js served from /assets.
"use strict";

const API = "/api/v1";
const $ = (id) => document.getElementById(id);
const COLORS = ["#3563e9", "#e9573f", "#12b76a", "#9e77ed", "#f79009", "#0ba5ec", "#667085"];
const LABELS = {
  p_anger: "Anger", p_disgust: "Disgust", p_fear: "Fear", p_happiness: "Happiness", p_sadness: "Sadness",
  p_surprise: "Surprise", p_neutral: "Neutral", smile: "Smile", brow_raise: "Brow raise",
  brow_furrow: "Brow furrow", eye_widen: "Eye widen", mouth_open: "Mouth open", valence: "Valence",
  yaw: "Head yaw (°)", pitch: "Head pitch (°)", roll: "Head roll (°)", attention: "Attention",
};
const state = { contents: [], screenings: [], series: [], moments: [], cursor: null, live: null, liveData: null,
                deltas: new Set() };

function label(metric) {
  return metric.endsWith("_delta") ? `${label(metric.slice(0, -6))}: reaction (vs. own baseline)` : LABELS[metric] || metric;
}

// Every value from the server reaches the page as text: elements are built here and filled through
// textContent / attributes, never by parsing HTML (the service's Content-Security-Policy forbids inline
// script as a second line of defence).
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v; else if (v === true) el.setAttribute(k, ""); else el.setAttribute(k, String(v));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}
function fill(el, ...children) { el.replaceChildren(...children.flat()); return el; }
function option(value, text) { return h("option", { value }, text); }
// Plotly reads trace names as its own small markup (<b>, <br>, ...): server text is shown literally
function plotText(text) { return String(text).replace(/[&<>]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;" }[c])); }
function clock(t) {
  const s = Math.max(0, Math.round(t)), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}
function fmt(v) { return v === null || v === undefined ? "–" : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(3); }

function showError(message) {
  const b = $("banner");
  b.textContent = message;
  b.hidden = !message;
}

// With API keys configured the service answers 401 until the page has one: asked for once, kept for the
// browser tab only (sessionStorage), sent as a Bearer header (and as access_token on the event stream).
function key() { return sessionStorage.getItem("audience-key") || ""; }
function authHeaders() { return key() ? { Authorization: `Bearer ${key()}` } : {}; }

function askForKey(message) {
  const b = $("banner");
  b.hidden = false;
  fill(b, `${message} `, h("input", { id: "key-input", type: "password", placeholder: "API key (read scope)",
                                      "aria-label": "API key", size: 40 }), " ", h("button", { id: "key-save" }, "Use key"));
  $("key-save").addEventListener("click", () => {
    sessionStorage.setItem("audience-key", $("key-input").value.trim());
    location.reload();
  });
}

async function api(path, params) {
  const url = new URL(API + path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    for (const item of [].concat(v)) if (item !== undefined && item !== null && item !== "") url.searchParams.append(k, item);
  }
  let response;
  try {
    response = await fetch(url, { headers: authHeaders() });
  } catch (err) {
    throw new Error(`The service cannot be reached (${err.message}). Is audience serve still running?`);
  }
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    if (typeof detail !== "string") detail = JSON.stringify(detail);
    if (response.status === 401) {
      askForKey(`This service needs an API key: ${detail}.`);
      const err = new Error(detail);
      err.handled = true;
      throw err;
    }
    throw new Error(`${response.status} from ${url.pathname}: ${detail}`);
  }
  return response.json();
}

function contentId() { return Number($("content").value); }
// reaction mode reads each viewer against their own resting baseline: the metric's `_delta` twin
function metric() { return $("metric").value + ($("reaction").checked && state.deltas.has($("metric").value) ? "_delta" : ""); }
function bucket() { return Number($("bucket").value); }
// n counts face-seconds (a bucket pools whole camera-seconds): at 1 s that is faces
function unitOfN() { return bucket() > 1 ? "face-seconds" : "faces"; }
function checkedScreenings() {
  return [...document.querySelectorAll("#screenings input:checked")].map((el) => Number(el.value));
}

// ---- set-up ---------------------------------------------------------------------------------------

async function init() {
  try {
    const [{ metrics: all }, contents] = await Promise.all([api("/metrics"), api("/contents")]);
    const metrics = all.filter((m) => !m.endsWith("_delta"));
    state.deltas = new Set(all.filter((m) => m.endsWith("_delta")).map((m) => m.slice(0, -6)));
    fill($("metric"), metrics.map((m) => option(m, label(m))));
    $("metric").value = metrics.includes("p_happiness") ? "p_happiness" : metrics[0];
    state.contents = contents;
    if (!contents.length) {
      $("empty").hidden = false;
      document.body.dataset.state = "empty";
      return;
    }
    fill($("content"), contents.map((c) => option(c.id, `${c.title} (#${c.id})`)));
    const wanted = Number(new URLSearchParams(location.hash.slice(1)).get("content"));
    if (contents.some((c) => c.id === wanted)) $("content").value = wanted;
    $("view").hidden = false;
    for (const id of ["metric", "bucket", "compare", "reaction"]) $(id).addEventListener("change", () => draw());
    for (const id of ["metric", "reaction"]) {  // the stream is per metric
      $(id).addEventListener("change", () => { if ($("live").checked) toggleLive(); });
    }
    $("content").addEventListener("change", () => loadContent());
    $("tab-curve").addEventListener("click", () => showTab("curve"));
    $("tab-norms").addEventListener("click", () => showTab("norms"));
    $("tab-model").addEventListener("click", () => showTab("model"));
    for (const id of ["model-screening", "model-first"]) {
      $(id).addEventListener("change", () => modelTab.drawForecast(api, contentId(), metric()));
    }
    $("norm-screening").addEventListener("change", () => drawNorms());
    $("live").addEventListener("change", () => toggleLive());
    $("live-screening").addEventListener("change", () => { if ($("live").checked) toggleLive(); });
    for (const format of ["csv", "parquet"]) $(`export-${format}`).addEventListener("click", (ev) => download(ev, format));
    await loadContent();
  } catch (err) {
    if (!err.handled) showError(err.message);
    document.body.dataset.state = err.handled ? "key" : "error";
  }
}

async function loadContent() {
  stopLive();
  location.hash = `content=${contentId()}`;
  const content = state.contents.find((c) => c.id === contentId());
  $("duration").textContent = content ? `${clock(content.duration_s)} long` : "";
  state.screenings = await api("/screenings", { content_id: contentId() });
  const box = $("screenings");
  fill(box, h("legend", {}, "Screenings"), state.screenings.length ? state.screenings.map((s) => {
    const tags = Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(", ");
    return h("label", {}, h("input", { type: "checkbox", value: s.id, checked: true }),
             ` #${s.id}${s.venue ? " " + s.venue : ""}`, tags ? [" ", h("span", { class: "muted" }, tags)] : null);
  }) : h("span", { class: "muted" }, "This content has no screenings yet."));
  box.querySelectorAll("input").forEach((el) => el.addEventListener("change", () => draw()));
  const keys = [...new Set(state.screenings.flatMap((s) => Object.keys(s.labels)))].sort();
  fill($("compare"), option("", "all together"), option("screening", "each screening"),
       keys.map((k) => option(`label:${k}`, `by ${k}`)));
  const options = () => state.screenings.map((s) => option(s.id, `#${s.id}${s.venue ? " " + s.venue : ""}`));
  fill($("norm-screening"), options());
  fill($("live-screening"), options());
  await draw();
}

// ---- curves ---------------------------------------------------------------------------------------

function selections() {
  const chosen = checkedScreenings();
  const mode = $("compare").value;
  const all = chosen.length === state.screenings.length;
  if (!mode) return [{ name: all ? "all screenings" : `${chosen.length} screenings`, screenings: all ? null : chosen }];
  if (mode === "screening") return chosen.map((id) => ({ name: `screening #${id}`, screenings: [id] }));
  const key = mode.slice("label:".length);
  const groups = new Map();
  for (const s of state.screenings) {
    if (!chosen.includes(s.id) || !(key in s.labels)) continue;
    const value = s.labels[key];
    if (!groups.has(value)) groups.set(value, []);
    groups.get(value).push(s.id);
  }
  return [...groups.entries()].sort().map(([value, ids]) => ({ name: `${key}=${value}`, screenings: ids }));
}

function curveParams(selection, extra) {
  return { metrics: metric(), bucket: bucket(), screenings: selection.screenings ? selection.screenings.join(",") : null, ...extra };
}

async function draw() {
  document.body.dataset.state = "loading";
  showError("");
  try {
    const chosen = checkedScreenings();
    const sels = chosen.length ? selections() : [];
    state.series = await Promise.all(sels.map(async (sel) => ({ ...sel, curve: await api(`/contents/${contentId()}/curves`, curveParams(sel)) })));
    const withData = state.series.filter((s) => s.curve.t.length);
    const note = $("chart-note");
    note.hidden = withData.length > 0;
    note.textContent = !state.screenings.length ? "No screenings yet: add one through the API, then store an analysis in it."
      : !chosen.length ? "No screening selected: tick at least one above."
      : !sels.length ? "None of the selected screenings carries this label."
      : "No reaction data for this selection yet (nothing analysed, or fewer faces than needed).";
    const hidden = state.series.reduce((sum, s) => sum + s.curve.suppressed.filter(Boolean).length, 0);
    const minimum = state.series.length ? state.series[0].curve.min_audience : 1;
    $("suppressed-note").hidden = hidden === 0;
    $("suppressed-note").textContent = `${hidden} bucket(s) not shown: fewer than ${minimum} faces behind them ` +
      "(the minimum audience size, so that no one can be singled out). A camera's second with fewer faces is " +
      "left out of every curve, whatever the bucket or selection.";
    state.moments = [];
    if (withData.length) {
      const all = chosen.length === state.screenings.length;
      const m = await api(`/contents/${contentId()}/moments`, { metric: metric(), bucket: bucket(), top: 5, screenings: all ? null : chosen.join(",") });
      state.moments = m.moments;
    }
    renderCurves();
    renderMoments();
    if (state.cursor !== null) setCursor(state.cursor);
    updateExports();
    if (!$("norms-view").hidden) await drawNorms();
    if (!$("model-view").hidden) await drawModel();
    document.body.dataset.state = "ready";
  } catch (err) {
    if (!err.handled) showError(err.message);
    document.body.dataset.state = err.handled ? "key" : "error";
  }
}

// the range a metric can take: a CI band is drawn clipped to it (the API gives the unclipped numbers)
function metricRange(m) {
  if (m === "valence_delta") return [-2, 2];
  if (m.endsWith("_delta") || m === "valence") return [-1, 1];
  if (["yaw", "pitch", "roll"].includes(m)) return [-180, 180];
  return [0, 1];
}

function bandTraces(name, color, t, mean, ci, group) {
  const [lo, hi] = metricRange(metric());
  const upper = mean.map((m, i) => (m === null || ci[i] === null ? null : Math.min(m + ci[i], hi)));
  const lower = mean.map((m, i) => (m === null || ci[i] === null ? null : Math.max(m - ci[i], lo)));
  // the band breaks where a bucket has no interval: one closed polygon per run between null gaps (a
  // "tonexty" fill between two lines is drawn across such a gap as a triangle)
  const polygon = modelTab.band(t, lower, upper, color, group);
  return [
    { x: t, y: lower, mode: "lines", line: { width: 0 }, hoverinfo: "skip", showlegend: false, legendgroup: group, meta: "band" },
    { ...polygon, showlegend: false, legendgroup: group, meta: "band" },
    { x: t, y: mean, mode: "lines", name: plotText(name), line: { color, width: 2 }, legendgroup: group, meta: "mean",
      hovertemplate: "%{fullData.name}<br>%{x:.0f} s: %{y:.3f}<extra></extra>" },
  ];
}

function renderCurves() {
  const traces = [], faces = [];
  state.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    traces.push(...bandTraces(s.name, color, s.curve.t, s.curve.mean[metric()], s.curve.ci95[metric()], s.name));
    faces.push({ x: s.curve.t, y: s.curve.n, type: "bar", name: plotText(s.name), marker: { color }, meta: "faces",
                 hovertemplate: `%{fullData.name}<br>%{x:.0f} s: %{y} ${unitOfN()}<extra></extra>`, showlegend: false });
  });
  if (state.liveData) {
    const d = state.liveData;
    traces.push(...bandTraces(`live: screening #${d.screening}`, "#dd2590", d.t, d.mean, d.ci, "live"));
  }
  if (state.moments.length) {
    traces.push({ x: state.moments.map((m) => m.t), y: state.moments.map((m) => m.value), mode: "markers+text",
                  text: state.moments.map((_, i) => String(i + 1)), textposition: "top center",
                  name: "moments (all selected screenings)",
                  marker: { size: 10, symbol: "diamond", color: "#101828" }, meta: "moments",
                  hovertemplate: "moment %{text}: %{x:.0f} s<extra></extra>" });
  }
  const times = state.series.flatMap((s) => s.curve.t).concat(state.liveData ? state.liveData.t : []);
  const half = bucket() / 2;
  const axis = { title: { text: "content time (s)" }, zeroline: false,  // both charts share the time range
                 range: times.length ? [Math.min(...times) - half, Math.max(...times) + half] : undefined };
  const layout = { margin: { l: 60, r: 20, t: 30, b: 40 }, xaxis: axis, hovermode: "x unified",
                   yaxis: { title: { text: `${label(metric())} (mean, 95% CI)` } }, shapes: cursorShapes(),
                   legend: { orientation: "h", y: 1.12 } };
  Plotly.react("chart", traces, layout, { displaylogo: false, responsive: true });
  Plotly.react("faces", faces, { margin: { l: 60, r: 20, t: 10, b: 30 }, barmode: "group", xaxis: axis,
                                 yaxis: { title: { text: "faces" } }, shapes: cursorShapes() },
               { displaylogo: false, responsive: true });
  const chart = $("chart");
  if (!chart.dataset.clicks) {
    chart.on("plotly_click", (ev) => { if (ev.points && ev.points.length) setCursor(ev.points[0].x); });
    chart.dataset.clicks = "1";
  }
}

function cursorShapes() {
  const shapes = [];
  if (state.cursor !== null) {
    shapes.push({ type: "line", x0: state.cursor, x1: state.cursor, yref: "paper", y0: 0, y1: 1, name: "cursor",
                  line: { color: "#101828", width: 1, dash: "dot" } });
  }
  for (const gap of (state.live && state.live.gaps) || []) {
    shapes.push({ type: "rect", x0: gap.start_s, x1: gap.end_s, yref: "paper", y0: 0, y1: 1, name: "gap",
                  fillcolor: "#98a2b3", opacity: 0.25, line: { width: 0 } });
  }
  return shapes;
}

function setCursor(t) {
  state.cursor = t;
  for (const id of ["chart", "faces"]) Plotly.relayout(id, { shapes: cursorShapes() });
  const rows = state.series.map((s) => {
    const i = s.curve.t.indexOf(t);
    const value = i < 0 ? null : s.curve.mean[metric()][i];
    const count = i < 0 ? `0 ${unitOfN()}` : s.curve.suppressed[i] ? `fewer than ${s.curve.min_audience} faces`
      : `${s.curve.n[i]} ${unitOfN()}`;
    return h("div", {}, `${s.name}: `, h("b", {}, fmt(value)), ` ± ${fmt(i < 0 ? null : s.curve.ci95[metric()][i])} `,
             h("span", { class: "muted" }, `(${count})`));
  });
  fill($("readout"), h("div", {}, h("b", {}, clock(t)), ` (${t} s)`), rows);
  document.querySelectorAll("#moments li").forEach((li) => li.classList.toggle("active", Number(li.dataset.t) === t));
}

function renderMoments() {
  const list = $("moments");
  if (!state.moments.length) {
    fill(list, h("li", { class: "muted" }, "No peaks in this curve."));
    return;
  }
  fill(list, state.moments.map((m) => h("li", { "data-t": m.t }, `${clock(m.t)} – ${fmt(m.value)} `,
    h("span", { class: "muted" }, `(+${fmt(m.prominence)}, ${Number(m.duration_s).toFixed(0)} s)`))));
  list.querySelectorAll("li").forEach((li) => li.addEventListener("click", () => setCursor(Number(li.dataset.t))));
}

function updateExports() {
  const sel = selections()[0] || { screenings: null };
  for (const format of ["csv", "parquet"]) {
    const url = new URL(`${API}/contents/${contentId()}/curves`, location.origin);
    for (const [k, v] of Object.entries(curveParams(sel, { format, metrics: metric() }))) if (v !== null) url.searchParams.set(k, v);
    $(`export-${format}`).href = url.pathname + url.search;
  }
}

async function download(ev, format) {
  // fetched with the key (a plain link cannot send it), then saved from memory
  ev.preventDefault();
  try {
    const response = await fetch(ev.currentTarget.getAttribute("href"), { headers: authHeaders() });
    if (!response.ok) throw new Error(`${response.status}: ${(await response.json()).detail}`);
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = `content${contentId()}_${metric()}.${format}`;
    link.click();
    URL.revokeObjectURL(link.href);
  } catch (err) {
    showError(`Export failed: ${err.message}`);
  }
}

// ---- norms ----------------------------------------------------------------------------------------

function showTab(name) {
  for (const tab of ["curve", "norms", "model"]) {
    $(`tab-${tab}`).setAttribute("aria-selected", String(name === tab));
    $(`${tab}-view`).hidden = name !== tab;
  }
  if (name === "norms") drawNorms();
  else if (name === "model") drawModel();
  else Plotly.Plots.resize("chart");
}

function drawModel() {
  const content = state.contents.find((c) => c.id === contentId());
  return modelTab.show(api, contentId(), metric(), state.screenings, content ? content.duration_s : 600);
}

async function drawNorms() {
  const sid = Number($("norm-screening").value);
  const note = $("norm-note");
  if (!sid) {
    note.hidden = false;
    note.textContent = "No screenings yet.";
    Plotly.purge("norm-chart");
    return;
  }
  try {
    const n = await api(`/contents/${contentId()}/norms`, { screening: sid, metric: metric() });
    const usable = n.z.some((z) => z !== null);
    note.hidden = usable;
    note.textContent = n.others.length < 2 ? "Norms need at least two other screenings of this content to compare with."
      : "No second of this screening overlaps the others.";
    const band = { type: "rect", xref: "paper", x0: 0, x1: 1, y0: -1.96, y1: 1.96, fillcolor: "#98a2b3", opacity: 0.15, line: { width: 0 } };
    Plotly.react("norm-chart", [{ x: n.t, y: n.z, mode: "lines", name: `screening #${sid}`, meta: "z",
                                  hovertemplate: "%{x:.0f} s: z = %{y:.2f}<extra></extra>" }],
                 { margin: { l: 60, r: 20, t: 30, b: 40 }, shapes: [band], xaxis: { title: { text: "content time (s)" } },
                   yaxis: { title: { text: `${label(metric())}: z against ${n.others.length} other screenings` } } },
                 { displaylogo: false, responsive: true });
  } catch (err) {
    showError(err.message);
  }
}

// ---- live -----------------------------------------------------------------------------------------

function stopLive() {
  if (state.live) state.live.source.close();
  state.live = null;
  state.liveData = null;
  fill($("sources"));
}

function toggleLive() {
  stopLive();
  if (!$("live").checked) { renderCurves(); return; }
  const sid = Number($("live-screening").value);
  if (!sid) { showError("Choose a screening to follow."); $("live").checked = false; return; }
  const token = key() ? `&access_token=${encodeURIComponent(key())}` : "";
  const source = new EventSource(`${API}/screenings/${sid}/live?metrics=${encodeURIComponent(metric())}${token}`);
  const points = new Map();
  state.live = { source, gaps: [], sid };
  state.liveData = { screening: sid, t: [], mean: [], ci: [] };
  source.addEventListener("points", (ev) => {
    const p = JSON.parse(ev.data);
    p.t.forEach((t, i) => points.set(t, [p.mean[metric()][i], p.ci95[metric()][i], p.n[i]]));
    const t = [...points.keys()].sort((a, b) => a - b);
    state.liveData = { screening: sid, t, mean: t.map((x) => points.get(x)[0]), ci: t.map((x) => points.get(x)[1]) };
    renderCurves();
    document.body.dataset.live = String(t.length);
  });
  source.addEventListener("sources", (ev) => {
    const list = JSON.parse(ev.data);
    const states = ["starting", "running", "reconnecting", "stopped"];
    fill($("sources"), list.length ? list.map((s) => {
      const cls = s.stale ? "stale" : states.includes(s.state) ? s.state : "unknown";
      const d = s.detail || {};
      const number = (v, fallback) => (typeof v === "number" ? v : fallback);
      return h("div", {}, h("span", { class: `badge ${cls}` }, `${s.camera}: ${s.stale ? "no report" : s.state}`), " ",
               h("span", { class: "muted" }, `${number(d.analysis_fps, "–")} fps, ${number(d.frames_dropped, 0)} dropped, ` +
                 `spool ${number(d.spool_depth, 0)}`));
    }) : h("p", { class: "muted" }, "No live source has reported for this screening."));
  });
  source.addEventListener("gaps", (ev) => { state.live.gaps = JSON.parse(ev.data); renderCurves(); });
  source.addEventListener("error", (ev) => {  // the service ended the stream (e.g. the key was revoked)
    if (!ev.data) return;
    source.close();
    showError(`Live updates stopped: ${JSON.parse(ev.data).detail}`);
  });
  source.onerror = () => showError("Live updates interrupted; retrying…");
  source.onopen = () => showError("");
}

init();
