// The Tessera console: a SPARQL editor, results as a paged table and as a graph, reading text
// (INSERT TEXT) with its report, the schema and the sources. It talks to the endpoints next to
// it with relative URLs (query, update, ready), so a router nested under a prefix still works.
'use strict';

const $ = (id) => document.getElementById(id);
const PAGE_SIZE = 50;
const PREFIXES = {
  rdf: 'http://www.w3.org/1999/02/22-rdf-syntax-ns#',
  rdfs: 'http://www.w3.org/2000/01/rdf-schema#',
  xsd: 'http://www.w3.org/2001/XMLSchema#',
  owl: 'http://www.w3.org/2002/07/owl#',
  skos: 'http://www.w3.org/2004/02/skos/core#',
  prov: 'http://www.w3.org/ns/prov#',
  tessera: 'https://tessera.dev/ns#',
  entity: 'http://tessera.local/entity/',
  relation: 'http://tessera.local/relation/',
};

// ---- small helpers -------------------------------------------------------------------------

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

function short(iri) {
  for (const [p, ns] of Object.entries(PREFIXES)) {
    if (iri.startsWith(ns) && iri.length > ns.length) return p + ':' + iri.slice(ns.length);
  }
  return iri;
}

// A readable name for a node: the local part of an IRI, decoded.
function nodeLabel(term) {
  if (term.type !== 'uri') return term.type === 'bnode' ? '_:' + term.value : term.value;
  const m = term.value.match(/[^/#]+$/);
  let name = m ? m[0] : term.value;
  try { name = decodeURIComponent(name); } catch (_) { /* keep it as it is */ }
  return name.replace(/_/g, ' ');
}

function setStatus(el, text, error) {
  el.textContent = text;
  el.classList.toggle('error', !!error);
}

function token() {
  return $('token').value.trim();
}

function authHeaders(headers) {
  if (token()) headers.Authorization = 'Bearer ' + token();
  return headers;
}

// The form of a query: SELECT, ASK, CONSTRUCT, DESCRIBE, or UPDATE for anything else.
function queryForm(q) {
  const body = q
    .replace(/(^|\s)#[^\n]*/g, ' ')
    .replace(/\b(PREFIX\s+[^\s:]*:\s*<[^>]*>|BASE\s*<[^>]*>)/gi, ' ')
    .trim();
  const m = body.match(/^(SELECT|ASK|CONSTRUCT|DESCRIBE)\b/i);
  return m ? m[1].toUpperCase() : 'UPDATE';
}

function sparqlString(s) {
  return '"' + s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\r/g, '\\r') + '"';
}

// ---- N-Triples (CONSTRUCT and DESCRIBE results) -------------------------------------------

const TERM = /^(<[^>]*>|_:[^\s.]+|"(?:[^"\\]|\\.)*"(?:\^\^<[^>]*>|@[A-Za-z0-9-]+)?)\s*/;

function parseTerm(t) {
  if (t.startsWith('<')) return { type: 'uri', value: t.slice(1, -1) };
  if (t.startsWith('_:')) return { type: 'bnode', value: t.slice(2) };
  const end = t.lastIndexOf('"');
  const raw = t.slice(0, end + 1).replace(/\\U([0-9A-Fa-f]{8})/g, (_, h) => String.fromCodePoint(parseInt(h, 16)));
  const term = { type: 'literal', value: JSON.parse(raw) };
  const rest = t.slice(end + 1);
  if (rest.startsWith('^^')) term.datatype = rest.slice(3, -1);
  if (rest.startsWith('@')) term['xml:lang'] = rest.slice(1);
  return term;
}

function parseNTriples(text) {
  const rows = [];
  for (let line of text.split('\n')) {
    line = line.trim();
    if (!line || line.startsWith('#')) continue;
    const terms = [];
    for (let i = 0; i < 3; i++) {
      const m = line.match(TERM);
      if (!m) throw new Error('cannot read N-Triples line: ' + line);
      terms.push(parseTerm(m[1]));
      line = line.slice(m[0].length);
    }
    rows.push({ s: terms[0], p: terms[1], o: terms[2] });
  }
  return { vars: ['s', 'p', 'o'], rows };
}

// ---- running queries -----------------------------------------------------------------------

async function runQuery(query) {
  const form = queryForm(query);
  const graphForm = form === 'CONSTRUCT' || form === 'DESCRIBE';
  const response = await fetch('query', {
    method: 'POST',
    headers: {
      'Content-Type': 'application/x-www-form-urlencoded',
      Accept: graphForm ? 'application/n-triples' : 'application/sparql-results+json',
    },
    body: new URLSearchParams({ query }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(response.status + ': ' + text);
  if (graphForm) return parseNTriples(text);
  const json = JSON.parse(text);
  if ('boolean' in json) return { boolean: json.boolean };
  return { vars: json.head.vars, rows: json.results.bindings };
}

async function runUpdate(update) {
  const response = await fetch('update', {
    method: 'POST',
    headers: authHeaders({ 'Content-Type': 'application/sparql-update', Accept: 'application/json' }),
    body: update,
  });
  const text = await response.text();
  if (!response.ok) throw new Error(response.status + ': ' + text);
  return text ? JSON.parse(text) : null;
}

// ---- the editor and its results -----------------------------------------------------------

const editor = CodeMirror.fromTextArea($('editor'), {
  mode: 'application/sparql-query',
  lineNumbers: true,
  matchBrackets: true,
  extraKeys: { 'Ctrl-Enter': () => $('run-query').click(), 'Cmd-Enter': () => $('run-query').click() },
});

for (const p of Object.keys(PREFIXES)) {
  const o = document.createElement('option');
  o.value = p;
  o.textContent = p + ':';
  $('prefixes').appendChild(o);
}
$('prefixes').onchange = () => {
  const p = $('prefixes').value;
  $('prefixes').value = '';
  if (!p) return;
  const decl = 'PREFIX ' + p + ': <' + PREFIXES[p] + '>';
  if (!editor.getValue().includes(decl)) editor.replaceRange(decl + '\n', { line: 0, ch: 0 });
  editor.focus();
};

const state = { result: null, page: 0 };

function termHtml(t) {
  if (!t) return '';
  if (t.type === 'uri') return '<span class="iri" data-iri="' + esc(t.value) + '" title="' + esc(t.value) + '">' + esc(short(t.value)) + '</span>';
  if (t.type === 'bnode') return '_:' + esc(t.value);
  let suffix = '';
  if (t['xml:lang']) suffix = '<span class="dt">@' + esc(t['xml:lang']) + '</span>';
  else if (t.datatype && !t.datatype.endsWith('#string')) suffix = '<span class="dt">^^' + esc(short(t.datatype)) + '</span>';
  return '<span class="lit">' + esc(t.value) + '</span>' + suffix;
}

function renderTable() {
  const r = state.result;
  if (!r) { $('table').innerHTML = ''; $('pager').hidden = true; return; }
  if ('boolean' in r) { $('table').innerHTML = '<pre>' + r.boolean + '</pre>'; $('pager').hidden = true; return; }
  const pages = Math.max(1, Math.ceil(r.rows.length / PAGE_SIZE));
  state.page = Math.min(state.page, pages - 1);
  const rows = r.rows.slice(state.page * PAGE_SIZE, (state.page + 1) * PAGE_SIZE);
  let h = '<table id="results"><thead><tr>' + r.vars.map((v) => '<th>?' + esc(v) + '</th>').join('') + '</tr></thead><tbody>';
  for (const row of rows) h += '<tr>' + r.vars.map((v) => '<td class="term">' + termHtml(row[v]) + '</td>').join('') + '</tr>';
  $('table').innerHTML = h + '</tbody></table>';
  $('pager').hidden = pages <= 1;
  $('page').textContent = 'page ' + (state.page + 1) + ' of ' + pages + ' (' + r.rows.length + ' rows)';
}

$('prev').onclick = () => { state.page = Math.max(0, state.page - 1); renderTable(); };
$('next').onclick = () => { state.page += 1; renderTable(); };

// ---- the graph -----------------------------------------------------------------------------

const cy = cytoscape({
  container: $('graph'),
  style: [
    { selector: 'node', style: { label: 'data(label)', 'font-size': 10, 'background-color': '#2f6f9f', color: '#1d2329', 'text-valign': 'bottom', 'text-margin-y': 3, width: 14, height: 14 } },
    { selector: 'node.literal', style: { shape: 'round-rectangle', 'background-color': '#8fbf8f', width: 10, height: 10 } },
    { selector: 'node.expanded', style: { 'background-color': '#1f3a4d' } },
    { selector: 'edge', style: { label: 'data(label)', 'font-size': 8, width: 1.2, 'curve-style': 'bezier', 'target-arrow-shape': 'triangle', 'line-color': '#9fb3c2', 'target-arrow-color': '#9fb3c2', color: '#55606a', 'text-rotation': 'autorotate' } },
  ],
  wheelSensitivity: 0.3,
  maxZoom: 2.5,
});

function nodeId(t) {
  return t.type === 'uri' ? t.value : t.type === 'bnode' ? '_:' + t.value : '"' + t.value + '"' + (t.datatype || '') + (t['xml:lang'] || '');
}

function addNode(t) {
  const id = nodeId(t);
  if (cy.getElementById(id).empty()) {
    cy.add({ group: 'nodes', data: { id, label: nodeLabel(t), iri: t.type === 'uri' ? t.value : null }, classes: t.type === 'literal' ? 'literal' : '' });
  }
  return id;
}

const LABEL = PREFIXES.rdfs + 'label';

// Adds triples to the graph; returns how many edges were new. A label names its node rather
// than hanging off it as an edge.
function addTriples(rows) {
  let added = 0;
  cy.batch(() => {
    for (const { s, p, o } of rows) {
      if (!s || !p || !o) continue;
      if (p.value === LABEL && o.type === 'literal') {
        cy.getElementById(addNode(s)).data('label', o.value);
        continue;
      }
      const source = addNode(s);
      const target = addNode(o);
      const id = source + ' ' + p.value + ' ' + target;
      if (cy.getElementById(id).empty()) {
        cy.add({ group: 'edges', data: { id, source, target, label: nodeLabel(p), iri: p.value } });
        added += 1;
      }
    }
  });
  return added;
}

function layout() {
  if ($('results-graph').classList.contains('active')) {
    cy.resize();
    cy.layout({ name: 'cose', animate: false, nodeRepulsion: 8000, idealEdgeLength: 90 }).run();
  }
}

// The triples of a result: ?s ?p ?o columns (a CONSTRUCT, or a SELECT with those names), or
// any three columns whose middle one is always an IRI.
function triplesOf(r) {
  if (!r || !r.vars) return [];
  let [s, p, o] = ['s', 'p', 'o'];
  if (!['s', 'p', 'o'].every((v) => r.vars.includes(v))) {
    if (r.vars.length !== 3) return [];
    [s, p, o] = r.vars;
  }
  return r.rows.filter((row) => row[p] && row[p].type === 'uri').map((row) => ({ s: row[s], p: row[p], o: row[o] }));
}

async function expand(iri) {
  const i = '<' + iri + '>';
  const q = 'SELECT ?s ?p ?o WHERE { { BIND(' + i + ' AS ?s) ' + i + ' ?p ?o } UNION { ?s ?p ' + i + ' BIND(' + i + ' AS ?o) } } LIMIT 200';
  try {
    const r = await runQuery(q);
    addNode({ type: 'uri', value: iri });
    const added = addTriples(triplesOf(r));
    cy.getElementById(iri).addClass('expanded');
    setStatus($('status'), 'expanded ' + short(iri) + ': ' + added + ' new edges');
    layout();
  } catch (e) {
    setStatus($('status'), String(e.message || e), true);
  }
}

cy.on('tap', 'node', (ev) => {
  const iri = ev.target.data('iri');
  if (iri) expand(iri);
});

$('table').addEventListener('click', (ev) => {
  const iri = ev.target.dataset && ev.target.dataset.iri;
  if (!iri) return;
  showView('graph');
  expand(iri);
});

function showView(which) {
  for (const v of ['table', 'graph']) {
    $('view-' + v).classList.toggle('active', v === which);
    $('results-' + v).classList.toggle('active', v === which);
  }
  if (which === 'graph') layout();
}
$('view-table').onclick = () => showView('table');
$('view-graph').onclick = () => showView('graph');

// ---- query and update buttons --------------------------------------------------------------

async function query(text) {
  const t0 = performance.now();
  setStatus($('status'), 'running…');
  try {
    const r = await runQuery(text);
    state.result = r;
    state.page = 0;
    renderTable();
    cy.elements().remove();
    const edges = addTriples(triplesOf(r));
    layout();
    const ms = (performance.now() - t0).toFixed(0);
    const n = 'boolean' in r ? String(r.boolean) : r.rows.length + ' rows';
    setStatus($('status'), n + ' in ' + ms + ' ms' + (edges ? ', ' + edges + ' edges in the graph' : ''));
  } catch (e) {
    state.result = null;
    renderTable();
    setStatus($('status'), String(e.message || e), true);
  }
}

$('run-query').onclick = () => {
  const text = editor.getValue();
  if (queryForm(text) === 'UPDATE') return $('run-update').click();
  query(text);
};

$('run-update').onclick = async () => {
  setStatus($('status'), 'updating…');
  try {
    await runUpdate(editor.getValue());
    setStatus($('status'), 'update applied');
  } catch (e) {
    setStatus($('status'), String(e.message || e), true);
  }
};

// ---- reading text --------------------------------------------------------------------------

function renderReport(op) {
  const s = op.stats || {};
  const rel = (op.relations_added || []).map(esc).join(', ') || 'none';
  let h = '<div class="report"><div class="summary">' +
    '<span><b id="written-count">' + op.triples.length + '</b> triples written</span>' +
    '<span><b>' + op.dropped.length + '</b> dropped</span>' +
    '<span>entities: ' + op.entities_linked + ' linked, ' + op.entities_created + ' created</span>' +
    '<span>relations added: ' + rel + '</span>' +
    '<span>' + op.chunks + ' chunk(s); extract ' + s.extract_ms + ' ms, define ' + s.define_ms + ' ms, canonicalize ' + s.canonicalize_ms + ' ms, refine ' + s.refine_ms + ' ms, commit ' + s.commit_ms + ' ms; ' + s.prompt_tokens + ' prompt (' + s.cached_tokens + ' cached) + ' + s.generated_tokens + ' generated tokens</span>' +
    '</div><div>source <span class="iri" title="' + esc(op.source) + '">' + esc(op.source) + '</span> ' +
    '<button id="show-triples" data-source="' + esc(op.source) + '">Show its triples</button></div>';
  h += '<h3>Written</h3><table id="written"><thead><tr><th>subject</th><th>relation</th><th>object</th><th>stated by</th></tr></thead><tbody>';
  op.facts.forEach((f, i) => {
    h += '<tr><td>' + esc(f[0]) + '</td><td>' + esc(f[1]) + '</td><td>' + esc(f[2]) + '</td><td class="sentence">' + esc((op.sentences || [])[i] || '') + '</td></tr>';
  });
  h += '</tbody></table>';
  if (op.dropped.length) {
    h += '<h3>Dropped</h3><table id="dropped"><thead><tr><th>triple as read</th><th>why</th><th>from</th></tr></thead><tbody>';
    for (const d of op.dropped) {
      h += '<tr><td>' + esc(d.triple.join(' · ')) + '</td><td>' + esc(d.reason) + '</td><td class="sentence">' + esc(d.sentence || '') + '</td></tr>';
    }
    h += '</tbody></table>';
  }
  return h + '</div>';
}

function showSource(source) {
  selectTab('query');
  editor.setValue('CONSTRUCT { ?s ?p ?o } WHERE { GRAPH <' + source + '> { ?s ?p ?o } }');
  showView('graph');
  return query(editor.getValue());
}

$('read-run').onclick = async () => {
  const text = $('read-text').value;
  if (!text.trim()) return setStatus($('read-status'), 'nothing to read', true);
  let update = 'INSERT TEXT ' + sparqlString(text);
  const graph = $('read-graph').value.trim();
  if (graph) update += ' INTO GRAPH <' + graph + '>';
  update += ' ALIGN ' + $('read-align').value;
  const refine = parseInt($('read-refine').value, 10);
  if (refine > 0) update += ' REFINE ' + refine;
  const t0 = performance.now();
  setStatus($('read-status'), 'reading…');
  $('read-run').disabled = true;
  try {
    const report = await runUpdate(update);
    const op = report.operations.find((o) => o.operation === 'insert text');
    $('read-report').innerHTML = renderReport(op);
    $('show-triples').onclick = () => showSource(op.source);
    setStatus($('read-status'), 'read in ' + ((performance.now() - t0) / 1000).toFixed(1) + ' s');
  } catch (e) {
    $('read-report').innerHTML = '';
    setStatus($('read-status'), String(e.message || e), true);
  } finally {
    $('read-run').disabled = false;
  }
};

// ---- schema and sources --------------------------------------------------------------------

const SCHEMA_QUERY = `PREFIX rdf: <${PREFIXES.rdf}>
PREFIX rdfs: <${PREFIXES.rdfs}>
PREFIX owl: <${PREFIXES.owl}>
PREFIX skos: <${PREFIXES.skos}>
SELECT ?relation (SAMPLE(?l) AS ?label) (SAMPLE(?d) AS ?definition) (MAX(?n) AS ?facts) WHERE {
  { SELECT DISTINCT ?relation WHERE {
      VALUES ?t { rdf:Property owl:ObjectProperty owl:DatatypeProperty }
      { ?relation a ?t } UNION { GRAPH ?g { ?relation a ?t } } } }
  OPTIONAL { { ?relation rdfs:label ?l } UNION { GRAPH ?g1 { ?relation rdfs:label ?l } } }
  OPTIONAL { { ?relation skos:definition ?d } UNION { GRAPH ?g2 { ?relation skos:definition ?d } } }
  OPTIONAL { SELECT ?relation (COUNT(*) AS ?n) WHERE { ?x ?relation ?y } GROUP BY ?relation }
} GROUP BY ?relation ORDER BY DESC(?facts) ?label`;

async function loadSchema() {
  setStatus($('schema-status'), 'loading…');
  try {
    const r = await runQuery(SCHEMA_QUERY);
    let h = '<table id="schema"><thead><tr><th>relation</th><th>label</th><th>definition</th><th>facts</th></tr></thead><tbody>';
    for (const row of r.rows) {
      h += '<tr><td class="term">' + termHtml(row.relation) + '</td><td>' + esc(row.label ? row.label.value : '') + '</td><td>' +
        esc(row.definition ? row.definition.value : '') + '</td><td>' + esc(row.facts ? row.facts.value : '0') + '</td></tr>';
    }
    $('schema-table').innerHTML = h + '</tbody></table>';
    setStatus($('schema-status'), r.rows.length + ' relations');
  } catch (e) {
    setStatus($('schema-status'), String(e.message || e), true);
  }
}
$('schema-refresh').onclick = loadSchema;
$('schema-table').addEventListener('click', (ev) => {
  const iri = ev.target.dataset && ev.target.dataset.iri;
  if (!iri) return;
  selectTab('query');
  editor.setValue('SELECT ?s ?p ?o WHERE { ?s ?p ?o FILTER(?p = <' + iri + '>) } LIMIT 200');
  query(editor.getValue());
});

const SOURCES_QUERY = `PREFIX tessera: <${PREFIXES.tessera}>
PREFIX prov: <${PREFIXES.prov}>
SELECT ?source ?text (SAMPLE(?when) AS ?at) (COUNT(?s) AS ?triples) WHERE {
  GRAPH <urn:tessera:sources> { ?source tessera:text ?text OPTIONAL { ?source prov:generatedAtTime ?when } }
  OPTIONAL { GRAPH ?source { ?s ?p ?o } }
} GROUP BY ?source ?text ORDER BY DESC(?at)`;

async function loadSources() {
  setStatus($('sources-status'), 'loading…');
  try {
    const r = await runQuery(SOURCES_QUERY);
    let h = '';
    for (const row of r.rows) {
      const src = row.source.value;
      h += '<div class="source" data-source="' + esc(src) + '"><div class="meta">' + esc(src) +
        (row.at ? ' · ' + esc(row.at.value) : '') + ' · <b>' + esc(row.triples.value) + '</b> triples ' +
        '<button class="show-source" data-source="' + esc(src) + '">Triples</button> ' +
        '<button class="drop-source danger" data-source="' + esc(src) + '">Drop</button></div>' +
        '<div class="text">' + esc(row.text.value) + '</div></div>';
    }
    $('sources-list').innerHTML = h || '<p>No source yet: read a text.</p>';
    setStatus($('sources-status'), r.rows.length + ' sources');
  } catch (e) {
    setStatus($('sources-status'), String(e.message || e), true);
  }
}
$('sources-refresh').onclick = loadSources;
$('sources-list').addEventListener('click', async (ev) => {
  const src = ev.target.dataset && ev.target.dataset.source;
  if (!src) return;
  if (ev.target.classList.contains('show-source')) return showSource(src);
  if (!ev.target.classList.contains('drop-source')) return;
  if (!window.confirm('Drop the source ' + src + ' and the triples only it supports?')) return;
  try {
    const report = await runUpdate('DROP SOURCE <' + src + '>');
    const op = report.operations[0];
    await loadSources();
    setStatus($('sources-status'), 'dropped ' + src + ': ' + op.triples_removed + ' triples removed');
  } catch (e) {
    setStatus($('sources-status'), String(e.message || e), true);
  }
});

// ---- tabs, token, models -------------------------------------------------------------------

function selectTab(name) {
  for (const b of document.querySelectorAll('#tabs button')) b.classList.toggle('active', b.dataset.tab === name);
  for (const p of document.querySelectorAll('.panel')) p.classList.toggle('active', p.id === 'panel-' + name);
  if (name === 'query') editor.refresh();
  if (name === 'schema') loadSchema();
  if (name === 'sources') loadSources();
}
for (const b of document.querySelectorAll('#tabs button')) b.onclick = () => selectTab(b.dataset.tab);

$('token').value = localStorage.getItem('tessera-token') || '';
$('token').onchange = () => localStorage.setItem('tessera-token', token());

async function watchModels() {
  let again = true;
  try {
    const r = await fetch('ready');
    const j = await r.json();
    const m = j.models || {};
    const el = $('models');
    el.className = '';
    if (m.state === 'loaded') {
      el.textContent = m.llm + ' · ' + m.embedder + ' · ' + m.device + ' · ' + m.threads + ' threads';
      again = false;
    } else if (m.state === 'loading') {
      el.textContent = 'loading models…';
      el.className = 'waiting';
    } else if (m.state === 'failed') {
      el.textContent = 'models failed: ' + m.error;
      el.className = 'failed';
      again = false;
    } else if (m.state === 'disabled') {
      el.textContent = 'SPARQL only (no text reading)';
      again = false;
    } else {
      el.textContent = 'models load on first text';
      again = false;
    }
  } catch (_) { /* the server is restarting: try again */ }
  if (again) setTimeout(watchModels, 2000);
}
watchModels();

// For tests and the curious: the console's state.
window.tessera = { cy, editor, state, query, expand };
