//! Speed measurements behind `tessera bench`: [`llm`] (llama-bench's pp/tg tests, at any
//! batch width), [`prefix`] (what the prefix cache saves), [`read`] (the model work of reading
//! texts, stage by stage, at a batch width) and [`weight_bytes`] (what a decode step reads).

use crate::generate::{GenerateError, GenerateOptions, LanguageModel, Prompt};
use crate::gguf::GgufFile;
use crate::model::{KvCache, ModelError, Segment};
use candle_core::Tensor;
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
/// warm-up. [`llm_batched`] also decodes at a depth (after a context, as generation after a
/// long prompt does).
pub fn llm(
    lm: &LanguageModel,
    prompt_tokens: usize,
    gen_tokens: usize,
    reps: usize,
) -> Result<LlmSpeed, GenerateError> {
    llm_batched(lm, prompt_tokens, gen_tokens, reps, 1, 0)
}

/// [`llm`] with `batch` sequences at once: `batch` prompts prefilled in one forward pass, and
/// `batch` sequences decoding together (each step one token for each), each after `depth`
/// tokens of context already in its cache (llama-bench's `-d`; the context is computed
/// before the clock starts). Rates count the tokens of every sequence.
pub fn llm_batched(
    lm: &LanguageModel,
    prompt_tokens: usize,
    gen_tokens: usize,
    reps: usize,
    batch: usize,
    depth: usize,
) -> Result<LlmSpeed, GenerateError> {
    let model = lm.model();
    let batch = batch.max(1);
    let mut token = random_tokens(lm, 42);
    let mut pp = Vec::new();
    let mut tg = Vec::new();
    lm.install(|| -> Result<(), GenerateError> {
        for rep in 0..=reps {
            if prompt_tokens > 0 {
                let prompts: Vec<Vec<u32>> = (0..batch)
                    .map(|_| (0..prompt_tokens).map(|_| token()).collect())
                    .collect();
                let mut caches = (0..batch)
                    .map(|_| model.new_cache(prompt_tokens))
                    .collect::<Result<Vec<_>, _>>()?;
                let t = Instant::now();
                let mut segs = segments(&mut caches, &prompts);
                model.forward(&mut segs)?;
                // GPU work is queued: the time counts only once it is done.
                model.device().synchronize().map_err(ModelError::from)?;
                if rep > 0 {
                    pp.push(t.elapsed());
                }
            }
            if gen_tokens > 0 {
                let mut caches = (0..batch)
                    .map(|_| model.new_cache(depth + gen_tokens))
                    .collect::<Result<Vec<_>, _>>()?;
                if depth > 0 {
                    let context: Vec<Vec<u32>> = (0..batch)
                        .map(|_| (0..depth).map(|_| token()).collect())
                        .collect();
                    model.forward(&mut segments(&mut caches, &context))?;
                    model.device().synchronize().map_err(ModelError::from)?;
                }
                let t = Instant::now();
                for _ in 0..gen_tokens {
                    let toks: Vec<Vec<u32>> = (0..batch).map(|_| vec![token()]).collect();
                    let mut segs = segments(&mut caches, &toks);
                    model.forward(&mut segs)?;
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
        prefill_tok_s: rate(prompt_tokens * batch, &pp),
        decode_tok_s: rate(gen_tokens * batch, &tg),
    })
}

/// Random tokens of the model's vocabulary (no control tokens), from a fixed seed.
fn random_tokens(lm: &LanguageModel, seed: u64) -> impl FnMut() -> u32 + '_ {
    let vocab = lm.tokenizer().vocab_size() as u32;
    let mut rng = StdRng::seed_from_u64(seed);
    move || loop {
        let t = rng.random_range(0..vocab);
        if !lm.tokenizer().is_control(t) {
            return t;
        }
    }
}

fn segments<'a>(caches: &'a mut [KvCache], tokens: &'a [Vec<u32>]) -> Vec<Segment<'a>> {
    caches
        .iter_mut()
        .zip(tokens)
        .map(|(cache, tokens)| Segment {
            cache,
            tokens,
            all_logits: false,
        })
        .collect()
}

/// Bytes of weights one decode step reads: every tensor of the file but the token embedding
/// table when the model has a separate output matrix (a step looks up only a few of its rows).
pub fn weight_bytes(file: &GgufFile) -> u64 {
    let infos = &file.content().tensor_infos;
    let tied = !infos.contains_key("output.weight");
    infos
        .iter()
        .filter(|(name, _)| tied || name.as_str() != "token_embd.weight")
        .map(|(_, t)| {
            let d = t.ggml_dtype;
            (t.shape.elem_count() / d.block_size() * d.type_size()) as u64
        })
        .sum()
}

/// One stage of reading as the model sees it: per text, how many calls, and per call the
/// prompt tokens served from the prefix cache, the prompt tokens of its own and the tokens
/// generated.
#[derive(Debug, Clone, Copy)]
pub struct ReadStage {
    /// The stage's name.
    pub name: &'static str,
    /// Model calls per text (a fraction: not every text needs every stage).
    pub calls_per_text: f64,
    /// Prompt tokens shared by every call of the stage (instructions, examples): computed
    /// once and restored from the prefix cache.
    pub prefix_tokens: usize,
    /// Prompt tokens of the call's own (the text, its entities or relations).
    pub prompt_tokens: usize,
    /// Tokens generated per call.
    pub gen_tokens: usize,
}

/// The EDC stages with the default model, per text: 2.35 calls, 960 prompt tokens of which
/// 842 from the prefix cache, 67 generated (measured on the seeded WebNLG sample, see
/// BENCHMARKS.md); the split of those totals between the stages is this bench's assumption.
pub const EDC_STAGES: [ReadStage; 3] = [
    ReadStage {
        name: "extract",
        calls_per_text: 1.0,
        prefix_tokens: 520,
        prompt_tokens: 64,
        gen_tokens: 45,
    },
    ReadStage {
        name: "define",
        calls_per_text: 1.0,
        prefix_tokens: 280,
        prompt_tokens: 36,
        gen_tokens: 16,
    },
    ReadStage {
        name: "canonicalize",
        calls_per_text: 0.35,
        prefix_tokens: 120,
        prompt_tokens: 50,
        gen_tokens: 17,
    },
];

/// What [`read`] measured.
#[derive(Debug, Clone)]
pub struct ReadSpeed {
    /// Texts read.
    pub texts: usize,
    /// Sequences decoded together.
    pub width: usize,
    /// Texts per second over every stage.
    pub texts_per_s: f64,
    /// Seconds per stage, in [`EDC_STAGES`] order.
    pub stage_s: Vec<(&'static str, f64)>,
    /// Model tokens (uncached prompt + generated) per second.
    pub tokens_per_s: f64,
    /// Seconds by kind of work over every stage: `caches` (fresh caches, prefix restored),
    /// `prefill` (the calls' own prompts), `decode` (generation steps), `logits` (copied to
    /// the host). The device is synchronized at each boundary, so the kinds add up.
    pub split_s: Vec<(&'static str, f64)>,
}

/// The model work of reading `texts` texts, stage after stage as the pipeline runs them:
/// each stage's calls in groups of `width`, each group restoring the stage's cached prefix
/// into every sequence, prefilling their own prompts in one forward pass, then decoding
/// `gen_tokens` steps together; after each step the logits come back to the host, as
/// sampling needs them. Tokens are random (speed does not depend on them); the first group
/// of the first stage is a warm-up and is timed too, so small runs understate a little.
pub fn read(
    lm: &LanguageModel,
    stages: &[ReadStage],
    texts: usize,
    width: usize,
) -> Result<ReadSpeed, GenerateError> {
    let model = lm.model();
    let width = width.max(1);
    let mut token = random_tokens(lm, 7);
    let mut stage_s = Vec::new();
    let mut split = [0f64; 4];
    let mut tokens = 0usize;
    let start = Instant::now();
    lm.install(|| -> Result<(), GenerateError> {
        for st in stages {
            let t = Instant::now();
            let calls = (texts as f64 * st.calls_per_text).round() as usize;
            let prefix: Vec<u32> = (0..st.prefix_tokens).map(|_| token()).collect();
            let mut pc = model.new_cache(st.prefix_tokens.max(1))?;
            if !prefix.is_empty() {
                model.forward(&mut [Segment {
                    cache: &mut pc,
                    tokens: &prefix,
                    all_logits: false,
                }])?;
            }
            let snap = pc.snapshot()?;
            let mut done = 0;
            while done < calls {
                let n = width.min(calls - done);
                let need = st.prefix_tokens + st.prompt_tokens + st.gen_tokens;
                let sync = || model.device().synchronize().map_err(ModelError::from);
                let t = Instant::now();
                let mut caches = (0..n)
                    .map(|_| -> Result<KvCache, ModelError> {
                        let mut c = model.new_cache(need)?;
                        c.restore(&snap)?;
                        Ok(c)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                sync()?;
                split[0] += t.elapsed().as_secs_f64();
                let prompts: Vec<Vec<u32>> = (0..n)
                    .map(|_| (0..st.prompt_tokens).map(|_| token()).collect())
                    .collect();
                let t = Instant::now();
                let logits = model.forward(&mut segments(&mut caches, &prompts))?;
                sync()?;
                split[1] += t.elapsed().as_secs_f64();
                let t = Instant::now();
                to_host(&logits)?;
                split[3] += t.elapsed().as_secs_f64();
                for _ in 0..st.gen_tokens {
                    let toks: Vec<Vec<u32>> = (0..n).map(|_| vec![token()]).collect();
                    let t = Instant::now();
                    let logits = model.forward(&mut segments(&mut caches, &toks))?;
                    sync()?;
                    split[2] += t.elapsed().as_secs_f64();
                    let t = Instant::now();
                    to_host(&logits)?;
                    split[3] += t.elapsed().as_secs_f64();
                }
                tokens += n * (st.prompt_tokens + st.gen_tokens);
                done += n;
            }
            stage_s.push((st.name, t.elapsed().as_secs_f64()));
        }
        Ok(())
    })?;
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    Ok(ReadSpeed {
        texts,
        width,
        texts_per_s: texts as f64 / secs,
        stage_s,
        tokens_per_s: tokens as f64 / secs,
        split_s: ["caches", "prefill", "decode", "logits"]
            .into_iter()
            .zip(split)
            .collect(),
    })
}

/// The step's logits on the host, one transfer for the whole batch (as generation does).
fn to_host(logits: &[Tensor]) -> Result<Vec<Vec<f32>>, ModelError> {
    Ok(crate::generate::rows_to_host(logits)?)
}

/// A greedy continuation of `prompt`, one token per forward pass: per step the chosen token
/// and the gap between the two highest logits (where the gap is tiny, two devices may
/// rightly choose differently).
pub fn greedy(
    lm: &LanguageModel,
    prompt: &str,
    tokens: usize,
) -> Result<Vec<(u32, f32)>, GenerateError> {
    let model = lm.model();
    let ids = lm.tokenizer().encode(prompt, true, false)?;
    lm.install(|| -> Result<Vec<(u32, f32)>, GenerateError> {
        let mut cache = model.new_cache(ids.len() + tokens)?;
        let mut next = ids;
        let mut out = Vec::with_capacity(tokens);
        for _ in 0..tokens {
            let logits = model.forward(&mut [Segment {
                cache: &mut cache,
                tokens: &next,
                all_logits: false,
            }])?;
            let row = to_host(&logits)?.pop().unwrap_or_default();
            let (mut best, mut first, mut second) = (0u32, f32::NEG_INFINITY, f32::NEG_INFINITY);
            for (i, &v) in row.iter().enumerate() {
                if v > first {
                    (best, second, first) = (i as u32, first, v);
                } else if v > second {
                    second = v;
                }
            }
            out.push((best, first - second));
            next = vec![best];
        }
        Ok(out)
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
                data: Vec::new(),
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

/// Weights a token passes through in matrix products: every two-dimensional tensor but the
/// token embedding (a row lookup), which counts once when it doubles as the output matrix.
/// A token costs about two operations (a multiply and an add) per such weight.
pub fn matmul_params(path: &std::path::Path) -> Result<u64, crate::gguf::GgufError> {
    let file = GgufFile::open_layout(path)?;
    let infos = &file.content().tensor_infos;
    let mut params: u64 = 0;
    for (name, info) in infos {
        let dims = info.shape.dims();
        if dims.len() != 2 || name == "token_embd.weight" {
            continue;
        }
        params += dims.iter().map(|&d| d as u64).product::<u64>();
    }
    if !infos.contains_key("output.weight") {
        if let Some(e) = infos.get("token_embd.weight") {
            params += e.shape.dims().iter().map(|&d| d as u64).product::<u64>();
        }
    }
    Ok(params)
}

/// The matrix kernels this CPU runs (`tessera_kernels::matmul::Isa::detect`).
pub fn cpu_kernels() -> String {
    format!("{:?}", tessera_kernels::matmul::Isa::detect())
}

/// The kernels that `TESSERA_KERNELS` asks for, when it is set: `Ok(name)` when they run,
/// `Err(message)` when the name is unknown or this CPU lacks them (the widest then runs).
pub fn requested_kernels() -> Option<Result<String, String>> {
    use tessera_kernels::matmul::{Isa, KERNELS_ENV};
    let name = std::env::var(KERNELS_ENV).ok()?;
    let used = Isa::detect();
    Some(match Isa::from_name(&name) {
        Some(isa) if isa == used => Ok(format!("{used:?}")),
        Some(_) => Err(format!(
            "{KERNELS_ENV}={name}: this CPU does not run those kernels; running {used:?}"
        )),
        None => Err(format!(
            "{KERNELS_ENV}={name}: not scalar, avx2, avx512vnni or neon; running {used:?}"
        )),
    })
}

/// The machine's int8 dot-product peak on `threads` threads at once, in operations per
/// second (`tessera_kernels::peak`, the instruction the matrix kernels are built on), measured
/// for about `seconds`; `None` where this CPU has no such loop.
pub fn int8_peak(threads: usize, seconds: f64) -> Option<f64> {
    use tessera_kernels::matmul::Isa;
    use tessera_kernels::peak::spin;
    let isa = Isa::detect();
    // Calibrate one thread, then run every thread for about `seconds`.
    let t0 = Instant::now();
    spin(isa, 100_000)?;
    let per_iter = t0.elapsed().as_secs_f64() / 100_000.0;
    let iters = ((seconds / per_iter.max(1e-12)) as u64).max(1_000);
    let t0 = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| s.spawn(move || spin(isa, iters).unwrap_or(0)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    Some(total as f64 / t0.elapsed().as_secs_f64())
}
