//! `tessera serve`: the HTTP service of a database until Ctrl-C or SIGTERM, then a flush.

use super::data::open_or_memory;
use super::ingest::ModelArgs;
use anyhow::Context as _;
use clap::Args;
use indicatif::ProgressBar;
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tessera::llm::PullProgress;
use tessera::{Database, LoadProgress, ServerConfig};

/// `tessera serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Store directory; without it the database lives in memory.
    #[arg(short, long)]
    pub location: Option<PathBuf>,
    /// Address to listen on.
    #[arg(short, long, default_value = "127.0.0.1:7878")]
    pub bind: SocketAddr,
    /// Require `Authorization: Bearer TOKEN` for updates and Graph Store writes.
    #[arg(long, env = "TESSERA_WRITE_TOKEN", hide_env_values = true)]
    pub write_token: Option<String>,
    /// Refuse every write.
    #[arg(long)]
    pub read_only: bool,
    /// Largest request body accepted, in MiB.
    #[arg(long, default_value_t = 128)]
    pub max_body_mb: usize,
    /// Cancel queries and updates after this many seconds (0: never).
    #[arg(long, default_value_t = 60)]
    pub timeout_s: u64,
    /// Allow CORS requests from this origin (repeatable; `*` for any).
    #[arg(long = "cors")]
    pub cors_origins: Vec<String>,
    /// Queries without a dataset of their own see the union of all graphs as the default
    /// graph (text read into named graphs then answers `SELECT * { ?s ?p ?o }`).
    #[arg(long)]
    pub union_default_graph: bool,
    /// Serve SPARQL only: load no model, refuse INSERT TEXT (503).
    #[arg(long, env = "TESSERA_NO_TEXT")]
    pub no_text: bool,
    /// The models INSERT TEXT reads with, loaded (and fetched if missing) at start; `/ready`
    /// answers 200 once they are.
    #[command(flatten)]
    pub models: ModelArgs,
}

/// Runs `tessera serve` with its flags.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let ServeArgs {
        location,
        bind,
        write_token,
        read_only,
        max_body_mb,
        timeout_s,
        cors_origins,
        union_default_graph,
        no_text,
        models,
    } = args;
    let write_token = write_token.filter(|t| !t.is_empty());
    let mut text = models.config();
    text.enabled = !no_text;
    let db = open_or_memory(location.as_deref())?.with_text_config(text);
    let mut config = ServerConfig::default()
        .with_read_only(read_only)
        .with_union_default_graph(union_default_graph)
        .with_max_body_bytes(max_body_mb.saturating_mul(1024 * 1024));
    config = if timeout_s == 0 {
        config.without_timeout()
    } else {
        config.with_timeout(Duration::from_secs(timeout_s))
    };
    if !bind.ip().is_loopback() && write_token.is_none() && !read_only {
        // Reachable from other machines and writable by anyone who can reach it.
        tracing::warn!(
            %bind,
            "serving a writable store on a non-loopback address without --write-token: anyone who can reach {bind} can change or drop the data"
        );
    }
    if let Some(token) = write_token {
        config = config.with_write_token(token);
    }
    for origin in cors_origins {
        config = config.with_cors_origin(origin);
    }
    serve(db, bind, config)
}

fn serve(db: Database, bind: SocketAddr, config: ServerConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let load_error: Arc<Mutex<Option<anyhow::Error>>> = Arc::default();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind}"))?;
        // The port answers while the models load: /health at once, /ready once they are in.
        let load = db
            .text_config()
            .enabled
            .then(|| db.load_text_models_in_background(Box::new(LoadBar::default().into_fn())));
        tracing::info!(
            "Tessera listening on http://{} (console at /, SPARQL at /sparql, graph store at /store, /ready, /metrics)",
            listener.local_addr()?
        );
        let failed = {
            let load_error = load_error.clone();
            async move {
                let Some(load) = load else {
                    return std::future::pending().await;
                };
                let outcome = tokio::task::spawn_blocking(move || load.join()).await;
                let error = match outcome {
                    Ok(Ok(Ok(_))) => return std::future::pending().await,
                    Ok(Ok(Err(e))) => anyhow::Error::new(e),
                    _ => anyhow::anyhow!("the model loading thread failed"),
                };
                // A server asked to read text with models it cannot load stops, saying why.
                *load_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
            }
        };
        axum::serve(tessera::listener(listener), db.router(config))
            .with_graceful_shutdown(async move {
                tokio::select! {
                    () = shutdown_signal() => {},
                    () = failed => {},
                }
            })
            .await
            .context("the HTTP server failed")?;
        anyhow::Ok(())
    })?;
    tracing::info!("shutting down; flushing the store");
    db.flush()?;
    if let Some(e) = load_error.lock().unwrap_or_else(|e| e.into_inner()).take() {
        return Err(e);
    }
    Ok(())
}

/// Model loading as a progress bar on a terminal, as log lines (a tenth at a time) elsewhere.
#[derive(Default)]
struct LoadBar {
    bar: Option<ProgressBar>,
    logged_tenth: u64,
}

impl LoadBar {
    fn into_fn(mut self) -> impl FnMut(LoadProgress) + Send {
        let terminal = std::io::stderr().is_terminal();
        move |p| self.show(p, terminal)
    }

    fn show(&mut self, p: LoadProgress, terminal: bool) {
        match p {
            LoadProgress::Fetch { name, progress, .. } if terminal => {
                // The previous model's loading spinner gives way to this one's byte bar.
                if let Some(spinner) = self.bar.take_if(|b| b.length().is_none()) {
                    spinner.finish_and_clear();
                }
                super::llm::show_progress(&mut self.bar, &name, progress);
            }
            LoadProgress::Fetch {
                what,
                name,
                progress: PullProgress::Download { done, total },
            } => {
                if total > 0 && done * 10 / total > self.logged_tenth {
                    self.logged_tenth = done * 10 / total;
                    tracing::info!(model = %name, done, total, "fetching the {what} model");
                }
            }
            LoadProgress::Fetch { .. } => {}
            LoadProgress::Load { what, name } => {
                if let Some(b) = self.bar.take() {
                    b.finish_and_clear();
                }
                self.logged_tenth = 0;
                if terminal {
                    let b = ProgressBar::new_spinner();
                    b.set_message(format!("loading the {what} model {name}"));
                    b.enable_steady_tick(Duration::from_millis(120));
                    self.bar = Some(b);
                }
            }
        }
    }
}

impl Drop for LoadBar {
    fn drop(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
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
