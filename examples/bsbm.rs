//! A BSBM-shaped benchmark (products, producers, offers, vendors, reviews; about 350 triples
//! per product) for any SPARQL endpoint: a deterministic data generator and an HTTP query
//! driver with a fixed query mix.
//!
//! ```sh
//! cargo run --release --example bsbm -- generate --products 2900 --out bsbm.nt
//! cargo run --release --example bsbm -- run --endpoint http://127.0.0.1:7878/query \
//!     --products 2900 --clients 8 --mixes 40 --seed 7
//! ```
//! `run` prints one JSON line: queries, seconds, queries/s, p50/p99 latency (ms), errors.
//! The same seed sends the same queries, so two endpoints can be compared side by side.
#![allow(clippy::print_stdout)] // a command-line program: its results go to stdout

use anyhow::{bail, Context as _};
use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// splitmix64: small, fast and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}

const WORDS: &[&str] = &[
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "amber", "basil", "cedar", "dune",
];
const COUNTRIES: &[&str] = &["US", "GB", "DE", "FR", "JP", "CN", "RU", "AT", "ES", "KR"];

fn words(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| WORDS[rng.below(WORDS.len() as u64) as usize])
        .collect::<Vec<_>>()
        .join(" ")
}

const BSBM: &str = "http://www4.wiwiss.fu-berlin.de/bizer/bsbm/v01/vocabulary/";
const INST: &str = "http://www4.wiwiss.fu-berlin.de/bizer/bsbm/v01/instances/";
const RDF_TYPE: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type";
const RDFS: &str = "http://www.w3.org/2000/01/rdf-schema#";
const DC: &str = "http://purl.org/dc/elements/1.1/";
const FOAF: &str = "http://xmlns.com/foaf/0.1/";
const REV: &str = "http://purl.org/stuff/rev#";
const XSD: &str = "http://www.w3.org/2001/XMLSchema#";

struct Shape {
    products: u64,
}

impl Shape {
    fn types(&self) -> u64 {
        (self.products / 20).clamp(10, 500)
    }
    fn features(&self) -> u64 {
        (self.products / 2).clamp(50, 5000)
    }
    fn producers(&self) -> u64 {
        (self.products / 40).max(2)
    }
    fn vendors(&self) -> u64 {
        (self.products / 50).max(2)
    }
    fn reviewers(&self) -> u64 {
        (self.products / 2).max(5)
    }
    /// Producers and vendors follow from the numbers, so queries can name products and offers
    /// by IRI as BSBM's do.
    fn producer_of(&self, product: u64) -> u64 {
        1 + product.wrapping_mul(7919) % self.producers()
    }
    fn vendor_of(&self, offer: u64) -> u64 {
        1 + offer.wrapping_mul(104_729) % self.vendors()
    }
    fn product_iri(&self, product: u64) -> String {
        format!(
            "<{INST}dataFromProducer{}/Product{product}>",
            self.producer_of(product)
        )
    }
    fn offer_iri(&self, offer: u64) -> String {
        format!(
            "<{INST}dataFromVendor{}/Offer{offer}>",
            self.vendor_of(offer)
        )
    }
}

fn generate(products: u64, out: &mut impl Write) -> anyhow::Result<u64> {
    let shape = Shape { products };
    let mut rng = Rng(42);
    let mut n = 0u64;
    let mut line = String::new();
    let mut emit = |s: &str, p: &str, o: &str, out: &mut dyn Write| -> anyhow::Result<()> {
        line.clear();
        writeln!(line, "{s} {p} {o} .")?;
        out.write_all(line.as_bytes())?;
        n += 1;
        Ok(())
    };
    let iri = |s: String| format!("<{s}>");
    let lit = |s: &str| format!("\"{s}\"");
    let typed = |v: String, t: &str| format!("\"{v}\"^^<{XSD}{t}>");
    let ty = iri(RDF_TYPE.into());
    let label = iri(format!("{RDFS}label"));
    let comment = iri(format!("{RDFS}comment"));
    let publisher = iri(format!("{DC}publisher"));
    let date = iri(format!("{DC}date"));
    let day = |rng: &mut Rng| format!("2008-{:02}-{:02}", rng.range(1, 12), rng.range(1, 28));

    for t in 1..=shape.types() {
        let s = iri(format!("{INST}ProductType{t}"));
        emit(&s, &ty, &iri(format!("{BSBM}ProductType")), out)?;
        emit(&s, &label, &lit(&words(&mut rng, 2)), out)?;
        emit(&s, &comment, &lit(&words(&mut rng, 8)), out)?;
        if t > 1 {
            emit(
                &s,
                &iri(format!("{RDFS}subClassOf")),
                &iri(format!("{INST}ProductType{}", (t / 4).max(1))),
                out,
            )?;
        }
    }
    for f in 1..=shape.features() {
        let s = iri(format!("{INST}ProductFeature{f}"));
        emit(&s, &ty, &iri(format!("{BSBM}ProductFeature")), out)?;
        emit(&s, &label, &lit(&words(&mut rng, 2)), out)?;
        emit(&s, &comment, &lit(&words(&mut rng, 8)), out)?;
    }
    // Producers and vendors have the same shape: (kind, instance folder, homepage host, count).
    for (kind, folder, host, count) in [
        (
            "Producer",
            "dataFromProducer",
            "producer",
            shape.producers(),
        ),
        ("Vendor", "dataFromVendor", "vendor", shape.vendors()),
    ] {
        for i in 1..=count {
            let s = iri(format!("{INST}{folder}{i}/{kind}{i}"));
            let country = COUNTRIES[rng.below(10) as usize];
            emit(&s, &ty, &iri(format!("{BSBM}{kind}")), out)?;
            emit(&s, &label, &lit(&words(&mut rng, 2)), out)?;
            emit(&s, &comment, &lit(&words(&mut rng, 10)), out)?;
            let homepage = iri(format!("http://www.{host}{i}.com/"));
            emit(&s, &iri(format!("{FOAF}homepage")), &homepage, out)?;
            let country = iri(format!(
                "http://downlode.org/rdf/iso-3166/countries#{country}"
            ));
            emit(&s, &iri(format!("{BSBM}country")), &country, out)?;
            emit(&s, &publisher, &s, out)?;
            emit(&s, &date, &typed(day(&mut rng), "date"), out)?;
        }
    }
    for r in 1..=shape.reviewers() {
        let s = iri(format!("{INST}dataFromRatingSite1/Reviewer{r}"));
        emit(&s, &ty, &iri(format!("{FOAF}Person")), out)?;
        emit(
            &s,
            &iri(format!("{FOAF}name")),
            &lit(&words(&mut rng, 2)),
            out,
        )?;
        emit(
            &s,
            &iri(format!("{FOAF}mbox_sha1sum")),
            &lit(&format!("{:040x}", rng.next())),
            out,
        )?;
        emit(
            &s,
            &iri(format!("{BSBM}country")),
            &iri(format!(
                "http://downlode.org/rdf/iso-3166/countries#{}",
                COUNTRIES[rng.below(10) as usize]
            )),
            out,
        )?;
        emit(
            &s,
            &publisher,
            &iri(format!("{INST}dataFromRatingSite1/RatingSite1")),
            out,
        )?;
        emit(&s, &date, &typed(day(&mut rng), "date"), out)?;
    }
    let mut offer_id = 0;
    let mut review_id = 0;
    for p in 1..=products {
        let producer = shape.producer_of(p);
        let s = iri(format!("{INST}dataFromProducer{producer}/Product{p}"));
        emit(&s, &ty, &iri(format!("{BSBM}Product")), out)?;
        emit(
            &s,
            &ty,
            &iri(format!("{INST}ProductType{}", rng.range(1, shape.types()))),
            out,
        )?;
        emit(&s, &label, &lit(&words(&mut rng, 3)), out)?;
        emit(&s, &comment, &lit(&words(&mut rng, 25)), out)?;
        emit(
            &s,
            &iri(format!("{BSBM}producer")),
            &iri(format!(
                "{INST}dataFromProducer{producer}/Producer{producer}"
            )),
            out,
        )?;
        for _ in 0..rng.range(6, 14) {
            emit(
                &s,
                &iri(format!("{BSBM}productFeature")),
                &iri(format!(
                    "{INST}ProductFeature{}",
                    rng.range(1, shape.features())
                )),
                out,
            )?;
        }
        for i in 1..=3 {
            emit(
                &s,
                &iri(format!("{BSBM}productPropertyTextual{i}")),
                &lit(&words(&mut rng, 4)),
                out,
            )?;
            emit(
                &s,
                &iri(format!("{BSBM}productPropertyNumeric{i}")),
                &typed(rng.range(1, 2000).to_string(), "integer"),
                out,
            )?;
        }
        emit(
            &s,
            &publisher,
            &iri(format!(
                "{INST}dataFromProducer{producer}/Producer{producer}"
            )),
            out,
        )?;
        emit(&s, &date, &typed(day(&mut rng), "date"), out)?;
        for _ in 0..20 {
            offer_id += 1;
            let vendor = shape.vendor_of(offer_id);
            let o = iri(format!("{INST}dataFromVendor{vendor}/Offer{offer_id}"));
            emit(&o, &ty, &iri(format!("{BSBM}Offer")), out)?;
            emit(&o, &iri(format!("{BSBM}product")), &s, out)?;
            emit(
                &o,
                &iri(format!("{BSBM}vendor")),
                &iri(format!("{INST}dataFromVendor{vendor}/Vendor{vendor}")),
                out,
            )?;
            emit(
                &o,
                &iri(format!("{BSBM}price")),
                &typed(
                    format!("{}.{:02}", rng.range(5, 9999), rng.below(100)),
                    "decimal",
                ),
                out,
            )?;
            emit(
                &o,
                &iri(format!("{BSBM}validFrom")),
                &typed(format!("{}T00:00:00", day(&mut rng)), "dateTime"),
                out,
            )?;
            emit(
                &o,
                &iri(format!("{BSBM}validTo")),
                &typed(
                    format!("{}T00:00:00", day(&mut rng).replace("2008", "2009")),
                    "dateTime",
                ),
                out,
            )?;
            emit(
                &o,
                &iri(format!("{BSBM}deliveryDays")),
                &typed(rng.range(1, 21).to_string(), "integer"),
                out,
            )?;
            emit(
                &o,
                &iri(format!("{BSBM}offerWebpage")),
                &iri(format!("http://www.vendor{vendor}.com/offers/{offer_id}")),
                out,
            )?;
            emit(
                &o,
                &publisher,
                &iri(format!("{INST}dataFromVendor{vendor}/Vendor{vendor}")),
                out,
            )?;
            emit(&o, &date, &typed(day(&mut rng), "date"), out)?;
        }
        for _ in 0..10 {
            review_id += 1;
            let r = iri(format!("{INST}dataFromRatingSite1/Review{review_id}"));
            emit(&r, &ty, &iri(format!("{REV}Review")), out)?;
            emit(&r, &iri(format!("{BSBM}reviewFor")), &s, out)?;
            emit(
                &r,
                &iri(format!("{REV}reviewer")),
                &iri(format!(
                    "{INST}dataFromRatingSite1/Reviewer{}",
                    rng.range(1, shape.reviewers())
                )),
                out,
            )?;
            emit(
                &r,
                &iri(format!("{BSBM}reviewDate")),
                &typed(format!("{}T00:00:00", day(&mut rng)), "dateTime"),
                out,
            )?;
            emit(
                &r,
                &iri(format!("{DC}title")),
                &lit(&words(&mut rng, 4)),
                out,
            )?;
            emit(
                &r,
                &iri(format!("{REV}text")),
                &format!("\"{}\"@en", words(&mut rng, 30)),
                out,
            )?;
            for i in 1..=4 {
                if rng.below(10) < 7 {
                    emit(
                        &r,
                        &iri(format!("{BSBM}rating{i}")),
                        &typed(rng.range(1, 10).to_string(), "integer"),
                        out,
                    )?;
                }
            }
            emit(
                &r,
                &publisher,
                &iri(format!("{INST}dataFromRatingSite1/RatingSite1")),
                out,
            )?;
            emit(&r, &date, &typed(day(&mut rng), "date"), out)?;
        }
    }
    Ok(n)
}

/// The query mix: BSBM explore-use-case shapes, parameters drawn from `rng`.
fn query_mix(rng: &mut Rng, products: u64) -> Vec<(&'static str, String)> {
    let shape = Shape { products };
    let prefixes = format!(
        "PREFIX bsbm: <{BSBM}> PREFIX inst: <{INST}> PREFIX rdfs: <{RDFS}> PREFIX rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#> PREFIX dc: <{DC}> PREFIX rev: <{REV}> PREFIX foaf: <{FOAF}> PREFIX xsd: <{XSD}>\n"
    );
    let ty = rng.range(1, shape.types());
    let f1 = rng.range(1, shape.features());
    let f2 = rng.range(1, shape.features());
    let x = rng.range(1, 500);
    let p1 = shape.product_iri(rng.range(1, products));
    let p2 = shape.product_iri(rng.range(1, products));
    let p3 = shape.product_iri(rng.range(1, products));
    let p4 = shape.product_iri(rng.range(1, products));
    let offer = shape.offer_iri(rng.range(1, products * 20));
    let reviewer = rng.range(1, shape.reviewers());
    let country = COUNTRIES[rng.below(10) as usize];
    vec![
        ("q1", format!("{prefixes}SELECT DISTINCT ?product ?label WHERE {{ ?product rdfs:label ?label ; a inst:ProductType{ty} ; bsbm:productFeature inst:ProductFeature{f1} ; bsbm:productPropertyNumeric1 ?v . FILTER (?v > {x}) }} ORDER BY ?label LIMIT 10")),
        ("q2", format!("{prefixes}SELECT ?label ?comment ?producer ?f ?t1 ?n1 WHERE {{ {p1} rdfs:label ?label ; rdfs:comment ?comment ; bsbm:producer ?p ; bsbm:productFeature ?pf ; bsbm:productPropertyTextual1 ?t1 ; bsbm:productPropertyNumeric1 ?n1 . ?p rdfs:label ?producer . ?pf rdfs:label ?f }}")),
        ("q3", format!("{prefixes}SELECT ?product ?label WHERE {{ ?product rdfs:label ?label ; a inst:ProductType{ty} ; bsbm:productFeature inst:ProductFeature{f1} ; bsbm:productPropertyNumeric1 ?p1 . FILTER(?p1 > {x}) OPTIONAL {{ ?product bsbm:productFeature inst:ProductFeature{f2} . ?product rdfs:label ?t }} FILTER(!BOUND(?t)) }} ORDER BY ?label LIMIT 10")),
        ("q4", format!("{prefixes}SELECT DISTINCT ?product ?label WHERE {{ {{ ?product rdfs:label ?label ; a inst:ProductType{ty} ; bsbm:productFeature inst:ProductFeature{f1} }} UNION {{ ?product rdfs:label ?label ; a inst:ProductType{ty} ; bsbm:productFeature inst:ProductFeature{f2} }} }} ORDER BY ?label LIMIT 10")),
        ("q5", format!("{prefixes}SELECT DISTINCT ?product ?productLabel WHERE {{ ?product rdfs:label ?productLabel . {p2} bsbm:productFeature ?prodFeature ; bsbm:productPropertyNumeric1 ?o1 . ?product bsbm:productFeature ?prodFeature ; bsbm:productPropertyNumeric1 ?s1 . FILTER({p2} != ?product && ?s1 < (?o1 + 120) && ?s1 > (?o1 - 120)) }} ORDER BY ?productLabel LIMIT 5")),
        ("q7", format!("{prefixes}SELECT ?plabel ?offer ?price ?vendor ?vlabel ?review ?title WHERE {{ {p3} rdfs:label ?plabel . OPTIONAL {{ ?offer bsbm:product {p3} ; bsbm:price ?price ; bsbm:vendor ?vendor . ?vendor rdfs:label ?vlabel ; bsbm:country <http://downlode.org/rdf/iso-3166/countries#{country}> }} OPTIONAL {{ ?review bsbm:reviewFor {p3} ; rev:reviewer ?reviewer ; dc:title ?title }} }}")),
        ("q8", format!("{prefixes}SELECT ?title ?text ?date ?reviewer ?name ?r1 ?r2 WHERE {{ ?review bsbm:reviewFor {p4} ; dc:title ?title ; rev:text ?text ; bsbm:reviewDate ?date ; rev:reviewer ?reviewer . ?reviewer foaf:name ?name . OPTIONAL {{ ?review bsbm:rating1 ?r1 }} OPTIONAL {{ ?review bsbm:rating2 ?r2 }} }} ORDER BY DESC(?date) LIMIT 20")),
        ("q9", format!("{prefixes}DESCRIBE ?x WHERE {{ ?review rev:reviewer ?x . FILTER(?x = <{INST}dataFromRatingSite1/Reviewer{reviewer}>) }} LIMIT 1")),
        ("q10", format!("{prefixes}SELECT DISTINCT ?offer ?price WHERE {{ ?offer bsbm:product {p2} ; bsbm:vendor ?vendor ; bsbm:deliveryDays ?d ; bsbm:price ?price . ?vendor bsbm:country <http://downlode.org/rdf/iso-3166/countries#{country}> . FILTER(?d <= 10) }} ORDER BY xsd:double(STR(?price)) LIMIT 10")),
        ("q11", format!("{prefixes}SELECT ?property ?hasValue ?isValueOf WHERE {{ {{ {offer} ?property ?hasValue }} UNION {{ ?isValueOf ?property {offer} }} }}")),
        ("q12", format!("{prefixes}CONSTRUCT {{ {offer} bsbm:price ?price ; bsbm:vendor ?vlabel ; bsbm:deliveryDays ?d ; bsbm:product ?p }} WHERE {{ {offer} bsbm:price ?price ; bsbm:vendor ?v ; bsbm:deliveryDays ?d ; bsbm:product ?p . ?v rdfs:label ?vlabel }}")),
    ]
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn run(
    endpoint: &str,
    products: u64,
    clients: usize,
    mixes: usize,
    seed: u64,
) -> anyhow::Result<()> {
    // Every client gets its own pre-drawn sequence of mixes: the same for every endpoint.
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let start = Instant::now();
    std::thread::scope(|scope| {
        for c in 0..clients {
            let latencies = latencies.clone();
            let errors = errors.clone();
            scope.spawn(move || {
                let http = reqwest::blocking::Client::new();
                let mut rng = Rng(seed.wrapping_mul(1000).wrapping_add(c as u64));
                for _ in 0..mixes {
                    for (name, query) in query_mix(&mut rng, products) {
                        let t = Instant::now();
                        let result = http
                            .post(endpoint)
                            .header("content-type", "application/sparql-query")
                            .header(
                                "accept",
                                "application/sparql-results+json, application/n-triples;q=0.9",
                            )
                            .body(query)
                            .send()
                            .and_then(|r| r.error_for_status())
                            .and_then(|r| r.bytes());
                        let elapsed = t.elapsed();
                        if std::env::var_os("BSBM_VERBOSE").is_some() {
                            let size = result.as_ref().map_or(0, |b| b.len());
                            eprintln!(
                                "{name}: {size} bytes in {:.1} ms",
                                elapsed.as_secs_f64() * 1000.0
                            );
                        }
                        match result {
                            Ok(_) => latencies.lock().map(|mut l| l.push(elapsed)).unwrap_or(()),
                            Err(e) => errors
                                .lock()
                                .map(|mut l| l.push(format!("{name}: {e}")))
                                .unwrap_or(()),
                        }
                    }
                }
            });
        }
    });
    let seconds = start.elapsed().as_secs_f64();
    let mut latencies = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    latencies.sort();
    let errors = errors.lock().map(|e| e.clone()).unwrap_or_default();
    if let Some(first) = errors.first() {
        eprintln!("{} errors, first: {first}", errors.len());
    }
    println!(
        "{{\"endpoint\":\"{endpoint}\",\"clients\":{clients},\"queries\":{},\"seconds\":{seconds:.3},\"qps\":{:.2},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"errors\":{}}}",
        latencies.len(),
        latencies.len() as f64 / seconds,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        errors.len()
    );
    Ok(())
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: Option<T>) -> anyhow::Result<T> {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("{name} needs a value")),
        None => default.with_context(|| format!("{name} is required")),
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("generate") => {
            let products: u64 = arg(&args, "--products", Some(2900))?;
            let out: String = arg(&args, "--out", None)?;
            let file = std::fs::File::create(&out).with_context(|| format!("creating {out}"))?;
            let mut writer = BufWriter::new(file);
            let n = generate(products, &mut writer)?;
            writer.flush()?;
            eprintln!("{n} triples for {products} products in {out}");
            Ok(())
        }
        Some("run") => run(
            &arg::<String>(&args, "--endpoint", None)?,
            arg(&args, "--products", Some(2900))?,
            arg(&args, "--clients", Some(1))?,
            arg(&args, "--mixes", Some(10))?,
            arg(&args, "--seed", Some(7))?,
        ),
        _ => bail!("usage: bsbm generate --products N --out FILE | bsbm run --endpoint URL --products N [--clients C] [--mixes M] [--seed S]"),
    }
}
