"""The stand-in's HTML: a dashboard page that keeps Grafana 13.2's DOM contract (test ids and
aria-labels from @grafana/e2e-selectors, the Scenes globals the renderer polls, lazy panels,
loading bar, error status with its tooltip, "No data"), the solo page and the login page."""

from __future__ import annotations

import html
import json
from typing import Any

JSON = dict[str, Any]

_STYLE = """
:root { --bg: #f4f5f5; --panel: #ffffff; --border: #d8d9da; --text: #24292e; --muted: #6e6e6e; }
.theme-dark { --bg: #111217; --panel: #181b1f; --border: #2c3235; --text: #ccccdc;
  --muted: #9fa7b3; }
html, body { margin: 0; background: var(--bg); color: var(--text);
  font: 13px/1.4 Inter, "Helvetica Neue", Arial, sans-serif; }
.topbar { height: 40px; display: flex; align-items: center; gap: 16px; padding: 0 16px;
  border-bottom: 1px solid var(--border); background: var(--panel); }
.topbar h1 { font-size: 16px; margin: 0; }
#grid { position: relative; margin: 8px 16px; }
body.solo #grid { margin: 0; }
.grid-item { position: absolute; box-sizing: border-box; }
.grid-row { position: absolute; font-size: 16px; font-weight: 500; display: flex;
  align-items: center; }
section.panel { position: relative; height: 100%; box-sizing: border-box; display: flex;
  flex-direction: column; background: var(--panel); border: 1px solid var(--border);
  border-radius: 2px; overflow: hidden; }
.panel-header { height: 32px; display: flex; align-items: center; padding: 0 8px; gap: 8px; }
.panel-header h2 { font-size: 14px; font-weight: 500; margin: 0; white-space: nowrap;
  overflow: hidden; text-overflow: ellipsis; flex: 1; }
.panel-content { flex: 1; position: relative; padding: 4px 8px 8px; overflow: hidden; }
.loading-bar { position: absolute; top: 0; left: 0; height: 2px; width: 28%;
  background: linear-gradient(90deg, transparent, #3d71d9, transparent); }
.status { border: 0; background: #d10e5c; color: #fff; width: 24px; height: 24px;
  border-radius: 2px; cursor: pointer; font-weight: bold; }
.tooltip { position: absolute; z-index: 10; max-width: 320px; padding: 8px;
  background: var(--panel); border: 1px solid var(--border); box-shadow: 0 4px 8px #0003; }
.tooltip .tooltip-title { color: var(--muted); margin-bottom: 4px; }
.no-data { height: 100%; display: flex; align-items: center; justify-content: center;
  color: var(--muted); }
.stat { height: 100%; display: flex; align-items: center; justify-content: space-evenly; gap: 8px;
  font-size: 40px; font-weight: 500; color: #1a7f4b; }
.theme-dark .stat { color: #73bf69; }
.stat.empty { color: var(--text); }
.stat .stat-name { display: block; font-size: 12px; color: var(--muted); text-align: center; }
table.standin-table { border-collapse: collapse; width: 100%; font-size: 12px; }
table.standin-table th, table.standin-table td { border-bottom: 1px solid var(--border);
  padding: 2px 6px; text-align: left; white-space: nowrap; }
.legend { display: flex; flex-wrap: wrap; gap: 2px 12px; font-size: 11px; height: 32px;
  overflow: hidden; }
.legend span::before { content: ""; display: inline-block; width: 12px; height: 3px;
  margin-right: 4px; vertical-align: middle; background: var(--c); }
.axis { fill: var(--muted); font-size: 10px; }
.text-panel { white-space: pre-wrap; }
.login { width: 320px; margin: 120px auto; display: flex; flex-direction: column; gap: 8px; }
.login input, .login button { padding: 8px; font-size: 14px; }
.login-error { color: #d10e5c; min-height: 1.4em; }
.foreign { display: none; }
"""

_SCRIPT = r"""
(() => {
const M = JSON.parse(document.getElementById('standin-model').textContent);
const S = M.selectors;
if (M.scenes) window.__grafanaSceneContext = { uid: M.uid };
window.__grafanaRunningQueryCount = 0;
const CELL = 30, MARGIN = 8, COLS = 24;
const COLORS = ['#73BF69', '#F2CC0C', '#8AB8FF', '#FF780A', '#F2495C', '#5794F2', '#B877D9',
  '#705DA0', '#37872D', '#FADE2A'];
const grid = document.getElementById('grid');
const panels = new Map();

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}
const fill = (template, key, value) => template.replace('{' + key + '}', value);

function format(value, unit, decimals) {
  if (value === null || value === undefined) return '-';
  const fixed = (v) => {
    if (decimals !== null && decimals !== undefined) return v.toFixed(decimals);
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
  };
  const scaled = (v, base, units) => {
    let i = 0;
    while (Math.abs(v) >= base && i < units.length - 1) { v /= base; i += 1; }
    return fixed(v) + (units[i] ? ' ' + units[i] : '');
  };
  switch (unit) {
    case 'percent': return fixed(value) + '%';
    case 'percentunit': return fixed(value * 100) + '%';
    case 'bytes': return scaled(value, 1024, ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']);
    case 'decbytes': return scaled(value, 1000, ['B', 'kB', 'MB', 'GB', 'TB', 'PB']);
    case 'mbytes': return scaled(value, 1024, ['MiB', 'GiB', 'TiB']);
    case 's': return value < 1 ? fixed(value * 1000) + ' ms' : fixed(value) + ' s';
    case 'ms': return fixed(value) + ' ms';
    case 'watt': return fixed(value) + ' W';
    case 'celsius': return fixed(value) + ' °C';
    case 'currencyUSD': return '$' + fixed(value);
    case 'reqps': return fixed(value) + ' req/s';
    default: return scaled(value, 1000, ['', 'K', 'Mil', 'Bil', 'Tri']);
  }
}

function seriesName(frame, query) {
  const labels = frame.schema.fields[1].labels || {};
  const legend = query && query.legendFormat;
  if (legend && legend !== '__auto') {
    return legend.replace(/\{\{\s*([\w.]+)\s*\}\}/g, (_, key) => labels[key] ?? '');
  }
  const { __name__: metric, ...rest } = labels;
  const inner = Object.entries(rest).map(([k, v]) => `${k}="${v}"`).join(', ');
  return inner ? `${metric || ''}{${inner}}` : (metric || 'Value');
}

function lastValue(frame) {
  const values = frame.data.values[1];
  for (let i = values.length - 1; i >= 0; i -= 1) if (values[i] !== null) return values[i];
  return null;
}

function noDataMessage() {
  return h('div', { 'data-testid': S.panelDataErrorMessage, class: 'no-data' }, 'No data');
}

function renderTimeseries(content, series, p) {
  const width = Math.max(content.clientWidth - 16, 50);
  const height = Math.max(content.clientHeight - 50, 30);
  let tMin = Infinity, tMax = -Infinity, vMin = Infinity, vMax = -Infinity;
  for (const s of series) {
    s.frame.data.values[0].forEach((t, i) => {
      const v = s.frame.data.values[1][i];
      if (v === null) return;
      tMin = Math.min(tMin, t); tMax = Math.max(tMax, t);
      vMin = Math.min(vMin, v); vMax = Math.max(vMax, v);
    });
  }
  if (!isFinite(vMin)) { content.append(noDataMessage()); return; }
  if (vMin === vMax) { vMin -= 1; vMax += 1; }
  if (tMin === tMax) { tMin -= 1; tMax += 1; }
  const left = 48;
  const x = (t) => left + (t - tMin) / (tMax - tMin) * (width - left);
  const y = (v) => 4 + (1 - (v - vMin) / (vMax - vMin)) * (height - 8);
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('width', width); svg.setAttribute('height', height);
  for (const v of [vMin, (vMin + vMax) / 2, vMax]) {
    const label = document.createElementNS(ns, 'text');
    label.setAttribute('x', 0); label.setAttribute('y', y(v) + 3);
    label.setAttribute('class', 'axis'); label.textContent = format(v, p.unit, p.decimals);
    svg.append(label);
  }
  series.forEach((s, index) => {
    const points = [];
    s.frame.data.values[0].forEach((t, i) => {
      const v = s.frame.data.values[1][i];
      if (v !== null) points.push(`${x(t).toFixed(1)},${y(v).toFixed(1)}`);
    });
    const line = document.createElementNS(ns, 'polyline');
    line.setAttribute('points', points.join(' '));
    line.setAttribute('fill', 'none');
    line.setAttribute('stroke', COLORS[index % COLORS.length]);
    line.setAttribute('stroke-width', '1.5');
    svg.append(line);
  });
  const legend = h('div', { class: 'legend' });
  series.forEach((s, index) => {
    const item = h('span', {}, s.name);
    item.style.setProperty('--c', COLORS[index % COLORS.length]);
    legend.append(item);
  });
  content.append(svg, legend);
}

function renderStat(content, series, p) {
  if (!series.length) {
    // Stat, gauge and bar gauge panels say "No data" as plain text, without the test id.
    content.append(h('div', { class: 'stat empty' }, 'No data'));
    return;
  }
  // Like Grafana's stat panel, the value text is sized to fit the space each value gets.
  const shown = series.slice(0, 12).map((s) => ({
    name: s.name, text: format(lastValue(s.frame), p.unit, p.decimals) }));
  const longest = Math.max(...shown.map((v) => v.text.length), 1);
  const each = Math.max(content.clientWidth - 16, 40) / shown.length;
  const size = Math.max(12, Math.min(40, content.clientHeight * 0.45, each / (longest * 0.62)));
  const box = h('div', { class: 'stat' });
  box.style.fontSize = `${size.toFixed(0)}px`;
  for (const v of shown) {
    const value = h('div', {}, v.text);
    if (shown.length > 1) value.prepend(h('span', { class: 'stat-name' }, v.name));
    box.append(value);
  }
  content.append(box);
}

function renderTable(content, series, p) {
  if (!series.length) { content.append(noDataMessage()); return; }
  const keys = [...new Set(series.flatMap((s) => Object.keys(s.labels)))]
    .filter((k) => k !== '__name__');
  const table = h('table', { class: 'standin-table' });
  table.append(h('tr', {}, ...keys.map((k) => h('th', {}, k)), h('th', {}, 'Value')));
  for (const s of series.slice(0, 50)) {
    table.append(h('tr', {}, ...keys.map((k) => h('td', {}, s.labels[k] ?? '')),
      h('td', {}, format(lastValue(s.frame), p.unit, p.decimals))));
  }
  content.append(table);
}

function showError(p, message) {
  const button = h('button', {
    'data-testid': fill(S.panelStatus, 'status', 'error'), 'aria-label': 'status',
    class: 'status', type: 'button' }, '!');
  let tip = null;
  const open = () => {
    if (tip) return;
    const box = button.getBoundingClientRect();
    tip = h('div', { role: 'tooltip', class: 'tooltip' },
      h('div', { class: 'tooltip-title' }, 'Errors and notices'), h('div', {}, message));
    tip.style.left = `${box.left + window.scrollX}px`;
    tip.style.top = `${box.bottom + window.scrollY + 4}px`;
    document.body.append(tip);
  };
  const close = () => { if (tip) { tip.remove(); tip = null; } };
  button.addEventListener('mouseenter', open);
  button.addEventListener('focus', open);
  button.addEventListener('mouseleave', close);
  button.addEventListener('blur', close);
  p.header.append(button);
}

function render(p, frames, errors) {
  const content = p.content;
  content.replaceChildren();
  if (errors.length) { showError(p, errors.join('\n')); return; }
  if (p.type === 'text') {
    content.append(h('div', { class: 'text-panel' }, p.content_text || ''));
    return;
  }
  const series = frames.filter((f) => f.data.values[0].length).map((f) => ({
    frame: f, labels: f.schema.fields[1].labels || {},
    name: seriesName(f, p.queries.find((q) => q.refId === f.schema.refId)),
  }));
  if (['stat', 'gauge', 'bargauge'].includes(p.type)) return renderStat(content, series, p);
  if (p.type === 'table') return renderTable(content, series, p);
  if (!series.length) { content.append(noDataMessage()); return; }
  return renderTimeseries(content, series, p);
}

async function run(p) {
  if (p.started) return;
  p.started = true;
  if (!p.queries.length) { render(p, [], []); return; }
  window.__grafanaRunningQueryCount += 1;
  const bar = h('div', { 'aria-label': S.panelLoadingBar, role: 'status', class: 'loading-bar' });
  p.section.prepend(bar);
  let frames = [], errors = [];
  try {
    const response = await fetch(`/api/ds/query?ds_type=prometheus&requestId=SQR${p.id}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'X-Dashboard-Uid': M.uid,
        'X-Panel-Id': String(p.id), 'X-Panel-Plugin-Id': p.type,
        'X-Datasource-Uid': M.datasource },
      body: JSON.stringify({
        queries: p.queries.map((q) => ({ refId: q.refId, expr: q.expr, instant: q.instant,
          range: !q.instant, intervalMs: M.intervalMs, maxDataPoints: M.maxDataPoints,
          datasource: { type: 'prometheus', uid: M.datasource } })),
        from: String(M.from), to: String(M.to) }),
    });
    const body = await response.json();
    for (const result of Object.values(body.results || {})) {
      if (result.error) errors.push(result.error);
      frames = frames.concat(result.frames || []);
    }
    if (!response.ok && !errors.length) errors.push(body.message || `HTTP ${response.status}`);
  } catch (error) {
    errors.push(String(error));
  } finally {
    bar.remove();
    window.__grafanaRunningQueryCount -= 1;
  }
  render(p, frames, errors);
}

// Like Grafana's LazyLoader: a panel is an empty placeholder until it first scrolls into view;
// then its chrome mounts and its queries run.
function mount(p) {
  if (p.section) return;
  if (M.scenes) p.item.setAttribute('data-viz-panel-key', `panel-${p.id}`);
  else p.item.setAttribute('data-panelid', String(p.id));
  p.header = h('div', { class: 'panel-header', 'data-testid': S.panelHeaderContainer },
    h('h2', { title: p.title }, p.title));
  p.content = h('div', { class: 'panel-content', 'data-testid': S.panelContent });
  p.section = h('section', { class: 'panel', 'data-testid': fill(S.panelTitle, 'title',
    p.title) }, p.header, p.content);
  p.item.append(p.section);
  run(p);
}

function build() {
  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (entry.isIntersecting) mount(panels.get(entry.target));
    }
  });
  for (const spec of M.panels) {
    if (spec.type === 'row') {
      const row = h('div', { class: 'grid-row' }, (spec.collapsed ? '▸ ' : '▾ ') + spec.title);
      grid.append(row);
      panels.set(row, { ...spec, item: row, row: true });
      continue;
    }
    const item = h('div', { class: 'grid-item' });
    grid.append(item);
    panels.set(item, { ...spec, item, section: null, started: false });
    observer.observe(item);
  }
  layout();
}

function layout() {
  if (M.solo) {
    for (const p of panels.values()) {
      Object.assign(p.item.style, { left: '0px', top: '0px', width: `${window.innerWidth}px`,
        height: `${window.innerHeight}px` });
    }
    grid.style.height = `${window.innerHeight}px`;
    return;
  }
  const width = grid.clientWidth;
  const column = (width + MARGIN) / COLS;
  let bottom = 0;
  for (const p of panels.values()) {
    const g = p.gridPos || { x: 0, y: 0, w: 12, h: 8 };
    const top = g.y * (CELL + MARGIN);
    const height = (p.row ? 1 : g.h) * (CELL + MARGIN) - MARGIN;
    Object.assign(p.item.style, { left: `${g.x * column}px`, top: `${top}px`,
      width: `${(p.row ? COLS : g.w) * column - MARGIN}px`, height: `${height}px` });
    bottom = Math.max(bottom, top + height);
  }
  grid.style.height = `${bottom}px`;
}

function foreign() {
  for (const url of M.foreign) {
    document.body.append(h('img', { src: url, class: 'foreign', alt: '' }));
    document.body.append(h('iframe', { src: url, class: 'foreign' }));
    fetch(url, { mode: 'no-cors' }).catch(() => {});
  }
  if (M.popup) window.open(M.popup, '_blank');
  if (M.navigate) window.location.href = M.navigate;
}

// Auto-refresh: the mounted panels query again.
if (M.refreshMs > 0) {
  setInterval(() => {
    for (const p of panels.values()) {
      if (p.section) { p.started = false; run(p); }
    }
  }, M.refreshMs);
}

build();
foreign();
})();
"""


def _document(title: str, body: str, *, theme: str, classes: str = "") -> str:
    theme_class = f"theme-{'dark' if theme == 'dark' else 'light'}"
    body_class = f"{theme_class} {classes}".strip()
    return (
        f"<!DOCTYPE html>\n<html lang='en' class='{theme_class}'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)} - Grafana</title><style>{_STYLE}</style></head>"
        f"<body class='{body_class}'>{body}</body></html>"
    )


def _model_script(model: JSON) -> str:
    # </script> inside the JSON must not end the element.
    text = json.dumps(model).replace("</", "<\\/")
    return f"<script id='standin-model' type='application/json'>{text}</script>"


def dashboard_page(model: JSON) -> str:
    """``model``: uid, title, scenes, kiosk, solo, theme, from, to, intervalMs, maxDataPoints,
    datasource, selectors, panels, foreign, popup, navigate, refreshMs."""
    top = ""
    if not model["kiosk"] and not model["solo"]:
        top = (
            f"<div class='topbar'><h1>{html.escape(model['title'])}</h1>"
            f"<span>{html.escape(model['range_text'])}</span></div>"
        )
    body = f"{top}<div id='grid'></div>{_model_script(model)}<script>{_SCRIPT}</script>"
    return _document(model["title"], body, theme=model["theme"], classes="solo" * model["solo"])


def not_found_page(theme: str = "light") -> str:
    body = (
        "<div class='login'><h1>Dashboard not found</h1>"
        "<p>The dashboard could not be found. It may have been deleted or moved.</p></div>"
    )
    return _document("Dashboard not found", body, theme=theme)


def login_page(selectors: JSON, redirect_to: str) -> str:
    model = {"selectors": selectors, "redirectTo": redirect_to}
    script = r"""
(() => {
const M = JSON.parse(document.getElementById('standin-model').textContent);
const form = document.getElementById('login');
form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const user = document.querySelector('[name=user]').value;
  const password = document.querySelector('[name=password]').value;
  const response = await fetch('/login', { method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user, password }) });
  const body = await response.json();
  if (response.ok) { window.location.href = M.redirectTo || body.redirectUrl || '/'; return; }
  document.getElementById('login-error').textContent = body.message || 'Login failed';
});
})();
"""
    body = (
        "<form id='login' class='login'><h1>Welcome to Grafana</h1>"
        f"<input name='user' autocomplete='username' placeholder='email or username' "
        f"data-testid='{html.escape(selectors['loginUsername'])}'>"
        f"<input name='password' type='password' placeholder='password' "
        f"data-testid='{html.escape(selectors['loginPassword'])}'>"
        f"<button type='submit' data-testid='{html.escape(selectors['loginSubmit'])}'>"
        "Log in</button><div id='login-error' class='login-error'></div></form>"
        f"{_model_script(model)}<script>{script}</script>"
    )
    return _document("Login", body, theme="dark")
