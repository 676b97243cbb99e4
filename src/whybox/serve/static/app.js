// whybox dashboard: one page, vanilla JS, no network beyond this server.
// Every string from the served files (feature names, tokens, explanations, paths) is put in
// the page with textContent / createTextNode / setAttribute: never parsed as HTML.
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const $main = () => document.getElementById("main");

function el(tag, attrs, ...kids) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "on") { for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn); }
    else if (k === "style") { for (const [sk, sv] of Object.entries(v)) node.style.setProperty(sk, sv); }
    else node.setAttribute(k, String(v));
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    node.appendChild(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return node;
}

function svg(tag, attrs, ...kids) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined) continue;
    node.appendChild(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return node;
}

function fmt(x, d = 3) {
  if (x === null || x === undefined) return "–";
  if (typeof x !== "number") return String(x);
  if (x !== 0 && (Math.abs(x) < 1e-3 || Math.abs(x) >= 1e5)) return x.toExponential(2);
  return x.toFixed(d);
}

function short(s, n = 60) { s = String(s); return s.length > n ? s.slice(0, n - 1) + "…" : s; }

// visible whitespace for tokens
function visible(tok) {
  if (tok === null || tok === undefined) return "∅";
  return String(tok).replace(/\n/g, "↵").replace(/\t/g, "⇥");
}

// signed colour: blue (negative) - white - red (positive), as shap's colours
function colour(v, vmax) {
  if (v === null || v === undefined || !isFinite(v) || !vmax) return "rgb(255,255,255)";
  const t = Math.max(-1, Math.min(1, v / vmax));
  const [r, g, b] = t >= 0 ? [255, 0, 81] : [0, 139, 251];
  const a = Math.abs(t);
  const mix = (c) => Math.round(255 + (c - 255) * a);
  return `rgb(${mix(r)},${mix(g)},${mix(b)})`;
}

function seqColour(t) { // 0..1 -> white..orange-red (activations, probabilities)
  if (t === null || !isFinite(t)) return "rgb(255,255,255)";
  t = Math.max(0, Math.min(1, t));
  return `rgb(255,${Math.round(255 - 150 * t)},${Math.round(255 - 230 * t)})`;
}

function href(route, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== null && v !== undefined) q.set(k, v);
  return `#/${route}?${q.toString()}`;
}

function link(route, params, text) { return el("a", { href: href(route, params) }, text); }

async function api(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== null && v !== undefined && v !== "") q.set(k, v);
  const r = await fetch(`${path}?${q.toString()}`, { headers: { Accept: "application/json" } });
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) {
    const d = body && body.detail;
    throw new Error(`${r.status}: ${typeof d === "string" ? d : JSON.stringify(d)}`);
  }
  return body;
}

function errorBox(e) { return el("p", { class: "error" }, String(e && e.message ? e.message : e)); }

function setPage(...kids) {
  const m = $main();
  m.replaceChildren(...kids.flat().filter((k) => k));
}

function crumbs(...items) {
  const nav = document.getElementById("crumbs");
  nav.replaceChildren(...items.map((it) => (it instanceof Node ? it : el("span", {}, it))));
}

// ---------------------------------------------------------------- charts --
function barChart(items, opts = {}) {
  // items: [{label, value}] -> horizontal bars
  const w = opts.width || 560, rowH = 20, left = opts.left || 200;
  const h = items.length * rowH + 24;
  const vals = items.map((d) => d.value || 0);
  const lo = Math.min(0, ...vals), hi = Math.max(0, ...vals);
  const span = hi - lo || 1;
  const x = (v) => left + ((v - lo) / span) * (w - left - 60);
  const s = svg("svg", { width: w, height: h, role: "img" });
  items.forEach((d, i) => {
    const y = i * rowH + 4;
    const v = d.value || 0;
    s.appendChild(svg("text", { x: left - 6, y: y + 13, "text-anchor": "end" }, short(d.label, 32)));
    s.appendChild(svg("rect", { x: Math.min(x(0), x(v)), y, width: Math.max(1, Math.abs(x(v) - x(0))),
      height: rowH - 6, fill: v >= 0 ? "#ff0051" : "#008bfb" }));
    s.appendChild(svg("text", { x: Math.max(x(0), x(v)) + 4, y: y + 13 }, fmt(v)));
  });
  s.appendChild(svg("line", { x1: x(0), x2: x(0), y1: 0, y2: h - 20, stroke: "#999" }));
  return s;
}

function beeswarmChart(data) {
  const w = 720, rowH = 26, left = 200;
  const h = data.features.length * rowH + 30;
  let lo = 0, hi = 0;
  for (const f of data.features) for (const v of f.values) if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  const span = hi - lo || 1;
  const x = (v) => left + ((v - lo) / span) * (w - left - 20);
  const s = svg("svg", { width: w, height: h, class: "beeswarm" });
  data.features.forEach((f, i) => {
    const y0 = i * rowH + 14;
    s.appendChild(svg("text", { x: left - 6, y: y0 + 4, "text-anchor": "end" }, short(f.feature, 32)));
    f.values.forEach((v, r) => {
      if (v === null) return;
      const jitter = (((r * 2654435761) % 1000) / 1000 - 0.5) * (rowH - 10);
      const c = f.colour ? f.colour[r] : null;
      const fill = c === null || c === undefined ? "#888" : `rgb(${Math.round(0 + 255 * c)},${Math.round(139 - 139 * c)},${Math.round(251 - 170 * c)})`;
      s.appendChild(svg("circle", { cx: x(v), cy: y0 + jitter, r: 2.5, fill, "fill-opacity": 0.75 }));
    });
  });
  s.appendChild(svg("line", { x1: x(0), x2: x(0), y1: 0, y2: h - 16, stroke: "#999" }));
  s.appendChild(svg("text", { x: left, y: h - 2 }, "attribution (colour: feature value rank, blue low – red high)"));
  return s;
}

function waterfall(row) {
  const steps = row.steps.map((s) => ({ label: s.data === null ? s.feature : `${s.feature} = ${s.data}`, value: s.value }));
  if (row.rest.n) steps.push({ label: `${row.rest.n} other features`, value: row.rest.value });
  const w = 720, rowH = 22, left = 260;
  const base = row.base_value || 0;
  let cum = base;
  const pts = [base];
  for (const s of steps) { cum += s.value || 0; pts.push(cum); }
  const lo = Math.min(...pts), hi = Math.max(...pts), span = hi - lo || 1;
  const x = (v) => left + ((v - lo) / span) * (w - left - 80);
  const h = (steps.length + 2) * rowH + 10;
  const s = svg("svg", { width: w, height: h, class: "waterfall" });
  let acc = base;
  s.appendChild(svg("text", { x: left - 6, y: 14, "text-anchor": "end" }, "base value"));
  s.appendChild(svg("text", { x: x(base) + 4, y: 14 }, fmt(base)));
  steps.forEach((st, i) => {
    const y = (i + 1) * rowH;
    const next = acc + (st.value || 0);
    s.appendChild(svg("text", { x: left - 6, y: y + 14, "text-anchor": "end" }, short(st.label, 40)));
    s.appendChild(svg("rect", { x: Math.min(x(acc), x(next)), y: y + 3, width: Math.max(1, Math.abs(x(next) - x(acc))),
      height: rowH - 6, fill: st.value >= 0 ? "#ff0051" : "#008bfb" }));
    s.appendChild(svg("text", { x: Math.max(x(acc), x(next)) + 4, y: y + 14 }, (st.value >= 0 ? "+" : "") + fmt(st.value)));
    acc = next;
  });
  const yEnd = (steps.length + 1) * rowH;
  s.appendChild(svg("text", { x: left - 6, y: yEnd + 14, "text-anchor": "end" }, row.prediction === null ? "base + sum" : "prediction"));
  s.appendChild(svg("text", { x: x(acc) + 4, y: yEnd + 14 }, fmt(row.prediction === null ? acc : row.prediction)));
  s.appendChild(svg("line", { x1: x(acc), x2: x(acc), y1: rowH, y2: yEnd + 4, stroke: "#555", "stroke-dasharray": "3 3" }));
  return s;
}

function tokenSpans(tokens, values, opts = {}) {
  const vmax = opts.vmax || Math.max(1e-12, ...values.map((v) => Math.abs(v || 0)));
  const sequential = !!opts.sequential;
  return tokens.map((t, k) => el("span", {
    class: "tok" + (k === opts.center ? " center" : ""),
    title: `${visible(t)}: ${fmt(values[k])}`,
    style: { background: sequential ? seqColour((values[k] || 0) / vmax) : colour(values[k], vmax) },
  }, visible(t)));
}

function heatmapTable(rows, cols, values, text, opts = {}) {
  let vmax = 0;
  for (const r of values) for (const v of r) if (v !== null && isFinite(v)) vmax = Math.max(vmax, Math.abs(v));
  const t = el("table", { class: "heatmap" });
  t.appendChild(el("tr", {}, el("th", {}, opts.corner || ""), cols.map((c) => el("th", { class: "grid-cell" }, short(c, 16)))));
  rows.forEach((r, i) => {
    t.appendChild(el("tr", {}, el("th", {}, short(r, 30)), cols.map((c, j) => {
      const v = values[i][j];
      const label = text && text[i] && text[i][j] !== null && text[i][j] !== undefined ? visible(text[i][j]) : fmt(v, 2);
      return el("td", { class: "grid-cell", title: `${r} / ${c}: ${fmt(v)}`,
        style: { background: opts.sequential ? seqColour(vmax ? v / vmax : 0) : colour(v, vmax) } }, label);
    })));
  });
  return t;
}

function histogram(h) {
  const w = 420, hh = 120, n = h.counts.length;
  const max = Math.max(1, ...h.counts);
  const s = svg("svg", { width: w, height: hh + 30, class: "histogram" });
  const bw = (w - 20) / n;
  h.counts.forEach((c, i) => {
    const bh = (c / max) * hh;
    s.appendChild(svg("rect", { x: 10 + i * bw, y: hh - bh + 4, width: Math.max(1, bw - 1), height: bh, fill: "#f08a24" },
      svg("title", {}, `${fmt(h.edges[i])} – ${fmt(h.edges[i + 1])}: ${c}`)));
  });
  s.appendChild(svg("text", { x: 10, y: hh + 22 }, fmt(h.edges[0], 2)));
  s.appendChild(svg("text", { x: w - 10, y: hh + 22, "text-anchor": "end" }, fmt(h.edges[n], 2)));
  return s;
}

function densityMarked(dens, density) {
  const s = histogram(dens);
  const n = dens.counts.length, lo = dens.edges[0], hi = dens.edges[n];
  if (density > 0 && hi > lo) {
    const x = 10 + ((Math.log10(density) - lo) / (hi - lo)) * (420 - 20);
    s.appendChild(svg("line", { x1: x, x2: x, y1: 0, y2: 124, stroke: "#222", "stroke-width": 2, class: "marker" }));
  }
  return s;
}

function drawImage(data, sequential = false, plain = false) {
  const heat = data.heatmap, h = heat.length, w = heat[0].length, scale = Math.max(1, Math.floor(256 / Math.max(h, w)));
  const c = el("canvas", { width: w * scale, height: h * scale, class: "overlay" });
  const ctx = c.getContext("2d");
  let vmax = 0;
  for (const r of heat) for (const v of r) if (v !== null) vmax = Math.max(vmax, Math.abs(v));
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    let base = null;
    if (data.image && data.image.length === h) {
      const p = data.image[y][x];
      base = Array.isArray(p) ? p.map((q) => q * 255) : [p * 255, p * 255, p * 255];
    }
    const v = heat[y][x] || 0, a = plain || !vmax ? 0 : Math.min(1, Math.abs(v) / vmax);
    const col = sequential ? [240, 90, 20] : v >= 0 ? [255, 0, 81] : [0, 139, 251];
    let under = base || [255, 255, 255];
    if (base && !plain) { // the heatmap over a light grey copy of the image, as Captum draws it
      const g = 0.5 * (0.299 * base[0] + 0.587 * base[1] + 0.114 * base[2]) + 127;
      under = [g, g, g];
    }
    const mix = under.map((u, k) => Math.round(u * (1 - 0.7 * a) + col[k] * 0.7 * a));
    ctx.fillStyle = `rgb(${mix[0]},${mix[1]},${mix[2]})`;
    ctx.fillRect(x * scale, y * scale, scale, scale);
    const seg = data.segments; // segment borders: a one-pixel black line between segments
    if (seg) {
      ctx.fillStyle = "rgb(0,0,0)";
      if (x + 1 < w && seg[y][x + 1] !== seg[y][x]) ctx.fillRect((x + 1) * scale - 1, y * scale, 1, scale);
      if (y + 1 < h && seg[y + 1][x] !== seg[y][x]) ctx.fillRect(x * scale, (y + 1) * scale - 1, scale, 1);
    }
  }
  return c;
}

function pager(total, offset, limit, go) {
  const prev = el("button", { on: { click: () => go(Math.max(0, offset - limit)) } }, "‹ previous");
  const next = el("button", { on: { click: () => go(offset + limit) } }, "next ›");
  prev.disabled = offset <= 0;
  next.disabled = offset + limit >= total;
  return el("div", { class: "pager" }, prev, el("span", {}, `${total ? offset + 1 : 0}–${Math.min(total, offset + limit)} of ${total}`), next);
}

// ------------------------------------------------------------------ pages --
const KIND_TITLES = { explanation: "Explanations", table: "Lens tables and grids", sae: "SAEs", features: "SAE feature data", report: "Reports" };

function entryLink(e) {
  if (e.error) return el("span", { class: "muted" }, e.path);
  if (e.kind === "explanation") return link("explanation", { path: e.path }, e.path);
  if (e.kind === "report") return link("report", { path: e.path }, e.path);
  if (e.kind === "sae") return link("sae", { path: e.path }, e.path);
  if (e.kind === "features") return link("features", { path: e.path }, e.path);
  return link("table", { path: e.path }, e.path);
}

function entryInfo(e) {
  if (e.error) return e.error;
  if (e.kind === "explanation") return `${e.method || "?"} · ${e.view} · ${e.n_rows} rows` + (e.n_features !== null ? ` · ${e.n_features} features` : "") + (e.n_outputs > 1 ? ` · ${e.n_outputs} outputs` : "");
  if (e.kind === "features") return `${e.d_sae} latents at ${e.site} · ${e.n_tokens} tokens · ${e.n_explained} explained`;
  if (e.kind === "sae") return `${e.cfg.architecture || ""} ${e.cfg.d_in}→${e.cfg.d_sae} at ${e.cfg.hook_name || "?"}`;
  if (e.kind === "table") return e.view === "lens" ? "logit-lens table" : "grid";
  return "";
}

async function pageIndex(p) {
  crumbs();
  const q = p.get("q") || "", kind = p.get("kind") || "", offset = +(p.get("offset") || 0), limit = 200;
  const data = await api("/api/index", { q, kind, offset, limit });
  document.getElementById("root-name").textContent = data.root;
  const search = el("input", { type: "search", placeholder: "filter paths", value: q, id: "index-filter" });
  const kindSel = el("select", { id: "index-kind" }, el("option", { value: "" }, "all kinds"),
    Object.keys(KIND_TITLES).map((k) => el("option", { value: k }, `${KIND_TITLES[k]} (${data.counts[k] || 0})`)));
  kindSel.value = kind;
  const apply = () => { location.hash = href("", { q: search.value, kind: kindSel.value }); };
  search.addEventListener("change", apply);
  kindSel.addEventListener("change", apply);
  const groups = {};
  for (const e of data.entries) (groups[e.kind] = groups[e.kind] || []).push(e);
  const sections = Object.keys(KIND_TITLES).filter((k) => groups[k]).map((k) => el("section", { class: "panel" },
    el("h2", {}, KIND_TITLES[k]),
    el("table", {}, groups[k].map((e) => el("tr", {}, el("td", {}, entryLink(e)), el("td", { class: "muted" }, entryInfo(e)))))));
  setPage(el("h1", {}, "Folder ", data.root), el("div", { class: "controls" }, search, kindSel),
    data.total ? null : el("p", { class: "muted" }, "Nothing to show yet: save explanations (.whybox), reports (.html), CSV tables or SAE folders here; new files appear on their own."),
    sections, pager(data.total, offset, limit, (o) => { location.hash = href("", { q, kind, offset: o }); }),
    data.truncated ? el("p", { class: "error" }, "the folder holds more entries than the index keeps") : null);
  watchIndex(data.generation);
}

// the index page follows the folder: new, changed and removed files show without a reload
let watchTimer = null;
function watchIndex(generation) {
  if (watchTimer) clearTimeout(watchTimer);
  watchTimer = setTimeout(async () => {
    watchTimer = null;
    if (document.body.getAttribute("data-page") !== "index") return;
    try {
      const d = await api("/api/index", { limit: 1 });
      if (d.generation !== generation) route(); else watchIndex(generation);
    } catch (e) { watchIndex(generation); }
  }, 3000);
}

async function pageExplanation(p) {
  const path = p.get("path"), output = +(p.get("output") || 0);
  crumbs(link("", {}, "index"), el("span", {}, path));
  const sum = await api("/api/explanation", { path, output });
  const head = [el("h1", {}, path), el("p", {},
    el("span", { class: "pill" }, sum.method || "method?"), el("span", { class: "pill" }, sum.view),
    el("span", { class: "pill" }, `${sum.n_rows} rows`),
    sum.completeness_gap_max !== undefined ? el("span", { class: "pill" }, `max completeness gap ${fmt(sum.completeness_gap_max)}`) : null,
    el("a", { href: `/api/explanation/csv?path=${encodeURIComponent(path)}`, download: "" }, "download CSV"))];
  if (sum.n_outputs > 1) {
    const sel = el("select", { id: "output" }, (sum.output_names || []).map((n, k) => el("option", { value: k }, n)));
    sel.value = String(output);
    sel.addEventListener("change", () => { location.hash = href("explanation", { path, output: sel.value }); });
    head.push(el("div", { class: "controls" }, "output ", sel));
  }
  const body = [];
  if (sum.view === "grid") {
    const g = await api("/api/explanation/grid", { path, output });
    body.push(el("section", { class: "panel" }, el("h2", {}, "Patching grid"),
      el("p", { class: "muted" }, `${g.axes.join(" × ")} · metric without patch ${fmt(g.base_value)}`),
      heatmapTable(g.row_labels, g.column_labels, g.values, null, { corner: g.axes[0] })));
  }
  if (sum.view === "image") {
    body.push(el("section", { class: "panel" }, el("h2", {}, "Global importance"),
      el("p", { class: "muted" }, "mean |attribution| per pixel over the images (summed over channels)"),
      drawImage({ heatmap: sum.importance_map, image: null }, true)));
  } else {
    body.push(el("section", { class: "panel" }, el("h2", {}, "Global importance"),
      el("p", { class: "muted" }, sum.importance_of), barChart(sum.importance.map((d) => ({ label: d.feature, value: d.value })))));
  }
  if (sum.view === "tabular") {
    const bs = await api("/api/explanation/beeswarm", { path, output, max_features: 15, max_rows: 400 });
    body.push(el("section", { class: "panel" }, el("h2", {}, "Beeswarm"),
      el("p", { class: "muted" }, `${bs.rows.length} of ${bs.n_rows} rows`), beeswarmChart(bs)));
  }
  if (sum.view === "tabular" && sum.has_data) body.push(dependenceSection(path, output, sum));
  if (sum.view !== "grid") body.push(await rowsSection(path, output, sum, p));
  body.push(await compareSection(path, output, sum));
  setPage(head, body);
}

function scatterChart(d) {
  const w = 560, h = 300, left = 60, bottom = 40;
  const s = svg("svg", { width: w, height: h, class: "scatter" });
  const cats = d.numeric ? null : [...new Set(d.x)];
  const xv = d.numeric ? d.x : d.x.map((c) => cats.indexOf(c));
  const ok = xv.map((x, k) => x !== null && d.y[k] !== null);
  const xs = xv.filter((_, k) => ok[k]), ys = d.y.filter((_, k) => ok[k]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(0, ...ys), y1 = Math.max(0, ...ys);
  const X = (x) => left + ((x - x0) / (x1 - x0 || 1)) * (w - left - 20);
  const Y = (y) => h - bottom - ((y - y0) / (y1 - y0 || 1)) * (h - bottom - 10);
  s.appendChild(svg("line", { x1: left, x2: w - 20, y1: Y(0), y2: Y(0), stroke: "#bbb" }));
  xv.forEach((x, k) => {
    if (!ok[k]) return;
    const jitter = cats ? (((k * 2654435761) % 1000) / 1000 - 0.5) * 0.5 : 0;
    s.appendChild(svg("circle", { cx: X(x + jitter), cy: Y(d.y[k]), r: 2.5, fill: d.y[k] >= 0 ? "#ff0051" : "#008bfb", "fill-opacity": 0.7 }));
  });
  if (cats) cats.slice(0, 30).forEach((c, k) => s.appendChild(svg("text", { x: X(k), y: h - bottom + 14, "text-anchor": "middle" }, short(c, 12))));
  else {
    s.appendChild(svg("text", { x: left, y: h - bottom + 14 }, fmt(x0, 2)));
    s.appendChild(svg("text", { x: w - 20, y: h - bottom + 14, "text-anchor": "end" }, fmt(x1, 2)));
  }
  s.appendChild(svg("text", { x: left, y: h - 6 }, `value of ${short(d.feature, 40)} (y: its attribution, ${fmt(y0, 2)} to ${fmt(y1, 2)})`));
  return s;
}

function dependenceSection(path, output, sum) {
  const box = el("section", { class: "panel", id: "dependence" }, el("h2", {}, "Dependence"));
  const names = sum.importance.map((d) => d.feature);
  const sel = el("select", { id: "dependence-feature" }, names.map((f) => el("option", { value: f }, short(f, 40))));
  const out = el("div");
  async function load() {
    try { out.replaceChildren(scatterChart(await api("/api/explanation/scatter", { path, output, feature: sel.value }))); }
    catch (e) { out.replaceChildren(errorBox(e)); }
  }
  sel.addEventListener("change", load);
  box.append(el("div", { class: "controls" }, "feature ", sel), out);
  if (names.length) load();
  return box;
}

async function rowsSection(path, output, sum, p) {
  const box = el("section", { class: "panel", id: "rows" }, el("h2", {}, "Rows"));
  const detail = el("div", { id: "row-detail" });
  const state = { offset: 0, limit: 25, sort: "row", descending: false, q: "", feature: "" };
  const q = el("input", { type: "search", placeholder: "filter rows (label, text, values)", id: "row-filter" });
  const sort = el("select", { id: "row-sort" }, ["row", "prediction", "total", "abs_total"].filter((s) => s !== "prediction" || sum.has_predictions)
    .map((s) => el("option", { value: s }, `sort by ${s}`)),
  (sum.feature_names || []).map((f, k) => el("option", { value: `feature:${k}` }, `sort by ${short(f, 30)}`)));
  const desc = el("input", { type: "checkbox", id: "row-desc" });
  const table = el("div");
  async function load() {
    let s = sort.value, feature = null;
    if (s.startsWith("feature:")) { feature = sum.feature_names[+s.slice(8)]; s = "feature"; }
    try {
      const data = await api("/api/explanation/rows", { path, output, offset: state.offset, limit: state.limit, sort: s, descending: desc.checked, q: q.value, feature });
      const t = el("table", {}, el("tr", {}, el("th", {}, "row"), el("th", {}, sum.view === "text" ? "text" : "label"),
        el("th", {}, "prediction"), el("th", {}, "sum of attributions"), el("th", {}, "top features")));
      for (const it of data.items) {
        t.appendChild(el("tr", { class: "click", on: { click: () => showRow(path, output, it.row, detail) } },
          el("td", { class: "num" }, it.row), el("td", {}, short(it.text !== undefined ? it.text : it.label, 80)),
          el("td", { class: "num" }, fmt(it.prediction)), el("td", { class: "num" }, fmt(it.total)),
          el("td", {}, it.top.map((tp) => el("span", { class: "pill", style: { background: colour(tp.value, Math.abs(tp.value) || 1) } }, `${short(tp.feature, 24)} ${fmt(tp.value, 2)}`)))));
      }
      table.replaceChildren(t, pager(data.total, state.offset, state.limit, (o) => { state.offset = o; load(); }));
    } catch (e) { table.replaceChildren(errorBox(e)); }
  }
  for (const c of [q, sort, desc]) c.addEventListener("change", () => { state.offset = 0; load(); });
  box.append(el("div", { class: "controls" }, q, sort, el("label", {}, desc, " descending")), table, detail);
  await load();
  const i = p.get("row");
  await showRow(path, output, i === null ? 0 : +i, detail);
  return box;
}

async function showRow(path, output, i, target) {
  try {
    const r = await api("/api/explanation/row", { path, output, i, max_features: 15 });
    const parts = [el("h2", {}, `Row ${r.row}`, r.label !== String(r.row) ? ` (${r.label})` : "")];
    if (r.view === "text") {
      parts.push(el("div", { class: "panel text-heatmap" }, tokenSpans(r.tokens, r.values)));
      if (r.truncated) parts.push(el("p", { class: "muted" }, "first tokens only"));
    }
    if (r.view === "image") {
      parts.push(el("p", { class: "muted" }, `base ${fmt(r.base_value)} + sum of attributions ${fmt(r.sum)}` + (r.prediction === null ? "" : ` → prediction ${fmt(r.prediction)}`)));
      parts.push(el("div", { class: "cols" },
        r.image ? el("div", {}, el("p", { class: "muted" }, "image"), drawImage({ heatmap: r.heatmap, image: r.image }, false, true)) : null,
        el("div", {}, el("p", { class: "muted" }, "attribution over the image (red raises, blue lowers)" + (r.segments ? "; segment borders in black" : "")), drawImage(r))));
    } else parts.push(waterfall(r));
    target.replaceChildren(...parts);
  } catch (e) { target.replaceChildren(errorBox(e)); }
}

async function compareSection(path, output, sum) {
  const box = el("section", { class: "panel", id: "compare" }, el("h2", {}, "Compare with another explanation of the same rows"));
  const all = await api("/api/index", { kind: "explanation", limit: 1000 });
  const peers = all.entries.filter((e) => e.path !== path && !e.error && e.n_rows === sum.n_rows && e.view === sum.view && sum.view !== "text");
  if (!peers.length) { box.append(el("p", { class: "muted" }, "No other rectangular explanation with the same rows in this folder.")); return box; }
  const sel = el("select", { id: "compare-with" }, el("option", { value: "" }, "choose…"), peers.map((e) => el("option", { value: e.path }, `${e.path} (${e.method})`)));
  const k = el("input", { type: "number", min: 1, max: 100, value: 5, id: "compare-k", style: { width: "4em" } });
  const out = el("div");
  async function run() {
    if (!sel.value) return;
    try {
      const c = await api("/api/compare", { a: path, b: sel.value, k: k.value, output });
      const t = el("table", {}, el("tr", {}, el("th", {}, "measure"), el("th", {}, "mean over rows")),
        c.measures.map((m) => el("tr", {}, el("td", {}, m), el("td", { class: "num" }, fmt(c.mean[m])))));
      out.replaceChildren(el("p", { class: "muted" }, `${c.methods[0]} vs ${c.methods[1]}, top-${c.k}, ${c.n_rows} rows (Krishna et al. 2022)`), t);
    } catch (e) { out.replaceChildren(errorBox(e)); }
  }
  sel.addEventListener("change", run);
  k.addEventListener("change", run);
  box.append(el("div", { class: "controls" }, sel, el("label", {}, "k ", k)), out);
  return box;
}

async function pageSae(p) {
  const path = p.get("path");
  crumbs(link("", {}, "index"), el("span", {}, path));
  const info = await api("/api/sae", { path });
  setPage(el("h1", {}, path),
    el("section", { class: "panel" }, el("h2", {}, "Configuration"),
      el("table", {}, Object.entries(info.cfg).map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, String(v)))))),
    el("section", { class: "panel" }, el("h2", {}, "Feature data"),
      info.features.length ? el("ul", {}, info.features.map((f) => el("li", {}, link("features", { path: f }, f))))
        : el("p", { class: "muted" }, "No FeatureData folder inside or beside this SAE: write one with wb.sae.feature_data(sae, model, texts).save(folder).")));
}

function featureRow(path, it) {
  const ex = it.explanation;
  return el("tr", {}, el("td", {}, link("feature", { path, j: it.index }, `#${it.index}`)),
    el("td", { class: "num" }, fmt(it.density, 5)), el("td", { class: "num" }, fmt(it.max_activation)),
    el("td", { class: "ctx" }, it.top_token === null ? "" : visible(it.top_token)),
    el("td", {}, ex ? short(ex.text, 120) : ""), el("td", { class: "num" }, ex && ex.score !== null ? fmt(ex.score, 2) : ""));
}

function featureTable(path, items) {
  return el("table", { class: "features" }, el("tr", {}, ["latent", "density", "max act.", "top token", "explanation", "score"].map((h) => el("th", {}, h))),
    items.map((it) => featureRow(path, it)));
}

async function pageFeatures(p) {
  const path = p.get("path"), offset = +(p.get("offset") || 0), order = p.get("order") || "index", limit = 50;
  crumbs(link("", {}, "index"), el("span", {}, path));
  const data = await api("/api/features", { path, offset, limit, order, descending: order !== "index" });
  const m = data.meta;
  const orderSel = el("select", { id: "feature-order" }, ["index", "density", "max_activation"].map((o) => el("option", { value: o }, `order by ${o}`)));
  orderSel.value = order;
  orderSel.addEventListener("change", () => { location.hash = href("features", { path, order: orderSel.value }); });
  const tokenIn = el("input", { type: "search", placeholder: "search by token", id: "search-token" });
  const textIn = el("input", { type: "search", placeholder: "search explanations", id: "search-text" });
  const results = el("div", { id: "search-results" });
  async function search(kind, value) {
    if (!value) { results.replaceChildren(); return; }
    try {
      const r = await api("/api/features/search", { path, [kind]: value, limit: 100 });
      results.replaceChildren(el("h2", {}, `${r.total} latents for ${kind} “`, value, "”"), featureTable(path, r.items));
    } catch (e) { results.replaceChildren(errorBox(e)); }
  }
  tokenIn.addEventListener("change", () => search("token", tokenIn.value));
  textIn.addEventListener("change", () => search("text", textIn.value));
  const jump = el("input", { type: "number", min: 0, max: m.d_sae - 1, placeholder: "latent #", id: "jump", style: { width: "7em" } });
  jump.addEventListener("change", () => { location.hash = href("feature", { path, j: jump.value }); });
  const dens = await api("/api/features/density", { path });
  setPage(el("h1", {}, path),
    el("p", { class: "muted" }, `${m.d_sae} latents at ${m.site} of ${m.model || "?"} · ${m.n_tokens} tokens`),
    el("section", { class: "panel", id: "density" }, el("h2", {}, "Feature density (log10 of the fraction of tokens where a latent fires)"),
      histogram(dens), el("p", { class: "muted" }, `${dens.n_dead} of ${dens.n} latents never fired`)),
    (m.notes || []).map((n) => el("p", { class: "muted" }, n)),
    el("div", { class: "controls" }, orderSel, jump, tokenIn, textIn), results,
    el("section", { class: "panel" }, featureTable(path, data.items),
      pager(data.total, offset, limit, (o) => { location.hash = href("features", { path, order, offset: o }); })));
}

function contextLine(c, maxAct) {
  const vmax = maxAct || Math.max(1e-12, ...c.activations);
  const toks = c.tokens || c.token_ids.map((t) => `#${t}`);
  return el("div", { class: "ctx" }, el("span", { class: "act" }, fmt(c.activation, 2)),
    tokenSpans(toks, c.activations, { vmax, sequential: true, center: c.center }));
}

async function pageFeature(p) {
  const path = p.get("path"), j = +p.get("j");
  crumbs(link("", {}, "index"), link("features", { path }, path), el("span", {}, `latent ${j}`));
  const [f, dens] = await Promise.all([api("/api/feature", { path, j }), api("/api/features/density", { path })]);
  const ex = f.explanation;
  const logits = f.logits ? el("div", { class: "cols" }, ["promoted", "suppressed"].map((side) => el("div", {}, el("h2", {}, `Logits ${side}`),
    el("table", { class: "logits" }, f.logits[side].map((l) => el("tr", {}, el("td", { class: "ctx" }, visible(l.token === null ? `#${l.token_id}` : l.token)), el("td", { class: "num" }, fmt(l.value))))))))
    : el("p", { class: "muted" }, "No logit effects for this model.");
  const nav = el("div", { class: "controls" }, j > 0 ? link("feature", { path, j: j - 1 }, "‹ previous") : null, link("feature", { path, j: j + 1 }, "next ›"));
  setPage(el("h1", {}, `Latent ${f.index}`), nav,
    el("p", {}, el("span", { class: "pill" }, f.site), el("span", { class: "pill" }, `density ${fmt(f.density, 5)}`),
      el("span", { class: "pill" }, `${f.n_firing} of ${f.n_tokens} tokens`), el("span", { class: "pill" }, `mean ${fmt(f.mean_activation)}`),
      el("span", { class: "pill" }, `max ${fmt(f.max_activation)}`)),
    el("section", { class: "panel", id: "explanation" }, el("h2", {}, "Explanation"),
      ex ? el("p", {}, el("span", { class: "explanation-text" }, ex.text), ex.score !== null ? el("span", { class: "pill" }, `score ${fmt(ex.score, 2)}`) : null)
        : el("p", { class: "muted" }, "No explanation yet (wb.sae autointerp, then FeatureData.set_explanations).")),
    el("div", { class: "cols" },
      el("section", { class: "panel" }, el("h2", {}, "Activation histogram"), histogram(f.histogram),
        el("h2", {}, "Density among all latents"), densityMarked(dens, f.density)),
      el("section", { class: "panel" }, logits)),
    el("section", { class: "panel", id: "top-contexts" }, el("h2", {}, "Top activations"),
      f.top_contexts.length ? f.top_contexts.map((c) => contextLine(c, f.max_activation)) : el("p", { class: "muted" }, "This latent never fired.")),
    el("section", { class: "panel", id: "intervals" }, el("h2", {}, "Activation intervals"),
      f.intervals.map((q) => el("div", {}, el("h3", {}, `${fmt(q.low, 2)} – ${fmt(q.high, 2)} (${q.n_firing} tokens)`), q.examples.map((c) => contextLine(c, f.max_activation))))),
    el("div", { class: "cols" },
      el("section", { class: "panel" }, el("h2", {}, "Nearest latents (decoder cosine)"),
        f.nearest ? el("table", {}, f.nearest.map((n) => el("tr", {}, el("td", {}, link("feature", { path, j: n.index }, `#${n.index}`)), el("td", { class: "num" }, fmt(n.cosine))))) : el("p", { class: "muted" }, "–")),
      el("section", { class: "panel" }, el("h2", {}, "Co-firing latents"),
        f.cooccurring ? el("table", {}, f.cooccurring.map((n) => el("tr", {}, el("td", {}, link("feature", { path, j: n.index }, `#${n.index}`)), el("td", { class: "num" }, fmt(n.fraction))))) : el("p", { class: "muted" }, "–"))));
}

async function pageTable(p) {
  const path = p.get("path");
  crumbs(link("", {}, "index"), el("span", {}, path));
  const h = await api("/api/table/heatmap", { path });
  const page = await api("/api/table", { path, limit: 100 });
  setPage(el("h1", {}, path),
    el("section", { class: "panel" }, el("h2", {}, h.view === "lens" ? `Logit lens: ${h.value} (cell text: top token)` : "Grid"),
      heatmapTable(h.row_labels, h.column_labels, h.values, h.text, { sequential: h.view === "lens", corner: h.view === "lens" ? "entry \\ position" : "" })),
    el("section", { class: "panel" }, el("h2", {}, "Table"),
      el("table", {}, el("tr", {}, page.columns.map((c) => el("th", {}, c))), page.rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, short(c, 40)))))),
      el("p", { class: "muted" }, `${page.rows.length} of ${page.total} rows`)));
}

async function pageReport(p) {
  const path = p.get("path");
  crumbs(link("", {}, "index"), el("span", {}, path));
  const frame = el("iframe", { class: "report", sandbox: "allow-scripts", src: `/report?path=${encodeURIComponent(path)}`, title: path, referrerpolicy: "no-referrer" });
  setPage(el("h1", {}, path), el("p", {}, el("a", { href: `/report?path=${encodeURIComponent(path)}`, target: "_blank", rel: "noopener" }, "open alone")), frame);
}

const ROUTES = { "": pageIndex, explanation: pageExplanation, sae: pageSae, features: pageFeatures, feature: pageFeature, table: pageTable, report: pageReport };

let routeSeq = 0;
async function route() {
  const mine = ++routeSeq;
  const h = location.hash.replace(/^#\/?/, "");
  const [name, query] = h.split("?");
  const page = ROUTES[name] || pageIndex;
  document.body.setAttribute("data-loading", "1");
  try { await page(new URLSearchParams(query || "")); }
  catch (e) { if (mine === routeSeq) setPage(errorBox(e), link("", {}, "back to the index")); }
  if (mine !== routeSeq) return; // a later navigation owns the page
  document.body.setAttribute("data-page", name || "index");
  document.body.setAttribute("data-loading", "0");
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", route);
