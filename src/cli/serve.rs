//! `tessera serve`: the HTTP service of a database until Ctrl-C or SIGTERM, then a flush.

use super::data::open_or_memory;
use super::ingest::ModelArgs;
use anyhow::Context as _;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tessera::{Database, ServerConfig};

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
    /// The models INSERT TEXT reads with.
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
        models,
    } = args;
    let write_token = write_token.filter(|t| !t.is_empty());
    let db = open_or_memory(location.as_deref())?.with_text_config(models.config());
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
