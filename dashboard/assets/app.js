// pier dashboard: plain JavaScript, no build step, no dependencies. Every
// read and change goes to the public API (/v1/...), the one the CLI uses;
// the server lends this page's session key to those requests, and every
// change carries the session's CSRF token.
'use strict';

const $ = (sel, el = document) => el.querySelector(sel);
const esc = v => String(v ?? '').replace(/[&<>"']/g, c =>
  ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
const enc = encodeURIComponent;

let session = null;     // {key_id, csrf, expires_at}
let events = [];        // newest last, for the feed
let refreshTimer = 0;
let current = null;     // the view on screen: {name, render, stop}

// ---- API ------------------------------------------------------------------

async function api(method, path, body) {
  const opts = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (method !== 'GET') opts.headers['X-CSRF-Token'] = session ? session.csrf : '';
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  if (r.status === 401) { signedOut(); throw new Error('signed out'); }
  if (!r.ok) {
    let msg = r.status + ' ' + r.statusText;
    try { msg = (await r.json()).message || msg; } catch (e) { /* not JSON */ }
    throw new Error(msg);
  }
  if (r.status === 204 || r.status === 202 && !(r.headers.get('Content-Type') || '').includes('json')) return null;
  return (r.headers.get('Content-Type') || '').includes('json') ? r.json() : r.text();
}

// change runs an API change from a button, says how it went, and
// refreshes the view (the events stream would too, a moment later).
async function change(what, fn) {
  try {
    await fn();
    toast(what);
    refreshSoon(0);
  } catch (e) {
    toast(what + ' failed: ' + e.message, true);
  }
}

function toast(msg, bad) {
  const d = document.createElement('div');
  d.textContent = msg;
  if (bad) d.className = 'bad';
  $('#toast').append(d);
  setTimeout(() => d.remove(), bad ? 8000 : 3000);
}

// ---- sign-in ----------------------------------------------------------------

async function start() {
  const r = await fetch('/dashboard/session', { credentials: 'same-origin' });
  if (!r.ok) { signedOut(); return; }
  session = await r.json();
  $('#signin').hidden = true;
  $('#nav').hidden = false;
  $('#who').textContent = 'key ' + session.key_id;
  $('#logout-csrf').value = session.csrf;
  followEvents();
  route();
}

function signedOut() {
  session = null;
  if (current && current.stop) current.stop();
  current = null;
  $('#nav').hidden = true;
  $('#view').replaceChildren();
  $('#signin').hidden = false;
  const h = location.hash;
  if (h === '#signin-refused') $('#signin-error').textContent = 'That API key is not valid.';
  if (h === '#ticket-refused') $('#signin-error').textContent = 'That sign-in URL has been used or has expired; run pier dashboard again.';
  $('#key').focus();
}

$('#signin-form').addEventListener('submit', async ev => {
  ev.preventDefault();
  const body = new URLSearchParams({ key: $('#key').value });
  const r = await fetch('/dashboard/login', { method: 'POST', body, credentials: 'same-origin', headers: { Accept: 'application/json' } });
  if (!r.ok) {
    $('#signin-error').textContent = r.status === 401 ? 'That API key is not valid.' : 'Sign-in failed (' + r.status + ').';
    return;
  }
  $('#key').value = '';
  $('#signin-error').textContent = '';
  if (location.hash.startsWith('#signin') || location.hash.startsWith('#ticket')) location.hash = '#/';
  start();
});

// ---- live updates ---------------------------------------------------------

let source = null;
function followEvents() {
  if (source) return;
  source = new EventSource('/v1/events');
  const on = ev => {
    let e;
    try { e = JSON.parse(ev.data); } catch (err) { return; }
    events.push(e);
    if (events.length > 300) events.shift();
    refreshSoon(150);
  };
  for (const t of ['app', 'release', 'scale', 'deployment', 'job', 'gap']) source.addEventListener(t, on);
  source.onerror = () => {
    // EventSource reconnects by itself (with Last-Event-ID); a 401 ends
    // it, which the next refresh notices.
    if (source.readyState === EventSource.CLOSED) { source = null; setTimeout(() => session && followEvents(), 2000); }
  };
}

// refreshSoon coalesces a burst of events into one redraw, and never
// runs two at once: answers of an older redraw arriving after a newer
// one's would paint the page with stale data.
let rendering = false, dirty = false;
function refreshSoon(ms) {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(renderNow, ms);
}
async function renderNow() {
  if (!current) return;
  if (rendering) { dirty = true; return; }
  rendering = true;
  try {
    await current.render();
  } catch (e) {
    if (e.message !== 'signed out') toast('Loading failed: ' + e.message, true);
  } finally {
    rendering = false;
  }
  if (dirty) { dirty = false; renderNow(); }
}

// ---- routing ----------------------------------------------------------------

function route() {
  if (!session) return;
  if (current && current.stop) current.stop();
  const h = location.hash.replace(/^#/, '') || '/';
  let m;
  if ((m = h.match(/^\/apps\/([a-z0-9-]+)$/))) current = appView(m[1]);
  else if (h === '/cluster') current = clusterView();
  else if (h === '/events') current = eventsView();
  else current = appsView();
  dirty = false;
  renderNow();
}
window.addEventListener('hashchange', route);

// mount puts a new view on screen: a fresh root element, so that the
// answers of a view already left land in a detached element, unseen.
function mount(html) {
  const root = document.createElement('div');
  root.innerHTML = html;
  $('#view').replaceChildren(root);
  // fill replaces one section's content, keeping the rest of the page
  // (and whatever a user is typing elsewhere) as it is. Content that has
  // not changed is left alone, so a button is not replaced under the
  // pointer by a redraw that changes nothing; it says whether it replaced
  // anything (handlers are bound to the new elements only then).
  const drawn = new WeakMap();
  return (id, inner) => {
    const el = root.querySelector('#' + id);
    if (!el || drawn.get(el) === inner) return false;
    el.innerHTML = inner;
    drawn.set(el, inner);
    return true;
  };
}

const state = s => `<span class="state state-${esc(s)}">${esc(s)}</span>`;
const ago = t => {
  if (!t || t.startsWith('0001')) return '';
  const s = Math.round((Date.now() - new Date(t)) / 1000);
  if (s < 60) return s + 's ago';
  if (s < 3600) return Math.round(s / 60) + 'm ago';
  if (s < 86400) return Math.round(s / 3600) + 'h ago';
  return Math.round(s / 86400) + 'd ago';
};
const table = (head, rows, empty) => rows.length
  ? `<div class="scroll"><table><thead><tr>${head.map(h => `<th scope="col">${h}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table></div>`
  : `<p class="muted">${empty}</p>`;

// ---- apps -------------------------------------------------------------------

function appsView() {
  const v = { name: 'apps' };
  const fill = mount('<h1>Apps</h1><section class="card" id="apps">Loading…</section>');
  v.render = async () => {
    const apps = await api('GET', '/v1/apps');
    const forms = await Promise.all(apps.map(a => api('GET', `/v1/apps/${enc(a.name)}/formation`).catch(() => null)));
    const rows = apps.map((a, i) => {
      const f = forms[i];
      const procs = f ? Object.entries(f.processes || {}).map(([t, n]) => `${esc(t)}=${n}`).join(' ') : '';
      return `<tr data-app="${esc(a.name)}"><td><a href="#/apps/${esc(a.name)}">${esc(a.name)}</a></td>
        <td>${a.maintenance ? state('maintenance') : a.release ? state('up') : '<span class="muted">no release</span>'}</td>
        <td>${f && f.version ? 'v' + f.version : ''}</td><td class="mono">${procs}</td>
        <td>${a.url ? `<a href="${esc(a.url)}" rel="noopener">${esc(a.url)}</a>` : ''}</td></tr>`;
    });
    fill('apps', table(['App', 'State', 'Release', 'Processes', 'URL'], rows, 'No apps yet: <code>pier create NAME</code>, then <code>git push</code> or <code>pier deploy</code>.'));
  };
  return v;
}

// ---- one app ----------------------------------------------------------------

function appView(name) {
  const base = `/v1/apps/${enc(name)}`;
  const v = { name: 'app' };
  const fill = mount(`<h1 id="app-title">${esc(name)}</h1><p id="app-meta" class="muted"></p>
  <div class="grid">
    <section class="card" aria-labelledby="h-formation"><h2 id="h-formation">Formation</h2><div id="formation">Loading…</div></section>
    <section class="card" aria-labelledby="h-config"><h2 id="h-config">Config vars</h2><div id="config"></div>
      <form class="inline" id="env-form"><label for="env-key">Set</label>
        <input id="env-key" placeholder="KEY" required pattern="[A-Za-z_][A-Za-z0-9_]*" autocomplete="off">
        <input id="env-value" placeholder="value" autocomplete="off"><button id="env-set" type="submit">Set</button></form></section>
  </div>
  <section class="card" aria-labelledby="h-jobs"><h2 id="h-jobs">Jobs</h2><div id="jobs"></div></section>
  <section class="card" aria-labelledby="h-releases"><h2 id="h-releases">Releases</h2><div id="releases"></div></section>
  <section class="card" aria-labelledby="h-logs"><h2 id="h-logs">Logs</h2>
    <form class="inline" id="log-form"><label for="log-type">Process type</label>
      <select id="log-type"><option value="">all</option></select>
      <button id="log-follow" type="submit">Follow</button><button id="log-stop" type="button" class="plain" disabled>Stop</button></form>
    <pre class="log" id="log" aria-live="off"></pre></section>
  <div class="grid">
    <section class="card" aria-labelledby="h-deploys"><h2 id="h-deploys">Deployments</h2><div id="deployments"></div></section>
    <section class="card" aria-labelledby="h-routes"><h2 id="h-routes">Routes and domains</h2><div id="routes"></div></section>
    <section class="card" aria-labelledby="h-builds"><h2 id="h-builds">Builds</h2><div id="builds"></div><pre class="output" id="build-output" hidden></pre></section>
    <section class="card" aria-labelledby="h-resources"><h2 id="h-resources">Resources</h2><div id="resources"></div></section>
  </div>`);

  let types = [];
  let logAbort = null;

  v.render = async () => {
    // Each section is drawn as soon as its own answer is in.
    const app = api('GET', base).then(a => {
      fill('app-meta', `${a.url ? `<a href="${esc(a.url)}" rel="noopener">${esc(a.url)}</a> · ` : ''}deploys ${esc(a.strategy && a.strategy.kind || 'one-by-one')}${a.maintenance ? ' · <strong>maintenance mode</strong>' : ''}`);
    });
    const formation = api('GET', `${base}/formation`).then(drawFormation);
    const jobs = api('GET', `${base}/jobs`).then(drawJobs);
    const releases = Promise.all([api('GET', `${base}/releases`), formation]).then(([rs, f]) => drawReleases(rs, f));
    const env = api('GET', `${base}/env`).then(drawEnv).catch(() => fill('config', '<p class="muted">No release yet.</p>'));
    const deps = api('GET', `${base}/deployments`).then(drawDeployments);
    const routes = api('GET', `${base}/routes`).then(drawRoutes);
    const builds = api('GET', `${base}/builds`).then(drawBuilds);
    const res = api('GET', '/v1/resources').then(drawResources).catch(() => fill('resources', ''));
    await Promise.all([app, formation, jobs, releases, env, deps, routes, builds, res]);
    document.body.dataset.rendered = String(performance.now());
  };
  v.stop = () => { if (logAbort) logAbort.abort(); };

  function drawFormation(f) {
    const entries = Object.entries(f.processes || {}).sort();
    const known = new Set(types);
    for (const [t] of entries) if (!known.has(t)) { types.push(t); $('#log-type').insertAdjacentHTML('beforeend', `<option>${esc(t)}</option>`); }
    // A scale form being edited is left alone.
    if (document.activeElement && document.activeElement.matches('#formation input') && $('#formation form')) {
      return f;
    }
    if (!fill('formation', entries.length ? entries.map(([t, n]) => `<form class="inline scale" data-type="${esc(t)}">
      <label for="scale-${esc(t)}" class="mono">${esc(t)}</label>
      <input type="number" min="0" max="1000" id="scale-${esc(t)}" value="${n}">
      <button type="submit" id="scale-btn-${esc(t)}">Scale</button></form>`).join('') + `<p class="muted">Release v${f.version || '?'}</p>`
      : '<p class="muted">No process types yet: deploy the app first.</p>')) return f;
    for (const form of document.querySelectorAll('#formation form.scale')) {
      form.addEventListener('submit', ev => {
        ev.preventDefault();
        const t = form.dataset.type, n = parseInt($('input', form).value, 10);
        change(`Scaled ${t} to ${n}`, () => api('PATCH', `${base}/formation`, { processes: { [t]: n } }));
        form.querySelector('input').blur();
      });
    }
    return f;
  }

  function drawJobs(jl) {
    const rows = (jl.jobs || []).map(j => `<tr data-job="${esc(j.id)}" data-type="${esc(j.process_type || 'run')}" data-state="${esc(j.state)}">
      <td class="mono">${esc(j.id.slice(0, 24))}</td><td>${esc(j.process_type || 'run')}${j.one_off ? ' <span class="muted">(one-off)</span>' : ''}</td>
      <td>${state(j.state)}${j.desired === 'shutdown' && !['complete', 'failed', 'shutdown'].includes(j.state) ? ' <span class="muted">stopping</span>' : ''}</td>
      <td>${j.healthy == null ? '<span class="muted">–</span>' : j.healthy ? 'healthy' : '<span class="error">unhealthy</span>'}</td>
      <td class="mono">${esc(j.host_id)}</td><td>v${j.version || ''}</td><td>${j.restarts || 0}</td>
      <td>${j.exit_code == null ? '' : j.exit_code}${j.error ? ` <span class="error">${esc(j.error)}</span>` : ''}</td>
      <td>${ago(j.started_at || j.created_at)}</td></tr>`);
    const pending = (jl.pending || []).map(p => `<li><strong>${p.count} × ${esc(p.process_type)}</strong> waiting: ${esc(p.reason)}</li>`);
    fill('jobs', table(['Job', 'Type', 'State', 'Health', 'Host', 'Release', 'Restarts', 'Last exit', 'Started'], rows, 'No jobs.')
      + (pending.length ? `<h3>Pending</h3><ul id="pending">${pending.join('')}</ul>` : ''));
  }

  function drawReleases(rs, f) {
    const rows = rs.map((r, i) => {
      const prev = rs[i + 1];
      const diff = envDiff((prev && prev.env) || {}, r.env || {});
      const cur = f && f.release === r.id;
      return `<tr data-version="${r.version}"${cur ? ' data-current="1"' : ''}><td>v${r.version}${cur ? ' <strong>current</strong>' : ''}</td>
        <td>${ago(r.created_at)}</td><td class="wrap">${diff || '<span class="muted">no config change</span>'}</td>
        <td>${cur ? '' : `<button class="plain" data-rollback="${r.version}" aria-label="Roll back to v${r.version}">Roll back to v${r.version}</button>`}</td></tr>`;
    });
    if (!fill('releases', table(['Release', 'Created', 'Config change', ''], rows, 'No releases yet.'))) return;
    for (const b of document.querySelectorAll('#releases [data-rollback]')) {
      b.addEventListener('click', () => change(`Rolled back to v${b.dataset.rollback}`,
        () => api('POST', `${base}/rollback`, { version: parseInt(b.dataset.rollback, 10) })));
    }
  }

  function drawEnv(env) {
    const keys = Object.keys(env).sort();
    if (!fill('config', table(['Name', 'Value', ''], keys.map(k => `<tr data-var="${esc(k)}"><td class="mono">${esc(k)}</td>
      <td class="mono wrap">${esc(env[k])}</td><td><button class="plain" data-unset="${esc(k)}" aria-label="Unset ${esc(k)}">Unset</button></td></tr>`), 'No config vars.'))) return;
    for (const b of document.querySelectorAll('#config [data-unset]')) {
      b.addEventListener('click', () => change(`Unset ${b.dataset.unset}`, () => api('PATCH', `${base}/env`, { [b.dataset.unset]: null })));
    }
  }

  function drawDeployments(ds) {
    fill('deployments', table(['Release', 'State', 'Steps', 'Started'], ds.slice(0, 10).map(d => {
      const steps = Object.keys(d.processes || {}).sort().map(t =>
        `${esc(t)}: ${(d.old_processes || {})[t] || 0} old → ${d.processes[t]} new`).join('<br>');
      return `<tr><td>v${d.version}</td><td>${state(d.state)}${d.reason ? `<br><span class="muted">${esc(d.reason)}</span>` : ''}</td>
        <td class="wrap">${steps}</td><td>${ago(d.started_at || d.created_at)}</td></tr>`;
    }), 'No deployments yet.'));
  }

  function drawRoutes(rs) {
    fill('routes', table(['Type', 'Where', 'Service', 'TLS'], rs.map(r => `<tr><td>${esc(r.type)}</td>
      <td class="mono">${r.type === 'tcp' ? 'port ' + r.port : esc(r.domain + (r.path || ''))}</td><td class="mono">${esc(r.service)}</td>
      <td class="tls">${tlsStatus(r)}</td></tr>`), 'No routes.'));
  }

  function drawBuilds(bs) {
    if (!fill('builds', table(['Build', 'State', 'Source', 'Created', ''], bs.slice(0, 10).map(b => `<tr><td class="mono">${esc(b.id.slice(0, 24))}</td>
      <td>${state(b.state)}${b.error ? `<br><span class="error">${esc(b.error)}</span>` : ''}</td><td class="mono">${esc(b.source || '')}</td>
      <td>${ago(b.created_at)}</td><td><button class="plain" data-build="${esc(b.id)}">Output</button></td></tr>`), 'No builds.'))) return;
    for (const b of document.querySelectorAll('#builds [data-build]')) {
      b.addEventListener('click', async () => {
        const out = $('#build-output');
        out.hidden = false;
        out.textContent = 'Loading…';
        try { out.textContent = await api('GET', `${base}/builds/${enc(b.dataset.build)}/output`); } catch (e) { out.textContent = e.message; }
      });
    }
  }

  function drawResources(rs) {
    const mine = rs.filter(r => (r.attachments || []).some(a => a.app === name));
    fill('resources', table(['Resource', 'Type', 'State', 'Env var'], mine.map(r => {
      const a = r.attachments.find(a => a.app === name);
      return `<tr><td>${esc(r.name)}</td><td>${esc(r.type)}</td><td>${state(r.state)}</td><td class="mono">${esc(a.env_var)}</td></tr>`;
    }), 'No attached resources.'));
  }

  $('#env-form').addEventListener('submit', ev => {
    ev.preventDefault();
    const k = $('#env-key').value.trim(), val = $('#env-value').value;
    change(`Set ${k}`, async () => {
      await api('PATCH', `${base}/env`, { [k]: val });
      $('#env-key').value = ''; $('#env-value').value = '';
    });
  });

  // Logs stream as NDJSON over a plain fetch, read as it arrives.
  $('#log-form').addEventListener('submit', async ev => {
    ev.preventDefault();
    if (logAbort) logAbort.abort();
    logAbort = new AbortController();
    const t = $('#log-type').value;
    const out = $('#log');
    out.textContent = '';
    $('#log-stop').disabled = false;
    try {
      const r = await fetch(`${base}/logs?follow=true&lines=100${t ? '&type=' + enc(t) : ''}`, { credentials: 'same-origin', signal: logAbort.signal });
      if (!r.ok) throw new Error(r.status + ' ' + r.statusText);
      out.dataset.following = '1';
      const reader = r.body.getReader(), dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl); buf = buf.slice(nl + 1);
          if (!line.trim()) continue;
          let l; try { l = JSON.parse(line); } catch (e) { continue; }
          const dyno = l.source === 'app' && l.job ? `${l.process}.${l.job.split('-').pop()}` : l.process;
          const atEnd = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
          out.append(`${(l.time || '').slice(11, 19)} ${dyno}: ${l.text}\n`);
          while (out.childNodes.length > 2000) out.firstChild.remove();
          if (atEnd) out.scrollTop = out.scrollHeight;
        }
      }
    } catch (e) {
      if (e.name !== 'AbortError') out.append(`(logs stopped: ${e.message})\n`);
    }
    delete out.dataset.following;
  });
  $('#log-stop').addEventListener('click', () => { if (logAbort) logAbort.abort(); $('#log-stop').disabled = true; });
  return v;
}

// tlsStatus says how a route's TLS stands: its certificate's expiry, or
// an ACME certificate not issued yet.
function tlsStatus(r) {
  const pem = r.tls && r.tls.cert_pem;
  if (!pem) return r.acme ? 'ACME, not issued yet' : '<span class="muted">none</span>';
  const exp = certExpiry(pem), kind = r.acme ? 'ACME' : 'own certificate';
  if (!exp) return kind;
  const days = Math.floor((exp - Date.now()) / 86400000), date = exp.toISOString().slice(0, 10);
  if (days < 0) return `${kind}, <span class="error">expired ${date}</span>`;
  if (days < 14) return `${kind}, <span class="state-pending">expires ${date} (${days} days)</span>`;
  return `${kind}, valid until ${date}`;
}

// certExpiry reads notAfter from the first certificate of a PEM chain: a
// few lines of DER walking (certificate, tbsCertificate, [version],
// serial, signature algorithm, issuer, validity) rather than a library.
function certExpiry(pem) {
  try {
    const m = pem.match(/-----BEGIN CERTIFICATE-----([^-]+)-----END CERTIFICATE-----/);
    if (!m) return null;
    const der = Uint8Array.from(atob(m[1].replace(/\s+/g, '')), c => c.charCodeAt(0));
    // tlv reads the element at i: its tag, and where its value starts and ends.
    const tlv = i => {
      let len = der[i + 1], j = i + 2;
      if (len & 0x80) { const n = len & 0x7f; len = 0; for (let k = 0; k < n; k++) len = len * 256 + der[j++]; }
      return { tag: der[i], start: j, end: j + len };
    };
    let i = tlv(tlv(0).start).start;           // into tbsCertificate
    if (tlv(i).tag === 0xa0) i = tlv(i).end;   // explicit version
    for (let k = 0; k < 3; k++) i = tlv(i).end; // serial, signature, issuer
    const validity = tlv(i);
    const na = tlv(tlv(validity.start).end);   // after notBefore
    const str = String.fromCharCode(...der.slice(na.start, na.end));
    // UTCTime (YYMMDDhhmmssZ) or GeneralizedTime (YYYYMMDDhhmmssZ).
    const year = na.tag === 0x17 ? (+str.slice(0, 2) >= 50 ? 1900 : 2000) + +str.slice(0, 2) : +str.slice(0, 4);
    const r = na.tag === 0x17 ? str.slice(2) : str.slice(4);
    const d = new Date(Date.UTC(year, +r.slice(0, 2) - 1, +r.slice(2, 4), +r.slice(4, 6), +r.slice(6, 8), +r.slice(8, 10)));
    return isNaN(d) ? null : d;
  } catch (e) {
    return null;
  }
}

// envDiff says which config vars a release set, changed or unset.
function envDiff(before, after) {
  const out = [];
  for (const k of Object.keys(after).sort()) {
    if (!(k in before)) out.push(`<span class="diff-add">+${esc(k)}</span>`);
    else if (before[k] !== after[k]) out.push(`<span class="diff-chg">~${esc(k)}</span>`);
  }
  for (const k of Object.keys(before).sort()) if (!(k in after)) out.push(`<span class="diff-del">−${esc(k)}</span>`);
  return out.join(' ');
}

// ---- cluster ------------------------------------------------------------------

function clusterView() {
  const v = { name: 'cluster' };
  const fill = mount(`<h1>Cluster</h1>
  <section class="card" aria-labelledby="h-problems"><h2 id="h-problems">Health</h2><div id="health">Loading…</div></section>
  <section class="card" aria-labelledby="h-hosts"><h2 id="h-hosts">Hosts</h2><div id="hosts"></div></section>
  <div class="grid">
    <section class="card" aria-labelledby="h-servers"><h2 id="h-servers">Servers</h2><div id="servers"></div></section>
    <section class="card" aria-labelledby="h-pending"><h2 id="h-pending">Pending jobs</h2><div id="pending-all"></div></section>
  </div>`);
  const bar = (used, cap, unit) => {
    const pct = cap ? Math.min(100, Math.round(used * 100 / cap)) : 0;
    return `<div class="bar${pct >= 100 ? ' full' : pct >= 80 ? ' high' : ''}" role="meter" aria-valuemin="0" aria-valuemax="${cap}" aria-valuenow="${used}" aria-label="${unit} reserved"><span style="width:${pct}%"></span></div>
      <span class="barlabel">${used} / ${cap} ${unit} (${pct}%)</span>`;
  };
  v.render = async () => {
    const hosts = api('GET', '/v1/hosts').then(hs => {
      if (!fill('hosts', table(['Host', 'State', 'Jobs', 'CPU reserved', 'Memory reserved', ''], hs.map(h => `<tr data-host="${esc(h.id)}" data-draining="${h.draining ? 1 : 0}">
        <td class="mono">${esc(h.id)}<br><span class="muted">${esc(h.addr)} · ${esc(h.runtime)}</span></td>
        <td>${h.draining ? state('draining') : state('ready')}${h.disk_pressure ? `<br><span class="error">disk: ${esc(h.disk_pressure)}</span>` : ''}</td><td>${h.jobs}</td>
        <td>${bar(h.reserved_cpu_millis, h.cpu_millis, 'mCPU')}</td><td>${bar(h.reserved_memory_mb, h.memory_mb, 'MB')}</td>
        <td>${h.draining ? `<button class="plain" data-undrain="${esc(h.id)}">Undrain</button>` : `<button class="plain" data-drain="${esc(h.id)}">Drain</button>`}</td></tr>`), 'No live hosts.'))) return;
      for (const b of document.querySelectorAll('#hosts [data-drain]')) b.addEventListener('click', () => change(`Draining ${b.dataset.drain}`, () => api('PUT', `/v1/hosts/${enc(b.dataset.drain)}/drain`)));
      for (const b of document.querySelectorAll('#hosts [data-undrain]')) b.addEventListener('click', () => change(`Undrained ${b.dataset.undrain}`, () => api('DELETE', `/v1/hosts/${enc(b.dataset.undrain)}/drain`)));
    });
    const servers = api('GET', '/v1/servers').then(ss => fill('servers', table(['Server', 'API'], ss.map(s => `<tr><td>${esc(s.name)}</td><td class="mono">${esc(s.url)}</td></tr>`), 'No servers.')));
    const pending = api('GET', '/v1/apps').then(apps => Promise.all(apps.map(a => api('GET', `/v1/apps/${enc(a.name)}/jobs`).then(jl => jl.pending || []).catch(() => []))))
      .then(lists => {
        const ps = lists.flat();
        fill('pending-all', ps.length ? '<ul>' + ps.map(p => `<li><a href="#/apps/${esc(p.app)}">${esc(p.app)}</a> ${p.count} × ${esc(p.process_type)}: ${esc(p.reason)}</li>`).join('') + '</ul>'
          : '<p class="muted">Every job has a host.</p>');
      });
    const health = api('GET', '/v1/status').then(s => fill('health', (s.healthy ? `<p>${state('ready')} the cluster is healthy.</p>` : '')
      + (s.problems || []).map(p => `<p class="error">${esc(p)}</p>`).join('')
      + (s.certificates || []).map(c => `<p>certificate for <span class="mono">${esc(c.domain)}</span> expires ${esc(c.not_after.slice(0, 10))}</p>`).join('')));
    await Promise.all([hosts, servers, pending, health]);
  };
  // Drains and host resources are not in the events stream: poll them.
  const poll = setInterval(() => refreshSoon(0), 3000);
  v.stop = () => clearInterval(poll);
  return v;
}

// ---- events ---------------------------------------------------------------------

function eventsView() {
  const v = { name: 'events' };
  const fill = mount('<h1>Events</h1><section class="card"><ul class="feed" id="feed"></ul></section>');
  v.render = async () => {
    fill('feed', events.slice().reverse().map(e => {
      const o = e.object || {};
      const what = e.type === 'job' ? `job ${esc((o.id || '').slice(0, 12))} ${state(o.state || e.op)}`
        : e.type === 'release' ? `release v${o.version}` : e.type === 'scale' ? 'formation ' + esc(Object.entries(o.processes || {}).map(([t, n]) => t + '=' + n).join(' '))
        : e.type === 'deployment' ? `deployment v${o.version} ${state(o.state)}` : esc(e.type);
      return `<li><span class="muted">${esc((e.time || '').slice(11, 19))}</span> ${e.app ? `<a href="#/apps/${esc(e.app)}">${esc(e.app)}</a>` : ''} ${esc(e.op)} ${what}</li>`;
    }).join('') || '<li class="muted">Waiting for changes…</li>');
  };
  return v;
}

start();
