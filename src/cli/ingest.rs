//! `tessera ingest` (texts into the store through INSERT TEXT, in batches, with progress) and
//! `tessera schema import` (EDC's `relation,definition` CSV as RDF schema).

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use oxigraph::model::{GraphName, NamedNode, Quad};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tessera::text::TextConfig;
use tessera::{Align, Database, TextOptions};

/// Alignment on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AlignArg {
    /// Only relations of the schema.
    Target,
    /// New relations join the schema.
    #[value(name = "self")]
    SelfCanonical,
}

/// Options shared by the commands that read text (`serve`, `ingest`, `eval`).
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Language model: registry name, GGUF path, or URL with its checksum
    /// (`https://…/m.gguf#sha256=HEX`, `hf://owner/repo[@rev]/file.gguf#sha256=HEX`).
    #[arg(long, env = "TESSERA_MODEL", default_value = "qwen2.5-0.5b")]
    pub model: String,
    /// Embedder: registry name or directory.
    #[arg(long, env = "TESSERA_EMBEDDER", default_value = "minilm")]
    pub embedder: String,
    /// Inference threads (default: all cores).
    #[arg(long, env = "TESSERA_THREADS")]
    pub threads: Option<usize>,
    /// Device of the language model: cpu, cuda or cuda:N (CUDA needs a build with
    /// `--features cuda`).
    #[arg(long, env = "TESSERA_DEVICE", default_value = "cpu")]
    pub device: String,
    /// Most sequences in the model's running batch (requests beyond it queue for a place).
    #[arg(long, env = "TESSERA_BATCH_WIDTH", default_value_t = TextConfig::default().batch_width)]
    pub batch_width: usize,
    /// Read through OpenAI-compatible servers (vLLM, SGLang, llama.cpp's llama-server) in
    /// place of the in-engine model: base URLs, repeated or comma-separated. The API key, if
    /// the servers want one, comes from `TESSERA_REMOTE_API_KEY` only.
    #[arg(
        long = "remote",
        env = "TESSERA_REMOTE",
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub remote: Vec<String>,
    /// Model name sent to the servers (default: the first they list under /v1/models).
    #[arg(long, env = "TESSERA_REMOTE_MODEL", requires = "remote")]
    pub remote_model: Option<String>,
    /// Requests in flight per server (match its parallel slots).
    #[arg(long, env = "TESSERA_REMOTE_SLOTS", default_value_t = 4)]
    pub remote_slots: usize,
    /// Seconds one request to a server may take before it is tried elsewhere.
    #[arg(long, env = "TESSERA_REMOTE_TIMEOUT", default_value_t = 300)]
    pub remote_timeout: u64,
    /// Further tries of a failed request, on other servers where there are any.
    #[arg(long, env = "TESSERA_REMOTE_RETRIES", default_value_t = 4)]
    pub remote_retries: usize,
    /// Support check of every read triple: keep it only when the model finds it (or its
    /// reverse, then turned round) stated by the text with at least this probability. 0 (the
    /// default) checks only the triples of refinement rounds.
    #[arg(long, env = "TESSERA_SUPPORT", default_value_t = 0.0)]
    pub support: f32,
    /// Schema-guided extraction (target alignment): the extraction lists the schema relations
    /// nearest to each chunk and may name only schema relations.
    #[arg(long, env = "TESSERA_GUIDED")]
    pub guided: bool,
    /// No cover pass: by default, names and numbers of the text that no extracted triple
    /// holds are given back to the model, one more triple each.
    #[arg(long, env = "TESSERA_NO_COVER")]
    pub no_cover: bool,
}

impl ModelArgs {
    /// The language model in words: its name, or the servers it is read through.
    pub fn describe(&self) -> String {
        let mut check = if self.support > 0.0 {
            format!("support check {}", self.support)
        } else {
            "support check on refinement rounds".to_owned()
        };
        if self.no_cover {
            check.push_str(", no cover pass");
        }
        if self.remote.is_empty() {
            return format!("{} ({check})", self.model);
        }
        format!(
            "{} through {} OpenAI-compatible server{} ({check})",
            self.remote_model.as_deref().unwrap_or("the served model"),
            self.remote.len(),
            if self.remote.len() == 1 { "" } else { "s" }
        )
    }

    /// The text configuration these options ask for.
    pub fn config(&self) -> TextConfig {
        let mut c = TextConfig {
            llm: self.model.clone(),
            embedder: self.embedder.clone(),
            device: self.device.clone(),
            batch_width: self.batch_width.max(1),
            ..TextConfig::default()
        };
        if let Some(t) = self.threads {
            c.threads = t.max(1);
        }
        c.edc.support = self.support.clamp(0.0, 1.0);
        c.edc.guided = self.guided;
        c.edc.cover = !self.no_cover;
        let endpoints: Vec<String> = self
            .remote
            .iter()
            .map(|e| e.trim().to_owned())
            .filter(|e| !e.is_empty())
            .collect();
        if !endpoints.is_empty() {
            c.remote = Some(tessera::llm::RemoteConfig {
                endpoints,
                model: self.remote_model.clone(),
                api_key: std::env::var("TESSERA_REMOTE_API_KEY")
                    .ok()
                    .filter(|k| !k.is_empty()),
                slots: self.remote_slots.max(1),
                timeout: std::time::Duration::from_secs(self.remote_timeout.max(1)),
                retries: self.remote_retries,
            });
        }
        c
    }
}

/// `tessera ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Store directory.
    #[arg(short, long)]
    pub location: PathBuf,
    /// Files or directories of `.txt` files; `-` reads stdin.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// One text per file (default: one text per non-empty line).
    #[arg(long)]
    pub per_file: bool,
    /// Target graph (default: the default graph).
    #[arg(long)]
    pub graph: Option<String>,
    /// Graph holding the target schema (default: every relation in the store).
    #[arg(long)]
    pub schema: Option<String>,
    /// Alignment mode.
    #[arg(long, value_enum, default_value = "target")]
    pub align: AlignArg,
    /// EDC+R refinement rounds.
    #[arg(long, default_value_t = 0)]
    pub refine: usize,
    /// Mark every source read as an example for later reads into the graph (`AS EXAMPLE`).
    #[arg(long)]
    pub as_example: bool,
    /// Texts decoded together through the model.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Model options.
    #[command(flatten)]
    pub models: ModelArgs,
}

fn iri(s: &str, what: &str) -> anyhow::Result<NamedNode> {
    NamedNode::new(s).with_context(|| format!("{what} <{s}> is not a valid IRI"))
}

fn read_texts(inputs: &[PathBuf], per_file: bool) -> anyhow::Result<Vec<(String, String)>> {
    let mut files: Vec<PathBuf> = Vec::new();
    for p in inputs {
        if p.as_os_str() == "-" {
            files.push(p.clone());
        } else if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading directory {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|e| e.is_file() && e.extension().is_some_and(|x| x == "txt"))
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(p.clone());
        }
    }
    let mut texts = Vec::new();
    for f in files {
        let mut bytes = Vec::new();
        let name = if f.as_os_str() == "-" {
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("reading stdin")?;
            "stdin".to_owned()
        } else {
            bytes = std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?;
            f.display().to_string()
        };
        let s = String::from_utf8(bytes).map_err(|e| {
            anyhow::anyhow!(
                "{name} is not UTF-8 (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            )
        })?;
        if per_file {
            texts.push((name, s));
        } else {
            for (i, line) in s.lines().enumerate() {
                if !line.trim().is_empty() {
                    texts.push((format!("{name}:{}", i + 1), line.to_owned()));
                }
            }
        }
    }
    Ok(texts)
}

/// Runs `tessera ingest`.
pub fn ingest(args: IngestArgs) -> anyhow::Result<()> {
    let texts = read_texts(&args.inputs, args.per_file)?;
    if texts.is_empty() {
        bail!("no text to ingest in the inputs");
    }
    let db = Database::open(&args.location)?.with_text_config(args.models.config());
    let opts = TextOptions {
        graph: args
            .graph
            .as_deref()
            .map(|g| iri(g, "--graph"))
            .transpose()?,
        schema: args
            .schema
            .as_deref()
            .map(|g| iri(g, "--schema"))
            .transpose()?,
        align: match args.align {
            AlignArg::Target => Align::Target,
            AlignArg::SelfCanonical => Align::SelfCanonical,
        },
        refine: args.refine,
        source: None,
        example: args.as_example,
        ..TextOptions::default()
    };
    let bar = ProgressBar::new(texts.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "ingesting [{bar:30}] {pos}/{len} texts {per_sec} {msg} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let t0 = Instant::now();
    let (mut ok, mut failed, mut triples, mut dropped, mut relations) = (0, 0, 0, 0, 0);
    let mut first_error: Option<String> = None;
    let refs: Vec<&str> = texts.iter().map(|(_, t)| t.as_str()).collect();
    db.insert_texts_each(&refs, &opts, args.batch, &mut |i, r| {
        let name = &texts[i].0;
        match r {
            Ok(report) => {
                ok += 1;
                triples += report.triples.len();
                dropped += report.dropped.len();
                relations += report.relations_added.len();
            }
            Err(e) => {
                failed += 1;
                tracing::warn!(text = %name, error = %e, "text not ingested");
                first_error.get_or_insert_with(|| format!("{name}: {e}"));
            }
        }
        bar.inc(1);
        bar.set_message(format!("{triples} triples"));
    })?;
    bar.finish_and_clear();
    db.flush()?;
    let secs = t0.elapsed().as_secs_f64();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{ok} texts ingested, {failed} failed; {triples} triples written, {dropped} dropped, {relations} relations added; {secs:.1} s ({:.2} texts/s)",
        (ok + failed) as f64 / secs.max(1e-9)
    )?;
    if let Some(e) = first_error {
        bail!("{failed} texts failed; the first: {e}");
    }
    Ok(())
}

/// `tessera schema ...`.
#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Import EDC's schema CSV (`relation,definition` per line, no header) as RDF properties.
    Import {
        /// Store directory.
        #[arg(short, long)]
        location: PathBuf,
        /// The CSV file.
        file: PathBuf,
        /// Graph to write the schema into (default: the default graph).
        #[arg(long)]
        graph: Option<String>,
        /// Base IRI of the relations.
        #[arg(long, default_value = "http://tessera.local/relation/")]
        base: String,
    },
}

/// Reads a schema CSV into quads; errors name the file and line.
pub fn schema_quads(path: &Path, graph: &GraphName, base: &str) -> anyhow::Result<Vec<Quad>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let relations = tessera::text::schema::parse_csv(&text)
        .with_context(|| format!("reading the schema CSV {}", path.display()))?;
    tessera::text::schema::relation_quads(&relations, graph, base)
        .with_context(|| format!("reading the schema CSV {}", path.display()))
}

/// Writes `quads` in one transaction.
pub fn write_quads(db: &Database, quads: &[Quad]) -> anyhow::Result<()> {
    db.storage().write(|tx| {
        for q in quads {
            tx.insert(q);
        }
        Ok::<_, tessera::Error>(())
    })?;
    Ok(())
}

/// Runs `tessera schema ...`.
pub fn schema(cmd: SchemaCommand) -> anyhow::Result<()> {
    match cmd {
        SchemaCommand::Import {
            location,
            file,
            graph,
            base,
        } => {
            let g = match graph {
                Some(g) => GraphName::NamedNode(iri(&g, "--graph")?),
                None => GraphName::DefaultGraph,
            };
            let quads = schema_quads(&file, &g, &base)?;
            let db = Database::open(&location)?;
            let n = quads.len();
            write_quads(&db, &quads)?;
            db.flush()?;
            writeln!(
                std::io::stdout().lock(),
                "{} relations imported ({n} triples)",
                quads
                    .iter()
                    .filter(|q| q.predicate.as_ref() == tessera_storage::vocab::rdf::TYPE)
                    .count()
            )?;
            Ok(())
        }
    }
}
