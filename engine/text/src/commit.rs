//! The commit of one text's plan, in one transaction, and what it reports. Entry point:
//! [`commit`] (called by the reader once the pipeline and entity linking have run outside the
//! write lock): canonical triples in the target graph and in the source's own named graph,
//! entity names (`rdfs:label`, `skos:altLabel`, `owl:sameAs` for uncertain links), relations
//! added by self-canonicalization, and the source's metadata (text, hash, chunk offsets,
//! model, prompt version, schema fingerprint, time, and a reified statement per triple naming
//! the chunk that stated it) in the sources graph.

use crate::link::Link;
use crate::literal::Object;
use crate::pipeline::{Align, Plan, RelationRef};
use crate::provenance::{drop_source_in, is_source};
use crate::reader::{TextConfig, TextOptions};
use crate::TextError;
use oxigraph::model::{GraphName, Literal, NamedNode, NamedOrBlankNode, Quad, Term};
use oxigraph::store::Transaction;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};
use tessera_storage::vocab::{owl, prov, rdf, rdfs, skos, tessera, xsd};
use tessera_storage::Storage;

/// What one `INSERT TEXT` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TextReport {
    /// The source IRI.
    pub source: String,
    /// Canonical triples written (subject, predicate, object in N-Triples).
    pub triples: Vec<[String; 3]>,
    /// The same triples as names: the entity's name (the label of the known entity a mention
    /// linked to, else the name as the text gave it), the relation's label, the literal's
    /// value.
    pub facts: Vec<[String; 3]>,
    /// For each written triple, the sentence of the text that stated it (the sentence of its
    /// chunk that names the most of its subject and object).
    pub sentences: Vec<String>,
    /// Triples not written and why.
    pub dropped: Vec<DroppedTriple>,
    /// Relations added to the schema.
    pub relations_added: Vec<String>,
    /// Mentions resolved to entities already in the store.
    pub entities_linked: usize,
    /// Of those, mentions spelled differently from every label of their entity (recorded as
    /// `skos:altLabel`).
    pub aliases_added: usize,
    /// Entities created.
    pub entities_created: usize,
    /// Of those, entities probably the same as a known one (recorded as `owl:sameAs`).
    pub same_as_added: usize,
    /// Number of chunks the text was read in.
    pub chunks: usize,
    /// Counters and time per stage.
    pub stats: ReportStats,
    /// Entity labels the commit wrote (IRI, label), for the entity index.
    #[serde(skip)]
    pub(crate) labels_written: Vec<(String, String)>,
}

/// A dropped triple in a report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DroppedTriple {
    /// As extracted.
    pub triple: [String; 3],
    /// Why it was dropped.
    pub reason: String,
    /// The sentence it was read from.
    pub sentence: String,
}

/// Counters of a report.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReportStats {
    /// Milliseconds in extraction.
    pub extract_ms: u64,
    /// Milliseconds writing definitions.
    pub define_ms: u64,
    /// Milliseconds canonicalizing.
    pub canonicalize_ms: u64,
    /// Milliseconds in refinement.
    pub refine_ms: u64,
    /// Milliseconds in the support check.
    pub check_ms: u64,
    /// Milliseconds committing.
    pub commit_ms: u64,
    /// Model calls.
    pub model_calls: usize,
    /// Prompt tokens (prefix-cache hits included).
    pub prompt_tokens: usize,
    /// Prompt tokens served from the prefix cache.
    pub cached_tokens: usize,
    /// Generated tokens.
    pub generated_tokens: usize,
    /// Relations matched by name, by similarity, by the model.
    pub relations_by_name: usize,
    /// See `relations_by_name`.
    pub relations_by_similarity: usize,
    /// See `relations_by_name`.
    pub relations_by_model: usize,
    /// Triples turned round (the text states them the other way: by its phrasing, or by the
    /// support check).
    pub reversed: usize,
    /// Triples the support check dropped (the text does not state them).
    pub unsupported: usize,
    /// Triples moved from a relation asking for a date or year, which their object is not,
    /// to the nearest schema relation asking for neither.
    pub rerouted: usize,
    /// Triples the cover pass wrote for names the first extraction left out (before the
    /// later stages and checks).
    pub covered: usize,
    /// Model tokens per stage, in the order of [`TOKEN_STAGES`](crate::TOKEN_STAGES).
    pub tokens: [crate::StageTokens; 5],
}

/// The sentence of `chunk` that names the most words of `subject` and `object` (the first of
/// equals); the whole chunk when it has one sentence.
pub(crate) fn stating_sentence(chunk: &str, subject: &str, object: &str) -> String {
    let words = |s: &str| -> Vec<String> {
        s.split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.chars().count() > 1 || w.chars().all(|c| c.is_ascii_digit()))
            .map(str::to_lowercase)
            .collect()
    };
    let wanted: Vec<String> = words(subject).into_iter().chain(words(object)).collect();
    let mut best = ("", 0usize);
    let mut start = 0;
    let bytes = chunk.as_bytes();
    let mut ends: Vec<usize> = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        let at_end = i + 1 == bytes.len() || bytes[i + 1].is_ascii_whitespace();
        if (matches!(b, b'.' | b'!' | b'?') && at_end) || b == b'\n' {
            ends.push(i + 1);
        }
    }
    ends.push(chunk.len());
    for end in ends {
        if end <= start {
            continue;
        }
        let sentence = chunk[start..end].trim();
        start = end;
        if sentence.is_empty() {
            continue;
        }
        let have = words(sentence);
        let score = wanted.iter().filter(|w| have.contains(w)).count();
        if score > best.1 || best.0.is_empty() {
            best = (sentence, score);
        }
    }
    best.0.to_owned()
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn nn(iri: &str) -> Result<NamedNode, TextError> {
    NamedNode::new(iri).map_err(|source| TextError::Iri {
        iri: iri.to_owned(),
        source,
    })
}

/// The IRI of an entity named `label`: the base plus the label with spaces as underscores and
/// everything outside unreserved IRI characters percent-encoded.
pub fn entity_iri(base: &str, label: &str) -> String {
    let mut out = String::from(base);
    let segment = label.split_whitespace().collect::<Vec<_>>().join("_");
    // "." and ".." are path segments that IRI resolution removes: their dots are encoded.
    let dots = !segment.is_empty() && segment.chars().all(|c| c == '.');
    for c in segment.chars() {
        if dots {
            out.push_str("%2E");
        } else if c.is_alphanumeric() || "-._~()',!*".contains(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// An entity's label back from its IRI (the inverse of [`entity_iri`]).
pub fn entity_label(base: &str, iri: &str) -> Option<String> {
    let rest = iri.strip_prefix(base)?;
    let mut bytes = Vec::with_capacity(rest.len());
    let raw = rest.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' && i + 2 < raw.len() {
            if let Ok(b) = u8::from_str_radix(&rest[i + 1..i + 3], 16) {
                bytes.push(b);
                i += 3;
                continue;
            }
        }
        bytes.push(if raw[i] == b'_' { b' ' } else { raw[i] });
        i += 1;
    }
    String::from_utf8(bytes).ok()
}

/// Commits one text's plan in one transaction: canonical triples in the target graph and in
/// the source's own graph, entity names, relations added by self-canonicalization, and the
/// source's metadata. Re-reading a source replaces it.
pub(crate) fn commit(
    storage: &Storage,
    cfg: &TextConfig,
    text: &str,
    plan: Plan,
    links: &HashMap<String, Link>,
    opts: &TextOptions,
    prov: &Provenance,
) -> Result<TextReport, TextError> {
    let t0 = Instant::now();
    let digest = hex(&Sha256::digest(text.as_bytes()));
    let source = match &opts.source {
        Some(s) => s.clone(),
        None => nn(&format!("urn:tessera:source:{}", &digest[..32]))?,
    };
    let target: GraphName = opts
        .graph
        .clone()
        .map_or(GraphName::DefaultGraph, GraphName::from);
    let schema_graph: GraphName = opts
        .schema
        .clone()
        .map(GraphName::from)
        .unwrap_or_else(|| target.clone());
    let source_graph = GraphName::NamedNode(source.clone());
    let sources = GraphName::NamedNode(tessera::SOURCES_GRAPH.into_owned());
    let label = rdfs::LABEL.into_owned();
    let mut report = TextReport {
        source: source.as_str().to_owned(),
        triples: Vec::new(),
        facts: Vec::new(),
        sentences: Vec::new(),
        dropped: plan
            .dropped
            .iter()
            .map(|d| DroppedTriple {
                triple: d.triple.clone(),
                reason: d.reason.clone(),
                sentence: plan.chunks.get(d.chunk).map_or_else(String::new, |c| {
                    stating_sentence(&c.text, &d.triple[0], &d.triple[2])
                }),
            })
            .collect(),
        relations_added: Vec::new(),
        entities_linked: 0,
        aliases_added: 0,
        entities_created: 0,
        same_as_added: 0,
        chunks: plan.chunks.len(),
        stats: ReportStats {
            extract_ms: ms(plan.stats.extract),
            define_ms: ms(plan.stats.define),
            canonicalize_ms: ms(plan.stats.canonicalize),
            refine_ms: ms(plan.stats.refine),
            check_ms: ms(plan.stats.check),
            commit_ms: 0,
            model_calls: plan.stats.model_calls,
            prompt_tokens: plan.stats.prompt_tokens,
            cached_tokens: plan.stats.cached_tokens,
            generated_tokens: plan.stats.generated_tokens,
            relations_by_name: plan.stats.by_name,
            relations_by_similarity: plan.stats.by_similarity,
            relations_by_model: plan.stats.by_model,
            reversed: plan.stats.reversed,
            unsupported: plan.stats.unsupported,
            rerouted: plan.stats.rerouted,
            covered: plan.stats.covered,
            tokens: plan.stats.tokens,
        },
        labels_written: Vec::new(),
    };
    let new_iris: Vec<NamedNode> = plan
        .new_relations
        .iter()
        .map(|r| nn(&format!("{}{}", cfg.relation_base, r.name)))
        .collect::<Result<_, _>>()?;
    let now = Literal::new_typed_literal(oxsdatatypes_now(), xsd::DATE_TIME);
    storage.write(|tx| -> Result<(), TextError> {
        // Re-reading a source replaces it.
        if is_source(tx, source.as_ref())? {
            drop_source_in(tx, source.as_ref())?;
        }
        let mut entity_cache: HashMap<String, Resolved> = HashMap::new();
        let add = |tx: &mut Transaction<'_>, s: &NamedNode, p: &NamedNode, o: Term| {
            for g in [&target, &source_graph] {
                tx.insert(&Quad::new(s.clone(), p.clone(), o.clone(), g.clone()));
            }
        };
        for (r, iri) in plan.new_relations.iter().zip(&new_iris) {
            let g = &schema_graph;
            let rdf_type = rdf::TYPE.into_owned();
            tx.insert(&Quad::new(
                iri.clone(),
                rdf_type,
                rdf::PROPERTY.into_owned(),
                g.clone(),
            ));
            tx.insert(&Quad::new(
                iri.clone(),
                label.clone(),
                Literal::new_simple_literal(&r.name),
                g.clone(),
            ));
            tx.insert(&Quad::new(
                iri.clone(),
                skos::DEFINITION.into_owned(),
                Literal::new_simple_literal(&r.definition),
                g.clone(),
            ));
            tx.insert(&Quad::new(
                iri.clone(),
                tessera::INTRODUCED_BY.into_owned(),
                source.clone(),
                g.clone(),
            ));
            report.relations_added.push(iri.as_str().to_owned());
        }
        for (n, t) in plan.triples.iter().enumerate() {
            let predicate = match &t.relation {
                RelationRef::Schema(r) => nn(&r.iri)?,
                RelationRef::New(i) => new_iris[*i].clone(),
            };
            let (subject, subject_name) = resolve_entity(
                tx,
                &cfg.entity_base,
                &t.subject,
                links,
                &mut entity_cache,
                &mut report,
            )?;
            let (object, object_name): (Term, String) = match &t.object {
                Object::Entity(name) => {
                    let (iri, shown) = resolve_entity(
                        tx,
                        &cfg.entity_base,
                        name,
                        links,
                        &mut entity_cache,
                        &mut report,
                    )?;
                    (iri.into(), shown)
                }
                Object::Literal { value, datatype } => {
                    let literal = if datatype == xsd::STRING.as_str() {
                        Literal::new_simple_literal(value)
                    } else {
                        Literal::new_typed_literal(value, nn(datatype)?)
                    };
                    (literal.into(), value.clone())
                }
            };
            add(tx, &subject, &predicate, object.clone());
            // Which chunk stated it: a reified statement in the sources graph, so plain
            // SPARQL reaches the chunk's offsets from the triple.
            let statement = NamedNode::new_unchecked(format!("{}#statement-{n}", source.as_str()));
            let chunk = NamedNode::new_unchecked(format!("{}#chunk-{}", source.as_str(), t.chunk));
            tx.insert(&Quad::new(
                source.clone(),
                tessera::STATEMENT.into_owned(),
                statement.clone(),
                sources.clone(),
            ));
            for (p, o) in [
                (rdf::SUBJECT.into_owned(), Term::from(subject.clone())),
                (rdf::PREDICATE.into_owned(), Term::from(predicate.clone())),
                (rdf::OBJECT.into_owned(), object.clone()),
                (tessera::CHUNK.into_owned(), Term::from(chunk)),
            ] {
                tx.insert(&Quad::new(statement.clone(), p, o, sources.clone()));
            }
            report.triples.push([
                subject.to_string(),
                predicate.to_string(),
                object.to_string(),
            ]);
            report
                .sentences
                .push(plan.chunks.get(t.chunk).map_or_else(String::new, |c| {
                    stating_sentence(&c.text, &t.extracted[0], &t.extracted[2])
                }));
            report.facts.push([
                subject_name,
                match &t.relation {
                    RelationRef::Schema(r) => r.label.clone(),
                    RelationRef::New(i) => plan.new_relations[*i].name.clone(),
                },
                object_name,
            ]);
        }
        let alt_label = skos::ALT_LABEL.into_owned();
        let same_as = owl::SAME_AS.into_owned();
        for (name, Resolved { iri, naming, .. }) in &entity_cache {
            report
                .labels_written
                .push((iri.as_str().to_owned(), name.clone()));
            let name = Literal::new_simple_literal(name);
            match naming {
                Naming::Label => add(tx, iri, &label, name.into()),
                Naming::AltLabel => add(tx, iri, &alt_label, name.into()),
                Naming::SameAs(known) => {
                    add(tx, iri, &label, name.into());
                    add(tx, iri, &same_as, known.clone().into());
                }
            }
        }
        // The source's metadata.
        let meta = |tx: &mut Transaction<'_>, s: &NamedNode, p: NamedNode, o: Term| {
            tx.insert(&Quad::new(s.clone(), p, o, sources.clone()));
        };
        meta(
            tx,
            &source,
            rdf::TYPE.into_owned(),
            prov::ENTITY.into_owned().into(),
        );
        meta(
            tx,
            &source,
            tessera::TEXT.into_owned(),
            Literal::new_simple_literal(text).into(),
        );
        meta(
            tx,
            &source,
            tessera::SHA256.into_owned(),
            Literal::new_simple_literal(&digest).into(),
        );
        meta(
            tx,
            &source,
            prov::GENERATED_AT_TIME.into_owned(),
            now.clone().into(),
        );
        meta(
            tx,
            &source,
            tessera::MODEL.into_owned(),
            Literal::new_simple_literal(&prov.model).into(),
        );
        meta(
            tx,
            &source,
            tessera::EMBEDDER.into_owned(),
            Literal::new_simple_literal(&prov.embedder).into(),
        );
        meta(
            tx,
            &source,
            tessera::PROMPT_VERSION.into_owned(),
            Literal::new_simple_literal(crate::prompts::PROMPT_VERSION).into(),
        );
        meta(
            tx,
            &source,
            tessera::SCHEMA_FINGERPRINT.into_owned(),
            Literal::new_simple_literal(&prov.schema_fingerprint).into(),
        );
        meta(
            tx,
            &source,
            tessera::ALIGNMENT.into_owned(),
            Literal::new_simple_literal(match opts.align {
                Align::Target => "target",
                Align::SelfCanonical => "self",
            })
            .into(),
        );
        if opts.example {
            meta(
                tx,
                &source,
                tessera::EXAMPLE.into_owned(),
                Literal::new_typed_literal("true", xsd::BOOLEAN).into(),
            );
        }
        let target_term: Term = match &target {
            GraphName::NamedNode(g) => g.clone().into(),
            _ => tessera::DEFAULT_GRAPH.into_owned().into(),
        };
        meta(tx, &source, tessera::TARGET_GRAPH.into_owned(), target_term);
        // The target graph's commit count, in this transaction: the entity index log holds
        // this commit's labels only once it carries the same count.
        let (index_node, seq) = (&prov.index_node, prov.seq);
        let old: Vec<Quad> = tx
            .quads_for_pattern(
                Some(index_node.as_ref().into()),
                Some(tessera::INDEX_SEQ),
                None,
                Some(tessera::INDEX_GRAPH.into()),
            )
            .collect::<Result<_, _>>()?;
        for q in &old {
            tx.remove(q);
        }
        tx.insert(&Quad::new(
            index_node.clone(),
            tessera::INDEX_SEQ,
            Literal::new_typed_literal(seq.to_string(), xsd::INTEGER),
            tessera::INDEX_GRAPH,
        ));
        for (i, c) in plan.chunks.iter().enumerate() {
            let chunk = NamedNode::new_unchecked(format!("{}#chunk-{i}", source.as_str()));
            meta(
                tx,
                &source,
                tessera::CHUNK.into_owned(),
                chunk.clone().into(),
            );
            let int = |v: usize| -> Term {
                Literal::new_typed_literal(v.to_string(), xsd::INTEGER).into()
            };
            meta(tx, &chunk, tessera::START.into_owned(), int(c.start));
            meta(tx, &chunk, tessera::END.into_owned(), int(c.end));
        }
        Ok(())
    })?;
    report.stats.commit_ms = ms(t0.elapsed());
    tracing::debug!(
        source = %report.source,
        triples = report.triples.len(),
        dropped = report.dropped.len(),
        "text committed"
    );
    Ok(report)
}

/// Where the provenance record comes from.
pub(crate) struct Provenance {
    pub(crate) model: String,
    pub(crate) embedder: String,
    pub(crate) schema_fingerprint: String,
    /// The node counting the target graph's commits, and this commit's count.
    pub(crate) index_node: NamedNode,
    pub(crate) seq: u64,
}

fn oxsdatatypes_now() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a civil date (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// How a mention is written as a name of the entity it resolved to.
enum Naming {
    /// `rdfs:label` (a new entity, or one of the entity's own labels).
    Label,
    /// `skos:altLabel` (another spelling of a known entity).
    AltLabel,
    /// A new entity with `rdfs:label`, probably the same as this known one (`owl:sameAs`).
    SameAs(NamedNode),
}

fn subject_exists(tx: &Transaction<'_>, iri: &NamedNode) -> Result<bool, TextError> {
    Ok(tx
        .quads_for_pattern(Some(iri.as_ref().into()), None, None, None)
        .next()
        .transpose()?
        .is_some())
}

/// A mention resolved to an entity within one commit.
struct Resolved {
    iri: NamedNode,
    naming: Naming,
    /// The name the report gives the entity: a known entity's label when the mention is
    /// another spelling of it, so one entity reads the same in every report.
    shown: String,
}

/// The first `rdfs:label` of an entity.
fn known_label(tx: &Transaction<'_>, iri: &NamedNode) -> Result<Option<String>, TextError> {
    for q in tx.quads_for_pattern(Some(iri.as_ref().into()), Some(rdfs::LABEL), None, None) {
        if let Term::Literal(l) = q?.object {
            return Ok(Some(l.value().to_owned()));
        }
    }
    Ok(None)
}

/// The entity a mention names, and the name the report gives it: the link chosen before the
/// commit (when the entity still exists), else an entity whose IRI is the mention's minted
/// IRI, else one whose `rdfs:label` is the mention, else a new one.
fn resolve_entity(
    tx: &Transaction<'_>,
    base: &str,
    raw: &str,
    links: &HashMap<String, Link>,
    cache: &mut HashMap<String, Resolved>,
    report: &mut TextReport,
) -> Result<(NamedNode, String), TextError> {
    let mention = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some(r) = cache.get(&mention) {
        return Ok((r.iri.clone(), r.shown.clone()));
    }
    let minted = nn(&entity_iri(base, &mention))?;
    let minted_exists = subject_exists(tx, &minted)?;
    let linked = match links.get(raw) {
        Some(Link::Existing { iri, alias }) => {
            let iri = nn(iri)?;
            subject_exists(tx, &iri)?.then(|| {
                report.entities_linked += 1;
                if *alias {
                    report.aliases_added += 1;
                    (iri, Naming::AltLabel)
                } else {
                    (iri, Naming::Label)
                }
            })
        }
        Some(Link::Possibly { iri }) if !minted_exists => {
            let iri = nn(iri)?;
            subject_exists(tx, &iri)?.then(|| {
                report.entities_created += 1;
                report.same_as_added += 1;
                (minted.clone(), Naming::SameAs(iri))
            })
        }
        _ => None,
    };
    let resolved = match linked {
        Some(r) => r,
        None if minted_exists => {
            report.entities_linked += 1;
            (minted, Naming::Label)
        }
        None => {
            let by_label = tx
                .quads_for_pattern(
                    None,
                    Some(rdfs::LABEL),
                    Some(Literal::new_simple_literal(&mention).as_ref().into()),
                    None,
                )
                .filter_map(|q| match q {
                    Ok(q) => match q.subject {
                        NamedOrBlankNode::NamedNode(n) => Some(Ok(n)),
                        NamedOrBlankNode::BlankNode(_) => None,
                    },
                    Err(e) => Some(Err(e)),
                })
                .next()
                .transpose()?;
            match by_label {
                Some(n) => {
                    report.entities_linked += 1;
                    (n, Naming::Label)
                }
                None => {
                    report.entities_created += 1;
                    (minted, Naming::Label)
                }
            }
        }
    };
    let (iri, naming) = resolved;
    let shown = match naming {
        Naming::AltLabel => known_label(tx, &iri)?.unwrap_or_else(|| mention.clone()),
        _ => mention.clone(),
    };
    cache.insert(
        mention,
        Resolved {
            iri: iri.clone(),
            naming,
            shown: shown.clone(),
        },
    );
    Ok((iri, shown))
}

#[cfg(test)]
mod tests {
    use super::*;

    use oxigraph::model::{GraphNameRef, NamedNodeRef, QuadRef};

    fn one_fact_plan(text: &str, subject: &str, object: &str) -> Plan {
        Plan {
            chunks: vec![crate::chunk::Chunk {
                start: 0,
                end: text.chars().count(),
                text: text.into(),
            }],
            triples: vec![crate::pipeline::PlannedTriple {
                subject: subject.into(),
                relation: RelationRef::Schema(tessera_storage::Relation {
                    iri: "http://example.org/location".into(),
                    label: "location".into(),
                    definition: "The subject entity is located in the object entity.".into(),
                    range: None,
                }),
                object: Object::Entity(object.into()),
                chunk: 0,
                extracted: [subject.into(), "location".into(), object.into()],
                decision: crate::pipeline::Decision::Name,
                support: None,
            }],
            new_relations: Vec::new(),
            dropped: Vec::new(),
            stats: Default::default(),
        }
    }

    #[test]
    fn a_mention_linked_to_a_known_entity_reads_as_its_label() {
        let storage = Storage::in_memory().expect("store");
        let cfg = TextConfig::default();
        let opts = TextOptions {
            graph: Some(NamedNode::new_unchecked("http://example.org/facts")),
            ..TextOptions::default()
        };
        let prov = |seq| Provenance {
            model: "scripted".into(),
            embedder: "scripted".into(),
            schema_fingerprint: "none".into(),
            index_node: NamedNode::new_unchecked("http://example.org/index"),
            seq,
        };
        let first = "Agremiação Sportiva Arapiraquense plays in Arapiraca.";
        let plan = one_fact_plan(first, "Agremiação Sportiva Arapiraquense", "Arapiraca");
        let report = commit(
            &storage,
            &cfg,
            first,
            plan,
            &HashMap::new(),
            &opts,
            &prov(1),
        )
        .expect("first commit");
        let club = report.triples[0][0].trim_matches(['<', '>']).to_owned();
        // The second text spells the club without diacritics; linking found it.
        let second = "Agremiacao Sportiva Arapiraquense is in Arapiraca, Brazil.";
        let plan = one_fact_plan(second, "Agremiacao Sportiva Arapiraquense", "Brazil");
        let links = HashMap::from([(
            "Agremiacao Sportiva Arapiraquense".to_owned(),
            Link::Existing {
                iri: club.clone(),
                alias: true,
            },
        )]);
        let report =
            commit(&storage, &cfg, second, plan, &links, &opts, &prov(2)).expect("second commit");
        assert_eq!(report.triples[0][0], format!("<{club}>"));
        assert_eq!(
            report.facts[0],
            [
                "Agremiação Sportiva Arapiraquense".to_owned(),
                "location".to_owned(),
                "Brazil".to_owned()
            ],
            "the fact names the known entity by its label"
        );
        assert_eq!(report.aliases_added, 1);
        // The text's spelling is kept as an alias of the entity.
        let alias = Literal::new_simple_literal("Agremiacao Sportiva Arapiraquense");
        let iri = NamedNode::new_unchecked(club);
        let has_alias = storage
            .store()
            .contains(QuadRef::new(
                iri.as_ref(),
                skos::ALT_LABEL,
                alias.as_ref(),
                GraphNameRef::NamedNode(NamedNodeRef::new_unchecked("http://example.org/facts")),
            ))
            .expect("read");
        assert!(has_alias);
    }

    #[test]
    fn the_stating_sentence_is_the_one_naming_both_ends() {
        let chunk = "Ingrid Solberg is a glaciologist. She works for the Norwegian Polar \
                     Institute in Tromsø.\nTomás Herrera was born in Valparaíso in 1980!";
        assert_eq!(
            stating_sentence(chunk, "Tomás Herrera", "1980"),
            "Tomás Herrera was born in Valparaíso in 1980!"
        );
        assert_eq!(
            stating_sentence(chunk, "Norwegian Polar Institute", "Tromsø"),
            "She works for the Norwegian Polar Institute in Tromsø."
        );
        // Nothing named: the first sentence; one sentence: itself.
        assert_eq!(
            stating_sentence(chunk, "Zed", "Qux"),
            "Ingrid Solberg is a glaciologist."
        );
        assert_eq!(stating_sentence("No stop", "a", "b"), "No stop");
        assert_eq!(stating_sentence("", "a", "b"), "");
    }

    #[test]
    fn entity_iris_round_trip() {
        let base = "http://tessera.local/entity/";
        for label in [
            "Alan Shepard",
            "Ærø",
            "AT&T Park",
            "A/B test",
            "100% Pure",
            "x_y",
            ".",
            "..",
            "...",
        ] {
            let iri = entity_iri(base, label);
            assert!(NamedNode::new(&iri).is_ok(), "{iri}");
            if !label.contains('_') {
                assert_eq!(entity_label(base, &iri).as_deref(), Some(label), "{iri}");
            }
        }
        assert_eq!(
            entity_iri(base, "Alan  Shepard"),
            format!("{base}Alan_Shepard")
        );
        // Dot segments would resolve away (to the base itself or its parent).
        assert_eq!(entity_iri(base, ".."), format!("{base}%2E%2E"));
        assert_eq!(entity_iri(base, "St. Louis"), format!("{base}St._Louis"));
    }

    #[test]
    fn dates_of_the_clock() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
