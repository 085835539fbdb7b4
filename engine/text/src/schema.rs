//! The schema as the pipeline reads it: the store's relations ([`tessera_storage::Relation`]),
//! searchable by name and by the embedding of their definitions (the HNSW index of
//! [`tessera_storage::SchemaIndex`]), each with what its name and definition say read
//! once (`RelationWords`). Entry point: [`Schema::new`]. Also the text embedded for
//! a relation ([`definition_text`], the same on the schema side and the extracted side) and
//! relation names from free text ([`camel_case`]).

pub use crate::csv::{parse_csv, CsvError, MAX_CSV_BYTES};
use crate::TextError;
use oxigraph::model::{GraphName, Literal, Quad};
use std::collections::HashMap;
use tessera_storage::schema::local_name;
use tessera_storage::vocab::{rdf, rdfs, skos};
use tessera_storage::{name_key, Relation, SchemaIndex};

/// A schema index with lookup by name.
pub struct Schema<'a> {
    index: &'a SchemaIndex,
    names: RelationsByName<'a>,
    /// Read on first use: most reads never ask.
    words: std::sync::OnceLock<Vec<RelationWords>>,
}

/// What the checks that look at every relation for a triple read from a relation's name and
/// definition, read once per schema: the name's words ([`crate::words::words`]), what it
/// asks for, and whether it places its subject in a place of its name's kind.
pub(crate) struct RelationWords {
    /// The name's words, camelCase split.
    pub label: Vec<String>,
    /// What the relation asks for as its object ([`crate::literal::expects`]).
    pub expects: crate::literal::Expects,
    holds_places: bool,
}

impl RelationWords {
    fn new(r: &Relation) -> Self {
        let label = crate::words::words(&r.label);
        let want: Vec<&str> = ["located", "in", "the"]
            .into_iter()
            .chain(label.iter().map(String::as_str))
            .collect();
        let holds_places = crate::words::words(&r.definition)
            .windows(want.len())
            .any(|w| w.iter().zip(&want).all(|(a, b)| a == b));
        Self {
            expects: crate::literal::expects(&r.label, &r.definition),
            label,
            holds_places,
        }
    }

    /// Whether the definition places its subject in a place of the kind the name says: "is
    /// located in the state given by" for state, "in the city" for city.
    pub fn holds_places_of_its_name(&self) -> bool {
        self.holds_places
    }
}

impl<'a> Schema<'a> {
    /// The schema of `index`; relations are found by label and by their IRI's local name
    /// (compared by [`name_key`]).
    pub fn new(index: &'a SchemaIndex) -> Self {
        Self {
            index,
            names: RelationsByName::new(index.relations()),
            words: std::sync::OnceLock::new(),
        }
    }

    /// Every relation with its words, in the index's order.
    pub(crate) fn relations_with_words(
        &self,
    ) -> impl Iterator<Item = (&'a Relation, &RelationWords)> + '_ {
        let words = self.words.get_or_init(|| {
            self.index
                .relations()
                .iter()
                .map(RelationWords::new)
                .collect()
        });
        self.index.relations().iter().zip(words)
    }

    /// How many relations the schema holds.
    pub fn relation_count(&self) -> usize {
        self.index.relations().len()
    }

    /// The `k` relations whose definition embeddings are most similar to `embedding`, with
    /// their cosine similarity, best first.
    pub fn nearest(&self, embedding: &[f32], k: usize) -> Vec<(&'a Relation, f32)> {
        self.index.nearest(embedding, k)
    }

    /// The relation named `name`.
    pub fn by_name(&self, name: &str) -> Option<&'a Relation> {
        self.names.get(name)
    }

    /// Every relation, in the index's order.
    pub fn relations(&self) -> &'a [Relation] {
        self.index.relations()
    }

    /// The names of every relation.
    pub fn labels(&self) -> Vec<String> {
        self.index
            .relations()
            .iter()
            .map(|r| r.label.clone())
            .collect()
    }

    /// The schema's content fingerprint.
    pub fn fingerprint(&self) -> &str {
        self.index.fingerprint()
    }
}

/// Relations found by label or by their IRI's local name (compared by [`name_key`]), without
/// an index.
pub struct RelationsByName<'a> {
    relations: &'a [Relation],
    by_name: HashMap<String, usize>,
}

impl<'a> RelationsByName<'a> {
    /// Looks up `relations` by name.
    pub fn new(relations: &'a [Relation]) -> Self {
        let mut by_name = HashMap::new();
        for (i, r) in relations.iter().enumerate() {
            by_name.entry(name_key(&r.label)).or_insert(i);
            by_name.entry(name_key(local_name(&r.iri))).or_insert(i);
        }
        Self { relations, by_name }
    }

    /// The relation named `name`.
    pub fn get(&self, name: &str) -> Option<&'a Relation> {
        let relations: &'a [Relation] = self.relations;
        self.by_name.get(&name_key(name)).map(|&i| &relations[i])
    }
}

/// The text embedded for a relation, on the schema side and the extracted side alike:
/// its name in words, then its definition.
pub fn definition_text(label: &str, definition: &str) -> String {
    let mut words = String::new();
    let mut prev_lower = false;
    for c in label.chars() {
        if c == '_' || c == '-' {
            words.push(' ');
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower {
            words.push(' ');
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        words.extend(c.to_lowercase());
    }
    if definition.is_empty() {
        words
    } else {
        format!("{words}: {definition}")
    }
}

/// A camelCase relation name from free text (`place of birth` -> `placeOfBirth`).
pub fn camel_case(name: &str) -> String {
    let mut out = String::new();
    for (i, word) in name
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .enumerate()
    {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            if i == 0 {
                out.extend(first.to_lowercase());
            } else {
                out.extend(first.to_uppercase());
            }
            out.push_str(chars.as_str());
        }
    }
    out
}

/// The schema quads of relations given by name and definition: each an `rdf:Property` under
/// `base` (its name in camelCase) with `rdfs:label` and, when given, `skos:definition`.
pub fn relation_quads(
    relations: &[(String, String)],
    graph: &GraphName,
    base: &str,
) -> Result<Vec<Quad>, TextError> {
    let mut quads = Vec::new();
    for (name, definition) in relations {
        let rel = crate::commit::nn(&format!("{base}{}", camel_case(name)))?;
        quads.push(Quad::new(
            rel.clone(),
            rdf::TYPE,
            rdf::PROPERTY,
            graph.clone(),
        ));
        quads.push(Quad::new(
            rel.clone(),
            rdfs::LABEL,
            Literal::new_simple_literal(name),
            graph.clone(),
        ));
        if !definition.is_empty() {
            quads.push(Quad::new(
                rel,
                skos::DEFINITION,
                Literal::new_simple_literal(definition),
                graph.clone(),
            ));
        }
    }
    Ok(quads)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relation(label: &str, definition: &str) -> Relation {
        Relation {
            iri: format!("http://example.org/{label}"),
            label: label.to_owned(),
            definition: definition.to_owned(),
            range: None,
        }
    }

    #[test]
    fn relation_words_say_what_a_relation_asks_for() {
        let city = RelationWords::new(&relation(
            "city",
            "The subject entity is located in the city given by the object entity.",
        ));
        assert_eq!(city.label, ["city"]);
        assert!(city.holds_places_of_its_name());
        assert_eq!(city.expects, crate::literal::Expects::Any);
        // Located, but not in a place of the kind the name says.
        let north = RelationWords::new(&relation(
            "north",
            "The subject entity has the object entity located to its north.",
        ));
        assert!(!north.holds_places_of_its_name());
        let founded = RelationWords::new(&relation(
            "foundingDate",
            "The subject entity was founded on the date given by the object.",
        ));
        assert_eq!(founded.label, ["founding", "date"]);
        assert_eq!(founded.expects, crate::literal::Expects::Date);
        assert!(!founded.holds_places_of_its_name());
    }
}
