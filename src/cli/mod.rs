//! The commands of the `tessera` binary, one module each; `main` parses arguments and hands
//! over here.

pub mod bench_ingest;
pub mod data;
pub mod eval;
pub mod index;
pub mod ingest;
pub mod llm;
pub mod serve;
