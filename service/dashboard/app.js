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
const state = { contents: [], screenings: [], series: [], moments: [], cursor: null, live: null, liveData: null };

function label(metric) { return LABELS[metric] || metric; }
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
  b.innerHTML = `${escapeHtml(message)} <input id="key-input" type="password" placeholder="API key (read scope)" ` +
    'aria-label="API key" size="40"> <button id="key-save">Use key</button>';
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
function metric() { return $("metric").value; }
function bucket() { return Number($("bucket").value); }
// n counts face-seconds (a bucket pools whole camera-seconds): at 1 s that is faces
function unitOfN() { return bucket() > 1 ? "face-seconds" : "faces"; }
function checkedScreenings() {
  return [...document.querySelectorAll("#screenings input:checked")].map((el) => Number(el.value));
}

// ---- set-up ---------------------------------------------------------------------------------------

async function init() {
  try {
    const [{ metrics }, contents] = await Promise.all([api("/metrics"), api("/contents")]);
    $("metric").innerHTML = metrics.map((m) => `<option value="${m}">${label(m)}</option>`).join("");
    $("metric").value = metrics.includes("p_happiness") ? "p_happiness" : metrics[0];
    state.contents = contents;
    if (!contents.length) {
      $("empty").hidden = false;
      document.body.dataset.state = "empty";
      return;
    }
    $("content").innerHTML = contents.map((c) => `<option value="${c.id}">${escapeHtml(c.title)} (#${c.id})</option>`).join("");
    const wanted = Number(new URLSearchParams(location.hash.slice(1)).get("content"));
    if (contents.some((c) => c.id === wanted)) $("content").value = wanted;
    $("view").hidden = false;
    for (const id of ["metric", "bucket", "compare"]) $(id).addEventListener("change", () => draw());
    $("metric").addEventListener("change", () => { if ($("live").checked) toggleLive(); });  // the stream is per metric
    $("content").addEventListener("change", () => loadContent());
    $("tab-curve").addEventListener("click", () => showTab("curve"));
    $("tab-norms").addEventListener("click", () => showTab("norms"));
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

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

async function loadContent() {
  stopLive();
  location.hash = `content=${contentId()}`;
  const content = state.contents.find((c) => c.id === contentId());
  $("duration").textContent = content ? `${clock(content.duration_s)} long` : "";
  state.screenings = await api("/screenings", { content_id: contentId() });
  const box = $("screenings");
  box.innerHTML = "<legend>Screenings</legend>" + (state.screenings.length ? state.screenings.map((s) => {
    const tags = Object.entries(s.labels).map(([k, v]) => `${escapeHtml(k)}=${escapeHtml(v)}`).join(", ");
    return `<label><input type="checkbox" value="${s.id}" checked> #${s.id}${s.venue ? " " + escapeHtml(s.venue) : ""}` +
      `${tags ? ` <span class="muted">${tags}</span>` : ""}</label>`;
  }).join("") : '<span class="muted">This content has no screenings yet.</span>');
  box.querySelectorAll("input").forEach((el) => el.addEventListener("change", () => draw()));
  const keys = [...new Set(state.screenings.flatMap((s) => Object.keys(s.labels)))].sort();
  $("compare").innerHTML = '<option value="">all together</option><option value="screening">each screening</option>' +
    keys.map((k) => `<option value="label:${escapeHtml(k)}">by ${escapeHtml(k)}</option>`).join("");
  const options = state.screenings.map((s) => `<option value="${s.id}">#${s.id}${s.venue ? " " + escapeHtml(s.venue) : ""}</option>`).join("");
  $("norm-screening").innerHTML = options;
  $("live-screening").innerHTML = options;
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
    document.body.dataset.state = "ready";
  } catch (err) {
    if (!err.handled) showError(err.message);
    document.body.dataset.state = err.handled ? "key" : "error";
  }
}

// the range a metric can take: a CI band is drawn clipped to it (the API gives the unclipped numbers)
function metricRange(m) {
  if (m === "valence") return [-1, 1];
  if (["yaw", "pitch", "roll"].includes(m)) return [-180, 180];
  return [0, 1];
}

function bandTraces(name, color, t, mean, ci, group) {
  const [lo, hi] = metricRange(metric());
  const upper = mean.map((m, i) => (m === null || ci[i] === null ? null : Math.min(m + ci[i], hi)));
  const lower = mean.map((m, i) => (m === null || ci[i] === null ? null : Math.max(m - ci[i], lo)));
  return [
    { x: t, y: lower, mode: "lines", line: { width: 0 }, hoverinfo: "skip", showlegend: false, legendgroup: group, meta: "band" },
    { x: t, y: upper, mode: "lines", line: { width: 0 }, fill: "tonexty", fillcolor: color + "33", hoverinfo: "skip",
      showlegend: false, legendgroup: group, meta: "band" },
    { x: t, y: mean, mode: "lines", name, line: { color, width: 2 }, legendgroup: group, meta: "mean",
      hovertemplate: `${name}<br>%{x:.0f} s: %{y:.3f}<extra></extra>` },
  ];
}

function renderCurves() {
  const traces = [], faces = [];
  state.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    traces.push(...bandTraces(s.name, color, s.curve.t, s.curve.mean[metric()], s.curve.ci95[metric()], s.name));
    faces.push({ x: s.curve.t, y: s.curve.n, type: "bar", name: s.name, marker: { color }, meta: "faces",
                 hovertemplate: `${s.name}<br>%{x:.0f} s: %{y} ${unitOfN()}<extra></extra>`, showlegend: false });
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
    return `<div>${escapeHtml(s.name)}: <b>${fmt(value)}</b> ± ${fmt(i < 0 ? null : s.curve.ci95[metric()][i])} ` +
      `<span class="muted">(${i < 0 ? `0 ${unitOfN()}` : s.curve.suppressed[i] ? `fewer than ${s.curve.min_audience} faces`
        : `${s.curve.n[i]} ${unitOfN()}`})</span></div>`;
  });
  $("readout").innerHTML = `<div><b>${clock(t)}</b> (${t} s)</div>` + rows.join("");
  document.querySelectorAll("#moments li").forEach((li) => li.classList.toggle("active", Number(li.dataset.t) === t));
}

function renderMoments() {
  const list = $("moments");
  if (!state.moments.length) {
    list.innerHTML = '<li class="muted">No peaks in this curve.</li>';
    return;
  }
  list.innerHTML = state.moments.map((m) => `<li data-t="${m.t}">${clock(m.t)} – ${fmt(m.value)} ` +
    `<span class="muted">(+${fmt(m.prominence)}, ${m.duration_s.toFixed(0)} s)</span></li>`).join("");
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
  $("tab-curve").setAttribute("aria-selected", String(name === "curve"));
  $("tab-norms").setAttribute("aria-selected", String(name === "norms"));
  $("curve-view").hidden = name !== "curve";
  $("norms-view").hidden = name !== "norms";
  if (name === "norms") drawNorms(); else Plotly.Plots.resize("chart");
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
  $("sources").innerHTML = "";
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
    $("sources").innerHTML = list.length ? list.map((s) => {
      const cls = s.stale ? "stale" : s.state;
      const d = s.detail || {};
      return `<div><span class="badge ${cls}">${escapeHtml(s.camera)}: ${s.stale ? "no report" : s.state}</span> ` +
        `<span class="muted">${d.analysis_fps ?? "–"} fps, ${d.frames_dropped ?? 0} dropped, spool ${d.spool_depth ?? 0}</span></div>`;
    }).join("") : '<p class="muted">No live source has reported for this screening.</p>';
  });
  source.addEventListener("gaps", (ev) => { state.live.gaps = JSON.parse(ev.data); renderCurves(); });
  source.onerror = () => showError("Live updates interrupted; retrying…");
  source.onopen = () => showError("");
}

init();
