//! Cover: the names and numbers a chunk writes that none of its extracted triples uses, each
//! given back to the model as one more triple to write. Small models stop a list of facts
//! early (with Qwen2.5-0.5B, texts of seven facts got two thirds as many triples as facts)
//! and leave out whole entities; asked about a name they left out, they state the fact the
//! text gives about it. Entry point: [`Pipeline::cover`]; its output is the extraction with
//! the new triples appended.
//!
//! The question is a further turn of the extraction's conversation: the extraction prompt,
//! the model's own list as its answer, then the names it left out; a grammar admits, for each
//! of them in text order, exactly one triple relating it to a name of that list, either way
//! round. The new triples go through every later stage and check as the others do. It needs a
//! model that takes further turns and a Lark grammar ([`crate::TextModel::render_turns`]):
//! the in-engine one. Which names a text writes, and which a list leaves out, is
//! [`crate::anchors`]'s to say.

use crate::anchors::{uncovered, Anchor};
use crate::model::generate_all;
use crate::output::parse_triples;
use crate::pipeline::{
    Extracted, Item, Pipeline, Stage, Stats, MAX_NAME_CHARS, MAX_RELATION_CHARS,
};
use crate::prompts;
use crate::EdcError;
use serde_json::json;
use tessera_llm::{ChatMessage, Constraint, GenerateOptions};

/// The grammar of the cover pass's answer: a list with, for each anchor in order, one triple
/// that relates it to one of the `known` names (those of the model's first list), either way
/// round. Tying the other end to a known name keeps the model from running a name on into
/// the text ("Apollo 14. He") and from relating two names it had not read as entities.
fn continuation_grammar(anchors: &[&str], known: &[&str]) -> String {
    let relation = json!({"type": "string", "minLength": 1, "maxLength": MAX_RELATION_CHARS});
    let mut g = String::from("start: \"[\" ");
    for k in 0..anchors.len() {
        if k > 0 {
            g.push_str(" \",\" ");
        }
        g.push_str(&format!("t{k}"));
    }
    g.push_str(" \"]\"\n");
    // A name as a JSON string, written as a Lark string literal.
    let lit = |n: &str| {
        serde_json::to_string(&serde_json::to_string(n).unwrap_or_default()).unwrap_or_default()
    };
    for (k, a) in anchors.iter().enumerate() {
        let at = lit(a);
        g.push_str(&format!(
            "t{k}: \"[\" {at} \",\" rel \",\" known \"]\" | \"[\" known \",\" rel \",\" {at} \"]\"\n"
        ));
    }
    let known: Vec<String> = known.iter().map(|n| lit(n)).collect();
    g.push_str(&format!(
        "rel: %json {relation}\nknown: {}\n",
        known.join(" | ")
    ));
    g
}

impl Pipeline<'_> {
    /// Cover: for each chunk, the names and numbers its text writes that no extracted triple
    /// holds are given back to the model, which continues its own list with one triple for
    /// each. Returns the extraction with those triples appended, and how many were added.
    pub fn cover(
        &self,
        items: &[Item],
        triples: &Extracted,
        stats: &mut [Stats],
    ) -> Result<Extracted, EdcError> {
        let mut out = triples.clone();
        let fixed = prompts::extract_fixed(false);
        let mut todo: Vec<usize> = Vec::new();
        let mut requests = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let have = &triples[i];
            if have.len() >= self.opts.max_triples {
                continue;
            }
            let anchors: Vec<Anchor> = uncovered(&item.body, have)
                .into_iter()
                .take(self.opts.max_triples - have.len())
                .collect();
            let mut known: Vec<&str> = Vec::new();
            for n in have.iter().flat_map(|t| [t[0].trim(), t[2].trim()]) {
                if !n.is_empty() && n.chars().count() <= MAX_NAME_CHARS && !known.contains(&n) {
                    known.push(n);
                }
            }
            if anchors.is_empty() || known.is_empty() {
                continue;
            }
            let names: Vec<&str> = anchors.iter().map(|a| a.text.as_str()).collect();
            // The model's own answer, then the names it left out.
            let rest = [
                ChatMessage::assistant(
                    serde_json::to_string(have).unwrap_or_else(|_| "[]".to_owned()),
                ),
                ChatMessage::user(prompts::cover_user(&names)),
            ];
            let Some(prompt) =
                self.model
                    .render_turns(&fixed, &prompts::extract_user(&item.body, None), &rest)?
            else {
                return Ok(out);
            };
            let opts = GenerateOptions {
                max_tokens: 48 * anchors.len() + 8,
                constraint: Some(Constraint::Lark(continuation_grammar(&names, &known))),
                cancel: self.opts.cancel.clone(),
                ..GenerateOptions::default()
            };
            todo.push(i);
            requests.push((prompt, opts));
        }
        if requests.is_empty() {
            return Ok(out);
        }
        // The pass adds to a reading that stands without it: a failed generation (a grammar
        // the constraint engine refuses, say) leaves the first extraction as it is.
        let gens = match generate_all(self.model, &requests) {
            Ok(g) => g,
            Err(EdcError::Cancelled) => return Err(EdcError::Cancelled),
            Err(e) => {
                tracing::warn!(error = %e, "cover pass skipped");
                return Ok(out);
            }
        };
        for (&i, g) in todo.iter().zip(&gens) {
            stats[i].add_generation(Stage::Extract, g);
            let added = parse_triples(&g.text, g.finish);
            stats[i].covered += added.len();
            out[i].extend(added);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn the_grammar_holds_each_anchor_once() {
        let g = continuation_grammar(&["New Hampshire", "Say \"hi\""], &["Alan Shepard", "1923"]);
        assert!(g.starts_with("start: \"[\" t0 \",\" t1 \"]\"\n"), "{g}");
        assert!(g.contains(r#"t0: "[" "\"New Hampshire\"" "," rel "," known "]" | "[" known "," rel "," "\"New Hampshire\"" "]""#), "{g}");
        assert!(g.contains(r#""\"Say \\\"hi\\\"\"""#), "{g}");
    }
}
