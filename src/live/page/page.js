// The live page: polls the JSON endpoints next to it (relative URLs, so it
// works behind a proxy at a sub-path) and draws plain SVG. Nothing is
// loaded from anywhere else.
"use strict";

const EVERY_MS = 2000;
const SVG = "http://www.w3.org/2000/svg";
const number = new Intl.NumberFormat();
const oneDecimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const localTime = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const localDay = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
const localFull = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
});

const state = { info: null, windows: null, picked: null, prefilled: false, failures: 0 };

const $ = (id) => document.getElementById(id);

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function svgEl(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function utc(ts) {
  return new Date(ts * 1000).toISOString().replace(".000Z", "Z");
}

function local(ts) {
  return localFull.format(new Date(ts * 1000));
}

// A window's span in local time, compact (the day once), UTC on hover.
function spanEl(start, end) {
  const a = new Date(start * 1000);
  const b = new Date(end * 1000);
  const sameDay = localDay.format(a) === localDay.format(new Date(end * 1000 - 1));
  const text = `${localDay.format(a)}, ${localTime.format(a)} – ` +
    (sameDay ? localTime.format(b) : `${localDay.format(b)}, ${localTime.format(b)}`);
  return el("time", { datetime: utc(start), title: `${utc(start)} – ${utc(end)} (UTC)` }, text);
}

// A time element: local time as text, UTC on hover.
function timeEl(ts) {
  return el("time", { datetime: utc(ts), title: utc(ts) + " (UTC)" }, local(ts));
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return oneDecimal.format(n) + " " + units[i];
}

// A group as a person reads it.
function groupText(g, overflow) {
  if (overflow) return "(groups beyond DISTINCTLY_MAX_GROUPS)";
  if (g === null) return "(no value)";
  if (Array.isArray(g)) return g.map((p) => (p === null ? "∅" : p)).join(" + ");
  return String(g);
}

// DISTINCTLY_HTTP_TOKEN, when the service asks for one: from the form, or
// once from the address (#token=…, never sent to the server as such), kept
// for this tab only.
const TOKEN_KEY = "distinctly-token";
if (location.hash.startsWith("#token=")) {
  sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(location.hash.slice(7)));
  history.replaceState(null, "", location.pathname + location.search);
}

function headers() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: "Bearer " + token } : {};
}

async function getJson(path) {
  const r = await fetch(path, { cache: "no-store", headers: headers() });
  if (r.status === 401) {
    $("token-form").hidden = false;
    const e = new Error("needs the service's token");
    e.status = 401;
    throw e;
  }
  let body = null;
  try { body = await r.json(); } catch (_) { body = null; }
  if (!r.ok) {
    const message = body && body.error ? body.error : r.status + " " + r.statusText;
    const e = new Error(message);
    e.status = r.status;
    throw e;
  }
  return body;
}

// ---- charts ---------------------------------------------------------------

function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

const TIME_STEPS = [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800, 2592000];

// Tick instants between x0 and x1 on round local times.
function timeTicks(x0, x1, most) {
  const span = Math.max(1, x1 - x0);
  const step = TIME_STEPS.find((s) => span / s <= most) || span;
  const offset = -new Date(x0 * 1000).getTimezoneOffset() * 60;
  const ticks = [];
  for (let t = Math.ceil((x0 + offset) / step) * step - offset; t <= x1; t += step) ticks.push(t);
  return { ticks, daily: step >= 86400 };
}

// Draws points (oldest first) into svg: a line, a dot per window, a ring
// and a thin line from its first count for a corrected window.
function drawChart(svg, points, atEnd) {
  const W = Math.max(280, svg.clientWidth || 560);
  const H = 220;
  const m = { l: 60, r: 14, t: 12, b: 26 };
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.replaceChildren();
  if (!points.length) {
    svg.appendChild(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, "no window emitted yet"));
    return;
  }
  const xOf = (p) => (atEnd ? p.end_ts : p.start_ts);
  let x0 = xOf(points[0]);
  let x1 = xOf(points[points.length - 1]);
  if (x1 === x0) { x0 -= 60; x1 += 60; }
  const top = Math.max(1, ...points.map((p) => Math.max(p.unique_users, p.first_unique_users)));
  const yStep = niceStep(top, 4);
  const yMax = Math.ceil(top / yStep) * yStep;
  const sx = (t) => m.l + ((t - x0) / (x1 - x0)) * (W - m.l - m.r);
  const sy = (v) => H - m.b - (v / yMax) * (H - m.t - m.b);
  for (let v = 0; v <= yMax + yStep / 2; v += yStep) {
    svg.appendChild(svgEl("line", { x1: m.l, x2: W - m.r, y1: sy(v), y2: sy(v), class: v === 0 ? "axis" : "grid" }));
    svg.appendChild(svgEl("text", { x: m.l - 6, y: sy(v) + 4, "text-anchor": "end", class: "tick" }, number.format(v)));
  }
  const { ticks, daily } = timeTicks(x0, x1, Math.max(2, Math.floor((W - m.l - m.r) / 90)));
  for (const t of ticks) {
    const x = sx(t);
    const anchor = x > W - m.r - 30 ? "end" : x < m.l + 30 ? "start" : "middle";
    const label = svgEl("text", { x, y: H - 8, "text-anchor": anchor, class: "tick" },
      (daily ? localDay : localTime).format(new Date(t * 1000)));
    label.appendChild(svgEl("title", {}, utc(t) + " (UTC)"));
    svg.appendChild(label);
  }
  const d = points.map((p, i) => (i ? "L" : "M") + sx(xOf(p)).toFixed(1) + " " + sy(p.unique_users).toFixed(1)).join(" ");
  svg.appendChild(svgEl("path", { d, class: "line" }));
  for (const p of points) {
    const x = sx(xOf(p));
    const corrected = p.revision > 0;
    if (corrected && p.first_unique_users !== p.unique_users) {
      svg.appendChild(svgEl("line", { x1: x, x2: x, y1: sy(p.first_unique_users), y2: sy(p.unique_users), class: "from" }));
    }
    const dot = svgEl("circle", {
      cx: x.toFixed(1), cy: sy(p.unique_users).toFixed(1), r: corrected ? 4.5 : 3,
      class: corrected ? "point corrected" : "point",
      "data-start": p.start_ts, "data-end": p.end_ts, "data-users": p.unique_users,
      "data-events": p.events, "data-revision": p.revision,
    });
    let tip = `${local(p.start_ts)} – ${local(p.end_ts)}\nUTC ${utc(p.start_ts)} – ${utc(p.end_ts)}\n` +
      `${number.format(p.unique_users)} users, ${number.format(p.events)} events`;
    if (corrected) tip += `\ncorrection: revision ${p.revision}, first ${number.format(p.first_unique_users)}`;
    dot.appendChild(svgEl("title", {}, tip));
    svg.appendChild(dot);
  }
}

// A chart box for one series (made once, then redrawn).
function chartBox(parent, id, title) {
  let box = document.getElementById(id);
  if (!box) {
    box = el("figure", { id, class: "chart-box" });
    box.style.margin = "0";
    const caption = el("figcaption", {});
    caption.appendChild(el("h3", {}, title));
    box.appendChild(caption);
    box.appendChild(svgEl("svg", { class: "chart", role: "img", "aria-label": title }));
    parent.appendChild(box);
  }
  return box.querySelector("svg");
}

function seriesTitle(s) {
  return s.rolling ? `Rolling ${s.window} (length/step), plotted at each window's end` : `${s.window} windows`;
}

// ---- sections -------------------------------------------------------------

function renderWindows(data) {
  const cards = $("latest");
  const charts = $("charts");
  for (const s of data.series) {
    const key = s.window.replace(/[^A-Za-z0-9]/g, "_");
    let card = document.getElementById("card-" + key);
    if (!card) {
      card = el("div", { id: "card-" + key, class: "card" });
      card.appendChild(el("div", { class: "label" }, s.rolling ? `rolling ${s.window}` : `latest ${s.window} window`));
      card.appendChild(el("div", { class: "big", id: "latest-" + key, "aria-live": "polite" }, "–"));
      card.appendChild(el("div", { class: "when" }));
      cards.appendChild(card);
    }
    const last = s.points[s.points.length - 1];
    const big = card.querySelector(".big");
    const when = card.querySelector(".when");
    if (last) {
      big.textContent = number.format(last.unique_users);
      big.dataset.users = last.unique_users;
      big.title = `${number.format(last.events)} events` + (last.revision ? `, revision ${last.revision}` : "");
      when.replaceChildren(spanEl(last.start_ts, last.end_ts));
    }
    drawChart(chartBox(charts, "chart-" + key, seriesTitle(s)), s.points, s.rolling);
  }
}

function renderGroups(g) {
  $("groups-window-text").replaceChildren(
    ...(g.start_ts === null
      ? [document.createTextNode("No window with groups yet.")]
      : [document.createTextNode(`Window `), timeEl(g.start_ts), document.createTextNode(" – "), timeEl(g.end_ts),
        document.createTextNode(`: ${number.format(g.groups_kept)} groups kept` +
          (g.left_out ? `, ${number.format(g.left_out)} smaller ones left out` : ""))]),
  );
  const body = $("groups-table").querySelector("tbody");
  body.replaceChildren();
  const list = $("group-list");
  list.replaceChildren();
  state.groupValues = new Map();
  g.groups.forEach((x, i) => {
    const text = groupText(x.group, x.overflow);
    const row = el("tr", {});
    row.appendChild(el("td", { class: "num" }, String(i + 1)));
    row.appendChild(el("td", { class: "group", title: text }, text));
    row.appendChild(el("td", { class: "num" }, number.format(x.unique_users)));
    row.appendChild(el("td", { class: "num" }, number.format(x.events)));
    body.appendChild(row);
    if (!x.overflow) {
      state.groupValues.set(text, JSON.stringify(x.group));
      list.appendChild(el("option", { value: text }));
    }
  });
  drawBars($("groups-bars"), g.groups);
}

function drawBars(svg, groups) {
  const W = Math.max(280, svg.clientWidth || 400);
  const rowH = 22;
  const H = Math.max(1, groups.length) * rowH + 8;
  svg.style.height = H + "px";
  const nameW = Math.min(160, W * 0.35);
  const valueW = 64;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.replaceChildren();
  const top = Math.max(1, ...groups.map((x) => x.unique_users));
  groups.forEach((x, i) => {
    const y = 4 + i * rowH;
    const text = groupText(x.group, x.overflow);
    const short = text.length > 24 ? text.slice(0, 23) + "…" : text;
    svg.appendChild(svgEl("text", { x: nameW - 6, y: y + rowH * 0.65, "text-anchor": "end", class: "name" }, short));
    const w = ((W - nameW - valueW) * x.unique_users) / top;
    const bar = svgEl("rect", { x: nameW, y: y + 2, width: Math.max(1, w).toFixed(1), height: Math.max(2, rowH - 6), class: "bar", "data-users": x.unique_users });
    bar.appendChild(svgEl("title", {}, `${text}: ${number.format(x.unique_users)} users`));
    svg.appendChild(bar);
    svg.appendChild(svgEl("text", { x: nameW + w + 4, y: y + rowH * 0.65, class: "value" }, number.format(x.unique_users)));
  });
}

function renderStatus(s, ready) {
  const badge = $("ready");
  badge.textContent = ready.ok ? "ready" : ready.text;
  badge.className = "badge " + (ready.ok ? "ok" : "bad");
  const items = [
    ["Events per second", s.events_per_second === null ? "…" : number.format(Math.round(s.events_per_second))],
    ["Events read", number.format(s.events_total)],
    ["Counted", number.format((s.events.counted || 0) + (s.events.late_corrected || 0))],
    ["Rejected", number.format(s.events.rejected || 0)],
    ["Windows open", s.windows_open === null ? null : number.format(s.windows_open)],
    ["Counter memory", s.windows_heap_bytes === null ? null : bytes(s.windows_heap_bytes)],
    ["Slice memory", s.slices_heap_bytes === null ? null : bytes(s.slices_heap_bytes)],
    ["Resident memory", s.resident_memory_bytes === null ? null : bytes(s.resident_memory_bytes)],
    ["Groups held", s.groups_held === null ? null : number.format(s.groups_held)],
    ["Instances", s.instances === null ? null : number.format(s.instances)],
    ["Shards", state.info && state.info.shards !== null ? number.format(state.info.shards) : null],
    ["Partitions held", s.assigned_partitions === null ? null : number.format(s.assigned_partitions)],
    ["Broker", s.broker_reachable === null ? null : (s.broker_reachable ? "reachable" : "unreachable")],
    ["Output", s.output_paused === null ? null : (s.output_paused ? "paused" : "flowing")],
  ];
  const dl = $("health");
  dl.replaceChildren();
  for (const [k, v] of items) {
    if (v === null) continue;
    const d = el("div", {});
    d.appendChild(el("dt", {}, k));
    d.appendChild(el("dd", {}, v));
    dl.appendChild(d);
  }
  if (s.watermark_ts) {
    const d = el("div", {});
    d.appendChild(el("dt", {}, "Watermark"));
    const dd = el("dd", {});
    dd.appendChild(timeEl(s.watermark_ts));
    d.appendChild(dd);
    dl.appendChild(d);
  }
  fillTable($("rejected"), Object.entries(s.rejected).map(([k, v]) => [k, number.format(v)]), "none");
  fillTable($("lag"), s.lag.map((l) => [l.topic, String(l.partition), number.format(l.messages)]), "no partitions (count reads files and pipes)");
}

function fillTable(table, rows, empty) {
  const body = table.querySelector("tbody");
  body.replaceChildren();
  if (!rows.length) {
    const tr = el("tr", {});
    tr.appendChild(el("td", { colspan: "3", class: "muted" }, empty));
    body.appendChild(tr);
  }
  for (const r of rows) {
    const tr = el("tr", {});
    r.forEach((c, i) => tr.appendChild(el("td", i ? { class: "num" } : {}, c)));
    body.appendChild(tr);
  }
}

// ---- the group picker and the range query ---------------------------------

function pickedParam() {
  const typed = $("group-value").value;
  return state.groupValues && state.groupValues.has(typed) ? state.groupValues.get(typed) : typed;
}

async function refreshGroupChart() {
  if (state.picked === null) return;
  const box = $("group-chart");
  const window = $("groups-window").value;
  const by = $("groups-by").value;
  const q = new URLSearchParams({ window, group_by: by, group: state.picked.param });
  let svg = box.querySelector("svg");
  if (!svg) {
    box.appendChild(el("h3", {}));
    svg = svgEl("svg", { class: "chart", role: "img", id: "group-svg" });
    box.appendChild(svg);
  }
  const title = `${state.picked.text} (${by}) per ${window} window — the windows where it was among the kept groups`;
  box.querySelector("h3").textContent = title;
  svg.setAttribute("aria-label", title);
  const data = await getJson("v1/windows?" + q);
  const s = data.series[0];
  drawChart(svg, s.points, s.rolling);
}

// "2026-01-01T14:00" (this browser's zone), RFC 3339 with a zone, or
// Unix seconds: what /v1/uniques takes.
function instant(text) {
  const t = text.trim();
  if (/^\d+$/.test(t)) return t;
  if (/(Z|[+-]\d\d:\d\d)$/i.test(t)) return t;
  const d = new Date(t);
  if (isNaN(d.getTime())) throw new Error(`${JSON.stringify(t)} is not a time`);
  return String(Math.floor(d.getTime() / 1000));
}

function localInput(ts) {
  const d = new Date(ts * 1000);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

async function ask(event) {
  event.preventDefault();
  const out = $("q-answer");
  out.className = "";
  try {
    const q = new URLSearchParams({ from: instant($("q-from").value), to: instant($("q-to").value) });
    if ($("q-by").value) {
      q.set("group_by", $("q-by").value);
      q.set("group", $("q-group").value);
    }
    out.textContent = "asking…";
    const a = await getJson("v1/uniques?" + q);
    out.replaceChildren(
      el("span", { class: "big", id: "q-users", "data-users": a.unique_users }, number.format(a.unique_users)),
      document.createTextNode(` distinct users, ${number.format(a.events)} events (${a.counter}), `),
      timeEl(a.from_ts), document.createTextNode(" – "), timeEl(a.to_ts),
    );
  } catch (e) {
    out.className = "error";
    out.textContent = e.message;
  }
}

// ---- the loop -------------------------------------------------------------

async function readiness() {
  try {
    const r = await fetch("readyz", { cache: "no-store" });
    return { ok: r.ok, text: (await r.text()).trim() };
  } catch (_) {
    return { ok: false, text: "unreachable" };
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    $("token-form").hidden = true;
    tick(false);
  });
});

function setup(info) {
  state.info = info;
  $("about").textContent = `${info.command} · ${info.counter} · ${info.version} · time zone ${info.timezone}`;
  if (info.groupings.length) {
    $("groups").hidden = false;
    for (const s of info.series) $("groups-window").appendChild(el("option", { value: s.window }, s.window));
    for (const g of info.groupings) {
      $("groups-by").appendChild(el("option", { value: g }, g));
      $("q-by").appendChild(el("option", { value: g }, g));
    }
    $("q-by-label").hidden = false;
    $("q-group-label").hidden = false;
  }
  $("groups-form").addEventListener("change", () => { tick(false); });
  $("group-pick").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("group-value").value;
    state.picked = { text, param: pickedParam() };
    refreshGroupChart().catch((err) => { $("group-chart").querySelector("h3").textContent = err.message; });
  });
  $("query").addEventListener("submit", ask);
}

function prefill(data) {
  if (state.prefilled) return;
  const s = data.series.find((x) => !x.rolling && x.points.length);
  if (!s) return;
  state.prefilled = true;
  if (!$("q-from").value) $("q-from").value = localInput(s.points[0].start_ts);
  if (!$("q-to").value) $("q-to").value = localInput(s.points[s.points.length - 1].end_ts);
}

let timer = null;

async function tick(again) {
  try {
    if (!state.info) setup(await getJson("v1/info"));
    const [windows, status, ready] = await Promise.all([getJson("v1/windows"), getJson("v1/status"), readiness()]);
    state.windows = windows;
    renderWindows(windows);
    prefill(windows);
    renderStatus(status, ready);
    if (state.info.groupings.length) {
      const q = new URLSearchParams({ window: $("groups-window").value, group_by: $("groups-by").value });
      renderGroups(await getJson("v1/groups?" + q));
      await refreshGroupChart();
    }
    state.failures = 0;
    document.body.dataset.updated = String(Date.now());
  } catch (e) {
    state.failures += 1;
    const badge = $("ready");
    badge.textContent = e.status ? e.message : "unreachable";
    badge.className = "badge bad";
  }
  if (again) {
    clearTimeout(timer);
    timer = setTimeout(() => tick(true), Math.min(10000, EVERY_MS * (1 + state.failures)));
  }
}

window.addEventListener("resize", () => { if (state.windows) renderWindows(state.windows); });
document.addEventListener("DOMContentLoaded", () => tick(true));
