//! `tessera bench ingest`: reading speed on a file of texts, end to end (the pipeline, linking
//! and the commit into an in-memory store), with the model tokens it took per text and the
//! floor those tokens imply on this machine: two int8 operations per matrix weight per token
//! (uncached prompt and generated alike), divided by the measured int8 peak of the threads
//! used. Attention and everything outside the matrix products are left out of the floor, so
//! it is a bound no implementation of the same token budget can beat.

use super::ingest::{AlignArg, ModelArgs};
use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use oxigraph::model::{GraphName, NamedNode};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;
use tessera::{Align, Database, TextOptions};

/// `tessera bench ingest`.
#[derive(Debug, Args)]
pub struct BenchIngestArgs {
    /// Texts, one per non-empty line.
    pub file: PathBuf,
    /// The schema to read against: EDC's `relation,definition` CSV (`.csv`) or RDF (by
    /// extension). Without it the store starts empty (use `--align self`).
    #[arg(long)]
    pub schema: Option<PathBuf>,
    /// Read at most this many texts.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Texts decoded together.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Alignment mode.
    #[arg(long, value_enum, default_value = "target")]
    pub align: AlignArg,
    /// EDC+R refinement rounds.
    #[arg(long, default_value_t = 0)]
    pub refine: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Model options.
    #[command(flatten)]
    pub models: ModelArgs,
}

/// Runs `tessera bench ingest`.
pub fn run(args: BenchIngestArgs) -> anyhow::Result<()> {
    if !args.models.remote.is_empty() {
        bail!("bench ingest measures the in-engine model against its FLOP floor; measure remote servers with `tessera eval` or `tessera ingest --remote`");
    }
    let body = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let mut texts: Vec<&str> = body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    texts.truncate(args.limit.unwrap_or(usize::MAX));
    if texts.is_empty() {
        bail!("no text in {}", args.file.display());
    }
    let config = args.models.config();
    let threads = config.threads;
    let db = Database::in_memory()?.with_text_config(config);
    let schema_graph = NamedNode::new("urn:tessera:bench:schema")?;
    if let Some(path) = &args.schema {
        let g = GraphName::NamedNode(schema_graph.clone());
        if path.extension().is_some_and(|e| e == "csv") {
            let quads = super::ingest::schema_quads(path, &g, "http://tessera.local/relation/")?;
            super::ingest::write_quads(&db, &quads)?;
        } else {
            let format = super::data::format_of_path(path)
                .with_context(|| format!("{}: unknown RDF format", path.display()))?;
            let file =
                std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
            db.load(
                std::io::BufReader::new(file),
                format,
                Some(schema_graph.as_ref().into()),
            )?;
        }
    }
    let models = db.load_text_models(&mut |_| {})?;
    let opts = TextOptions {
        schema: args.schema.as_ref().map(|_| schema_graph.clone()),
        align: match args.align {
            AlignArg::Target => Align::Target,
            AlignArg::SelfCanonical => Align::SelfCanonical,
        },
        refine: args.refine,
        ..TextOptions::default()
    };
    let bar = ProgressBar::new(texts.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("reading [{bar:30}] {pos}/{len} texts {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let t0 = Instant::now();
    let mut failed = 0usize;
    db.insert_texts_each(&texts, &opts, args.batch, &mut |_, r| {
        if let Err(e) = r {
            failed += 1;
            tracing::warn!(error = %e, "text not read");
        }
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    let m = db.text_metrics();
    let n = texts.len() as f64;
    let per_text = |x: u64| x as f64 / n;
    let uncached = m.prompt_tokens.saturating_sub(m.cached_tokens);
    let tokens_per_text = per_text(uncached + m.generated_tokens);
    let params = tessera::llm::bench::matmul_params(std::path::Path::new(&models.llm_path))?;
    let peak = tessera::llm::bench::int8_peak(threads, 0.5);
    let flops_per_text = 2.0 * params as f64 * tokens_per_text;
    let floor = peak.map(|p| p / flops_per_text.max(1.0));
    let texts_per_s = n / secs.max(1e-9);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default();
    let stage_s: serde_json::Map<String, serde_json::Value> = tessera::text::STAGES
        .iter()
        .zip(m.stage_ms)
        .map(|(s, ms)| ((*s).to_owned(), serde_json::json!(ms as f64 / 1000.0 / n)))
        .collect();
    let stage_tokens: serde_json::Map<String, serde_json::Value> = tessera::text::TOKEN_STAGES
        .iter()
        .zip(&m.stage_tokens)
        .map(|(s, t)| {
            (
                (*s).to_owned(),
                serde_json::json!({
                    "uncached_prompt": per_text((t.prompt - t.cached) as u64),
                    "cached_prompt": per_text(t.cached as u64),
                    "generated": per_text(t.generated as u64),
                }),
            )
        })
        .collect();
    let report = serde_json::json!({
        "model": models.llm,
        "device": models.device,
        "threads": threads,
        "cpu": cpu,
        "texts": texts.len(),
        "failed": failed,
        "seconds": secs,
        "texts_per_s": texts_per_s,
        "triples_per_text": per_text(m.triples_written),
        "model_calls_per_text": per_text(m.model_calls),
        "prompt_tokens_per_text": per_text(m.prompt_tokens),
        "cached_tokens_per_text": per_text(m.cached_tokens),
        "uncached_prompt_tokens_per_text": per_text(uncached),
        "generated_tokens_per_text": per_text(m.generated_tokens),
        "model_tokens_per_s": (uncached + m.generated_tokens) as f64 / secs.max(1e-9),
        "stage_seconds_per_text": stage_s,
        "stage_tokens_per_text": stage_tokens,
        "matmul_params": params,
        "gflop_per_text": flops_per_text / 1e9,
        "int8_peak_gops": peak.map(|p| p / 1e9),
        "floor_texts_per_s": floor,
        "share_of_floor": floor.map(|f| texts_per_s / f),
    });
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{report}")?;
    } else {
        writeln!(
            out,
            "{} on {} ({} threads, {cpu}): {} texts in {secs:.1} s = {texts_per_s:.3} texts/s",
            models.llm,
            models.device,
            threads,
            texts.len()
        )?;
        writeln!(
            out,
            "per text: {:.2} model calls, {:.0} prompt tokens ({:.0} cached, {:.0} not), {:.0} generated; {:.2} triples",
            per_text(m.model_calls),
            per_text(m.prompt_tokens),
            per_text(m.cached_tokens),
            per_text(uncached),
            per_text(m.generated_tokens),
            per_text(m.triples_written)
        )?;
        let stages: Vec<String> = tessera::text::STAGES
            .iter()
            .zip(m.stage_ms)
            .map(|(s, ms)| format!("{s} {:.2} s", ms as f64 / 1000.0 / n))
            .collect();
        writeln!(out, "time per text: {}", stages.join(", "))?;
        writeln!(
            out,
            "tokens per text by stage (prompt not cached + cached, generated): {}",
            tessera::text::budget_per_text(&m.stage_tokens, n)
        )?;
        match (peak, floor) {
            (Some(p), Some(f)) => writeln!(
                out,
                "floor: {:.2} GFLOP per text ({} matrix weights x 2 x {tokens_per_text:.0} tokens) at the {:.0} GOPS int8 peak of {threads} threads = {f:.2} texts/s; measured is {:.1}% of it",
                flops_per_text / 1e9,
                params,
                p / 1e9,
                100.0 * texts_per_s / f
            )?,
            _ => writeln!(out, "floor: no int8 peak loop for this CPU")?,
        }
    }
    if failed > 0 {
        bail!("{failed} of {} texts failed", texts.len());
    }
    Ok(())
}
