//! Examples from the store: sources marked as examples (`tessera:example true` on the source's
//! record in the sources graph), whose texts and triples become the few-shot examples of
//! extraction for later reads into the same graph, shown after the built-in ones. A source is
//! marked when it is written ([`TextOptions::example`](crate::TextOptions), or
//! [`Reader::write_examples`](crate::Reader::write_examples) for texts with triples given by
//! hand) or later with plain SPARQL:
//!
//! ```sparql
//! INSERT DATA { GRAPH <urn:tessera:sources> { <source> <https://tessera.dev/ns#example> true } }
//! ```
//!
//! Entry points: [`store_examples`] (the marked sources of a graph, read from the store) and
//! [`ExamplePool`] (their text embeddings, searched for the examples nearest a chunk).

use crate::TextError;
use oxigraph::model::{GraphNameRef, Literal, NamedNode, NamedNodeRef, Term, TermRef};
use std::collections::HashMap;
use tessera_storage::schema::local_name;
use tessera_storage::vocab::{rdfs, skos, tessera, xsd};
use tessera_storage::Storage;

/// Most example sources read from one graph (the first by source IRI); a pool is searched
/// exhaustively, which stays well under a millisecond a chunk at this size.
pub const MAX_EXAMPLES: usize = 10_000;

/// Longest example text, in characters: a longer source would crowd the prompt (it is not
/// used as an example).
pub const MAX_EXAMPLE_CHARS: usize = 1500;

/// Most triples shown with one example.
pub const MAX_EXAMPLE_TRIPLES: usize = 16;

/// One example: a text and its triples as names (subject and object as the text spells them,
/// the relation's label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreExample {
    /// The source's text.
    pub text: String,
    /// Its triples.
    pub triples: Vec<[String; 3]>,
}

/// The examples of the sources marked as examples whose triples went to `graph` (`None`: the
/// default graph), in source IRI order. Sources with a text over [`MAX_EXAMPLE_CHARS`] or
/// without triples are left out.
pub fn store_examples(
    storage: &Storage,
    graph: Option<&NamedNode>,
) -> Result<Vec<StoreExample>, TextError> {
    let store = storage.store();
    let sources = GraphNameRef::NamedNode(tessera::SOURCES_GRAPH);
    let target = graph.map_or(tessera::DEFAULT_GRAPH, NamedNode::as_ref);
    let yes = Literal::new_typed_literal("true", xsd::BOOLEAN);
    let mut marked: Vec<NamedNode> = Vec::new();
    for q in store.quads_for_pattern(
        None,
        Some(tessera::EXAMPLE),
        Some(yes.as_ref().into()),
        Some(sources),
    ) {
        if let oxigraph::model::NamedOrBlankNode::NamedNode(s) = q?.subject {
            marked.push(s);
        }
    }
    marked.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    let object = |s: NamedNodeRef<'_>, p: NamedNodeRef<'_>, g: GraphNameRef<'_>| {
        store
            .quads_for_pattern(Some(s.into()), Some(p), None, Some(g))
            .next()
            .transpose()
            .map(|q| q.map(|q| q.object))
    };
    let mut out = Vec::new();
    let mut labels: HashMap<String, String> = HashMap::new();
    for source in marked {
        if out.len() == MAX_EXAMPLES {
            break;
        }
        let recorded = object(source.as_ref(), tessera::TARGET_GRAPH, sources)?;
        if !matches!(&recorded, Some(Term::NamedNode(n)) if n.as_ref() == target) {
            continue;
        }
        let Some(Term::Literal(text)) = object(source.as_ref(), tessera::TEXT, sources)? else {
            continue;
        };
        if text.value().chars().count() > MAX_EXAMPLE_CHARS {
            continue;
        }
        let own = GraphNameRef::NamedNode(source.as_ref());
        // The name of an entity as this source's text spells it: its alternative label in the
        // source's graph (a linked entity spelled otherwise), else its label there, else its
        // label anywhere, else its IRI's local name.
        let name = |e: NamedNodeRef<'_>| -> Result<String, TextError> {
            for p in [skos::ALT_LABEL, rdfs::LABEL] {
                if let Some(Term::Literal(l)) = object(e, p, own)? {
                    return Ok(l.value().to_owned());
                }
            }
            if let Some(Term::Literal(l)) = store
                .quads_for_pattern(Some(e.into()), Some(rdfs::LABEL), None, None)
                .next()
                .transpose()?
                .map(|q| q.object)
            {
                return Ok(l.value().to_owned());
            }
            Ok(local_name(e.as_str()).replace('_', " "))
        };
        let mut triples = Vec::new();
        for q in store.quads_for_pattern(None, None, None, Some(own)) {
            let q = q?;
            let p = q.predicate.as_ref();
            if [
                rdfs::LABEL,
                skos::ALT_LABEL,
                tessera_storage::vocab::owl::SAME_AS,
            ]
            .contains(&p)
            {
                continue;
            }
            let oxigraph::model::NamedOrBlankNode::NamedNode(s) = &q.subject else {
                continue;
            };
            let relation = match labels.get(p.as_str()) {
                Some(l) => l.clone(),
                None => {
                    let l = match store
                        .quads_for_pattern(Some(p.into()), Some(rdfs::LABEL), None, None)
                        .next()
                        .transpose()?
                        .map(|q| q.object)
                    {
                        Some(Term::Literal(l)) => l.value().to_owned(),
                        _ => local_name(p.as_str()).to_owned(),
                    };
                    labels.insert(p.as_str().to_owned(), l.clone());
                    l
                }
            };
            let o = match q.object.as_ref() {
                TermRef::NamedNode(n) => name(n)?,
                TermRef::Literal(l) => l.value().to_owned(),
                TermRef::BlankNode(_) => continue,
            };
            triples.push([name(s.as_ref())?, relation, o]);
            if triples.len() == MAX_EXAMPLE_TRIPLES {
                break;
            }
        }
        if triples.is_empty() {
            continue;
        }
        // In the order the text names them: the model learns to read from the start.
        let at = |name: &str| text.value().find(name).unwrap_or(usize::MAX);
        triples.sort_by_key(|t| (at(&t[0]), at(&t[2])));
        out.push(StoreExample {
            text: text.value().to_owned(),
            triples,
        });
    }
    Ok(out)
}

/// Examples with the embeddings of their texts, searched exhaustively.
#[derive(Debug, Default)]
pub struct ExamplePool {
    examples: Vec<StoreExample>,
    embeddings: Vec<Vec<f32>>,
}

impl ExamplePool {
    /// A pool of `examples` and the (L2-normalised) embeddings of their texts, in the same
    /// order.
    pub fn new(examples: Vec<StoreExample>, embeddings: Vec<Vec<f32>>) -> Self {
        debug_assert_eq!(examples.len(), embeddings.len());
        Self {
            examples,
            embeddings,
        }
    }

    /// How many examples the pool holds.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether the pool holds none.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// The examples, in the pool's order.
    pub fn examples(&self) -> &[StoreExample] {
        &self.examples
    }

    /// The `k` examples whose texts are most similar to `embedding`, least similar first (so
    /// the nearest stands next to the text it is an example for).
    pub fn nearest(&self, embedding: &[f32], k: usize) -> Vec<&StoreExample> {
        let mut scored: Vec<(f32, usize)> = self
            .embeddings
            .iter()
            .enumerate()
            .map(|(i, e)| (e.iter().zip(embedding).map(|(a, b)| a * b).sum(), i))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        scored.truncate(k);
        scored
            .iter()
            .rev()
            .map(|&(_, i)| &self.examples[i])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(text: &str) -> StoreExample {
        StoreExample {
            text: text.into(),
            triples: vec![[text.into(), "r".into(), "o".into()]],
        }
    }

    #[test]
    fn the_nearest_examples_come_last() {
        let pool = ExamplePool::new(
            vec![ex("a"), ex("b"), ex("c")],
            vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![0.6, 0.8]],
        );
        let got: Vec<&str> = pool
            .nearest(&[0.0, 1.0], 2)
            .iter()
            .map(|e| e.text.as_str())
            .collect();
        assert_eq!(got, ["c", "b"]);
        assert_eq!(pool.nearest(&[1.0, 0.0], 5).len(), 3);
        assert!(ExamplePool::default().nearest(&[1.0, 0.0], 3).is_empty());
    }
}
