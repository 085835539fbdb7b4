//! Fuzzes the SPARQL Update extension's front parser (`INSERT TEXT`, `DROP SOURCE`): any
//! request gives operations or an error with a position, never a panic, and no text beyond
//! the cap. The modules are compiled in from `engine/text/` directly, so the fuzz build needs
//! oxigraph's model only (no RocksDB).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../engine/text/src/options.rs"]
#[allow(dead_code, missing_docs)]
mod options;
#[path = "../../engine/text/src/grammar.rs"]
#[allow(dead_code, missing_docs)]
mod grammar;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        for base in [None, Some("http://example.org/base/")] {
            if let Ok(ops) = grammar::parse(s, base) {
                for op in ops {
                    if let grammar::Operation::InsertText(t) = op {
                        assert!(t.text.len() <= options::MAX_TEXT_BYTES);
                        assert!(t.refine <= options::MAX_REFINE);
                    }
                }
            }
        }
    }
});
