//! Parsers of model output: untrusted text, capped by the grammar that produced it and parsed
//! without panics (a fuzz target compiles this file in). Entry point: [`parse_triples`].

use tessera_llm::Finish;

/// Parses extraction output; output cut off by the token limit keeps its complete triples.
pub fn parse_triples(text: &str, finish: Finish) -> Vec<[String; 3]> {
    if let Ok(v) = serde_json::from_str::<Vec<[String; 3]>>(text) {
        return v;
    }
    if finish == Finish::Length {
        // Cut after the last complete triple and close the array.
        let mut end = text.len();
        while let Some(at) = text[..end].rfind(']') {
            let candidate = format!("{}]", &text[..=at]);
            if let Ok(v) = serde_json::from_str::<Vec<[String; 3]>>(&candidate) {
                return v;
            }
            end = at;
        }
    }
    tracing::warn!(output = %text, "unparseable extraction output ignored");
    Vec::new()
}
