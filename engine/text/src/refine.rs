//! Refine (EDC+R): extraction again with hints (the previous round's entities and canonical
//! relations, and the schema relations retrieved for the chunk), then define and canonicalize
//! the new round. Entry point: [`Pipeline::refine`]; its output is the new round's triples and
//! their resolutions.

use crate::pipeline::{
    Extracted, Item, NewRelation, Pipeline, RelationRef, Resolution, Resolved, Stats,
};
use crate::prompts::Hints;
use crate::schema::Schema;
use crate::EdcError;
use std::collections::HashSet;
use tessera_storage::name_key;

impl Pipeline<'_> {
    /// Hints per chunk: a previous round's entities and relations first, then the schema
    /// relations whose definitions are nearest to the chunk's text.
    pub(crate) fn retrieve_hints(
        &self,
        items: &[Item],
        schema: &Schema<'_>,
        triples: Option<&[Vec<[String; 3]>]>,
        resolved: &[Vec<Resolution>],
        new_relations: &[NewRelation],
    ) -> Result<Vec<Hints>, EdcError> {
        let bodies: Vec<&str> = items.iter().map(|i| i.body.as_str()).collect();
        let text_vectors = self.embedder.embed(&bodies)?;
        let mut hints = Vec::with_capacity(items.len());
        for (i, v) in text_vectors.iter().enumerate() {
            let mut h = Hints::default();
            let mut seen_entities = HashSet::new();
            for t in triples.map(|t| t[i].as_slice()).unwrap_or_default() {
                for e in [&t[0], &t[2]] {
                    if seen_entities.insert(name_key(e)) {
                        h.entities.push(e.clone());
                    }
                }
            }
            let mut seen = HashSet::new();
            let mut push = |name: &str, def: &str| {
                if seen.insert(name_key(name)) {
                    h.relations.push((name.to_owned(), def.to_owned()));
                }
            };
            for r in resolved.get(i).map(Vec::as_slice).unwrap_or_default() {
                match r {
                    Resolution::Relation(RelationRef::Schema(s), _) => {
                        push(&s.label, &s.definition)
                    }
                    Resolution::Relation(RelationRef::New(g), _) => {
                        push(&new_relations[*g].name, &new_relations[*g].definition)
                    }
                    Resolution::Unmatched(_) => {}
                }
            }
            for (s, _) in schema.nearest(v, self.opts.hint_relations) {
                push(&s.label, &s.definition);
            }
            hints.push(h);
        }
        Ok(hints)
    }

    /// Refine (EDC+R): extraction again with hints (the previous round's entities and canonical
    /// relations, and the schema relations nearest to the raw text), then define and
    /// canonicalize the new round. With `allowed` the grammar admits only those relation names
    /// (the pipeline passes none: see `run`).
    #[allow(clippy::too_many_arguments)]
    pub fn refine(
        &self,
        items: &[Item],
        triples: &[Vec<[String; 3]>],
        resolved: &[Vec<Resolution>],
        schema: &Schema<'_>,
        allowed: Option<&[String]>,
        new_relations: &mut Vec<NewRelation>,
        stats: &mut [Stats],
    ) -> Result<(Extracted, Resolved), EdcError> {
        let hints = self.retrieve_hints(items, schema, Some(triples), resolved, new_relations)?;
        let before: Vec<_> = stats.iter().map(|s| s.tokens).collect();
        let new_triples = self.extract(items, Some(&hints), allowed, stats)?;
        let definitions = self.define(items, &new_triples, schema, stats)?;
        let new_resolved = self.canonicalize(
            items,
            &new_triples,
            &definitions,
            schema,
            new_relations,
            stats,
        )?;
        for (s, b) in stats.iter_mut().zip(&before) {
            s.move_to_refine(b);
        }
        Ok((new_triples, new_resolved))
    }
}
