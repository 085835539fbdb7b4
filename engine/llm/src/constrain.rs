//! Constrained decoding: [`Constraint`] turns a JSON Schema, a Lark grammar or a regex into a
//! per-sequence [`Guide`] that masks the logits at every step, so the output always parses.
//!
//! llguidance does the grammar work; this module adapts the model's own vocabulary to it
//! ([`TokenEnv`], built once per model) and keeps a hard cap on grammar size.

use crate::tokenizer::Tokenizer;
use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use std::sync::Arc;
use toktrie::{TokRxInfo, TokTrie, TokenId, TokenizerEnv};

/// Largest grammar or schema accepted, in bytes.
pub const MAX_GRAMMAR_BYTES: usize = 1 << 20;

/// What can go wrong constraining output.
#[derive(Debug, thiserror::Error)]
pub enum ConstraintError {
    /// The grammar or schema is invalid or too large.
    #[error("constraint: {0}")]
    Grammar(String),
    /// The model produced a token the grammar does not allow (cannot happen when masks apply).
    #[error("constrained decoding: {0}")]
    Step(String),
}

/// A constraint on generated text.
#[derive(Debug, Clone)]
pub enum Constraint {
    /// The output is one JSON value valid against the schema. Without an `x-guidance` key in
    /// the schema, the JSON is compact: no free whitespace between tokens, where small models
    /// can loop until the token limit and leave unparsable output.
    JsonSchema(serde_json::Value),
    /// The output matches the Lark grammar (llguidance's dialect).
    Lark(String),
    /// The output matches the regular expression.
    Regex(String),
}

impl Constraint {
    fn grammar(&self) -> Result<TopLevelGrammar, ConstraintError> {
        let size = match self {
            Self::JsonSchema(v) => v.to_string().len(),
            Self::Lark(s) | Self::Regex(s) => s.len(),
        };
        if size > MAX_GRAMMAR_BYTES {
            return Err(ConstraintError::Grammar(format!(
                "{size} bytes exceeds the cap of {MAX_GRAMMAR_BYTES}"
            )));
        }
        Ok(match self {
            Self::JsonSchema(v) => {
                let mut v = v.clone();
                if let Some(o) = v.as_object_mut() {
                    o.entry("x-guidance")
                        .or_insert_with(|| serde_json::json!({"whitespace_flexible": false}));
                }
                TopLevelGrammar::from_json_schema(v)
            }
            Self::Lark(s) => TopLevelGrammar::from_lark(s.clone()),
            Self::Regex(s) => TopLevelGrammar::from_regex(s),
        })
    }
}

/// The model's vocabulary as llguidance sees it.
pub struct TokenEnv {
    trie: TokTrie,
    tokenizer: Arc<Tokenizer>,
}

impl TokenizerEnv for TokenEnv {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        let text = String::from_utf8_lossy(s);
        self.tokenizer
            .encode(&text, false, false)
            .unwrap_or_default()
    }
}

/// Builds guides for one model; cheap to clone.
#[derive(Clone)]
pub struct GuideFactory {
    factory: Arc<ParserFactory>,
}

impl std::fmt::Debug for GuideFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GuideFactory")
    }
}

impl GuideFactory {
    /// Indexes the vocabulary (once per model). `eos` ends constrained output.
    pub fn new(tokenizer: Arc<Tokenizer>, eos: u32) -> Result<Self, ConstraintError> {
        let words: Vec<Vec<u8>> = (0..tokenizer.vocab_size() as u32)
            .map(|id| {
                let b = tokenizer.token_bytes(id);
                if tokenizer.is_control(id) {
                    // llguidance marks special tokens with a 0xFF prefix.
                    let mut v = vec![TokTrie::SPECIAL_TOKEN_MARKER];
                    v.extend_from_slice(b);
                    v
                } else {
                    b.to_vec()
                }
            })
            .collect();
        let info = TokRxInfo::new(words.len() as u32, eos);
        let trie = TokTrie::from(&info, &words);
        let env: toktrie::TokEnv = Arc::new(TokenEnv { trie, tokenizer });
        let mut factory =
            ParserFactory::new_simple(&env).map_err(|e| ConstraintError::Grammar(e.to_string()))?;
        factory.quiet();
        Ok(Self {
            factory: Arc::new(factory),
        })
    }

    /// A fresh guide for one sequence.
    pub fn guide(&self, c: &Constraint) -> Result<Guide, ConstraintError> {
        let parser = self
            .factory
            .create_parser(c.grammar()?)
            .map_err(|e| ConstraintError::Grammar(e.to_string()))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(ConstraintError::Grammar(e));
        }
        Ok(Guide { matcher })
    }
}

/// The state of one constrained sequence.
pub struct Guide {
    matcher: Matcher,
}

impl Guide {
    /// Sets the logits of every token the grammar forbids now to -inf. Returns false when the
    /// grammar is complete and only end-of-sequence remains.
    pub fn mask(&mut self, logits: &mut [f32]) -> Result<bool, ConstraintError> {
        if self.matcher.is_stopped() {
            return Ok(false);
        }
        let mask = self
            .matcher
            .compute_mask_or_eos()
            .map_err(|e| ConstraintError::Step(e.to_string()))?;
        for (i, l) in logits.iter_mut().enumerate() {
            if !mask.is_allowed(i as TokenId) {
                *l = f32::NEG_INFINITY;
            }
        }
        Ok(true)
    }

    /// Advances past a sampled token.
    pub fn accept(&mut self, token: u32) -> Result<(), ConstraintError> {
        self.matcher
            .consume_token(token)
            .map_err(|e| ConstraintError::Step(e.to_string()))
    }

    /// Whether the grammar has ended (no more tokens allowed).
    pub fn is_done(&self) -> bool {
        self.matcher.is_stopped()
    }
}
