//! Entity linking for text ingestion: the entity mentions of planned triples against the
//! entities the target graph already holds. Entry point: [`link`].
//!
//! In order: a known label equal to the mention after normalisation (case, spaces,
//! punctuation) links it, as an alias (`skos:altLabel`) when the spelling differs; else the
//! nearest labels in the entity index (label embeddings): at or above `accept` the mention
//! links as an alias, in the ambiguous band `[ask, accept)` the model is asked (one scored
//! forward pass per mention, batched) and a "same" answer records the uncertain link as
//! `owl:sameAs` between a new entity and the known one, never merging them; below `ask` the
//! mention is a new entity. Candidates whose `rdf:type`s exclude the relation's `rdfs:range`
//! class are skipped.

use crate::literal::Object;
use crate::model::{TextEmbedder, TextModel};
use crate::pipeline::{Plan, RelationRef};
use crate::{prompts, EdcError};
use std::collections::HashMap;
use tessera_llm::Prompt;
use tessera_storage::entities::{EntityIndex, EntityLabel};

/// How a mention is linked to a known entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// It names this entity; `alias` when its spelling is not one of the entity's labels.
    Existing {
        /// The entity.
        iri: String,
        /// Record the mention as `skos:altLabel`.
        alias: bool,
    },
    /// It probably names this entity: a new entity is created with `owl:sameAs` to it.
    Possibly {
        /// The known entity.
        iri: String,
    },
}

/// Linking thresholds (cosine similarity of label embeddings).
#[derive(Debug, Clone)]
pub struct LinkOptions {
    /// At or above: linked as an alias without asking the model.
    pub accept: f32,
    /// At or above (and below `accept`): the model decides.
    pub ask: f32,
    /// Nearest labels looked at per mention.
    pub candidates: usize,
}

impl Default for LinkOptions {
    fn default() -> Self {
        // MiniLM similarities: spelling variants of one name ("Alan B. Miller Hall" / "The
        // Alan B Miller Hall") score above 0.95; a place and a building named after it, or a
        // country and one of its institutions, fall in 0.75-0.9, where only reading helps.
        Self {
            accept: 0.95,
            ask: 0.80,
            candidates: 3,
        }
    }
}

fn compatible(label: &EntityLabel, range: Option<&str>) -> bool {
    match range {
        None => true,
        Some(r) => label.types.is_empty() || label.types.iter().any(|t| t == r),
    }
}

/// A class range (not a datatype): only such a range constrains the entity linked.
fn class_range(r: &RelationRef) -> Option<String> {
    match r {
        RelationRef::Schema(s) => s.range.clone().filter(|r| {
            !r.starts_with("http://www.w3.org/2001/XMLSchema#")
                && r != "http://www.w3.org/2000/01/rdf-schema#Literal"
                && r != "http://www.w3.org/1999/02/22-rdf-syntax-ns#langString"
        }),
        RelationRef::New(_) => None,
    }
}

/// Counts of a linking run (for reports).
#[derive(Debug, Clone, Default)]
pub struct LinkStats {
    /// Mentions checked by the model, per plan.
    pub asked: Vec<usize>,
}

/// Links the entity mentions of each plan; mentions absent from a plan's map are new
/// entities (or resolve to an identical minted IRI at commit).
pub fn link(
    plans: &[Plan],
    index: &EntityIndex,
    model: &dyn TextModel,
    embedder: &dyn TextEmbedder,
    opts: &LinkOptions,
) -> Result<(Vec<HashMap<String, Link>>, LinkStats), EdcError> {
    let mut out: Vec<HashMap<String, Link>> = vec![HashMap::new(); plans.len()];
    let mut stats = LinkStats {
        asked: vec![0; plans.len()],
    };
    if index.is_empty() {
        return Ok((out, stats));
    }
    // (plan, mention, range, chunk) of every distinct mention without a normalised match.
    let mut pending: Vec<(usize, String, Option<String>, usize)> = Vec::new();
    for (p, plan) in plans.iter().enumerate() {
        for t in &plan.triples {
            let range = class_range(&t.relation);
            let mut mentions = vec![(t.subject.clone(), None)];
            if let Object::Entity(o) = &t.object {
                mentions.push((o.clone(), range));
            }
            for (m, range) in mentions {
                if out[p].contains_key(&m) || pending.iter().any(|x| x.0 == p && x.1 == m) {
                    continue;
                }
                let same: Vec<&EntityLabel> = index
                    .by_key(&m)
                    .into_iter()
                    .filter(|l| compatible(l, range.as_deref()))
                    .collect();
                if let Some(best) = same.iter().find(|l| l.label == m).or(same.first()) {
                    let alias = !same.iter().any(|l| l.iri == best.iri && l.label == m);
                    out[p].insert(
                        m,
                        Link::Existing {
                            iri: best.iri.clone(),
                            alias,
                        },
                    );
                } else {
                    pending.push((p, m, range, t.chunk));
                }
            }
        }
    }
    if pending.is_empty() {
        return Ok((out, stats));
    }
    let names: Vec<&str> = pending.iter().map(|x| x.1.as_str()).collect();
    let vectors = embedder.embed(&names)?;
    let fixed = prompts::same_entity_fixed();
    let mut asks: Vec<(usize, String, Prompt)> = Vec::new();
    // One pass over the index serves every mention of the batch.
    let queries: Vec<&[f32]> = vectors.iter().map(Vec::as_slice).collect();
    let nearest = index.nearest_many(&queries, opts.candidates);
    for ((p, m, range, chunk), near) in pending.iter().zip(nearest) {
        let best = near
            .into_iter()
            .find(|(l, _)| compatible(l, range.as_deref()));
        let Some((label, sim)) = best else { continue };
        if sim >= opts.accept {
            out[*p].insert(
                m.clone(),
                Link::Existing {
                    iri: label.iri.clone(),
                    alias: true,
                },
            );
        } else if sim >= opts.ask {
            let text = plans[*p]
                .chunks
                .get(*chunk)
                .map(|c| c.text.as_str())
                .unwrap_or_default();
            let prompt = model.render(&fixed, &prompts::same_entity_user(text, m, &label.label))?;
            asks.push((*p, m.clone(), prompt));
            // The candidate travels with the question.
            out[*p].insert(
                m.clone(),
                Link::Possibly {
                    iri: label.iri.clone(),
                },
            );
        }
    }
    if !asks.is_empty() {
        let letters: [&str; 2] = ["A", "B"];
        let requests: Vec<(&Prompt, &[&str])> =
            asks.iter().map(|(_, _, q)| (q, &letters[..])).collect();
        let scores = model.score_batch(&requests)?;
        for ((p, m, _), s) in asks.iter().zip(scores) {
            stats.asked[*p] += 1;
            let same = matches!(s.as_slice(), [a, b] if a > b);
            if !same {
                out[*p].remove(m);
            }
        }
    }
    Ok((out, stats))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used, clippy::unwrap_in_result)]
    use super::*;
    use crate::chunk::Chunk;
    use crate::pipeline::{Decision, PlannedTriple};
    use std::sync::Mutex;
    use tessera_llm::{ChatMessage, GenerateOptions, Generation};
    use tessera_storage::entities::EntityLabel;
    use tessera_storage::Relation;

    /// A scripted fake model for the control flow: answers "same" (A) for mentions listed in
    /// `same`, "different" (B) otherwise, and records what it was asked.
    struct ScriptedFakeModel {
        same: Vec<&'static str>,
        asked: Mutex<Vec<String>>,
    }

    impl TextModel for ScriptedFakeModel {
        fn identity(&self) -> String {
            "scripted-fake".into()
        }
        fn render(&self, _: &[ChatMessage], user: &str) -> Result<Prompt, EdcError> {
            Ok(Prompt::text(user))
        }
        fn generate(&self, _: &[Prompt], _: &GenerateOptions) -> Result<Vec<Generation>, EdcError> {
            panic!("linking never generates")
        }
        fn score(&self, prompt: &Prompt, _: &[&str]) -> Result<Vec<f32>, EdcError> {
            self.asked.lock().unwrap().push(prompt.text.clone());
            let same = self
                .same
                .iter()
                .any(|m| prompt.text.contains(&format!("Name in the text: \"{m}\"")));
            Ok(if same {
                vec![-0.1, -2.0]
            } else {
                vec![-2.0, -0.1]
            })
        }
    }

    /// Embeds by the first word: names sharing it are similar (0.9), the same first two words
    /// very similar (0.97), else orthogonal.
    struct FirstWords;

    impl TextEmbedder for FirstWords {
        fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EdcError> {
            Ok(texts
                .iter()
                .map(|t| {
                    let w: Vec<String> = t.split_whitespace().map(str::to_lowercase).collect();
                    let h = |s: &str| s.bytes().fold(7usize, |a, b| a * 31 + b as usize) % 16;
                    let mut v = vec![0f32; 32];
                    v[h(w.first().map_or("", |s| s))] = 0.9;
                    v[16 + h(w.get(1).map_or("", |s| s))] = 0.4359;
                    v
                })
                .collect())
        }
    }

    fn label(iri: &str, label: &str, types: &[&str]) -> EntityLabel {
        EntityLabel {
            iri: iri.into(),
            label: label.into(),
            types: types.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    fn triple(s: &str, range: Option<&str>, o: &str) -> PlannedTriple {
        PlannedTriple {
            subject: s.into(),
            relation: RelationRef::Schema(Relation {
                iri: "http://r/p".into(),
                label: "p".into(),
                definition: String::new(),
                range: range.map(str::to_owned),
            }),
            object: Object::Entity(o.into()),
            chunk: 0,
            extracted: [s.into(), "p".into(), o.into()],
            decision: Decision::Name,
            support: None,
        }
    }

    #[test]
    fn normalised_labels_then_nearest_then_the_model_in_the_band() {
        let labels = vec![
            label("http://e/ada", "Ada Lovelace", &["http://c/Person"]),
            label("http://e/lyon", "Lyon", &["http://c/City"]),
            label("http://e/paris", "Paris France", &["http://c/City"]),
            label("http://e/parisclub", "Paris Club", &["http://c/Club"]),
        ];
        let index = EntityIndex::build(
            None,
            "first-words",
            32,
            labels,
            0,
            &mut |t| FirstWords.embed(t).map_err(|e| e.to_string()),
            &mut |_, _| {},
        )
        .unwrap();
        let plan = Plan {
            chunks: vec![Chunk {
                start: 0,
                end: 10,
                text: "some text".into(),
            }],
            triples: vec![
                // Normalised equal: linked as an alias.
                triple("ADA lovelace", None, "Lyon"),
                // Normalised equal again, punctuation aside: alias.
                triple("Paris France.", None, "Lyon"),
                // Nearest "Paris France" (same first words, 1.0 >= accept): alias.
                triple("Paris France Region", None, "Lyon"),
                // Same first word as two entities (0.9, the band): the model says same.
                triple("Lyon Metropolis", None, "Paris"),
                // The band, but the model says different: a new entity.
                triple("Lyon Airport", None, "Lyon"),
                // Range City excludes the Club; Paris France is a City (band, model: same).
                triple("Ada Lovelace", Some("http://c/City"), "Paris Saint"),
            ],
            ..Plan::default()
        };
        let model = ScriptedFakeModel {
            same: vec!["Lyon Metropolis", "Paris", "Paris Saint"],
            asked: Mutex::new(Vec::new()),
        };
        let (links, stats) = link(
            &[plan],
            &index,
            &model,
            &FirstWords,
            &LinkOptions::default(),
        )
        .unwrap();
        let l = &links[0];
        let existing = |iri: &str, alias| Link::Existing {
            iri: iri.into(),
            alias,
        };
        assert_eq!(l["ADA lovelace"], existing("http://e/ada", true));
        assert_eq!(l["Ada Lovelace"], existing("http://e/ada", false));
        assert_eq!(l["Lyon"], existing("http://e/lyon", false));
        assert_eq!(l["Paris France."], existing("http://e/paris", true));
        assert_eq!(l["Paris France Region"], existing("http://e/paris", true));
        assert_eq!(
            l["Lyon Metropolis"],
            Link::Possibly {
                iri: "http://e/lyon".into()
            }
        );
        assert!(!l.contains_key("Lyon Airport"));
        assert_eq!(
            l["Paris Saint"],
            Link::Possibly {
                iri: "http://e/paris".into()
            }
        );
        let asked = model.asked.lock().unwrap();
        assert_eq!(stats.asked.iter().sum::<usize>(), asked.len());
        // The range (City) kept the Club out of the question about "Paris Saint".
        let q = asked
            .iter()
            .find(|q| q.contains("\"Paris Saint\""))
            .unwrap();
        assert!(q.contains("Known entity: \"Paris France\""), "{q}");
    }
}
