"""Drives a live Tessera server with rdflib's SPARQLUpdateStore and with SPARQLWrapper.

usage: python python_clients.py http://127.0.0.1:7878
Prints one line per check and exits non-zero if any fails.
"""
import csv
import io
import json
import sys

from rdflib import Graph, Literal, URIRef
from rdflib.graph import Dataset
from rdflib.plugins.stores.sparqlstore import SPARQLUpdateStore
from SPARQLWrapper import (CSV, JSON, JSONLD, POST, POSTDIRECTLY, RDFXML, TSV, TURTLE, XML,
                           SPARQLWrapper)

base = sys.argv[1].rstrip("/")
EX = "http://example.org/"
FOAF_NAME = URIRef("http://xmlns.com/foaf/0.1/name")
failures = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"))
    if not ok:
        failures.append(name)


# --- rdflib SPARQLUpdateStore -------------------------------------------------------------
store = SPARQLUpdateStore(query_endpoint=f"{base}/query", update_endpoint=f"{base}/update",
                          method="POST")
people = Graph(store, identifier=URIRef(EX + "people"))
people.add((URIRef(EX + "alice"), FOAF_NAME, Literal("Alice")))
people.add((URIRef(EX + "bob"), FOAF_NAME, Literal("Bob", lang="en")))
people.add((URIRef(EX + "bob"), URIRef(EX + "age"), Literal(42)))
check("rdflib: insert into a named graph, len()", len(people) == 3, len(people))
names = sorted(str(r[0]) for r in people.query(
    "SELECT ?n WHERE { ?s <http://xmlns.com/foaf/0.1/name> ?n }"))
check("rdflib: query a named graph", names == ["Alice", "Bob"], names)
age = people.value(URIRef(EX + "bob"), URIRef(EX + "age"))
check("rdflib: typed literal round trip", age == Literal(42) and age.toPython() == 42, repr(age))
people.remove((URIRef(EX + "bob"), URIRef(EX + "age"), None))
check("rdflib: remove", len(people) == 2, len(people))
ds = Dataset(store=store)
graphs = {str(g.identifier) for g in ds.graphs()}
check("rdflib: list named graphs", EX + "people" in graphs, graphs)
default = Graph(store, identifier=URIRef("urn:x-rdflib:default"))
ask = store.query("ASK { GRAPH <http://example.org/people> { ?s ?p 'Alice' } }")
check("rdflib: ASK", bool(ask.askAnswer), ask.askAnswer)

# --- SPARQLWrapper --------------------------------------------------------------------------
update = SPARQLWrapper(f"{base}/update")
update.setMethod(POST)
update.setQuery("""PREFIX ex: <http://example.org/>
INSERT DATA { ex:carol <http://xmlns.com/foaf/0.1/name> "Carol" .
              GRAPH ex:more { ex:dave <http://xmlns.com/foaf/0.1/name> "Dave" } }""")
result = update.query()
check("SPARQLWrapper: update", result.response.status in (200, 204), result.response.status)

select = "SELECT ?n WHERE { ?s <http://xmlns.com/foaf/0.1/name> ?n } ORDER BY ?n"
sw = SPARQLWrapper(f"{base}/query")
sw.setQuery(select)
sw.setReturnFormat(JSON)
rows = [b["n"]["value"] for b in sw.query().convert()["results"]["bindings"]]
check("SPARQLWrapper: SELECT as JSON (default graph)", rows == ["Carol"], rows)

sw = SPARQLWrapper(f"{base}/query")
sw.setQuery("SELECT ?g ?n WHERE { GRAPH ?g { ?s <http://xmlns.com/foaf/0.1/name> ?n } } ORDER BY ?n")
sw.setReturnFormat(XML)
doc = sw.query().convert()
literals = [n.firstChild.data for n in doc.getElementsByTagName("literal")]
check("SPARQLWrapper: SELECT as XML (named graphs)", literals == ["Alice", "Bob", "Dave"], literals)

sw = SPARQLWrapper(f"{base}/sparql")
sw.setQuery("SELECT ?g ?n WHERE { GRAPH ?g { ?s <http://xmlns.com/foaf/0.1/name> ?n } } ORDER BY ?n")
sw.setReturnFormat(CSV)
table = list(csv.reader(io.StringIO(sw.query().convert().decode("utf-8"))))
check("SPARQLWrapper: SELECT as CSV", table[0] == ["g", "n"] and len(table) == 4, table)

sw.setReturnFormat(TSV)
tsv = sw.query().convert().decode("utf-8").splitlines()
check("SPARQLWrapper: SELECT as TSV", tsv[0] == "?g\t?n" and tsv[2].endswith('"Bob"@en'), tsv)

sw = SPARQLWrapper(f"{base}/query")
sw.setMethod(POST)
sw.setRequestMethod(POSTDIRECTLY)
sw.setQuery("ASK { GRAPH <http://example.org/more> { ?s ?p 'Dave' } }")
sw.setReturnFormat(JSON)
check("SPARQLWrapper: ASK by direct POST", sw.query().convert().get("boolean") is True)

construct = "CONSTRUCT { ?s <http://xmlns.com/foaf/0.1/name> ?n } WHERE { GRAPH ?g { ?s <http://xmlns.com/foaf/0.1/name> ?n } }"
for fmt, label in ((TURTLE, "Turtle"), (RDFXML, "RDF/XML"), (JSONLD, "JSON-LD")):
    sw = SPARQLWrapper(f"{base}/query")
    sw.setQuery(construct)
    sw.setReturnFormat(fmt)
    converted = sw.query().convert()
    if isinstance(converted, Graph):
        g = converted
    else:
        g = Graph()
        data = converted.decode("utf-8") if isinstance(converted, bytes) else converted
        g.parse(data=data, format={TURTLE: "turtle", RDFXML: "xml", JSONLD: "json-ld"}[fmt])
    check(f"SPARQLWrapper: CONSTRUCT as {label}", len(g) == 3, len(g))

sw = SPARQLWrapper(f"{base}/query")
sw.setQuery("SELECT * WHERE { ?s ?p }")
sw.setReturnFormat(JSON)
try:
    sw.query()
    check("SPARQLWrapper: syntax error is 400", False, "no error")
except Exception as error:  # SPARQLWrapper raises QueryBadFormed for 400
    check("SPARQLWrapper: syntax error is 400", "QueryBadFormed" in type(error).__name__ or "400" in str(error), repr(error))

# /metrics in the Prometheus text format, read by Prometheus's own Python parser.
import urllib.request
from prometheus_client.parser import text_string_to_metric_families

with urllib.request.urlopen(f"{base}/metrics") as response:
    exposition = response.read().decode("utf-8")
try:
    families = {f.name: f for f in text_string_to_metric_families(exposition)}
    requests = families.get("tessera_http_requests")
    check("/metrics parses (prometheus_client)", requests is not None and len(requests.samples) > 0,
          sorted(families))
    latency = families.get("tessera_http_request_duration_seconds")
    check("/metrics: latency histogram", latency is not None and latency.type == "histogram",
          latency and latency.type)
    check("/metrics: text reading families",
          {"tessera_text_queue_depth", "tessera_text_stage_seconds", "tessera_model_prompt_tokens"}
          <= set(families), sorted(families))
except ValueError as error:
    check("/metrics parses (prometheus_client)", False, repr(error))
with urllib.request.urlopen(f"{base}/ready") as response:
    check("/ready is 200 on a SPARQL-only server", response.status == 200, response.status)

print(json.dumps({"client": "python", "failed": len(failures)}))
sys.exit(1 if failures else 0)
