//! The entity registry: the named entities of a graph by their labels, and the HNSW index of
//! label embeddings that text ingestion links new mentions against.
//!
//! Entry points: [`Storage::entity_labels`] reads every `rdfs:label` and `skos:altLabel` of the
//! graph's named subjects (with their `rdf:type`s), and [`EntityIndex::sync`] brings the
//! persisted index in line with them, embedding only labels it has not seen. Lookups by
//! normalised label ([`EntityIndex::by_key`]) and by nearest embedding
//! ([`EntityIndex::nearest`]).

use crate::vector::VectorIndex;
use crate::vocab::{rdf, rdfs, skos};
use crate::{Storage, StorageError};
use oxigraph::model::{GraphNameRef, NamedNodeRef, NamedOrBlankNodeRef, TermRef};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// One label of an entity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct EntityLabel {
    /// The entity's IRI.
    pub iri: String,
    /// The label (`rdfs:label` or `skos:altLabel`).
    pub label: String,
    /// The entity's `rdf:type`s.
    pub types: Vec<String>,
}

impl Storage {
    /// Every label of the named subjects of `graph`, sorted by IRI then label.
    pub fn entity_labels(&self, graph: GraphNameRef<'_>) -> Result<Vec<EntityLabel>, StorageError> {
        let g = Some(graph);
        let mut labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for p in [rdfs::LABEL.as_str(), skos::ALT_LABEL.as_str()] {
            for q in
                self.store
                    .quads_for_pattern(None, Some(NamedNodeRef::new_unchecked(p)), None, g)
            {
                let q = q?;
                let (NamedOrBlankNodeRef::NamedNode(s), TermRef::Literal(l)) =
                    (q.subject.as_ref(), q.object.as_ref())
                else {
                    continue;
                };
                labels
                    .entry(s.as_str().to_owned())
                    .or_default()
                    .insert(l.value().to_owned());
            }
        }
        let mut out = Vec::new();
        for (iri, names) in labels {
            let mut types = Vec::new();
            for q in self.store.quads_for_pattern(
                Some(NamedNodeRef::new_unchecked(&iri).into()),
                Some(NamedNodeRef::new_unchecked(rdf::TYPE.as_str())),
                None,
                None,
            ) {
                if let TermRef::NamedNode(t) = q?.object.as_ref() {
                    types.push(t.as_str().to_owned());
                }
            }
            types.sort();
            types.dedup();
            for label in names {
                out.push(EntityLabel {
                    iri: iri.clone(),
                    label,
                    types: types.clone(),
                });
            }
        }
        Ok(out)
    }
}

/// Embeds texts: one vector each.
pub type EmbedTexts<'a> = dyn FnMut(&[&str]) -> Result<Vec<Vec<f32>>, String> + 'a;

/// A graph's entity labels with the HNSW index of their embeddings.
#[derive(Debug)]
pub struct EntityIndex {
    labels: Vec<EntityLabel>,
    by_entry: HashMap<String, usize>,
    by_key: HashMap<String, Vec<usize>>,
    index: VectorIndex,
}

fn entry_key(l: &EntityLabel) -> String {
    format!("{}\u{0}{}", l.iri, l.label)
}

impl EntityIndex {
    /// Brings an index in line with `labels` (as [`Storage::entity_labels`] returns them):
    /// reuses `current` or the file at `path` when nothing changed, else embeds the labels no
    /// old index holds. Returns the index and whether it was rebuilt.
    pub fn sync(
        current: Option<EntityIndex>,
        path: Option<&Path>,
        labels: Vec<EntityLabel>,
        identity: &str,
        dim: usize,
        embed: &mut EmbedTexts<'_>,
    ) -> Result<(EntityIndex, bool), StorageError> {
        let keys: Vec<String> = labels.iter().map(entry_key).collect();
        let (index, changed) = VectorIndex::sync(
            current.map(|c| c.index),
            path,
            "entity labels",
            &keys,
            identity,
            dim,
            &mut |missing: &[usize]| {
                let texts: Vec<&str> = missing.iter().map(|&i| labels[i].label.as_str()).collect();
                embed(&texts)
            },
        )?;
        let by_entry = keys.into_iter().enumerate().map(|(i, k)| (k, i)).collect();
        let mut by_key: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, l) in labels.iter().enumerate() {
            by_key.entry(crate::name_key(&l.label)).or_default().push(i);
        }
        Ok((
            EntityIndex {
                labels,
                by_entry,
                by_key,
                index,
            },
            changed,
        ))
    }

    /// The fingerprint an index over `labels` has (to check a file against the store).
    pub fn fingerprint_of(labels: &[EntityLabel]) -> String {
        let keys: Vec<String> = labels.iter().map(entry_key).collect();
        crate::vector::fingerprint(&keys)
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The content fingerprint.
    pub fn fingerprint(&self) -> &str {
        self.index.fingerprint()
    }

    /// Labels whose normalised form ([`crate::name_key`]) equals `key`'s.
    pub fn by_key(&self, label: &str) -> Vec<&EntityLabel> {
        self.by_key
            .get(&crate::name_key(label))
            .map(|v| v.iter().map(|&i| &self.labels[i]).collect())
            .unwrap_or_default()
    }

    /// The `k` labels nearest to `embedding`, with cosine similarity, best first.
    pub fn nearest(&self, embedding: &[f32], k: usize) -> Vec<(&EntityLabel, f32)> {
        self.index
            .search(embedding, k)
            .into_iter()
            .filter_map(|(key, s)| self.by_entry.get(key).map(|&i| (&self.labels[i], s)))
            .collect()
    }
}
