//! The model commands of the `tessera` binary: `models`, `generate` and `bench`.

use anyhow::{bail, Context as _};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tessera::llm::gguf::GgufFile;
use tessera::llm::registry::{self, PullProgress, Role, CATALOG};
use tessera::llm::{quantize, synth};
use tessera::llm::{
    Backend, ChatMessage, Constraint, Embedder, GenerateOptions, LanguageModel, ModelCache,
    ModelOptions, Prompt,
};

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// List the models Tessera knows by name, and which are in the cache.
    List,
    /// Download, verify and cache a model.
    Pull {
        /// Model name (see `tessera models list`).
        name: String,
    },
    /// Print the cached path of a model.
    Path {
        /// Model name.
        name: String,
    },
    /// Describe a GGUF file (or a cached model).
    Info {
        /// Path to a GGUF file, or a model name.
        model: String,
    },
    /// Re-quantize a GGUF model to another block type, group-wise, and report its perplexity
    /// and top-1 agreement with the source on a fixed text.
    Quantize {
        /// Source GGUF file, or a model name.
        input: String,
        /// Output GGUF file.
        output: PathBuf,
        /// Target type: q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k.
        #[arg(long = "type")]
        to: String,
        /// Skip the comparison with the source model.
        #[arg(long)]
        no_check: bool,
        /// Threads for the comparison.
        #[arg(short, long, default_value_t = 2)]
        threads: usize,
    },
    /// Write a model's header alone (metadata, tokenizer, tensor table; no weights): a few
    /// MiB from which `models synth` rebuilds a model of the same shape.
    Skeleton {
        /// Source GGUF file, or a model name.
        input: String,
        /// Output file.
        output: PathBuf,
    },
    /// Write a model with the layout of a model or skeleton and seeded random weights (for
    /// speed tests where the real weights cannot go, e.g. a GPU machine).
    Synth {
        /// Source GGUF file, skeleton, or a model name.
        input: String,
        /// Output GGUF file.
        output: PathBuf,
        /// Random seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

/// The model a bench runs, and where.
#[derive(clap::Args)]
pub struct ModelArgs {
    /// Model name or GGUF path.
    #[arg(short, long, default_value = "smollm2")]
    model: String,
    /// Inference threads.
    #[arg(short, long, default_value_t = 1)]
    threads: usize,
    /// Device: cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Prefill and decode speed of a language model, llama-bench style.
    Llm {
        #[command(flatten)]
        run: ModelArgs,
        /// Prompt length for the prefill test.
        #[arg(long, default_value_t = 512)]
        prompt_tokens: usize,
        /// Tokens for the decode test.
        #[arg(long, default_value_t = 128)]
        gen_tokens: usize,
        /// Context already in each sequence's cache when the decode test starts (llama-bench's
        /// `-d`): generation after a prompt attends to all of it.
        #[arg(long, default_value_t = 0)]
        depth: usize,
        /// Repetitions (the mean is reported).
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// Matrices on candle's kernels instead of Tessera's (for comparison; Q4_1 and Q5_0
        /// then re-quantized to Q8_0).
        #[arg(long)]
        candle_kernels: bool,
        /// Sequences at once, one measurement each (e.g. `1,8,64,256`): prefill runs that
        /// many prompts in one pass, decode that many sequences together.
        #[arg(long, value_delimiter = ',', default_value = "1")]
        batch: Vec<usize>,
        /// The device's memory bandwidth in GB/s: decode is then also reported as a share of
        /// the limit it sets (weight bytes per step / bandwidth).
        #[arg(long)]
        bandwidth_gbs: Option<f64>,
        /// Print one JSON line per batch width.
        #[arg(long)]
        json: bool,
    },
    /// The model work of reading texts (the EDC stages' calls, prompt and output lengths per
    /// text, with random tokens), at a batch width: texts/s.
    Read {
        #[command(flatten)]
        run: ModelArgs,
        /// Texts to read.
        #[arg(long, default_value_t = 64)]
        texts: usize,
        /// Sequences decoded together (comma-separated for several runs).
        #[arg(long, value_delimiter = ',', default_value = "8")]
        width: Vec<usize>,
        /// Print one JSON line per width.
        #[arg(long)]
        json: bool,
    },
    /// Reading speed end to end on a file of texts (one per line): texts/s, model tokens per
    /// text, time per stage, and the floor those tokens imply at this machine's int8 peak.
    Ingest(super::bench_ingest::BenchIngestArgs),
    /// A greedy continuation, token by token with the gap between the two best logits, as
    /// one JSON line: for comparing devices on the same weights.
    Greedy {
        #[command(flatten)]
        run: ModelArgs,
        /// Tokens to generate.
        #[arg(long, default_value_t = 64)]
        tokens: usize,
        /// The prompt (plain text, no chat template).
        prompt: String,
    },
    /// Prefill saved by the prefix cache for a fixed few-shot prefix.
    Prefix {
        #[command(flatten)]
        run: ModelArgs,
        /// Length of the shared prefix, in tokens (about).
        #[arg(long, default_value_t = 1000)]
        prefix_tokens: usize,
        /// Requests to time.
        #[arg(long, default_value_t = 5)]
        requests: usize,
        /// Print one JSON line.
        #[arg(long)]
        json: bool,
    },
    /// Sentence embedding throughput.
    Embed {
        /// Embedder name or directory.
        #[arg(short, long, default_value = "minilm")]
        model: String,
        /// Sentences to embed.
        #[arg(long, default_value_t = 512)]
        sentences: usize,
        /// Print one JSON line.
        #[arg(long)]
        json: bool,
    },
}

/// Resolves a model name or path, pulling known models that are missing (with progress).
pub fn model_path(name_or_path: &str) -> anyhow::Result<PathBuf> {
    let cache = ModelCache::default();
    let mut bar: Option<ProgressBar> = None;
    let path = cache.resolve_or_pull(name_or_path, &mut |p| {
        show_progress(&mut bar, name_or_path, p)
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(path)
}

/// A model download as a byte bar (a total of 0, not known, follows the bytes).
pub(crate) fn show_progress(bar: &mut Option<ProgressBar>, name: &str, p: PullProgress) {
    let b = bar.get_or_insert_with(|| {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b.set_message(format!("pulling {name}"));
        b
    });
    match p {
        PullProgress::Download { done, total } => {
            b.set_length(total.max(done));
            b.set_position(done);
        }
        PullProgress::Verify => b.set_message(format!("verifying {name}")),
    }
}

pub fn models(cmd: ModelsCommand) -> anyhow::Result<()> {
    let cache = ModelCache::default();
    let mut out = std::io::stdout().lock();
    match cmd {
        ModelsCommand::List => {
            writeln!(
                out,
                "{:<14} {:<9} {:>9}  {:<7} description",
                "name", "role", "size", "cached"
            )?;
            for m in CATALOG {
                let role = match m.role {
                    Role::Llm => "llm",
                    Role::Embedder => "embedder",
                };
                let cached = if cache.is_pulled(m) { "yes" } else { "no" };
                writeln!(
                    out,
                    "{:<14} {:<9} {:>7}MB  {:<7} {}",
                    m.name,
                    role,
                    m.size / 1_000_000,
                    cached,
                    m.description
                )?;
            }
            writeln!(out, "cache: {}", cache.root().display())?;
        }
        ModelsCommand::Pull { name } => {
            let path = model_path_strict(&cache, &name)?;
            writeln!(out, "{}", path.display())?;
        }
        ModelsCommand::Path { name } => {
            writeln!(out, "{}", cache.resolve(&name)?.display())?;
        }
        ModelsCommand::Info { model } => {
            let path = cache.resolve(&model)?;
            info(&path, &mut out)?;
        }
        ModelsCommand::Quantize {
            input,
            output,
            to,
            no_check,
            threads,
        } => {
            let target = quantize::parse_type(&to)?;
            let input = cache.resolve(&input)?;
            let bar = tensor_bar("quantizing");
            let report = quantize::quantize_file(&input, &output, target, &mut |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })?;
            bar.finish_and_clear();
            writeln!(
                out,
                "{}: {} tensors re-quantized, {:.1} MB -> {:.1} MB; types {:?}",
                output.display(),
                report.converted,
                report.bytes_in as f64 / 1e6,
                report.bytes_out as f64 / 1e6,
                report.types
            )?;
            if !no_check {
                let c = quantize::compare(&input, &output, threads)?;
                writeln!(
                    out,
                    "on the reference text ({} tokens): perplexity {:.3} (source {:.3}), top-1 agreement with the source {:.1}%",
                    c.tokens,
                    c.perplexity,
                    c.perplexity_reference,
                    100.0 * c.top1_agreement
                )?;
            }
        }
        ModelsCommand::Skeleton { input, output } => {
            let input = cache.resolve(&input)?;
            let n = synth::write_skeleton(&input, &output)?;
            writeln!(out, "{}: header of {} bytes", output.display(), n)?;
        }
        ModelsCommand::Synth {
            input,
            output,
            seed,
        } => {
            let input = cache.resolve(&input)?;
            let bar = tensor_bar("synthesizing");
            synth::synthesize(&input, &output, seed, &mut |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })?;
            bar.finish_and_clear();
            let len = std::fs::metadata(&output)?.len();
            writeln!(
                out,
                "{}: {:.1} MB, seed {seed}",
                output.display(),
                len as f64 / 1e6
            )?;
        }
    }
    Ok(())
}

/// A progress bar over a model's tensors, `what` naming the work.
fn tensor_bar(what: &str) -> ProgressBar {
    ProgressBar::new(0).with_style(
        ProgressStyle::with_template(&format!(
            "{what} {{bar:30}} {{pos}}/{{len}} tensors {{elapsed}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    )
}

fn model_path_strict(cache: &ModelCache, name: &str) -> anyhow::Result<PathBuf> {
    if registry::spec(name).is_none() {
        bail!("unknown model {name:?}: `tessera models list` shows the names");
    }
    let mut bar: Option<ProgressBar> = None;
    let path = cache.pull(name, &mut |p| show_progress(&mut bar, name, p))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(path)
}

fn info(path: &Path, out: &mut impl Write) -> anyhow::Result<()> {
    if path.is_dir() {
        let cfg = std::fs::read_to_string(path.join("config.json")).with_context(|| {
            format!(
                "{}: not a GGUF file or an embedder directory",
                path.display()
            )
        })?;
        writeln!(out, "embedder directory {}", path.display())?;
        writeln!(
            out,
            "config.json: {}",
            cfg.split_whitespace().collect::<Vec<_>>().join(" ")
        )?;
        return Ok(());
    }
    let f = GgufFile::open(path)?;
    let s = |k: &str| f.meta_str(k).unwrap_or("-").to_owned();
    let arch = s("general.architecture");
    let n = |k: &str| {
        f.meta_u64(&format!("{arch}.{k}"))
            .map(|v| v.to_string())
            .unwrap_or_else(|| "-".into())
    };
    let mut types: std::collections::BTreeMap<String, (usize, u64)> = Default::default();
    let mut params: u64 = 0;
    for t in f.content().tensor_infos.values() {
        let e = t.shape.elem_count() as u64;
        params += e;
        let entry = types.entry(format!("{:?}", t.ggml_dtype)).or_default();
        entry.0 += 1;
        entry.1 += e;
    }
    writeln!(out, "file          {} ({} bytes)", path.display(), f.len())?;
    writeln!(out, "name          {}", s("general.name"))?;
    writeln!(out, "architecture  {arch}")?;
    writeln!(out, "parameters    {:.1}M", params as f64 / 1e6)?;
    writeln!(out, "layers        {}", n("block_count"))?;
    writeln!(out, "hidden        {}", n("embedding_length"))?;
    writeln!(
        out,
        "heads         {} (kv {})",
        n("attention.head_count"),
        n("attention.head_count_kv")
    )?;
    writeln!(out, "context       {}", n("context_length"))?;
    writeln!(
        out,
        "tokenizer     {} / pre {}",
        s("tokenizer.ggml.model"),
        s("tokenizer.ggml.pre")
    )?;
    writeln!(
        out,
        "chat template {}",
        if f.meta_str("tokenizer.chat_template").is_some() {
            "yes"
        } else {
            "no"
        }
    )?;
    writeln!(out, "tensors       {}", f.content().tensor_infos.len())?;
    for (t, (count, elems)) in types {
        writeln!(
            out,
            "  {t:<6} {count:>4} tensors, {:.1}M weights",
            elems as f64 / 1e6
        )?;
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// Model name (see `tessera models list`) or GGUF path.
    #[arg(short, long, default_value = "smollm2")]
    pub model: String,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// Sampling temperature (0: greedy).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Nucleus sampling mass.
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Inference threads (default: all cores).
    #[arg(short, long)]
    pub threads: Option<usize>,
    /// Constrain the output to JSON valid against this JSON Schema file.
    #[arg(long, conflicts_with = "grammar")]
    pub json_schema: Option<PathBuf>,
    /// Constrain the output to this Lark grammar file.
    #[arg(long)]
    pub grammar: Option<PathBuf>,
    /// The system message (empty: the model template's own default).
    #[arg(long, default_value = "You are a helpful assistant.")]
    pub system: String,
    /// Send the prompt as is, without the chat template.
    #[arg(long)]
    pub raw: bool,
    /// Device: cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// The prompt.
    pub prompt: String,
}

pub fn generate(a: GenerateArgs) -> anyhow::Result<()> {
    let mut opts = ModelOptions::default();
    if let Some(t) = a.threads {
        opts.threads = t;
    }
    let (_, lm) = load_model(&a.model, opts.threads, true, &a.device)?;
    let constraint = match (&a.json_schema, &a.grammar) {
        (Some(f), _) => {
            let text = std::fs::read_to_string(f).with_context(|| format!("{}", f.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{}: not JSON", f.display()))?;
            Some(Constraint::JsonSchema(v))
        }
        (None, Some(f)) => Some(Constraint::Lark(
            std::fs::read_to_string(f).with_context(|| format!("{}", f.display()))?,
        )),
        (None, None) => None,
    };
    let text = if a.raw {
        a.prompt
    } else {
        let mut msgs = Vec::new();
        if !a.system.is_empty() {
            msgs.push(ChatMessage::system(a.system));
        }
        msgs.push(ChatMessage::user(a.prompt));
        lm.chat(&msgs)?
    };
    let options = GenerateOptions {
        max_tokens: a.max_tokens,
        temperature: a.temperature,
        top_p: a.top_p,
        seed: a.seed,
        stop: Vec::new(),
        constraint,
        ..GenerateOptions::default()
    };
    let g = lm.generate(&Prompt::text(text), &options, |piece| {
        let mut stdout = std::io::stdout();
        let _ = stdout.write_all(piece.as_bytes());
        let _ = stdout.flush();
    })?;
    writeln!(std::io::stdout())?;
    tracing::debug!(
        prompt_tokens = g.prompt_tokens,
        tokens = g.generated_tokens,
        finish = ?g.finish,
        decode_tok_s = g.generated_tokens as f64 / g.decode.as_secs_f64().max(1e-9),
        "generated"
    );
    Ok(())
}

/// Resolves (pulling if needed) and loads a language model with `threads` inference threads.
fn load_model(
    model: &str,
    threads: usize,
    kernels: bool,
    device: &str,
) -> anyhow::Result<(PathBuf, LanguageModel)> {
    let (backend, ordinal) = Backend::parse(device).map_err(anyhow::Error::msg)?;
    let device = backend.device(ordinal).map_err(anyhow::Error::msg)?;
    let path = model_path(model)?;
    let mut opts = ModelOptions {
        threads,
        ..Default::default()
    };
    opts.load.kernels = kernels;
    opts.load.device = device;
    let lm = LanguageModel::load(&path, &opts)?;
    Ok((path, lm))
}

fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

pub fn bench(cmd: BenchCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        BenchCommand::Llm {
            run:
                ModelArgs {
                    model,
                    threads,
                    device,
                },
            prompt_tokens,
            gen_tokens,
            depth,
            reps,
            candle_kernels,
            batch,
            bandwidth_gbs,
            json,
        } => {
            let (path, lm) = load_model(&model, threads, !candle_kernels, &device)?;
            let weights =
                tessera::llm::bench::weight_bytes(&tessera::llm::gguf::GgufFile::open(&path)?);
            for b in batch {
                let r = tessera::llm::bench::llm_batched(
                    &lm,
                    prompt_tokens,
                    gen_tokens,
                    reps.max(1),
                    b,
                    depth,
                )?;
                // Each decode step reads every weight once, whatever the batch.
                let step_s = b.max(1) as f64 / r.decode_tok_s.max(1e-9);
                let weight_gbs = weights as f64 / step_s / 1e9;
                let share = bandwidth_gbs.map(|bw| weight_gbs / bw);
                let rss = peak_rss_bytes();
                if json {
                    writeln!(
                        out,
                        "{}",
                        serde_json::json!({
                            "model": lm.name(),
                            "threads": threads,
                            "kernels": if candle_kernels { "candle" } else { "tessera" },
                            "device": device,
                            "batch": b,
                            "prompt_tokens": prompt_tokens,
                            "gen_tokens": gen_tokens,
                            "depth": depth,
                            "prefill_tok_s": r.prefill_tok_s,
                            "decode_tok_s": r.decode_tok_s,
                            "weight_bytes": weights,
                            "decode_weight_gbs": weight_gbs,
                            "bandwidth_share": share,
                            "peak_rss_bytes": rss,
                        })
                    )?;
                } else {
                    writeln!(out, "model        {} ({})", lm.name(), path.display())?;
                    writeln!(out, "threads      {threads}")?;
                    writeln!(out, "device       {device}")?;
                    if device == "cpu" {
                        let isa = tessera_llm::bench::cpu_kernels();
                        writeln!(out, "kernels      {isa}")?;
                    }
                    writeln!(out, "batch        {b}")?;
                    writeln!(
                        out,
                        "prefill      {:.1} tok/s (pp{prompt_tokens})",
                        r.prefill_tok_s
                    )?;
                    writeln!(
                        out,
                        "decode       {:.1} tok/s (tg{gen_tokens}{})",
                        r.decode_tok_s,
                        if depth > 0 {
                            format!(" @ d{depth}")
                        } else {
                            String::new()
                        }
                    )?;
                    writeln!(
                        out,
                        "weights      {:.1} MB per step, read at {weight_gbs:.1} GB/s{}",
                        weights as f64 / 1e6,
                        share.map_or(String::new(), |s| format!(
                            " ({:.1}% of the bandwidth)",
                            100.0 * s
                        ))
                    )?;
                    writeln!(out, "peak RSS     {:.1} MiB", rss as f64 / (1 << 20) as f64)?;
                }
            }
        }
        BenchCommand::Greedy {
            run:
                ModelArgs {
                    model,
                    threads,
                    device,
                },
            tokens,
            prompt,
        } => {
            let (_, lm) = load_model(&model, threads, true, &device)?;
            let steps = tessera::llm::bench::greedy(&lm, &prompt, tokens)?;
            let (ids, gaps): (Vec<u32>, Vec<f32>) = steps.into_iter().unzip();
            writeln!(
                out,
                "{}",
                serde_json::json!({
                    "model": lm.name(),
                    "device": device,
                    "tokens": ids,
                    "gaps": gaps,
                    "text": lm.tokenizer().decode(&ids, false),
                })
            )?;
        }
        BenchCommand::Ingest(args) => super::bench_ingest::run(args)?,
        BenchCommand::Read {
            run:
                ModelArgs {
                    model,
                    threads,
                    device,
                },
            texts,
            width,
            json,
        } => {
            let (_, lm) = load_model(&model, threads, true, &device)?;
            let stages = tessera::llm::bench::EDC_STAGES;
            for w in width {
                let r = tessera::llm::bench::read(&lm, &stages, texts.max(1), w)?;
                if json {
                    let per_stage: serde_json::Map<String, serde_json::Value> = r
                        .stage_s
                        .iter()
                        .map(|(n, s)| ((*n).to_owned(), serde_json::json!(s)))
                        .collect();
                    writeln!(
                        out,
                        "{}",
                        serde_json::json!({
                            "model": lm.name(),
                            "device": device,
                            "threads": threads,
                            "texts": r.texts,
                            "width": r.width,
                            "texts_per_s": r.texts_per_s,
                            "tokens_per_s": r.tokens_per_s,
                            "stage_s": per_stage,
                            "split_s": r
                                .split_s
                                .iter()
                                .map(|(n, s)| ((*n).to_owned(), serde_json::json!(s)))
                                .collect::<serde_json::Map<String, serde_json::Value>>(),
                        })
                    )?;
                } else {
                    let stages: Vec<String> = r
                        .stage_s
                        .iter()
                        .map(|(n, s)| format!("{n} {s:.2} s"))
                        .collect();
                    writeln!(
                        out,
                        "{} on {device}, width {}: {:.2} texts/s ({:.0} model tokens/s; {})",
                        lm.name(),
                        r.width,
                        r.texts_per_s,
                        r.tokens_per_s,
                        stages.join(", ")
                    )?;
                }
            }
        }
        BenchCommand::Prefix {
            run:
                ModelArgs {
                    model,
                    threads,
                    device,
                },
            prefix_tokens,
            requests,
            json,
        } => {
            let (_, lm) = load_model(&model, threads, true, &device)?;
            let r = tessera::llm::bench::prefix(&lm, prefix_tokens, requests.max(1))?;
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({
                        "model": lm.name(),
                        "prefix_tokens": r.prefix_tokens,
                        "request_tokens": r.request_tokens,
                        "cold_s": r.cold.as_secs_f64(),
                        "warm_s": r.warm.as_secs_f64(),
                        "saved_tokens_per_request": r.prefix_tokens,
                        "saved_s_per_request": (r.cold.saturating_sub(r.warm)).as_secs_f64(),
                    })
                )?;
            } else {
                writeln!(
                    out,
                    "prefix       {} tokens, request {} tokens",
                    r.prefix_tokens, r.request_tokens
                )?;
                writeln!(
                    out,
                    "uncached     {:.3} s per request",
                    r.cold.as_secs_f64()
                )?;
                writeln!(
                    out,
                    "cached       {:.3} s per request",
                    r.warm.as_secs_f64()
                )?;
                writeln!(
                    out,
                    "saved        {} prefill tokens, {:.3} s per request",
                    r.prefix_tokens,
                    r.cold.saturating_sub(r.warm).as_secs_f64()
                )?;
            }
        }
        BenchCommand::Embed {
            model,
            sentences,
            json,
        } => {
            let path = model_path(&model)?;
            let e = Embedder::load(&path)?;
            let texts: Vec<String> = (0..sentences)
                .map(|i| {
                    format!(
                        "Sentence number {i} says that item {} is located in region {}.",
                        i * 7 % 101,
                        i % 13
                    )
                })
                .collect();
            e.embed(&texts[..texts.len().min(8)])?;
            let t = Instant::now();
            e.embed(&texts)?;
            let dt = t.elapsed().max(Duration::from_nanos(1));
            let rate = sentences as f64 / dt.as_secs_f64();
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"model": model, "sentences": sentences, "sentences_per_s": rate})
                )?;
            } else {
                writeln!(out, "embedder     {}", path.display())?;
                writeln!(
                    out,
                    "throughput   {rate:.1} sentences/s ({sentences} sentences)"
                )?;
            }
        }
    }
    Ok(())
}
