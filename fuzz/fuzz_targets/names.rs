//! Fuzzes the checks that read the model's names and relations against the text (entity
//! names, the text's anchors, direction and holders, a number's own words, a place's kind)
//! on any text, name and relation: never a panic, and every name they return is made of the
//! words of the text or of the names they were given.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../engine/text/src/anchors.rs"]
#[allow(dead_code, missing_docs)]
mod anchors;
#[path = "../../engine/text/src/direction.rs"]
#[allow(dead_code, missing_docs)]
mod direction;
#[path = "../../engine/text/src/literal.rs"]
#[allow(dead_code, missing_docs)]
mod literal;
#[path = "../../engine/text/src/names.rs"]
#[allow(dead_code, missing_docs)]
mod names;
#[path = "../../engine/text/src/places.rs"]
#[allow(dead_code, missing_docs)]
mod places;
#[path = "../../engine/text/src/words.rs"]
mod words;

fuzz_target!(|data: &[u8]| {
    // text \0 subject \0 relation \0 object
    let input = String::from_utf8_lossy(data);
    let mut parts = input.splitn(4, '\0');
    let text = parts.next().unwrap_or_default();
    let subject = parts.next().unwrap_or_default();
    let relation = parts.next().unwrap_or_default();
    let object = parts.next().unwrap_or_default();
    // A returned name is made of the words it was given (cut, respelled as the text writes
    // it, never invented).
    let known: std::collections::HashSet<String> = [text, subject, object]
        .iter()
        .flat_map(|s| words::words(s))
        .collect();
    let given = |n: &str| words::words(n).iter().all(|w| known.contains(w));

    let mut found = names::Names::default();
    if let Ok(s) = found.subject(subject, text) {
        assert!(given(&s), "{s:?}");
    }
    if let Ok(o) = found.object(object, text) {
        assert!(given(o), "{o:?}");
    }
    let _ = names::proper(subject, text);
    let _ = names::without_relation_words(subject, relation, text);
    let _ = names::without_relation_suffix(object, relation);
    let _ = names::attribute_holder(subject, text);
    let _ = names::full_name(subject, &[object, text]);
    let _ = names::written_in(text, subject);
    for a in anchors::anchors(text) {
        assert!(!a.text.is_empty());
    }
    let _ = anchors::uncovered(
        text,
        &[[subject.to_owned(), relation.to_owned(), object.to_owned()]],
    );

    let holders = [subject.to_owned(), object.to_owned(), relation.to_owned()];
    let _ = direction::stated_reversed(text, subject, relation, relation, object);
    if let Some(h) = direction::clause_holder(text, subject, object, &holders) {
        assert!(holders.iter().any(|n| n == h));
    }
    if let Some(h) = direction::stated_holder(text, subject, relation, object, &holders) {
        assert!(holders.iter().any(|n| n == h));
    }
    let near = direction::number_words(text, object);
    // At most six words before the number and four after it.
    assert!(near.len() <= 10, "{near:?}");
    let _ = direction::named_by(&words::words(relation), &near);
    let _ = direction::relation_words_share(text, relation, object);
    if let Some(kind) = places::place_kind(text, object) {
        assert!(!kind.is_empty());
    }
});
