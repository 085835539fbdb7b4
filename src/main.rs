//! The `tessera` command: a thin shell over the library. Parses arguments, opens the
//! database, and hands over to `tessera::Database` and `tessera_sparql`.

mod cli;

use clap::{Parser, Subcommand};
use cli::data::{dump, load, print_results, text_arg};
use std::path::PathBuf;
use tessera::Database;

/// Tessera: an embedded RDF/SPARQL knowledge-graph database.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log lines as text or as one JSON object per line (for log collectors).
    #[arg(
        long,
        global = true,
        env = "TESSERA_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve SPARQL 1.1 (Protocol, Graph Store Protocol, console, /ready, /metrics) over HTTP.
    Serve(cli::serve::ServeArgs),
    /// Run a SPARQL query and print the results.
    Query {
        /// Store directory.
        #[arg(short, long)]
        location: PathBuf,
        /// The query (or use --query-file).
        #[arg(short, long, conflicts_with = "query_file")]
        query: Option<String>,
        /// File holding the query (`-` for stdin).
        #[arg(long)]
        query_file: Option<PathBuf>,
        /// Output format: json, xml, csv, tsv for SELECT/ASK; ttl, nt, nq, trig, rdf, jsonld for graphs.
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Run a SPARQL update.
    Update {
        /// Store directory.
        #[arg(short, long)]
        location: PathBuf,
        /// The update (or use --update-file).
        #[arg(short, long, conflicts_with = "update_file")]
        update: Option<String>,
        /// File holding the update (`-` for stdin).
        #[arg(long)]
        update_file: Option<PathBuf>,
    },
    /// Bulk-load RDF files (fast, not atomic; shows progress and triples/s).
    Load {
        /// Store directory.
        #[arg(short, long)]
        location: PathBuf,
        /// Files to load (`-` for stdin, then --format is required).
        #[arg(short, long, num_args = 1.., required = true)]
        file: Vec<PathBuf>,
        /// Input format (by default from each file's extension): ttl, nt, nq, trig, rdf, jsonld, n3.
        #[arg(long)]
        format: Option<String>,
        /// Load triples into this named graph instead of the default graph.
        #[arg(long)]
        graph: Option<String>,
    },
    /// Write the store (or one graph) as RDF.
    Dump {
        /// Store directory.
        #[arg(short, long)]
        location: PathBuf,
        /// Output file (default stdout).
        #[arg(short, long)]
        file: Option<PathBuf>,
        /// Output format (default from the file extension, else N-Quads).
        #[arg(long)]
        format: Option<String>,
        /// Dump only this named graph (`default` for the default graph).
        #[arg(long)]
        graph: Option<String>,
    },
    /// Models by name: list, pull, path, info.
    #[command(subcommand)]
    Models(cli::llm::ModelsCommand),
    /// Generate text with a language model (chat template applied).
    Generate(cli::llm::GenerateArgs),
    /// Benchmarks: llm (prefill/decode), prefix (prefix cache), embed.
    #[command(subcommand)]
    Bench(cli::llm::BenchCommand),
    /// Read texts into the store (INSERT TEXT in batches): files, directories of .txt, or -.
    Ingest(cli::ingest::IngestArgs),
    /// Extraction quality on a dataset in the EDC layout (WebNLG metric).
    Eval(cli::eval::EvalArgs),
    /// Build (or bring up to date) the entity and schema indexes INSERT TEXT reads, ahead of
    /// the first text into a large existing graph.
    Index(cli::index::IndexArgs),
    /// The store's schema: import EDC's relation,definition CSV.
    #[command(subcommand)]
    Schema(cli::ingest::SchemaCommand),
}

fn main() {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,hnsw_rs=warn")),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    match tessera_llm::bench::requested_kernels() {
        Some(Ok(kernels)) => tracing::info!(kernels, "kernels chosen by TESSERA_KERNELS"),
        Some(Err(message)) => tracing::warn!("{message}"),
        None => {}
    }
    if let Err(e) = run(cli) {
        // One line, naming what failed, then a non-zero exit.
        // A message that already quotes its cause is not followed by the cause again.
        let mut chain: Vec<String> = Vec::new();
        for m in e.chain().map(ToString::to_string) {
            if !chain.last().is_some_and(|last| last.contains(&m)) {
                chain.push(m);
            }
        }
        eprintln!("error: {}", chain.join(": ").replace('\n', " "));
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => cli::serve::run(args),
        Command::Query {
            location,
            query,
            query_file,
            format,
        } => {
            let query = text_arg(query, query_file, "query")?;
            let db = Database::open(&location)?;
            let stdout = std::io::stdout().lock();
            print_results(
                db.query(&query)?,
                format.as_deref(),
                std::io::BufWriter::new(stdout),
            )
        }
        Command::Update {
            location,
            update,
            update_file,
        } => {
            let update = text_arg(update, update_file, "update")?;
            let db = Database::open(&location)?;
            db.update(&update)?;
            db.flush()?;
            Ok(())
        }
        Command::Load {
            location,
            file,
            format,
            graph,
        } => load(&location, &file, format.as_deref(), graph.as_deref()),
        Command::Dump {
            location,
            file,
            format,
            graph,
        } => dump(
            &location,
            file.as_deref(),
            format.as_deref(),
            graph.as_deref(),
        ),
        Command::Models(cmd) => cli::llm::models(cmd),
        Command::Bench(cmd) => cli::llm::bench(cmd),
        Command::Generate(args) => cli::llm::generate(args),
        Command::Ingest(args) => cli::ingest::ingest(args),
        Command::Schema(cmd) => cli::ingest::schema(cmd),
        Command::Eval(args) => cli::eval::eval(args),
        Command::Index(args) => cli::index::index(args),
    }
}
