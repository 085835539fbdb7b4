//! Fuzzes the parser of the model's extraction output: any bytes (cut off or not) give a list
//! of triples, never a panic. The module is compiled in from `engine/text/` directly, so the
//! fuzz build needs no RocksDB.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tessera_llm::Finish;

#[path = "../../engine/text/src/output.rs"]
#[allow(dead_code, missing_docs)]
mod output;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for finish in [Finish::End, Finish::Length] {
        for t in output::parse_triples(&text, finish) {
            assert_eq!(t.len(), 3);
        }
    }
});
