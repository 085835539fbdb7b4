// Drives a live Tessera server with Comunica 4 (a SPARQL endpoint as source and destination).
// usage: node comunica.mjs http://127.0.0.1:7878
import { QueryEngine } from '@comunica/query-sparql';

const base = process.argv[2].replace(/\/$/, '');
const endpoint = { type: 'sparql', value: `${base}/sparql` };
const engine = new QueryEngine();
let failed = 0;
function check(name, ok, detail) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${ok ? '' : ': ' + JSON.stringify(detail)}`);
  if (!ok) failed++;
}

await engine.queryVoid(`PREFIX ex: <http://example.org/>
  INSERT DATA { ex:erin <http://xmlns.com/foaf/0.1/name> "Erin" .
                GRAPH ex:comunica { ex:frank <http://xmlns.com/foaf/0.1/name> "Frank" ; ex:age 51 } }`,
  { sources: [endpoint], destination: endpoint });

const bindings = await (await engine.queryBindings(
  'SELECT ?n WHERE { ?s <http://xmlns.com/foaf/0.1/name> ?n } ORDER BY ?n',
  { sources: [endpoint] })).toArray();
const names = bindings.map((b) => b.get('n').value);
check('comunica: update then SELECT (default graph)', names.includes('Erin') && !names.includes('Frank'), names);

const named = await (await engine.queryBindings(
  'SELECT ?g ?n WHERE { GRAPH ?g { ?s <http://xmlns.com/foaf/0.1/name> ?n } }',
  { sources: [endpoint] })).toArray();
const frank = named.find((b) => b.get('n').value === 'Frank');
check('comunica: SELECT over named graphs', frank && frank.get('g').value === 'http://example.org/comunica', named.map((b) => b.toString()));

const age = await (await engine.queryBindings(
  'SELECT ?a WHERE { GRAPH <http://example.org/comunica> { ?s <http://example.org/age> ?a } }',
  { sources: [endpoint] })).toArray();
check('comunica: typed literal', age.length === 1 && age[0].get('a').datatype.value === 'http://www.w3.org/2001/XMLSchema#integer', age.map((b) => b.toString()));

const quads = await (await engine.queryQuads(
  'CONSTRUCT { ?s <http://xmlns.com/foaf/0.1/name> ?n } WHERE { GRAPH ?g { ?s <http://xmlns.com/foaf/0.1/name> ?n } }',
  { sources: [endpoint] })).toArray();
check('comunica: CONSTRUCT', quads.some((q) => q.object.value === 'Frank'), quads.length);

const ask = await engine.queryBoolean('ASK { GRAPH <http://example.org/comunica> { ?s ?p "Frank" } }', { sources: [endpoint] });
check('comunica: ASK', ask === true, ask);

await engine.queryVoid('PREFIX ex: <http://example.org/> DELETE DATA { GRAPH ex:comunica { ex:frank ex:age 51 } }',
  { sources: [endpoint], destination: endpoint });
const after = await engine.queryBoolean('ASK { GRAPH <http://example.org/comunica> { ?s <http://example.org/age> ?a } }', { sources: [endpoint] });
check('comunica: DELETE DATA', after === false, after);

console.log(JSON.stringify({ client: 'comunica', failed }));
process.exit(failed ? 1 : 0);
