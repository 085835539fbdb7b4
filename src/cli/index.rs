//! `tessera index`: builds ahead of time, or brings up to date, the indexes that INSERT TEXT
//! reads: the entity index of a target graph (labels written by any means, embedded once)
//! and the schema index, with a progress bar.

use super::ingest::ModelArgs;
use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use oxigraph::model::NamedNode;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;
use tessera::Database;

/// `tessera index`.
#[derive(Debug, Args)]
pub struct IndexArgs {
    /// Store directory.
    #[arg(short, long)]
    pub location: PathBuf,
    /// Target graph whose entities are indexed (default: the default graph).
    #[arg(long)]
    pub graph: Option<String>,
    /// Graph holding the target schema (default: every relation in the store).
    #[arg(long)]
    pub schema: Option<String>,
    /// Model options (the embedder is the one that matters here).
    #[command(flatten)]
    pub models: ModelArgs,
}

/// Runs `tessera index`.
pub fn index(args: IndexArgs) -> anyhow::Result<()> {
    let iri = |s: Option<String>, what: &str| -> anyhow::Result<Option<NamedNode>> {
        s.map(|s| NamedNode::new(&s).with_context(|| format!("the {what} <{s}> is not an IRI")))
            .transpose()
    };
    let graph = iri(args.graph, "graph")?;
    let schema = iri(args.schema, "schema graph")?;
    let db = Database::open(&args.location)?.with_text_config(args.models.config());
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "index [{bar:30}] {pos}/{len} entity labels {per_sec} eta {eta}",
        )?
        .progress_chars("=> "),
    );
    let t0 = Instant::now();
    let report = db.index_text_graph(graph.as_ref(), schema.as_ref(), &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    db.flush()?;
    writeln!(
        std::io::stdout().lock(),
        "{} entity labels indexed ({} embedded now), {} schema relations, in {:.1} s",
        report.labels,
        report.embedded,
        report.relations,
        t0.elapsed().as_secs_f64()
    )?;
    Ok(())
}
