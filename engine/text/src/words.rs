//! The words of a text or a name, as every check in this crate compares them. A module of its
//! own, with no dependencies, so that the fuzz targets can compile in the parsers that use it.
//! Entry point: [`words`].

/// The lowercased alphanumeric words of a text or name, in order, camelCase split
/// ("birthDate" -> "birth", "date").
pub(crate) fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut prev_lower = false;
    for c in text.chars() {
        if c.is_alphanumeric() {
            if c.is_uppercase() && prev_lower && !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            prev_lower = c.is_lowercase();
            word.extend(c.to_lowercase());
        } else {
            prev_lower = false;
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}
