//! Fuzzes object typing (the literal parser: dates, years, numbers, quoted strings) on any
//! text the model may write and any range: never a panic, and a value typed with a parsed
//! datatype passes that datatype's range check.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../engine/text/src/literal.rs"]
#[allow(dead_code, missing_docs)]
mod literal;
#[path = "../../engine/text/src/words.rs"]
mod words;

const RANGES: [Option<&str>; 7] = [
    None,
    Some("http://www.w3.org/2001/XMLSchema#date"),
    Some("http://www.w3.org/2001/XMLSchema#gYear"),
    Some("http://www.w3.org/2001/XMLSchema#integer"),
    Some("http://www.w3.org/2001/XMLSchema#decimal"),
    Some("http://www.w3.org/2001/XMLSchema#string"),
    Some("http://example.org/Person"),
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for range in RANGES {
        let object = literal::type_object(&text, range);
        if let literal::Object::Literal { value, datatype } = &object {
            if Some(datatype.as_str()) == range {
                assert!(literal::range_violation(value, range).is_none(), "{value:?} {datatype}");
            }
        }
        let _ = literal::range_violation(&text, range);
    }
});
