//! Define: one sentence per extracted relation that is not already a schema relation, all
//! relations of a chunk in one call whose grammar requires every name (none can be
//! forgotten). Entry point: [`Pipeline::define`]; its output is [`Definitions`]. A relation
//! phrase defined once is not defined again: the reader keeps a [`DefinitionCache`] across
//! texts, and a chunk whose phrases are all in it makes no model call.

use crate::pipeline::{Item, Pipeline, Stage, Stats, MAX_DEFINITION_CHARS};
use crate::prompts;
use crate::schema::Schema;
use crate::EdcError;
use serde_json::json;
use std::collections::HashMap;
use tessera_llm::{Constraint, GenerateOptions, Prompt};

/// Definitions per chunk: relation name as extracted -> its definition.
pub type Definitions = Vec<HashMap<String, String>>;

/// Definitions of relation phrases already written by the model, shared across texts (keyed
/// by the phrase with case, spaces and punctuation ignored). Bounded: past
/// [`DefinitionCache::CAPACITY`] phrases it takes no more.
#[derive(Debug, Default)]
pub struct DefinitionCache {
    map: std::sync::Mutex<HashMap<String, String>>,
}

impl DefinitionCache {
    /// Most phrases kept.
    pub const CAPACITY: usize = 100_000;

    fn key(phrase: &str) -> String {
        tessera_storage::name_key(phrase)
    }

    /// The definition of `phrase`, if one was written before.
    pub fn get(&self, phrase: &str) -> Option<String> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&Self::key(phrase))
            .cloned()
    }

    /// Remembers the definition of `phrase`.
    pub fn insert(&self, phrase: &str, definition: &str) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() < Self::CAPACITY {
            map.insert(Self::key(phrase), definition.to_owned());
        }
    }

    /// Phrases held.
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether it holds no phrase.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Pipeline<'_> {
    /// Define: one sentence per relation that needs one (its name is not a schema
    /// relation's), all relations of a chunk in one call.
    pub fn define(
        &self,
        items: &[Item],
        triples: &[Vec<[String; 3]>],
        schema: &Schema<'_>,
        stats: &mut [Stats],
    ) -> Result<Definitions, EdcError> {
        let fixed = prompts::define_fixed();
        let mut out = vec![HashMap::new(); items.len()];
        let mut todo: Vec<(usize, Vec<String>, Prompt)> = Vec::new();
        for i in 0..items.len() {
            let mut names: Vec<String> = Vec::new();
            for t in &triples[i] {
                if schema.by_name(&t[1]).is_some() || names.contains(&t[1]) {
                    continue;
                }
                match self.definitions.and_then(|c| c.get(&t[1])) {
                    Some(known) => {
                        out[i].insert(t[1].clone(), known);
                    }
                    None => names.push(t[1].clone()),
                }
            }
            if names.is_empty() {
                continue;
            }
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let prompt = self
                .model
                .render(&fixed, &prompts::define_user(&triples[i], &refs))?;
            todo.push((i, names, prompt));
        }
        // Each chunk's grammar requires its own relation names; all chunks decode together.
        let mut requests = Vec::with_capacity(todo.len());
        for (_, names, prompt) in &todo {
            let mut props = serde_json::Map::new();
            for n in names {
                props.insert(
                    n.clone(),
                    json!({"type": "string", "minLength": 8, "maxLength": MAX_DEFINITION_CHARS}),
                );
            }
            let schema_json = json!({
                "type": "object",
                "properties": props,
                "required": names,
                "additionalProperties": false,
                "x-guidance": {"whitespace_flexible": false},
            });
            let opts = GenerateOptions {
                max_tokens: 80 * names.len() + 16,
                constraint: Some(Constraint::JsonSchema(schema_json)),
                cancel: self.opts.cancel.clone(),
                ..GenerateOptions::default()
            };
            requests.push((prompt.clone(), opts));
        }
        if requests.is_empty() {
            return Ok(out);
        }
        let gens = crate::model::generate_all(self.model, &requests)?;
        for ((i, _, _), g) in todo.iter().zip(gens) {
            stats[*i].add_generation(Stage::Define, &g);
            let written: HashMap<String, String> =
                serde_json::from_str(&g.text).unwrap_or_default();
            for (name, definition) in written {
                if let Some(cache) = self.definitions {
                    cache.insert(&name, &definition);
                }
                out[*i].insert(name, definition);
            }
        }
        Ok(out)
    }
}
