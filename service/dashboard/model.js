// The dashboard's Model tab (issue 15): observed vs imputed curve, a screening's forecast vs what
// happened, and the reaction types' curves and sizes. Every server value goes into the page through
// textContent or Plotly data, never as HTML. Loaded before app.js, which calls modelTab.show(...).
"use strict";

const modelTab = (() => {
  const MODEL_METRICS = ["p_anger", "p_disgust", "p_fear", "p_happiness", "p_sadness", "p_surprise", "p_neutral",
                         "smile", "brow_raise", "brow_furrow", "eye_widen", "mouth_open"];
  const el = (id) => document.getElementById(id);
  const PLOT = { displaylogo: false, responsive: true };
  const MARGIN = { l: 60, r: 20, t: 30, b: 40 };

  function note(id, text) {
    el(id).hidden = !text;
    el(id).textContent = text || "";
  }

  // one filled polygon per run of seconds with both edges (null gaps break the band)
  function band(t, lower, upper, color, name) {
    const x = [], y = [];
    let i = 0;
    while (i < t.length) {
      if (lower[i] === null || upper[i] === null) { i += 1; continue; }
      const start = i;
      while (i < t.length && lower[i] !== null && upper[i] !== null) i += 1;
      if (x.length) { x.push(null); y.push(null); }
      for (let j = start; j < i; j += 1) { x.push(t[j]); y.push(upper[j]); }
      for (let j = i - 1; j >= start; j -= 1) { x.push(t[j]); y.push(lower[j]); }
    }
    return { x, y, mode: "lines", fill: "toself", fillcolor: color + "33", line: { width: 0 }, hoverinfo: "skip",
             name, meta: "model-band" };
  }

  function fillScreenings(select, screenings) {
    const keep = select.value;
    select.replaceChildren(...screenings.map((s) => {
      const option = document.createElement("option");
      option.value = String(s.id);
      option.textContent = `#${s.id}${s.venue ? " " + s.venue : ""}`;
      return option;
    }));
    if (screenings.some((s) => String(s.id) === keep)) select.value = keep;
  }

  async function show(api, contentId, metric, screenings, duration) {
    const status = el("model-note");
    if (!MODEL_METRICS.includes(metric)) {
      note("model-note", `The model reads the expression probabilities and blendshape metrics; choose one of those (not ${metric}).`);
      for (const id of ["model-imputed", "model-forecast", "model-types"]) Plotly.purge(id);
      return;
    }
    let imputed;
    try {
      imputed = await api(`/contents/${contentId}/imputed`, { metrics: metric });
    } catch (err) {
      note("model-note", `${err.message} (fit one with: audience model fit --db URL --content ${contentId})`);
      for (const id of ["model-imputed", "model-forecast", "model-types"]) Plotly.purge(id);
      return;
    }
    status.hidden = true;
    const hidden = imputed.suppressed.filter(Boolean).length;
    note("model-imputed-note", hidden ? `${hidden} second(s) not shown: fewer than ${imputed.min_audience} viewers present.` : "");
    Plotly.react("model-imputed", [
      { x: imputed.t, y: imputed.observed[metric], mode: "lines", name: "observed (faces seen)", meta: "observed",
        line: { color: "#667085", width: 1.5 } },
      { x: imputed.t, y: imputed.imputed[metric], mode: "lines", name: "imputed (every viewer present)", meta: "imputed",
        line: { color: "#3563e9", width: 2 } },
    ], { margin: MARGIN, hovermode: "x unified", legend: { orientation: "h", y: 1.15 },
         xaxis: { title: { text: "content time (s)" } }, yaxis: { title: { text: `${metric}: observed vs imputed` } } }, PLOT);

    fillScreenings(el("model-screening"), screenings);
    if (!el("model-first").value) el("model-first").value = String(Math.max(1, Math.round(Math.min(300, duration * 0.1))));
    await drawForecast(api, contentId, metric);

    const types = await api(`/contents/${contentId}/reaction-types`, { metrics: metric });
    const traces = types.types.map((ty, i) => ({
      x: types.t, y: ty.curve[metric], mode: "lines", name: `type ${ty.index + 1} (${ty.size} viewers)`, meta: "type",
      line: { width: 2, color: ["#3563e9", "#e9573f", "#12b76a", "#9e77ed", "#f79009", "#0ba5ec"][i % 6] },
    }));
    traces.push({ x: types.t, y: types.divergence, mode: "lines", name: "divergence between types (SD)", yaxis: "y2",
                  meta: "divergence", line: { color: "#98a2b3", width: 1, dash: "dot" } });
    note("model-types-note", (types.hidden_types ? `${types.hidden_types} type(s) not shown: fewer than ${types.min_audience} viewers. ` : "")
      + (types.moments.length ? `The types diverge most at ${types.moments.map((m) => `${Math.round(m.t)} s`).join(", ")}.` : ""));
    Plotly.react("model-types", traces, { margin: { ...MARGIN, r: 60 }, hovermode: "x unified", legend: { orientation: "h", y: 1.2 },
      xaxis: { title: { text: "content time (s)" } }, yaxis: { title: { text: `${metric} by reaction type` } },
      yaxis2: { overlaying: "y", side: "right", showgrid: false, title: { text: "divergence" } } }, PLOT);
  }

  async function drawForecast(api, contentId, metric) {
    const sid = Number(el("model-screening").value);
    const first = Number(el("model-first").value);
    if (!sid) { note("model-forecast-note", "No screenings to forecast."); Plotly.purge("model-forecast"); return; }
    try {
      const f = await api(`/contents/${contentId}/forecast`, { screening: sid, first_s: first, metrics: metric });
      const err = f.rmse[metric];
      note("model-forecast-note", `${f.viewers} viewers of screening #${sid}, forecast from their first ${f.first_s} s` +
        (err === null ? "." : `; RMSE against what they did: ${err.toFixed(3)}.`));
      Plotly.react("model-forecast", [
        band(f.t, f.lower[metric], f.upper[metric], "#3563e9", "95% interval"),
        { x: f.t, y: f.predicted[metric], mode: "lines", name: "forecast", meta: "forecast", line: { color: "#3563e9", width: 2 } },
        { x: f.t, y: f.actual[metric], mode: "lines", name: "what happened", meta: "actual", line: { color: "#e9573f", width: 1.5 } },
      ], { margin: MARGIN, hovermode: "x unified", legend: { orientation: "h", y: 1.15 },
           xaxis: { title: { text: "content time (s)" } }, yaxis: { title: { text: `${metric}: forecast vs actual` } } }, PLOT);
    } catch (err) {
      note("model-forecast-note", err.message);
      Plotly.purge("model-forecast");
    }
  }

  return { show, drawForecast, band };
})();
