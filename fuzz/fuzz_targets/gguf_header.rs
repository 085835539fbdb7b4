//! Fuzzes the GGUF header reader: any bytes give a header or an error, never a panic, and
//! never an allocation beyond the caps in `tessera_llm::gguf`. Both ways a header is read:
//! checked against the file's size (models), and on its own (skeletons, `open_layout`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tessera_llm::gguf::parse_header(data, data.len() as u64);
    let _ = tessera_llm::gguf::parse_header(data, u64::MAX);
});
