//! Fuzzes the SPARQL Update extension's front parser (`INSERT TEXT`, `DROP SOURCE`): any
//! request gives operations or an error with a position, never a panic, and no text beyond
//! the parser's cap. The module is compiled in from `sparql/` directly, so the fuzz build
//! needs oxigraph's model only (no RocksDB).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../sparql/src/extension.rs"]
#[allow(dead_code, missing_docs)]
mod extension;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        for base in [None, Some("http://example.org/base/")] {
            if let Ok(ops) = extension::parse(s, base) {
                for op in ops {
                    if let extension::Operation::InsertText(t) = op {
                        assert!(t.text.len() <= extension::MAX_TEXT_BYTES);
                    }
                }
            }
        }
    }
});
