//! Canonicalize: each extracted relation to a schema relation (by name, by an unambiguous
//! embedding match against the HNSW index of the schema's definitions, or by the model's
//! choice among the nearest definitions, one scored forward pass over option letters), else
//! dropped (target alignment) or added to the schema (self-canonicalization). Entry point:
//! [`Pipeline::canonicalize`]; its output is [`Resolved`].

use crate::define::Definitions;
use crate::pipeline::{
    Align, Decision, Item, NewRelation, Pipeline, RelationRef, Resolution, Resolved, Stage, Stats,
};
use crate::prompts;
use crate::schema::{camel_case, definition_text, Schema};
use crate::EdcError;
use std::collections::HashMap;
use tessera_llm::{ChatMessage, Prompt};
use tessera_storage::name_key;
use tessera_storage::vector::dot;

impl Pipeline<'_> {
    /// Canonicalize: each extracted relation to a schema relation (by name, by an unambiguous
    /// embedding match, or by the model's choice among the nearest definitions), else dropped
    /// (target alignment) or added to the schema (self-canonicalization).
    #[allow(clippy::too_many_arguments)]
    pub fn canonicalize(
        &self,
        items: &[Item],
        triples: &[Vec<[String; 3]>],
        definitions: &Definitions,
        schema: &Schema<'_>,
        new_relations: &mut Vec<NewRelation>,
        stats: &mut [Stats],
    ) -> Result<Resolved, EdcError> {
        // Embed every definition of the batch at once.
        let mut to_embed: Vec<String> = Vec::new();
        let mut slot: HashMap<(usize, String), usize> = HashMap::new();
        for (i, defs) in definitions.iter().enumerate() {
            for (name, def) in defs {
                slot.insert((i, name.clone()), to_embed.len());
                to_embed.push(definition_text(name, def));
            }
        }
        let refs: Vec<&str> = to_embed.iter().map(String::as_str).collect();
        let vectors = if refs.is_empty() {
            Vec::new()
        } else {
            self.embedder.embed(&refs)?
        };
        let choose_fixed = prompts::choose_fixed();
        // In target alignment nothing resolved here changes the candidates of another
        // relation, so every verification of the batch runs in one forward pass first.
        let mut verified: HashMap<(usize, String), Vec<f32>> = HashMap::new();
        if self.opts.align == Align::Target {
            let mut asks: Vec<((usize, String), Prompt, usize)> = Vec::new();
            for (i, chunk_triples) in triples.iter().enumerate().take(items.len()) {
                for t in chunk_triples {
                    let key = (i, t[1].clone());
                    if schema.by_name(&t[1]).is_some() || asks.iter().any(|a| a.0 == key) {
                        continue;
                    }
                    let Some(&v) = slot.get(&key) else { continue };
                    let cands = self.candidates(&vectors[v], schema, new_relations);
                    if self.unambiguous(&cands) || cands.is_empty() {
                        continue;
                    }
                    let def = &definitions[i][&t[1]];
                    let prompt = self.verification_prompt(t, def, &cands, &choose_fixed)?;
                    asks.push((key, prompt, cands.len()));
                }
            }
            let requests: Vec<(&Prompt, &[&str])> = asks
                .iter()
                .map(|(_, p, n)| (p, &prompts::LETTERS[..=*n]))
                .collect();
            let scores = self.model.score_batch(&requests)?;
            for (key, p, _) in &asks {
                stats[key.0].add_scored(Stage::Canonicalize, self.model.prompt_size(p));
            }
            for ((key, _, _), sc) in asks.into_iter().zip(scores) {
                verified.insert(key, sc);
            }
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, chunk_triples) in triples.iter().enumerate().take(items.len()) {
            let mut memo: HashMap<String, Resolution> = HashMap::new();
            let mut res = Vec::with_capacity(chunk_triples.len());
            for t in chunk_triples {
                let name = &t[1];
                if let Some(r) = memo.get(name) {
                    res.push(r.clone());
                    continue;
                }
                let r = if let Some(rel) = schema.by_name(name) {
                    stats[i].by_name += 1;
                    Resolution::Relation(RelationRef::Schema(rel.clone()), Decision::Name)
                } else if let Some(g) = new_relations
                    .iter()
                    .position(|n| name_key(&n.name) == name_key(name))
                {
                    Resolution::Relation(RelationRef::New(g), Decision::Name)
                } else if let Some(&v) = slot.get(&(i, name.clone())) {
                    let def = &definitions[i][name];
                    self.resolve(
                        t,
                        def,
                        &vectors[v],
                        schema,
                        new_relations,
                        &choose_fixed,
                        verified.get(&(i, name.clone())),
                        &mut stats[i],
                    )?
                } else {
                    Resolution::Unmatched(format!("no definition was written for \"{name}\""))
                };
                memo.insert(name.clone(), r.clone());
                res.push(r);
            }
            out.push(res);
        }
        Ok(out)
    }

    /// Another schema relation for a triple whose relation asks for a date or a year while
    /// its object is neither ("died on the date given by" California): the schema relation
    /// nearest to that relation's definition that asks for neither ("died in the place given
    /// by"), if one is near enough. Small models pick the date-or-year sibling of the right
    /// relation; the definitions say which sibling fits the object.
    pub(crate) fn reroute<'s>(
        &self,
        label: &str,
        definition: &str,
        schema: &Schema<'s>,
    ) -> Result<Option<&'s tessera_storage::Relation>, EdcError> {
        let embedding = self
            .embedder
            .embed(&[definition_text(label, definition).as_str()])?;
        let Some(e) = embedding.first() else {
            return Ok(None);
        };
        Ok(schema
            .nearest(e, REROUTE_CANDIDATES)
            .into_iter()
            .find(|(r, s)| {
                *s >= REROUTE_SIMILARITY
                    && name_key(&r.label) != name_key(label)
                    && r.range.is_none()
                    && crate::literal::expects(&r.label, &r.definition)
                        == crate::literal::Expects::Any
            })
            .map(|(r, _)| r))
    }

    /// The nearest schema (and new) relations of a definition's embedding, best first, at
    /// most `top_k`, none below `reject`.
    fn candidates(
        &self,
        embedding: &[f32],
        schema: &Schema<'_>,
        new_relations: &[NewRelation],
    ) -> Vec<Candidate> {
        let mut cands: Vec<Candidate> = schema
            .nearest(embedding, self.opts.top_k)
            .into_iter()
            .map(|(r, s)| Candidate {
                label: r.label.clone(),
                definition: r.definition.clone(),
                relation: RelationRef::Schema(r.clone()),
                similarity: s,
            })
            .collect();
        for (g, n) in new_relations.iter().enumerate() {
            cands.push(Candidate {
                relation: RelationRef::New(g),
                label: n.name.clone(),
                definition: n.definition.clone(),
                similarity: dot(embedding, &n.embedding),
            });
        }
        cands.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        cands.truncate(self.opts.top_k.min(prompts::LETTERS.len() - 1));
        cands.retain(|c| c.similarity >= self.opts.reject);
        cands
    }

    /// Whether the best candidate wins without asking the model: similar enough, and far
    /// enough ahead of the second.
    fn unambiguous(&self, cands: &[Candidate]) -> bool {
        match cands {
            [first, rest @ ..] => {
                first.similarity >= self.opts.accept
                    && rest
                        .first()
                        .is_none_or(|s| first.similarity - s.similarity >= self.opts.margin)
            }
            [] => false,
        }
    }

    fn verification_prompt(
        &self,
        triple: &[String; 3],
        definition: &str,
        cands: &[Candidate],
        choose_fixed: &[ChatMessage],
    ) -> Result<Prompt, EdcError> {
        let options: Vec<(String, String)> = cands
            .iter()
            .map(|c| (c.label.clone(), c.definition.clone()))
            .collect();
        self.model.render(
            choose_fixed,
            &prompts::choose_user(triple, definition, &options),
        )
    }

    /// One relation's resolution; `verified` holds the model's option scores when they were
    /// computed ahead (batched), else the model is asked here if needed.
    #[allow(clippy::too_many_arguments)]
    fn resolve(
        &self,
        triple: &[String; 3],
        definition: &str,
        embedding: &[f32],
        schema: &Schema<'_>,
        new_relations: &mut Vec<NewRelation>,
        choose_fixed: &[ChatMessage],
        verified: Option<&Vec<f32>>,
        stats: &mut Stats,
    ) -> Result<Resolution, EdcError> {
        let name = &triple[1];
        let cands = self.candidates(embedding, schema, new_relations);
        let best = cands.first().map(|c| (c.label.clone(), c.similarity));
        let chosen = if cands.is_empty() {
            None
        } else if self.unambiguous(&cands) {
            stats.by_similarity += 1;
            Some((cands[0].relation.clone(), Decision::Similarity))
        } else {
            let scores = match verified {
                Some(s) => s.clone(),
                None => {
                    let prompt =
                        self.verification_prompt(triple, definition, &cands, choose_fixed)?;
                    stats.add_scored(Stage::Canonicalize, self.model.prompt_size(&prompt));
                    self.model
                        .score(&prompt, &prompts::LETTERS[..=cands.len()])?
                }
            };
            stats.model_calls += 1;
            stats.by_model += 1;
            let pick = scores
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(k, _)| k)
                .unwrap_or(cands.len());
            // Calibration data for the similarity thresholds (`tessera eval` with
            // RUST_LOG=tessera_text::canonicalize=debug).
            tracing::debug!(
                relation = %name,
                top = cands[0].similarity,
                second = cands.get(1).map_or(0.0, |c| c.similarity),
                pick,
                none = cands.len(),
                "verification"
            );
            (pick < cands.len()).then(|| (cands[pick].relation.clone(), Decision::Model))
        };
        if let Some((r, d)) = chosen {
            return Ok(Resolution::Relation(r, d));
        }
        match self.opts.align {
            Align::Target => Ok(Resolution::Unmatched(match best {
                Some((label, s)) => format!(
                    "no schema relation means \"{name}\" (nearest: {label}, similarity {s:.2})"
                ),
                None => format!("no schema relation is near \"{name}\""),
            })),
            Align::SelfCanonical => {
                let new_name = camel_case(name);
                if new_name.is_empty() {
                    return Ok(Resolution::Unmatched(format!(
                        "\"{name}\" is not a usable relation name"
                    )));
                }
                new_relations.push(NewRelation {
                    name: new_name,
                    definition: definition.to_owned(),
                    embedding: embedding.to_vec(),
                });
                Ok(Resolution::Relation(
                    RelationRef::New(new_relations.len() - 1),
                    Decision::New,
                ))
            }
        }
    }
}

/// Schema relations [`Pipeline::reroute`] looks at, nearest first.
const REROUTE_CANDIDATES: usize = 5;
/// Definition similarity below which [`Pipeline::reroute`] finds no sibling (the triple is
/// then dropped).
const REROUTE_SIMILARITY: f32 = 0.5;

/// A relation the canonicalizer may choose, with its similarity to the definition.
struct Candidate {
    relation: RelationRef,
    label: String,
    definition: String,
    similarity: f32,
}
