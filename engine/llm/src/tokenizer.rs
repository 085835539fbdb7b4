//! Tokenizers built from a GGUF file's own metadata: [`Tokenizer::from_gguf`] is the entry point.
//!
//! The vocabulary, merges and token types come from `tokenizer.ggml.*`; the pre-tokenizer is
//! chosen from a table keyed by `tokenizer.ggml.pre` that mirrors llama.cpp's (its regexes, not
//! the Hugging Face ones, because the golden ids are llama.cpp's). The result is a `tokenizers`
//! BPE pipeline, so encoding speed and correctness come from that crate. Chat templates are
//! rendered from `tokenizer.chat_template` with minijinja.

use crate::gguf::GgufFile;
use candle_core::quantized::gguf_file::Value;
use std::collections::HashMap;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior};

/// What can go wrong building or using a tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The GGUF metadata lacks or misstates a tokenizer field.
    #[error("tokenizer metadata: {0}")]
    Metadata(String),
    /// The vocabulary type is not supported.
    #[error("tokenizer model {0:?} is not supported (byte-level BPE, \"gpt2\", is)")]
    Unsupported(String),
    /// The `tokenizers` crate failed.
    #[error("tokenizer: {0}")]
    Encode(String),
    /// The chat template failed to render.
    #[error("chat template: {0}")]
    Template(String),
}

const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The regexes, applied in order, for a `tokenizer.ggml.pre` value (llama.cpp's table).
fn pre_regexes(pre: &str) -> Option<&'static [&'static str]> {
    Some(match pre {
        "default" | "gpt-2" | "gpt2" | "mpt" | "olmo" | "jais" => &[GPT2],
        // Digits one by one, then GPT-2: SmolLM2 and the StarCoder family.
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva" => {
            &[r"\p{N}", GPT2]
        }
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "dbrx" | "smaug-bpe" => &[LLAMA3],
        "qwen2" | "deepseek-r1-qwen" | "hunyuan" => &[QWEN2],
        _ => return None,
    })
}

/// Merges that reproduce SentencePiece BPE: every piece that splits into two vocabulary
/// pieces yields a merge, ranked by the piece's score (higher first).
fn spm_merges(tokens: &[String], scores: &[f32], types: &[u32]) -> Vec<(String, String)> {
    let index: HashMap<&str, usize> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let mut ranked: Vec<(f32, usize, usize, (String, String))> = Vec::new();
    for (i, piece) in tokens.iter().enumerate() {
        if types.get(i).copied().unwrap_or(1) != 1 || piece.chars().count() < 2 {
            continue;
        }
        for (at, _) in piece.char_indices().skip(1) {
            let (a, b) = piece.split_at(at);
            if let (Some(&ia), Some(&ib)) = (index.get(a), index.get(b)) {
                ranked.push((
                    scores.get(i).copied().unwrap_or(0.0),
                    ia,
                    ib,
                    (a.to_owned(), b.to_owned()),
                ));
            }
        }
    }
    ranked.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
    ranked.into_iter().map(|r| r.3).collect()
}

/// A tokenizer for one model.
pub struct Tokenizer {
    /// Matches control and user-defined tokens written in the text (chat markup).
    special: tokenizers::Tokenizer,
    /// Matches only user-defined tokens: text stays text.
    plain: tokenizers::Tokenizer,
    /// The raw bytes of every token (byte-level decoded; specials as their text).
    bytes: Vec<Vec<u8>>,
    /// Token types from `tokenizer.ggml.token_type` (1 normal, 3 control, 4 user-defined).
    types: Vec<u32>,
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: bool,
    eog: Vec<u32>,
    template: Option<String>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab", &self.bytes.len())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .finish_non_exhaustive()
    }
}

fn strings(v: Option<&Value>, key: &str) -> Result<Vec<String>, TokenizerError> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(TokenizerError::Metadata(format!(
                    "{key} holds a non-string"
                ))),
            })
            .collect(),
        _ => Err(TokenizerError::Metadata(format!("{key} is missing"))),
    }
}

/// GPT-2's byte-to-character table: printable bytes map to themselves, the rest to U+0100...
fn byte_level_table() -> HashMap<char, u8> {
    let mut bs: Vec<u32> = (b'!'..=b'~')
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .map(u32::from)
        .collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    bs.into_iter()
        .zip(cs)
        .filter_map(|(b, c)| Some((char::from_u32(c)?, b as u8)))
        .collect()
}

impl Tokenizer {
    /// Builds the tokenizer a GGUF file describes.
    pub fn from_gguf(file: &GgufFile) -> Result<Self, TokenizerError> {
        let model = file
            .meta_str("tokenizer.ggml.model")
            .unwrap_or("")
            .to_owned();
        let tokens = strings(file.meta("tokenizer.ggml.tokens"), "tokenizer.ggml.tokens")?;
        let types: Vec<u32> = match file.meta("tokenizer.ggml.token_type") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::I32(t) => *t as u32,
                    Value::U32(t) => *t,
                    _ => 1,
                })
                .collect(),
            _ => vec![1; tokens.len()],
        };
        if types.len() != tokens.len() {
            return Err(TokenizerError::Metadata(format!(
                "{} token types for {} tokens",
                types.len(),
                tokens.len()
            )));
        }
        let vocab: tokenizers::models::bpe::Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let mut base = match model.as_str() {
            "gpt2" => {
                let merges = strings(file.meta("tokenizer.ggml.merges"), "tokenizer.ggml.merges")?;
                let pre = file.meta_str("tokenizer.ggml.pre").unwrap_or("default");
                let regexes = pre_regexes(pre).ok_or_else(|| {
                    TokenizerError::Unsupported(format!("gpt2 with pre-tokenizer {pre:?}"))
                })?;
                let merges = merges
                    .iter()
                    .map(|m| {
                        m.split_once(' ')
                            .map(|(a, b)| (a.to_owned(), b.to_owned()))
                            .ok_or_else(|| {
                                TokenizerError::Metadata(format!("merge {m:?} has no space"))
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let bpe = BPE::builder()
                    .vocab_and_merges(vocab, merges)
                    .build()
                    .map_err(|e| TokenizerError::Encode(e.to_string()))?;
                let mut steps: Vec<PreTokenizerWrapper> = Vec::new();
                for re in regexes {
                    let split = Split::new(
                        SplitPattern::Regex((*re).to_owned()),
                        SplitDelimiterBehavior::Isolated,
                        false,
                    )
                    .map_err(|e| TokenizerError::Encode(e.to_string()))?;
                    steps.push(split.into());
                }
                steps.push(ByteLevel::new(false, false, false).into());
                let mut t = tokenizers::Tokenizer::new(bpe);
                t.with_pre_tokenizer(Some(Sequence::new(steps)));
                t
            }
            // SentencePiece BPE (Gemma, Llama 2): merges follow the scores of the merged pieces,
            // unknown characters fall back to byte tokens.
            "llama" => {
                let scores: Vec<f32> = match file.meta("tokenizer.ggml.scores") {
                    Some(Value::Array(a)) => a
                        .iter()
                        .map(|v| if let Value::F32(f) = v { *f } else { 0.0 })
                        .collect(),
                    _ => {
                        return Err(TokenizerError::Metadata(
                            "tokenizer.ggml.scores is missing".into(),
                        ))
                    }
                };
                let merges = spm_merges(&tokens, &scores, &types);
                let bpe = BPE::builder()
                    .vocab_and_merges(vocab, merges)
                    .byte_fallback(true)
                    .build()
                    .map_err(|e| TokenizerError::Encode(e.to_string()))?;
                let mut t = tokenizers::Tokenizer::new(bpe);
                let prefix = !matches!(
                    file.meta("tokenizer.ggml.add_space_prefix"),
                    Some(Value::Bool(false))
                );
                let mut norms: Vec<tokenizers::NormalizerWrapper> = Vec::new();
                if prefix {
                    norms.push(tokenizers::normalizers::Prepend::new("\u{2581}".into()).into());
                }
                norms.push(
                    tokenizers::normalizers::Replace::new(" ", "\u{2581}")
                        .map_err(|e| TokenizerError::Encode(e.to_string()))?
                        .into(),
                );
                t.with_normalizer(Some(tokenizers::normalizers::Sequence::new(norms)))
                    .map_err(|e| TokenizerError::Encode(e.to_string()))?;
                t
            }
            other => return Err(TokenizerError::Unsupported(other.to_owned())),
        };
        base.with_truncation(None)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        let mut special = base.clone();
        let mut plain = base;
        let control: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, t)| **t == 3)
            .map(|(s, _)| AddedToken::from(s.clone(), true))
            .collect();
        let user: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, t)| **t == 4)
            .map(|(s, _)| AddedToken::from(s.clone(), false).normalized(false))
            .collect();
        special
            .add_special_tokens(control)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        special
            .add_tokens(user.clone())
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        plain
            .add_tokens(user)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;

        let table = byte_level_table();
        let spm = model == "llama";
        let bytes = tokens
            .iter()
            .zip(&types)
            .map(|(t, ty)| match ty {
                3 | 4 => t.as_bytes().to_vec(),
                6 if spm => t
                    .strip_prefix("<0x")
                    .and_then(|h| h.strip_suffix('>'))
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .map(|b| vec![b])
                    .unwrap_or_default(),
                _ if spm => t.replace('\u{2581}', " ").into_bytes(),
                _ => t
                    .chars()
                    .map(|c| table.get(&c).copied())
                    .collect::<Option<Vec<u8>>>()
                    .unwrap_or_else(|| t.as_bytes().to_vec()),
            })
            .collect();
        let id = |key: &str| {
            file.meta_u64(key)
                .and_then(|v| u32::try_from(v).ok())
                .filter(|&v| (v as usize) < tokens.len())
        };
        let bos = id("tokenizer.ggml.bos_token_id");
        let eos = id("tokenizer.ggml.eos_token_id");
        let add_bos = matches!(
            file.meta("tokenizer.ggml.add_bos_token"),
            Some(Value::Bool(true))
        );
        // End-of-generation tokens: EOS, EOT, and the chat markup ends llama.cpp also treats so.
        let mut eog: Vec<u32> = [eos, id("tokenizer.ggml.eot_token_id")]
            .into_iter()
            .flatten()
            .collect();
        for (i, t) in tokens.iter().enumerate() {
            if types[i] == 3
                && matches!(
                    t.as_str(),
                    "<|im_end|>" | "<|endoftext|>" | "<end_of_turn>" | "<|eot_id|>" | "<|end|>"
                )
                && !eog.contains(&(i as u32))
            {
                eog.push(i as u32);
            }
        }
        Ok(Self {
            special,
            plain,
            bytes,
            types,
            bos,
            eos,
            add_bos,
            eog,
            template: file.meta_str("tokenizer.chat_template").map(str::to_owned),
        })
    }

    /// Token ids for `text`. `add_bos` prepends BOS when the model asks for it;
    /// `parse_special` lets control tokens written in the text (`<|im_start|>`) become tokens.
    pub fn encode(
        &self,
        text: &str,
        add_bos: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let tok = if parse_special {
            &self.special
        } else {
            &self.plain
        };
        let enc = tok
            .encode_fast(text, false)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        let mut ids = Vec::with_capacity(enc.len() + 1);
        if add_bos && self.add_bos {
            ids.extend(self.bos);
        }
        ids.extend_from_slice(enc.get_ids());
        Ok(ids)
    }

    /// The raw bytes of a token (may be part of a UTF-8 sequence).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.bytes
            .get(id as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Text for a sequence of tokens; control tokens are left out when `skip_special`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> String {
        let mut out = Vec::new();
        for &id in ids {
            if skip_special && self.is_control(id) {
                continue;
            }
            out.extend_from_slice(self.token_bytes(id));
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Whether a token is a control token (chat markup, BOS/EOS).
    pub fn is_control(&self, id: u32) -> bool {
        self.types.get(id as usize) == Some(&3)
    }

    /// The vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.bytes.len()
    }

    /// End-of-generation tokens.
    pub fn eog(&self) -> &[u32] {
        &self.eog
    }

    /// The EOS token.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// Renders a chat with the model's template and opens the assistant turn.
    pub fn chat_prompt(&self, messages: &[ChatMessage]) -> Result<String, TokenizerError> {
        let Some(template) = &self.template else {
            // ChatML is what every supported instruct model without a template speaks.
            let mut s = String::new();
            for m in messages {
                s.push_str(&format!(
                    "<|im_start|>{}\n{}<|im_end|>\n",
                    m.role, m.content
                ));
            }
            s.push_str("<|im_start|>assistant\n");
            return Ok(s);
        };
        let mut env = minijinja::Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env.add_template("chat", template)
            .map_err(|e| TokenizerError::Template(e.to_string()))?;
        let tmpl = env
            .get_template("chat")
            .map_err(|e| TokenizerError::Template(e.to_string()))?;
        let name = |id: Option<u32>| id.map(|i| self.decode(&[i], false)).unwrap_or_default();
        tmpl.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => true,
            bos_token => name(self.bos),
            eos_token => name(self.eos),
        })
        .map_err(|e| TokenizerError::Template(e.to_string()))
    }
}

/// One message of a chat.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A message from the user.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: "user".into(),
            content: content.into(),
        }
    }
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: "system".into(),
            content: content.into(),
        }
    }
    /// A reply of the model (a worked example in a few-shot prompt).
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: "assistant".into(),
            content: content.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_covers_every_byte_once() {
        let t = byte_level_table();
        assert_eq!(t.len(), 256);
        let mut seen: Vec<u8> = t.values().copied().collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 256);
        assert_eq!(t[&'Ġ'], b' ');
        assert_eq!(t[&'Ċ'], b'\n');
        assert_eq!(t[&'a'], b'a');
    }

    #[test]
    fn sentencepiece_merges_follow_scores() {
        let toks: Vec<String> = [
            "h",
            "e",
            "l",
            "o",
            "\u{2581}",
            "he",
            "ll",
            "hell",
            "hello",
            "\u{2581}hello",
            "lo",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let scores = [0.0, 0.0, 0.0, 0.0, 0.0, -3.0, -1.0, -2.0, -0.5, -0.1, -5.0];
        let merges = spm_merges(&toks, &scores, &[1; 11]);
        // The best-scored piece's merges come first.
        assert_eq!(merges[0], ("\u{2581}".to_string(), "hello".to_string()));
        assert!(merges.contains(&("hell".to_string(), "o".to_string())));
        assert!(merges.contains(&("he".to_string(), "ll".to_string())));
        let vocab: tokenizers::models::bpe::Vocab = toks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .unwrap();
        let t = tokenizers::Tokenizer::new(bpe);
        let ids = t.encode("\u{2581}hello", false).unwrap().get_ids().to_vec();
        assert_eq!(ids, vec![9]);
    }

    #[test]
    fn every_listed_pre_tokenizer_compiles() {
        for pre in ["gpt2", "smollm", "llama-bpe", "qwen2"] {
            for re in pre_regexes(pre).unwrap() {
                Split::new(
                    SplitPattern::Regex((*re).to_owned()),
                    SplitDelimiterBehavior::Isolated,
                    false,
                )
                .unwrap();
            }
        }
        assert!(pre_regexes("no-such-pre").is_none());
    }
}
