//! The query page served at `/`: a text area, a format choice, and the results as a table,
//! talking to `/query` and `/update` with plain `fetch`.

use axum::response::Html;

/// `GET /`.
pub(crate) async fn query_page() -> Html<&'static str> {
    Html(PAGE)
}

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tessera</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em;max-width:70em}
textarea{width:100%;height:12em;font:13px monospace}
table{border-collapse:collapse;margin-top:1em}td,th{border:1px solid #ccc;padding:2px 6px;font:12px monospace}
#status{margin-left:1em;color:#555}pre{background:#f6f6f6;padding:1em;overflow:auto}
</style></head><body>
<h1>Tessera</h1>
<p>SPARQL 1.1 endpoints: <code>/query</code>, <code>/update</code>, <code>/sparql</code>; Graph Store: <code>/store</code>.</p>
<textarea id="q">SELECT * WHERE { ?s ?p ?o } LIMIT 25</textarea><br>
<button id="run">Query</button> <button id="upd">Update</button>
<input id="token" placeholder="write token (optional)" size="24">
<span id="status"></span>
<div id="out"></div>
<script>
const $ = id => document.getElementById(id);
function cell(t){ if(!t) return ''; if(t.type==='uri') return '<'+t.value+'>'; if(t.type==='bnode') return '_:'+t.value;
  return JSON.stringify(t.value)+(t['xml:lang']?'@'+t['xml:lang']:t.datatype?'^^<'+t.datatype+'>':''); }
function esc(s){ const d=document.createElement('div'); d.textContent=s; return d.innerHTML; }
$('run').onclick = async () => {
  const t0 = performance.now(); $('status').textContent = 'running...';
  const r = await fetch('query', {method:'POST', headers:{'Content-Type':'application/sparql-query',
    'Accept':'application/sparql-results+json, text/turtle;q=0.9'}, body:$('q').value});
  const text = await r.text(); const ms = (performance.now()-t0).toFixed(0);
  if(!r.ok){ $('status').textContent = r.status+' in '+ms+' ms'; $('out').innerHTML='<pre>'+esc(text)+'</pre>'; return; }
  if((r.headers.get('content-type')||'').includes('json')){
    const j = JSON.parse(text);
    if('boolean' in j){ $('out').innerHTML='<pre>'+j.boolean+'</pre>'; $('status').textContent=ms+' ms'; return; }
    const vars = j.head.vars; let h = '<table><tr>'+vars.map(v=>'<th>?'+esc(v)+'</th>').join('')+'</tr>';
    for(const b of j.results.bindings) h += '<tr>'+vars.map(v=>'<td>'+esc(cell(b[v]))+'</td>').join('')+'</tr>';
    $('out').innerHTML = h+'</table>'; $('status').textContent = j.results.bindings.length+' rows in '+ms+' ms';
  } else { $('out').innerHTML='<pre>'+esc(text)+'</pre>'; $('status').textContent=ms+' ms'; }
};
$('upd').onclick = async () => {
  const h = {'Content-Type':'application/sparql-update'}; if($('token').value) h['Authorization']='Bearer '+$('token').value;
  const r = await fetch('update', {method:'POST', headers:h, body:$('q').value});
  $('status').textContent = r.ok ? 'update done' : r.status+': '+await r.text();
};
</script></body></html>
"#;
