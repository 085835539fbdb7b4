//! Fuzzes the schema CSV reader (`tessera schema import`, `tessera eval`): any bytes give
//! relations or an error naming the line, never a panic; every relation has a name.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../engine/text/src/csv.rs"]
#[allow(dead_code, missing_docs)]
mod csv;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(relations) = csv::parse_csv(&text) {
        assert!(!relations.is_empty());
        for (name, _) in relations {
            assert!(!name.trim().is_empty());
        }
    }
});
