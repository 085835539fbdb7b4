//! Speed measurements behind `tessera bench`: [`llm`] (llama-bench's pp/tg tests) and
//! [`prefix`] (what the prefix cache saves).

use crate::generate::{GenerateError, GenerateOptions, LanguageModel, Prompt};
use crate::model::{ModelError, Segment};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

/// Prefill and decode throughput.
#[derive(Debug, Clone, Copy)]
pub struct LlmSpeed {
    /// Prompt tokens per second, one batch of `prompt_tokens`.
    pub prefill_tok_s: f64,
    /// Generated tokens per second, one token per forward pass.
    pub decode_tok_s: f64,
}

/// Measures like llama-bench: a prompt of `prompt_tokens` random tokens in one batch, and
/// `gen_tokens` single-token steps from an empty context; the mean of `reps` runs after one
/// warm-up.
pub fn llm(
    lm: &LanguageModel,
    prompt_tokens: usize,
    gen_tokens: usize,
    reps: usize,
) -> Result<LlmSpeed, GenerateError> {
    let model = lm.model();
    let vocab = lm.tokenizer().vocab_size() as u32;
    let mut rng = StdRng::seed_from_u64(42);
    let mut token = || loop {
        let t = rng.random_range(0..vocab);
        if !lm.tokenizer().is_control(t) {
            return t;
        }
    };
    let mut pp = Vec::new();
    let mut tg = Vec::new();
    lm.install(|| -> Result<(), GenerateError> {
        for rep in 0..=reps {
            if prompt_tokens > 0 {
                let prompt: Vec<u32> = (0..prompt_tokens).map(|_| token()).collect();
                let mut cache = model.new_cache(prompt_tokens)?;
                let t = Instant::now();
                model.forward(&mut [Segment {
                    cache: &mut cache,
                    tokens: &prompt,
                    all_logits: false,
                }])?;
                // GPU work is queued: the time counts only once it is done.
                model.device().synchronize().map_err(ModelError::from)?;
                if rep > 0 {
                    pp.push(t.elapsed());
                }
            }
            if gen_tokens > 0 {
                let mut cache = model.new_cache(gen_tokens)?;
                let t = Instant::now();
                for _ in 0..gen_tokens {
                    let tok = [token()];
                    model.forward(&mut [Segment {
                        cache: &mut cache,
                        tokens: &tok,
                        all_logits: false,
                    }])?;
                    // As a generation step does when it samples: wait for the logits.
                    model.device().synchronize().map_err(ModelError::from)?;
                }
                if rep > 0 {
                    tg.push(t.elapsed());
                }
            }
        }
        Ok(())
    })?;
    let rate = |n: usize, ts: &[Duration]| {
        if ts.is_empty() {
            return 0.0;
        }
        ts.iter()
            .map(|t| n as f64 / t.as_secs_f64().max(1e-9))
            .sum::<f64>()
            / ts.len() as f64
    };
    Ok(LlmSpeed {
        prefill_tok_s: rate(prompt_tokens, &pp),
        decode_tok_s: rate(gen_tokens, &tg),
    })
}

/// What the prefix cache saves per request.
#[derive(Debug, Clone, Copy)]
pub struct PrefixSaving {
    /// Tokens in the shared prefix.
    pub prefix_tokens: usize,
    /// Tokens in each request's own part.
    pub request_tokens: usize,
    /// Mean time to first token without the cache.
    pub cold: Duration,
    /// Mean time to first token with the prefix cached.
    pub warm: Duration,
}

/// Times first-token latency of requests sharing a few-shot prefix of about `prefix_tokens`,
/// with and without the prefix cache.
pub fn prefix(
    lm: &LanguageModel,
    prefix_tokens: usize,
    requests: usize,
) -> Result<PrefixSaving, GenerateError> {
    let example = "Text: The Eiffel Tower is in Paris and was completed in 1889.\nTriples: [\"Eiffel Tower\", \"location\", \"Paris\"], [\"Eiffel Tower\", \"completion date\", \"1889\"]\n";
    let mut prefix = String::from("Extract the facts of the text as triples.\n");
    while lm.tokenizer().encode(&prefix, true, true)?.len() < prefix_tokens {
        prefix.push_str(example);
    }
    let n_prefix = lm.tokenizer().encode(&prefix, true, true)?.len();
    let opts = GenerateOptions {
        max_tokens: 1,
        ..Default::default()
    };
    let mut cold = Duration::ZERO;
    let mut warm = Duration::ZERO;
    let mut request_tokens = 0;
    lm.cache_prefix(&prefix)?;
    for i in 0..requests {
        let text = format!(
            "Text: Item {i} was built in {} by company {}.\nTriples:",
            1900 + i,
            i * 3
        );
        request_tokens = lm.tokenizer().encode(&text, false, true)?.len();
        let t = Instant::now();
        lm.generate(&Prompt::text(format!("{prefix}{text}")), &opts, |_| {})?;
        cold += t.elapsed();
        let t = Instant::now();
        let g = lm.generate(
            &Prompt {
                prefix: prefix.clone(),
                text,
            },
            &opts,
            |_| {},
        )?;
        warm += t.elapsed();
        debug_assert_eq!(g.cached_tokens, n_prefix);
    }
    Ok(PrefixSaving {
        prefix_tokens: n_prefix,
        request_tokens,
        cold: cold / requests as u32,
        warm: warm / requests as u32,
    })
}
