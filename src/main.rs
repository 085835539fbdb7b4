//! The `tessera` command: a thin shell over the library. Parses arguments, opens the
//! database, and hands over to `tessera::Database` and `tessera_sparql`.

mod eval_cli;
mod ingest_cli;
mod llm_cli;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tessera::io::RdfFormat;
use tessera::model::{GraphNameRef, NamedNode};
use tessera::sparql::results::{QueryResultsFormat, QueryResultsSerializer};
use tessera::sparql::QueryResults;
use tessera::{Database, ServerConfig};

/// Tessera: an embedded RDF/SPARQL knowledge-graph database.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve SPARQL 1.1 (Protocol, Graph Store Protocol, query page) over HTTP.
    Serve {
        /// Store directory; without it the database lives in memory.
        #[arg(short, long)]
        location: Option<PathBuf>,
        /// Address to listen on.
        #[arg(short, long, default_value = "127.0.0.1:7878")]
        bind: SocketAddr,
        /// Require `Authorization: Bearer TOKEN` for updates and Graph Store writes.
        #[arg(long, env = "TESSERA_WRITE_TOKEN", hide_env_values = true)]
        write_token: Option<String>,
        /// Refuse every write.
        #[arg(long)]
        read_only: bool,
        /// Largest request body accepted, in MiB.
        #[arg(long, default_value_t = 128)]
        max_body_mb: usize,
        /// Cancel queries and updates after this many seconds (0: never).
        #[arg(long, default_value_t = 60)]
        timeout_s: u64,
        /// Allow CORS requests from this origin (repeatable; `*` for any).
        #[arg(long = "cors")]
        cors_origins: Vec<String>,
    },
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
    Models(llm_cli::ModelsCommand),
    /// Generate text with a language model (chat template applied).
    Generate(llm_cli::GenerateArgs),
    /// Benchmarks: llm (prefill/decode), prefix (prefix cache), embed.
    #[command(subcommand)]
    Bench(llm_cli::BenchCommand),
    /// Read texts into the store (INSERT TEXT in batches): files, directories of .txt, or -.
    Ingest(ingest_cli::IngestArgs),
    /// Extraction quality on a dataset in the EDC layout (WebNLG metric).
    Eval(eval_cli::EvalArgs),
    /// The store's schema: import EDC's relation,definition CSV.
    #[command(subcommand)]
    Schema(ingest_cli::SchemaCommand),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,hnsw_rs=warn")),
        )
        .with_writer(io::stderr)
        .init();
    if let Err(e) = run(Cli::parse()) {
        // One line, naming what failed, then a non-zero exit.
        let chain: Vec<String> = e.chain().map(ToString::to_string).collect();
        eprintln!("error: {}", chain.join(": ").replace('\n', " "));
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            location,
            bind,
            write_token,
            read_only,
            max_body_mb,
            timeout_s,
            cors_origins,
        } => {
            let db = open_or_memory(location.as_deref())?;
            let mut config = ServerConfig::default()
                .with_read_only(read_only)
                .with_max_body_bytes(max_body_mb.saturating_mul(1024 * 1024));
            config = if timeout_s == 0 {
                config.without_timeout()
            } else {
                config.with_timeout(Duration::from_secs(timeout_s))
            };
            if let Some(token) = write_token.filter(|t| !t.is_empty()) {
                config = config.with_write_token(token);
            }
            for origin in cors_origins {
                config = config.with_cors_origin(origin);
            }
            serve(db, bind, config)
        }
        Command::Query {
            location,
            query,
            query_file,
            format,
        } => {
            let query = text_arg(query, query_file, "query")?;
            let db = Database::open(&location)?;
            let stdout = io::stdout().lock();
            print_results(db.query(&query)?, format.as_deref(), BufWriter::new(stdout))
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
        Command::Models(cmd) => llm_cli::models(cmd),
        Command::Bench(cmd) => llm_cli::bench(cmd),
        Command::Generate(args) => llm_cli::generate(args),
        Command::Ingest(args) => ingest_cli::ingest(args),
        Command::Schema(cmd) => ingest_cli::schema(cmd),
        Command::Eval(args) => eval_cli::eval(args),
    }
}

fn open_or_memory(location: Option<&Path>) -> anyhow::Result<Database> {
    Ok(match location {
        Some(path) => Database::open(path)?,
        None => {
            tracing::warn!("no --location given: the database lives in memory and is lost on exit");
            Database::in_memory()?
        }
    })
}

fn text_arg(inline: Option<String>, file: Option<PathBuf>, what: &str) -> anyhow::Result<String> {
    match (inline, file) {
        (Some(text), _) => Ok(text),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let mut text = String::new();
            io::stdin()
                .read_to_string(&mut text)
                .with_context(|| format!("cannot read the {what} from stdin"))?;
            Ok(text)
        }
        (None, Some(path)) => std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the {what} file {}", path.display())),
        (None, None) => bail!("give the {what} with --{what} or --{what}-file"),
    }
}

fn serve(db: Database, bind: SocketAddr, config: ServerConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind}"))?;
        tracing::info!(
            "Tessera listening on http://{} (query page at /, SPARQL at /sparql, graph store at /store)",
            listener.local_addr()?
        );
        axum::serve(tessera::listener(listener), db.router(config))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("the HTTP server failed")?;
        anyhow::Ok(())
    })?;
    tracing::info!("shutting down; flushing the store");
    db.flush()?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

fn rdf_format(name: &str) -> anyhow::Result<RdfFormat> {
    let name = name.to_ascii_lowercase();
    RdfFormat::from_extension(&name)
        .or_else(|| RdfFormat::from_media_type(&name))
        .or_else(|| match name.as_str() {
            "turtle" => Some(RdfFormat::Turtle),
            "ntriples" | "n-triples" => Some(RdfFormat::NTriples),
            "nquads" | "n-quads" => Some(RdfFormat::NQuads),
            "rdfxml" | "rdf/xml" | "xml" => Some(RdfFormat::RdfXml),
            "json-ld" => RdfFormat::from_extension("jsonld"),
            _ => None,
        })
        .with_context(|| {
            format!("unknown RDF format '{name}' (use ttl, nt, nq, trig, rdf, jsonld or n3)")
        })
}

fn format_of_path(path: &Path) -> Option<RdfFormat> {
    let name = path.file_name()?.to_str()?;
    let name = name.strip_suffix(".gz").unwrap_or(name);
    let (_, ext) = name.rsplit_once('.')?;
    RdfFormat::from_extension(ext)
}

fn load(
    location: &Path,
    files: &[PathBuf],
    format: Option<&str>,
    graph: Option<&str>,
) -> anyhow::Result<()> {
    let forced = format.map(rdf_format).transpose()?;
    let graph = graph
        .map(|g| NamedNode::new(g).with_context(|| format!("invalid graph IRI '{g}'")))
        .transpose()?;
    // Check every input before touching the store.
    let mut inputs = Vec::new();
    for path in files {
        let format = match forced {
            Some(f) => f,
            None if path.as_os_str() == "-" => bail!("loading from stdin needs --format"),
            None => format_of_path(path).with_context(|| {
                format!(
                    "cannot tell the RDF format of {} from its extension; use --format",
                    path.display()
                )
            })?,
        };
        inputs.push((path, format));
    }
    let db = Database::open(location)?;
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let start = Instant::now();
    let mut total = 0u64;
    for (path, format) in inputs {
        let reader: Box<dyn Read> = if path.as_os_str() == "-" {
            Box::new(io::stdin().lock())
        } else {
            let file =
                File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            if path.extension().is_some_and(|e| e == "gz") {
                Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file)))
            } else {
                Box::new(BufReader::new(file))
            }
        };
        let name = path.display().to_string();
        let progress = bar.clone();
        let base = total;
        total += db
            .bulk_load(
                reader,
                format,
                graph.as_ref().map(|g| g.as_ref().into()),
                move |n| {
                    let secs = start.elapsed().as_secs_f64().max(1e-9);
                    progress.set_message(format!(
                        "{name}: {} triples ({:.0} triples/s)",
                        base + n,
                        (base + n) as f64 / secs
                    ));
                },
            )
            .with_context(|| format!("loading {} failed", path.display()))?;
    }
    db.flush()?;
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "loaded {total} triples from {} files in {secs:.1} s ({:.0} triples/s)",
        files.len(),
        total as f64 / secs.max(1e-9)
    );
    Ok(())
}

fn dump(
    location: &Path,
    file: Option<&Path>,
    format: Option<&str>,
    graph: Option<&str>,
) -> anyhow::Result<()> {
    let format = match (format, file.and_then(format_of_path)) {
        (Some(f), _) => rdf_format(f)?,
        (None, Some(f)) => f,
        (None, None) => RdfFormat::NQuads,
    };
    let graph = match graph {
        None => None,
        Some("default") => Some(tessera::model::GraphName::DefaultGraph),
        Some(g) => Some(
            NamedNode::new(g)
                .with_context(|| format!("invalid graph IRI '{g}'"))?
                .into(),
        ),
    };
    if graph.is_none() && !format.supports_datasets() {
        bail!(
            "{} holds one graph; choose --graph IRI (or --graph default), or a dataset format such as nq or trig",
            format.name()
        );
    }
    let db = Database::open(location)?;
    let graph_ref = graph.as_ref().map(|g| match g {
        tessera::model::GraphName::NamedNode(n) => GraphNameRef::NamedNode(n.as_ref()),
        _ => GraphNameRef::DefaultGraph,
    });
    match file {
        Some(path) => {
            let out =
                File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            db.dump(BufWriter::new(out), format, graph_ref)?
                .flush()
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        None => {
            db.dump(BufWriter::new(io::stdout().lock()), format, graph_ref)?
                .flush()?;
        }
    }
    Ok(())
}

fn print_results(
    results: QueryResults<'_>,
    format: Option<&str>,
    mut out: impl Write,
) -> anyhow::Result<()> {
    match results {
        QueryResults::Solutions(solutions) => {
            let format = solutions_format(format.unwrap_or("tsv"))?;
            let mut serializer = QueryResultsSerializer::from_format(format)
                .serialize_solutions_to_writer(&mut out, solutions.variables().to_vec())?;
            for solution in solutions {
                serializer.serialize(&solution?)?;
            }
            serializer.finish()?;
        }
        QueryResults::Boolean(value) => {
            let format = solutions_format(format.unwrap_or("tsv"))?;
            QueryResultsSerializer::from_format(format)
                .serialize_boolean_to_writer(&mut out, value)?;
        }
        QueryResults::Graph(triples) => {
            let format = rdf_format(format.unwrap_or("ttl"))?;
            let mut serializer =
                tessera::io::RdfSerializer::from_format(format).for_writer(&mut out);
            for triple in triples {
                serializer.serialize_triple(&triple?)?;
            }
            serializer.finish()?;
        }
    }
    out.flush()?;
    Ok(())
}

fn solutions_format(name: &str) -> anyhow::Result<QueryResultsFormat> {
    QueryResultsFormat::from_extension(name)
        .or_else(|| QueryResultsFormat::from_media_type(name))
        .with_context(|| format!("unknown results format '{name}' (use json, xml, csv or tsv)"))
}
