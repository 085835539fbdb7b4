//! The words of a text or a name, as every check in this crate compares them. A module of its
//! own, with no dependencies, so that the fuzz targets can compile in the parsers that use it.
//! Entry point: [`words`].

/// The lowercased alphanumeric words of a text or name, in order, camelCase split
/// ("birthDate" -> "birth", "date").
pub(crate) fn words(text: &str) -> Vec<String> {
    word_spans(text).into_iter().map(|(w, _)| w).collect()
}

/// [`words`], each with the byte range it has in `text`.
pub(crate) fn word_spans(text: &str) -> Vec<(String, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut start = 0;
    let mut prev_lower = false;
    for (i, c) in text.char_indices() {
        let alnum = c.is_alphanumeric();
        if (!alnum || (c.is_uppercase() && prev_lower)) && !word.is_empty() {
            out.push((std::mem::take(&mut word), start..i));
        }
        if alnum {
            if word.is_empty() {
                start = i;
            }
            word.extend(c.to_lowercase());
        }
        prev_lower = alnum && c.is_lowercase();
    }
    if !word.is_empty() {
        out.push((word, start..text.len()));
    }
    out
}
