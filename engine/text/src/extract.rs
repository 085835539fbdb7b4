//! Extract: the triples each chunk states, every chunk of the batch decoded together, the
//! output constrained by a grammar (a JSON array of `[subject, relation, object]`) so it always
//! parses. Entry point: [`Pipeline::extract`]; its output is [`Extracted`], the raw triples
//! per chunk.

use crate::output::parse_triples;
use crate::pipeline::{
    Extracted, Item, Pipeline, Stage, Stats, MAX_NAME_CHARS, MAX_RELATION_CHARS,
};
use crate::prompts::{self, Hints};
use crate::EdcError;
use serde_json::json;
use tessera_llm::{Constraint, GenerateOptions};

impl Pipeline<'_> {
    /// Extract: triples of each chunk, all chunks decoded together. With `hints`, each user
    /// turn lists relations (and entities) to use; with `allowed`, the grammar admits only
    /// those relation names.
    pub fn extract(
        &self,
        items: &[Item],
        hints: Option<&[Hints]>,
        allowed: Option<&[String]>,
        stats: &mut [Stats],
    ) -> Result<Extracted, EdcError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let fixed = prompts::extract_fixed(hints.is_some());
        // Open extraction with a pool of store examples: each chunk is shown the examples
        // nearest to it.
        let pool = self
            .examples
            .filter(|_| hints.is_none() && self.opts.examples > 0);
        let near: Vec<Vec<&crate::examples::StoreExample>> = match pool {
            Some(pool) => {
                let bodies: Vec<&str> = items.iter().map(|i| i.body.as_str()).collect();
                self.embedder
                    .embed(&bodies)?
                    .iter()
                    .map(|e| pool.nearest(e, self.opts.examples))
                    .collect()
            }
            None => Vec::new(),
        };
        let prompts = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let user = match near.get(i) {
                    Some(examples) => prompts::extract_user_with(&item.body, examples),
                    None => prompts::extract_user(&item.body, hints.map(|h| &h[i])),
                };
                self.model.render(&fixed, &user)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let opts = GenerateOptions {
            max_tokens: 48 * self.opts.max_triples,
            constraint: Some(Constraint::JsonSchema(triples_schema(
                self.opts.max_triples,
                allowed.unwrap_or_default(),
            ))),
            cancel: self.opts.cancel.clone(),
            ..GenerateOptions::default()
        };
        let gens = self.model.generate(&prompts, &opts)?;
        let mut out = Vec::with_capacity(items.len());
        for (i, g) in gens.iter().enumerate() {
            // What the model wrote, before any check: the first thing to read when a text
            // yields fewer triples than expected (`RUST_LOG=tessera_text::extract=debug`).
            tracing::debug!(chunk = items[i].chunk, output = %g.text, "extraction");
            stats[i].add_generation(Stage::Extract, g);
            out.push(parse_triples(&g.text, g.finish));
        }
        Ok(out)
    }
}

/// The grammar of extraction output: a JSON array of `[subject, relation, object]`; with
/// `relations`, the relation must be one of them.
pub(crate) fn triples_schema(max: usize, relations: &[String]) -> serde_json::Value {
    let name = json!({"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS});
    let relation = if relations.is_empty() {
        json!({"type": "string", "minLength": 1, "maxLength": MAX_RELATION_CHARS})
    } else {
        json!({"enum": relations})
    };
    json!({
        "type": "array",
        "maxItems": max,
        "items": {
            "type": "array",
            "prefixItems": [name, relation, name],
            "items": false,
            "minItems": 3,
            "maxItems": 3,
        },
        "x-guidance": {"whitespace_flexible": false},
    })
}
