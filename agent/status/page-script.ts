/**
 * The status page's script (inlined by ./page.ts; browsers run it as written, so it is plain ES2020 in a string).
 *
 * It keeps a model of nodes, instances and recent events, filled by one snapshot and then changed by each journal
 * event of the stream (agent/journal-events.ts says what each kind carries): one row is updated per event, the page
 * is never reloaded and the snapshot is read again only after a `reset`. Values reach the DOM through textContent
 * only; class names come from fixed words. The token stays in sessionStorage and in `X-Auth-Token` headers.
 *
 * Installer progress is not journalled: while an instance's operation_state ends in `-processing`, its progress is
 * read every PROGRESS_MS from `GET /v2/{project}/servers/{id}` (at most PROGRESS_MAX instances per round).
 */
export const STATUS_SCRIPT = String.raw`
'use strict';
(function () {
  var KEY = 'metald.status.token';
  var MAX_EVENTS = 50;
  var PROGRESS_MS = 5000;
  var PROGRESS_MAX = 8;
  window.__loadedAt = Date.now();
  var m = { nodes: new Map(), instances: new Map(), events: [], seq: 0, role: '', project: '', agent: '' };
  var run = null;
  var progressTimer = null;

  function $(id) { return document.getElementById(id); }
  function text(node, value) { node.textContent = value === null || value === undefined ? '' : String(value); }
  function cell(tr, cls) { var td = document.createElement('td'); td.className = cls; tr.appendChild(td); return td; }
  function conn(state, label) { var c = $('conn'); c.className = state; text(c, label); }
  function power(p) { return p === 'on' || p === 'off' ? p : 'unknown'; }
  function setPower(td, p, target) {
    var w = power(p);
    td.className = 'power pw-' + w;
    text(td, target === 'on' || target === 'off' ? w + ' \u2192 ' + target : w);
  }
  function errText(e) { return e ? e.error_code + ': ' + e.error_msg : ''; }
  function flash(tr) { tr.classList.remove('flash'); void tr.offsetWidth; tr.classList.add('flash'); }
  function byName(map) {
    return Array.from(map.values()).sort(function (a, b) { return a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : 1; });
  }
  function instanceName(id) { var i = id ? m.instances.get(id) : null; return i ? i.name : id ? id.slice(0, 8) : ''; }
  function nodeName(id) { var n = id ? m.nodes.get(id) : null; return n ? n.name : id ? id.slice(0, 8) : ''; }

  // ---- rows -------------------------------------------------------------------------------------------------------
  function nodeRow(n) {
    var tbody = $('nodes').tBodies[0];
    var tr = tbody.querySelector('tr[data-id="' + CSS.escape(n.id) + '"]');
    if (!tr) {
      tr = document.createElement('tr');
      tr.dataset.id = n.id;
      ['name', 'type', 'power', 'maintenance', 'instance', 'err'].forEach(function (c) { cell(tr, c); });
      insertSorted(tbody, tr, n.name, m.nodes);
    }
    var td = tr.children;
    text(td[0], n.name);
    text(td[1], n.type);
    setPower(td[2], n.power_state, n.target_power_state);
    text(td[3], n.maintenance ? 'yes' + (n.maintenance_reason ? ' (' + n.maintenance_reason + ')' : '') : 'no');
    text(td[4], n.instance_id ? instanceName(n.instance_id) : '');
    text(td[5], errText(n.last_error));
    return tr;
  }
  function instanceRow(i) {
    var tbody = $('instances').tBodies[0];
    var tr = tbody.querySelector('tr[data-id="' + CSS.escape(i.id) + '"]');
    if (!tr) {
      tr = document.createElement('tr');
      tr.dataset.id = i.id;
      ['name', 'state', 'operation', 'power', 'alive', 'addresses', 'progress', 'err'].forEach(function (c) { cell(tr, c); });
      insertSorted(tbody, tr, i.name, m.instances);
    }
    var td = tr.children;
    text(td[0], i.name);
    td[1].className = 'state st-' + (i.state === 'error' ? 'error' : i.state === 'running' ? 'running' : 'other');
    text(td[1], i.state);
    text(td[2], i.operation_state);
    setPower(td[3], i.power_state, i.target_power_state);
    // As os-fping answers: not alive while the verified power is off; else the last verdict the monitor journalled.
    var alive = i.power_state === 'off' ? false : i.alive;
    td[4].className = 'alive ' + (alive === true ? 'yes' : alive === false ? 'no' : '');
    text(td[4], alive === true ? 'yes' : alive === false ? 'no' : '\u2013');
    text(td[5], (i.addresses || []).map(function (a) { return a.addr + (a.network ? ' (' + a.network + ')' : ''); }).join(', '));
    progressCell(td[6], i.progress);
    text(td[7], errText(i.error));
    return tr;
  }
  function progressCell(td, p) {
    var v = typeof p === 'number' && p >= 0 && p <= 100 ? Math.round(p) : 0;
    td.replaceChildren();
    var bar = document.createElement('span'); bar.className = 'bar';
    var fill = document.createElement('span'); fill.style.width = v + '%';
    bar.appendChild(fill);
    td.appendChild(bar);
    td.appendChild(document.createTextNode(v + '%'));
  }
  function insertSorted(tbody, tr, name, map) {
    for (var row = tbody.firstElementChild; row; row = row.nextElementSibling) {
      var other = map.get(row.dataset.id);
      if (other && other.name > name) { tbody.insertBefore(tr, row); return; }
    }
    tbody.appendChild(tr);
  }
  function removeRow(table, id) {
    var tr = $(table).tBodies[0].querySelector('tr[data-id="' + CSS.escape(id) + '"]');
    if (tr) tr.remove();
  }
  function counts() {
    text($('nodes-count'), m.nodes.size);
    text($('instances-count'), m.instances.size);
    text($('events-count'), m.events.length);
    text($('seq'), 'seq ' + m.seq);
  }

  // ---- events -----------------------------------------------------------------------------------------------------
  function summary(e) {
    var d = e.data || {};
    switch (e.kind) {
      case 'instance.created': return 'created (' + d.state + ')';
      case 'instance.state': return 'state ' + (d.from ? d.from + ' \u2192 ' : '') + d.state + (d.event ? ' (' + d.event + ')' : '');
      case 'instance.operation_state': return 'operation state ' + (d.operation_state || 'none');
      case 'instance.power': case 'node.power':
        return 'power_state' in d ? 'power ' + power(d.power_state) : 'target power ' + (d.target_power_state || 'none');
      case 'instance.target_power': return 'target power ' + (d.target_power_state || 'none');
      case 'instance.error': case 'node.error': return d.error ? 'error ' + errText(d.error) : 'error cleared';
      case 'instance.addresses': return 'addresses ' + (d.addresses || []).map(function (a) { return a.addr; }).join(', ');
      case 'instance.alive': return d.alive ? 'alive' : 'not alive';
      case 'instance.deleted': return 'deleted';
      case 'action.started': return 'action ' + d.action + ' started';
      case 'action.event': return 'step ' + d.event + (d.result ? ': ' + d.result : ' started') + (d.code ? ' (' + d.code + ')' : '');
      case 'action.finished': return 'action ' + d.action + ': ' + d.result + (d.message ? ' \u2013 ' + d.message : '');
      case 'node.maintenance': return d.maintenance ? 'maintenance on' + (d.reason ? ' (' + d.reason + ')' : '') : 'maintenance off';
      case 'node.released': return 'released';
      case 'node.enrolled': return 'enrolled (' + d.type + ')';
      case 'node.removed': return 'removed';
      default: return '';
    }
  }
  function eventRow(e) {
    var tr = document.createElement('tr');
    tr.dataset.seq = String(e.seq);
    var t = new Date(e.at);
    text(cell(tr, 'time'), isNaN(t.getTime()) ? e.at : t.toLocaleTimeString());
    text(cell(tr, 'kind'), e.kind);
    text(cell(tr, 'object'), e.instance_id ? instanceName(e.instance_id) : nodeName(e.node_id));
    text(cell(tr, 'summary'), summary(e));
    return tr;
  }
  function addEvent(e) {
    m.events.push(e);
    var tbody = $('events').tBodies[0];
    tbody.insertBefore(eventRow(e), tbody.firstElementChild);
    while (m.events.length > MAX_EVENTS) { m.events.shift(); tbody.lastElementChild.remove(); }
  }
  /** One journal entry onto the model: the row it concerns is redrawn, nothing else. */
  function apply(e) {
    var d = e.data || {};
    var i = e.instance_id ? m.instances.get(e.instance_id) : null;
    var n = e.node_id ? m.nodes.get(e.node_id) : null;
    switch (e.kind) {
      case 'instance.created':
        i = { id: d.id, name: d.name, project_id: d.project_id, node_id: d.node_id || null, state: d.state, operation_state: null,
          power_state: 'unknown', target_power_state: null, alive: null, addresses: d.addresses || [], progress: 0, error: null };
        m.instances.set(i.id, i);
        if (n) { n.instance_id = i.id; flash(nodeRow(n)); }
        break;
      case 'instance.state': if (i) i.state = d.state; break;
      case 'instance.operation_state':
        if (i) {
          i.operation_state = d.operation_state;
          if (/-succeed$/.test(d.operation_state || '') && d.operation_state !== 'uninstall-succeed') i.progress = 100;
          else if (/-processing$/.test(d.operation_state || '')) i.progress = 0;
        }
        break;
      case 'instance.power': if (i) i.power_state = d.power_state; break;
      case 'instance.target_power': if (i) i.target_power_state = d.target_power_state; break;
      case 'instance.error': if (i) i.error = d.error; break;
      case 'instance.addresses': if (i) i.addresses = d.addresses || []; break;
      case 'instance.alive': if (i) i.alive = d.alive; break;
      case 'instance.deleted':
        if (i) { m.instances.delete(i.id); removeRow('instances', i.id); i = null; }
        break;
      case 'node.power':
        if (n) { if ('power_state' in d) n.power_state = d.power_state; else n.target_power_state = d.target_power_state; }
        break;
      case 'node.error': if (n) n.last_error = d.error; break;
      case 'node.maintenance': if (n) { n.maintenance = d.maintenance; n.maintenance_reason = d.reason; } break;
      case 'node.released': if (n) n.instance_id = null; break;
      case 'node.enrolled':
        if (!n && m.role === 'admin') {
          n = { id: e.node_id, name: d.name, type: d.type, power_state: 'unknown', target_power_state: null, maintenance: false,
            maintenance_reason: null, last_error: null, instance_id: null };
          m.nodes.set(n.id, n);
        }
        break;
      case 'node.removed':
        if (n) { m.nodes.delete(n.id); removeRow('nodes', n.id); n = null; }
        break;
    }
    if (i && e.kind.indexOf('instance.') === 0) flash(instanceRow(i));
    if (n && e.kind.indexOf('node.') === 0) flash(nodeRow(n));
    addEvent(e);
    if (e.seq > m.seq) m.seq = e.seq;
    counts();
  }

  // ---- the snapshot and the stream ----------------------------------------------------------------------------------
  function showLogin(msg) {
    stop();
    $('board').classList.add('hidden');
    $('logout').classList.add('hidden');
    $('login').classList.remove('hidden');
    text($('login-msg'), msg || '');
    conn('', 'offline');
    $('token').focus();
  }
  function stop() {
    if (run) run.abort.abort();
    run = null;
    if (progressTimer) clearInterval(progressTimer);
    progressTimer = null;
  }
  function headers(t) { return { 'X-Auth-Token': t, 'Accept': 'application/json' }; }
  async function start() {
    var t = sessionStorage.getItem(KEY);
    if (!t) return showLogin('');
    stop();
    var mine = { abort: new AbortController(), token: t, backoff: 1000 };
    run = mine;
    conn('', 'loading');
    var res;
    try {
      res = await fetch('/v1/status/snapshot', { headers: headers(t), cache: 'no-store', signal: mine.abort.signal });
    } catch (err) {
      if (run === mine) retry(mine, 'snapshot failed');
      return;
    }
    if (run !== mine) return;
    if (res.status === 401) { sessionStorage.removeItem(KEY); return showLogin('The token was refused (401).'); }
    if (!res.ok) return retry(mine, 'snapshot answered ' + res.status);
    var snap = await res.json();
    if (run !== mine) return;
    load(snap);
    $('login').classList.add('hidden');
    $('board').classList.remove('hidden');
    $('logout').classList.remove('hidden');
    progressTimer = setInterval(pollProgress, PROGRESS_MS);
    stream(mine);
  }
  function retry(mine, why) {
    conn('down', why + '; retrying');
    setTimeout(function () { if (run === mine) start(); }, mine.backoff);
    mine.backoff = Math.min(mine.backoff * 2, 30000);
  }
  function load(s) {
    m.nodes = new Map(); m.instances = new Map(); m.events = [];
    m.seq = s.seq; m.role = s.role; m.project = s.project_id; m.agent = s.agent_id;
    ['nodes', 'instances', 'events'].forEach(function (t) { $(t).tBodies[0].replaceChildren(); });
    s.nodes.forEach(function (n) { m.nodes.set(n.id, n); });
    s.instances.forEach(function (i) { m.instances.set(i.id, i); });
    byName(m.nodes).forEach(nodeRow);
    byName(m.instances).forEach(instanceRow);
    s.events.forEach(addEvent);
    $('nodes-section').classList.toggle('hidden', s.role !== 'admin');
    text($('agent'), 'agent ' + s.agent_id);
    text($('role'), s.role + ' (project ' + s.project_id + ')');
    counts();
  }
  async function stream(mine) {
    var res;
    try {
      res = await fetch('/v1/status/events?since=' + encodeURIComponent(String(m.seq)), {
        headers: { 'X-Auth-Token': mine.token, 'Accept': 'text/event-stream' }, cache: 'no-store', signal: mine.abort.signal });
    } catch (err) {
      return reconnect(mine);
    }
    if (run !== mine) return;
    if (res.status === 401) { sessionStorage.removeItem(KEY); return showLogin('The token was refused (401).'); }
    if (!res.ok || !res.body) { conn('down', 'stream answered ' + res.status); return reconnect(mine); }
    conn('live', 'live');
    mine.backoff = 1000;
    var reader = res.body.getReader();
    var decoder = new TextDecoder();
    var buf = '';
    try {
      for (;;) {
        var r = await reader.read();
        if (r.done || run !== mine) break;
        buf += decoder.decode(r.value, { stream: true }).replace(/\r\n?/g, '\n');
        var at;
        while ((at = buf.indexOf('\n\n')) >= 0) {
          var block = buf.slice(0, at);
          buf = buf.slice(at + 2);
          if (frame(mine, block) === 'reset') return;
        }
      }
    } catch (err) {
      // aborted or the connection dropped: reconnect below
    }
    reconnect(mine);
  }
  /** One SSE block: id, event and data lines (comments ignored). */
  function frame(mine, block) {
    var name = 'message', data = [];
    block.split('\n').forEach(function (line) {
      if (line === '' || line[0] === ':') return;
      var c = line.indexOf(':');
      var field = c < 0 ? line : line.slice(0, c);
      var value = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
      if (field === 'event') name = value;
      else if (field === 'data') data.push(value);
    });
    if (name === 'journal') { apply(JSON.parse(data.join('\n'))); return 'journal'; }
    if (name === 'reset') { if (run === mine) start(); return 'reset'; }
    return name;
  }
  function reconnect(mine) {
    if (run !== mine) return;
    conn('down', 'reconnecting');
    setTimeout(function () { if (run === mine) stream(mine); }, mine.backoff);
    mine.backoff = Math.min(mine.backoff * 2, 30000);
  }
  async function pollProgress() {
    var mine = run;
    if (!mine) return;
    var busy = Array.from(m.instances.values()).filter(function (i) { return /-processing$/.test(i.operation_state || ''); }).slice(0, PROGRESS_MAX);
    for (var k = 0; k < busy.length; k++) {
      var i = busy[k];
      try {
        var res = await fetch('/v2/' + encodeURIComponent(m.project) + '/servers/' + encodeURIComponent(i.id), { headers: headers(mine.token), cache: 'no-store' });
        if (!res.ok || run !== mine) continue;
        var body = await res.json();
        var p = body && body.server ? body.server.progress : null;
        if (typeof p === 'number' && m.instances.get(i.id) === i && i.progress !== p) { i.progress = p; instanceRow(i); }
      } catch (err) {
        // the next round tries again
      }
    }
  }

  $('login').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var t = $('token').value.trim();
    $('token').value = '';
    if (!t) return;
    sessionStorage.setItem(KEY, t);
    start();
  });
  $('logout').addEventListener('click', function () { sessionStorage.removeItem(KEY); showLogin(''); });
  start();
})();
`;
