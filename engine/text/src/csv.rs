//! EDC's schema CSV (`relation,definition` per line, no header), with no dependencies (a fuzz
//! target compiles this file in). Entry point: [`parse_csv`]; the quads are
//! `crate::schema::relation_quads`.

/// Largest schema CSV [`parse_csv`] reads.
pub const MAX_CSV_BYTES: usize = 64 << 20;

/// A line of a schema CSV that is not `relation,definition`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    /// Over [`MAX_CSV_BYTES`].
    #[error("the schema CSV is {0} bytes, over the cap of {MAX_CSV_BYTES}")]
    TooLarge(usize),
    /// A line without a relation name and a definition.
    #[error("line {0}: expected `relation,definition`")]
    Line(usize),
    /// No relation at all.
    #[error("the schema CSV holds no relation")]
    Empty,
}

/// Parses EDC's schema CSV (`relation,definition` per line, no header; the definition may be
/// quoted and hold commas and doubled quotes). Blank lines are skipped.
pub fn parse_csv(text: &str) -> Result<Vec<(String, String)>, CsvError> {
    if text.len() > MAX_CSV_BYTES {
        return Err(CsvError::TooLarge(text.len()));
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        out.push(csv_pair(line).ok_or(CsvError::Line(i + 1))?);
    }
    if out.is_empty() {
        return Err(CsvError::Empty);
    }
    Ok(out)
}

/// Parses one CSV line of two fields (the second may be quoted and hold commas).
fn csv_pair(line: &str) -> Option<(String, String)> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted && fields.is_empty() => fields.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    fields.push(cur);
    match fields.as_slice() {
        [r, d] if !r.trim().is_empty() => Some((r.trim().to_owned(), d.trim().to_owned())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_lines() {
        assert_eq!(
            csv_pair("birthPlace,The subject entity was born in the object, a place."),
            Some((
                "birthPlace".into(),
                "The subject entity was born in the object, a place.".into()
            ))
        );
        assert_eq!(
            csv_pair("place of birth,\"Quoted, with \"\"quotes\"\".\""),
            Some(("place of birth".into(), "Quoted, with \"quotes\".".into()))
        );
        assert_eq!(csv_pair("no definition"), None);
        assert_eq!(parse_csv("a,b\n\nnope\n"), Err(CsvError::Line(3)));
        assert_eq!(parse_csv("\n"), Err(CsvError::Empty));
    }
}
