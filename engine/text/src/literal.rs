//! Object typing: whether an extracted object is an entity or a literal, and which datatype.
//!
//! Entry point: [`type_object`]. The schema's `rdfs:range` decides when it is known; otherwise
//! the surface form does (ISO and written-out dates, integers, decimals, quoted strings).

use oxigraph::model::vocab::{rdf, rdfs, xsd};

/// The XML Schema namespace.
const XSD_NS: &str = "http://www.w3.org/2001/XMLSchema#";

/// The datatypes the pipeline parses values of.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Date,
    Year,
    Integer,
    Decimal,
    Other,
}

fn kind(range: &str) -> Kind {
    if range == xsd::DATE.as_str() {
        Kind::Date
    } else if range == xsd::G_YEAR.as_str() {
        Kind::Year
    } else if range == xsd::INTEGER.as_str() {
        Kind::Integer
    } else if range == xsd::DECIMAL.as_str() || range == xsd::DOUBLE.as_str() {
        Kind::Decimal
    } else {
        Kind::Other
    }
}

/// The object of a planned triple.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Object {
    /// An entity, by its label as the text names it (resolved to an IRI when committed).
    Entity(String),
    /// A typed literal.
    Literal {
        /// Lexical form, canonical for its datatype where the pipeline parsed it.
        value: String,
        /// Datatype IRI.
        datatype: String,
    },
}

impl Object {
    /// The label or lexical form.
    pub fn text(&self) -> &str {
        match self {
            Self::Entity(s) => s,
            Self::Literal { value, .. } => value,
        }
    }
}

/// Types `object` for a relation whose range is `range` (an IRI, `None` when unknown).
pub fn type_object(object: &str, range: Option<&str>) -> Object {
    let raw = object.trim();
    let unquoted = strip_quotes(raw);
    match range {
        Some(r)
            if r.starts_with(XSD_NS)
                || r == rdf::LANG_STRING.as_str()
                || r == rdfs::LITERAL.as_str() =>
        {
            typed_as(unquoted, r)
        }
        Some(_) => Object::Entity(unquoted.to_owned()),
        None => {
            if unquoted.len() != raw.len() {
                return Object::Literal {
                    value: unquoted.to_owned(),
                    datatype: xsd::STRING.as_str().into(),
                };
            }
            guess(raw).unwrap_or_else(|| Object::Entity(raw.to_owned()))
        }
    }
}

/// Why `object` cannot be a value of the datatype `range` (dates, years and numbers), if it
/// cannot: such a triple is dropped rather than written with a value its relation excludes.
pub fn range_violation(object: &str, range: Option<&str>) -> Option<String> {
    let r = range?;
    let v = strip_quotes(object.trim());
    let ok = match kind(r) {
        Kind::Date => parse_date(v).is_some(),
        Kind::Year => parse_year(v).is_some(),
        Kind::Integer => parse_integer(v).is_some(),
        Kind::Decimal => parse_integer(v).or_else(|| parse_decimal(v)).is_some(),
        Kind::Other => true,
    };
    (!ok).then(|| {
        format!(
            "\"{v}\" is not a value of the relation's range xsd:{}",
            r.strip_prefix(XSD_NS).unwrap_or(r)
        )
    })
}

fn literal(value: String, datatype: impl Into<String>) -> Object {
    Object::Literal {
        value,
        datatype: datatype.into(),
    }
}

fn typed_as(value: &str, range: &str) -> Object {
    let parsed = match kind(range) {
        Kind::Date => parse_date(value).map(|d| literal(d, xsd::DATE.as_str())),
        Kind::Year => parse_year(value).map(|y| literal(y, xsd::G_YEAR.as_str())),
        Kind::Integer => parse_integer(value).map(|v| literal(v, xsd::INTEGER.as_str())),
        Kind::Decimal => parse_integer(value)
            .or_else(|| parse_decimal(value))
            .map(|v| literal(v, range)),
        Kind::Other => None,
    };
    parsed.unwrap_or_else(|| {
        // A value that does not parse as the declared datatype keeps its text as a string
        // rather than being written with a datatype it does not satisfy.
        literal(value.to_owned(), xsd::STRING.as_str())
    })
}

fn guess(value: &str) -> Option<Object> {
    if let Some(d) = parse_date(value) {
        return Some(literal(d, xsd::DATE.as_str()));
    }
    if let Some(i) = parse_integer(value) {
        return Some(literal(i, xsd::INTEGER.as_str()));
    }
    parse_decimal(value).map(|d| literal(d, xsd::DECIMAL.as_str()))
}

fn strip_quotes(s: &str) -> &str {
    for (open, close) in [('"', '"'), ('\'', '\''), ('“', '”')] {
        if let Some(inner) = s.strip_prefix(open).and_then(|r| r.strip_suffix(close)) {
            if !inner.is_empty() {
                return inner.trim();
            }
        }
    }
    s
}

/// An integer, allowing thousands separators ("17,000") and a leading sign (also U+2212).
fn parse_integer(s: &str) -> Option<String> {
    let (neg, body) = sign(s);
    if body.is_empty() || !body.chars().all(|c| c.is_ascii_digit() || c == ',') {
        return None;
    }
    if body.contains(',') && !thousands_ok(body) {
        return None;
    }
    let digits: String = body.chars().filter(char::is_ascii_digit).collect();
    let trimmed = digits.trim_start_matches('0');
    let canon = if trimmed.is_empty() { "0" } else { trimmed };
    Some(if neg && canon != "0" {
        format!("-{canon}")
    } else {
        canon.to_owned()
    })
}

fn thousands_ok(body: &str) -> bool {
    let groups: Vec<&str> = body.split(',').collect();
    groups.first().is_some_and(|g| (1..=3).contains(&g.len()))
        && groups[1..].iter().all(|g| g.len() == 3)
}

fn sign(s: &str) -> (bool, &str) {
    if let Some(r) = s.strip_prefix('-').or_else(|| s.strip_prefix('−')) {
        (true, r)
    } else {
        (false, s.strip_prefix('+').unwrap_or(s))
    }
}

fn parse_decimal(s: &str) -> Option<String> {
    let (neg, body) = sign(s);
    let (int, frac) = body.split_once('.')?;
    let int = if int.is_empty() {
        "0".to_owned()
    } else {
        parse_integer(int)?
    };
    if frac.is_empty() || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(format!("{}{int}.{frac}", if neg { "-" } else { "" }))
}

fn parse_year(s: &str) -> Option<String> {
    let t = s.trim();
    (t.len() == 4 && t.chars().all(|c| c.is_ascii_digit()))
        .then(|| t.to_owned())
        .or_else(|| parse_date(t).map(|d| d[..4].to_owned()))
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn month(word: &str) -> Option<u32> {
    let w = word.trim_end_matches('.').to_lowercase();
    if w.len() < 3 {
        return None;
    }
    MONTHS
        .iter()
        .position(|m| m.starts_with(&w))
        .and_then(|i| u32::try_from(i + 1).ok())
}

fn day(word: &str) -> Option<u32> {
    let w = word.to_lowercase();
    let digits = w
        .trim_end_matches("st")
        .trim_end_matches("nd")
        .trim_end_matches("rd")
        .trim_end_matches("th");
    let d: u32 = digits.parse().ok()?;
    (1..=31).contains(&d).then_some(d)
}

fn year(word: &str) -> Option<i32> {
    (word.len() == 4 && word.chars().all(|c| c.is_ascii_digit()))
        .then(|| word.parse().ok())
        .flatten()
}

fn days_in(y: i32, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A calendar date in ISO form (`1923-11-18`, `18 November 1923`, `Nov 18, 1923`,
/// `the 10th of March, 1983`), as `YYYY-MM-DD`.
fn parse_date(s: &str) -> Option<String> {
    let t = s.trim();
    let iso: Vec<&str> = t.split('-').collect();
    let (y, m, d) = if iso.len() == 3
        && iso[0].len() == 4
        && iso[1].len() == 2
        && iso[2].len() == 2
        && iso.iter().all(|p| p.chars().all(|c| c.is_ascii_digit()))
    {
        (
            iso[0].parse().ok()?,
            iso[1].parse().ok()?,
            iso[2].parse().ok()?,
        )
    } else {
        let words: Vec<&str> = t
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty() && !matches!(w.to_lowercase().as_str(), "the" | "of"))
            .collect();
        match words.as_slice() {
            [a, b, c] => {
                let y = year(c)?;
                if let (Some(m), Some(d)) = (month(a), day(b)) {
                    (y, m, d)
                } else {
                    (y, month(b)?, day(a)?)
                }
            }
            _ => return None,
        }
    };
    ((1..=12).contains(&m) && d >= 1 && d <= days_in(y, m)).then(|| format!("{y:04}-{m:02}-{d:02}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(v: &str, dt: &str) -> Object {
        literal(v.into(), dt)
    }

    #[test]
    fn guesses_from_the_surface_form() {
        assert_eq!(
            type_object("1923-11-18", None),
            lit("1923-11-18", xsd::DATE.as_str())
        );
        assert_eq!(
            type_object("Nov 18, 1923", None),
            lit("1923-11-18", xsd::DATE.as_str())
        );
        assert_eq!(
            type_object("18 November 1923", None),
            lit("1923-11-18", xsd::DATE.as_str())
        );
        assert_eq!(
            type_object("the 10th of March, 1983", None),
            lit("1983-03-10", xsd::DATE.as_str())
        );
        assert_eq!(
            type_object("17,000", None),
            lit("17000", xsd::INTEGER.as_str())
        );
        assert_eq!(type_object("−6", None), lit("-6", xsd::INTEGER.as_str()));
        assert_eq!(
            type_object("3990.0", None),
            lit("3990.0", xsd::DECIMAL.as_str())
        );
        assert_eq!(
            type_object("\"101 Ukrop Way\"", None),
            lit("101 Ukrop Way", xsd::STRING.as_str())
        );
        assert_eq!(
            type_object("Steve Bright", None),
            Object::Entity("Steve Bright".into())
        );
        assert_eq!(
            type_object("May 2020 flood", None),
            Object::Entity("May 2020 flood".into())
        );
        assert_eq!(type_object("1,00", None), Object::Entity("1,00".into()));
        assert_eq!(
            type_object("February 30, 2001", None),
            Object::Entity("February 30, 2001".into())
        );
    }

    #[test]
    fn the_range_decides_when_known() {
        assert_eq!(
            type_object("1959", Some(xsd::G_YEAR.as_str())),
            lit("1959", xsd::G_YEAR.as_str())
        );
        assert_eq!(
            type_object("1959", Some("http://example.org/Year")),
            Object::Entity("1959".into())
        );
        assert_eq!(
            type_object("about ten", Some(xsd::INTEGER.as_str())),
            lit("about ten", xsd::STRING.as_str())
        );
        assert_eq!(
            type_object("12", Some(xsd::DECIMAL.as_str())),
            lit("12", xsd::DECIMAL.as_str())
        );
        assert_eq!(
            type_object("Paris", Some(xsd::STRING.as_str())),
            lit("Paris", xsd::STRING.as_str())
        );
        assert!(range_violation("Bergen", Some(xsd::DATE.as_str())).is_some());
        assert!(range_violation("14 March 1972", Some(xsd::DATE.as_str())).is_none());
        assert!(range_violation("Bergen", Some(xsd::STRING.as_str())).is_none());
        assert!(range_violation("Bergen", None).is_none());
    }
}
