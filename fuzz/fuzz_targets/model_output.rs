//! Fuzzes the parser of the model's extraction output: any bytes (cut off or not) give a list
//! of triples, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tessera_engine::edc::parse_triples;
use tessera_engine::Finish;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for finish in [Finish::End, Finish::Length] {
        for t in parse_triples(&text, finish) {
            assert_eq!(t.len(), 3);
        }
    }
});
