//! Shared helpers of the end-to-end tests: a real server on a real on-disk store, on a free
//! loopback port, stopped when dropped.

#![allow(dead_code, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tessera::{Database, ServerConfig};

/// A running `tessera` HTTP server over a temporary RocksDB store.
pub struct TestServer {
    pub addr: SocketAddr,
    pub db: Database,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub fn start(config: ServerConfig) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("store");
        Self::start_at(&path, config, dir)
    }

    /// Starts a server on the store at `path`; `dir` is kept alive as long as the server.
    pub fn start_at(path: &Path, config: ServerConfig, dir: tempfile::TempDir) -> Self {
        let db = Database::open(path).expect("open the on-disk store");
        Self::start_with(db, config, dir)
    }

    /// Serves `db` (opened in `dir`, kept alive as long as the server).
    pub fn start_with(db: Database, config: ServerConfig, dir: tempfile::TempDir) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let router = db.router(config);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                axum::serve(tessera::listener(listener), router)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .expect("server");
            });
        });
        Self {
            addr,
            db,
            shutdown: Some(tx),
            thread: Some(thread),
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The W3C SPARQL 1.1 test suite: `TESSERA_W3C_DIR`, else the shared evaluation data beside
/// the checkout.
pub fn w3c_dir() -> PathBuf {
    let candidates = [
        std::env::var_os("TESSERA_W3C_DIR").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/w3c-sparql11")),
        Some(PathBuf::from("/work/shared/data/w3c-sparql11")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.join("manifest-sparql11-query.ttl").is_file())
        .expect("the W3C SPARQL 1.1 suite was not found: set TESSERA_W3C_DIR to its folder")
}
