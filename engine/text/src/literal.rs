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

/// The kind of value a relation's definition asks for as its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expects {
    /// A calendar date ("... on the date given by the object").
    Date,
    /// A year ("... in the year given by the object").
    Year,
    /// Anything: the definition names no temporal value.
    Any,
}

/// What the relation named `label` with `definition` asks for as its object, read from the
/// definition's words ("date", "year"; the label's camelCase words when the definition has
/// neither). Schema definitions of any domain say this in words, whatever the datatype
/// declarations say.
pub fn expects(label: &str, definition: &str) -> Expects {
    let words = crate::words::words;
    let find = |ws: &[String]| {
        if ws.iter().any(|w| w == "date" || w == "dates") {
            Some(Expects::Date)
        } else if ws.iter().any(|w| w == "year" || w == "years") {
            Some(Expects::Year)
        } else {
            None
        }
    };
    find(&words(definition))
        .or_else(|| find(&words(label)))
        .unwrap_or(Expects::Any)
}

/// Why `object` cannot be the object of a relation that asks for `expects`: a date or a year
/// with no digit in it ("died on the date given by" California) is a misread relation.
pub fn expectation_violation(object: &str, expects: Expects) -> Option<&'static str> {
    match expects {
        Expects::Date | Expects::Year if !object.chars().any(|c| c.is_ascii_digit()) => {
            Some("the relation asks for a date or year and the object has none")
        }
        _ => None,
    }
}

/// The full date the text writes around `written` (a bare four-digit year, or a piece of a
/// date with its year, that the model wrote for a relation that asks for a date), in ISO
/// form: small models shorten "October 13, 1964" to "1964" or "13, 1964". `None` unless the
/// text writes exactly one date in that year with the piece's other numbers in it.
pub fn full_date(text: &str, written: &str) -> Option<String> {
    let written = written.trim();
    if parse_date(written).is_some() {
        return None;
    }
    let numbers: Vec<&str> = written
        .split(|c: char| !c.is_ascii_digit())
        .filter(|n| !n.is_empty())
        .collect();
    let (years, others): (Vec<&str>, Vec<&str>) =
        numbers.iter().partition(|n| self::year(n).is_some());
    let [y] = years.as_slice() else {
        return None;
    };
    // Only digits, spaces and commas besides the year ("13, 1964"): a piece of a date.
    if written
        .chars()
        .any(|c| !(c.is_ascii_digit() || c == ' ' || c == ','))
    {
        return None;
    }
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter(|w| !w.is_empty())
        .collect();
    let mut found: Vec<String> = Vec::new();
    for (i, w) in words.iter().enumerate() {
        let bare = w.trim_end_matches(|c: char| !c.is_ascii_digit());
        if bare != *y {
            continue;
        }
        // The longest run of up to five words ending here (or starting here: "1923 November
        // 18th") that reads as a date.
        let mut best = None;
        for start in i.saturating_sub(5)..=i {
            for end in i..(i + 3).min(words.len()) {
                if end - start < 2 {
                    continue;
                }
                let span = words[start..=end].join(" ");
                let span = span.trim_end_matches(|c: char| !c.is_alphanumeric());
                if let Some(d) = parse_date(span) {
                    best.get_or_insert(d);
                }
            }
            if best.is_some() {
                break;
            }
        }
        if let Some(d) = best {
            if !found.contains(&d) {
                found.push(d);
            }
        }
    }
    // The piece's other numbers are the date's day or month.
    found.retain(|d| {
        let parts: Vec<u32> = d
            .split('-')
            .skip(1)
            .filter_map(|p| p.parse().ok())
            .collect();
        others
            .iter()
            .all(|n| n.parse::<u32>().is_ok_and(|n| parts.contains(&n)))
    });
    match found.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
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
    // A leading zero makes digits a code (an area or postal code, "01234"), not a number:
    // read as one, it would lose the zero.
    let digits = sign(value).1;
    if digits.len() > 1 && digits.starts_with('0') && digits.chars().all(|c| c.is_ascii_digit()) {
        return Some(literal(value.to_owned(), xsd::STRING.as_str()));
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

/// Whether `s` is a value as [`type_object`] reads one without a range: a date or a number.
pub(crate) fn is_value(s: &str) -> bool {
    guess(s.trim()).is_some()
}

/// Whether `s` is a number as [`type_object`] reads one: an integer or a decimal, with a sign
/// and thousands separators allowed.
pub(crate) fn is_number(s: &str) -> bool {
    parse_integer(s).is_some() || parse_decimal(s).is_some()
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

/// The month a word names (a full name or an abbreviation of three letters or more), 1-12.
pub(crate) fn month(word: &str) -> Option<u32> {
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

/// Whether `s` reads as a calendar year: four digits from 1000 to 2100 ("2000"; not "3500",
/// "17000" or "83.2").
pub(crate) fn is_year(s: &str) -> bool {
    year(s.trim()).is_some_and(|y| (1000..=2100).contains(&y))
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

/// Year, month and day of a date written in digits with one separator ("/", "-" or "."):
/// year first (`1923/11/18`), or year last with the day and month in either order, read only
/// where the order cannot matter or only one order is a date (`11/18/1923`, `18.11.1923`,
/// `01-01-1913`; `02/03/1923` is left unread).
fn numeric_date(t: &str) -> Option<(i32, u32, u32)> {
    let sep = ['/', '-', '.'].into_iter().find(|&c| t.contains(c))?;
    let parts: Vec<&str> = t.split(sep).collect();
    if parts.len() != 3
        || parts
            .iter()
            .any(|p| p.is_empty() || p.len() > 4 || !p.chars().all(|c| c.is_ascii_digit()))
    {
        return None;
    }
    let n = |p: &str| p.parse::<u32>().ok();
    if parts[0].len() == 4 && parts[1].len() <= 2 && parts[2].len() <= 2 {
        return Some((parts[0].parse().ok()?, n(parts[1])?, n(parts[2])?));
    }
    if parts[2].len() != 4 || parts[0].len() > 2 || parts[1].len() > 2 {
        return None;
    }
    let (a, b, y) = (n(parts[0])?, n(parts[1])?, parts[2].parse().ok()?);
    match (a > 12, b > 12) {
        (false, true) => Some((y, a, b)),
        (true, false) => Some((y, b, a)),
        (false, false) if a == b => Some((y, a, b)),
        _ => None,
    }
}

/// A calendar date in ISO form (`1923-11-18`, `18 November 1923`, `Nov 18, 1923`,
/// `the 10th of March, 1983`, `1923/11/18`, and `11/18/1923` or `18.11.1923` where the day
/// cannot be the month), as `YYYY-MM-DD`.
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
    } else if let Some(ymd) = numeric_date(t) {
        ymd
    } else {
        let words: Vec<&str> = t
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty() && !matches!(w.to_lowercase().as_str(), "the" | "of"))
            .collect();
        match words.as_slice() {
            // A year, a month name and a day, in any order ("18 November 1923", "Nov 18,
            // 1923", "1923 November 18th").
            [a, b, c] => {
                let ws = [*a, *b, *c];
                let y = ws.iter().position(|w| year(w).is_some())?;
                let m = ws.iter().position(|w| month(w).is_some())?;
                let d = (0..3).find(|&k| k != y && k != m)?;
                (year(ws[y])?, month(ws[m])?, day(ws[d])?)
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
        for (written, iso) in [
            ("11/18/1932", "1932-11-18"),
            ("18.11.1932", "1932-11-18"),
            ("02-24-1989", "1989-02-24"),
            ("01-01-1913", "1913-01-01"),
            ("1989/02/24", "1989-02-24"),
        ] {
            assert_eq!(
                type_object(written, None),
                lit(iso, xsd::DATE.as_str()),
                "{written}"
            );
        }
        // Day and month both 12 or under and different: either order is a date.
        assert_eq!(
            type_object("02/03/1923", None),
            Object::Entity("02/03/1923".into())
        );
        assert_eq!(
            type_object("02/30/1923", None),
            Object::Entity("02/30/1923".into())
        );
        assert_eq!(
            type_object("17,000", None),
            lit("17000", xsd::INTEGER.as_str())
        );
        assert_eq!(type_object("−6", None), lit("-6", xsd::INTEGER.as_str()));
        // A code keeps its leading zero.
        assert_eq!(
            type_object("01234", None),
            lit("01234", xsd::STRING.as_str())
        );
        assert_eq!(type_object("0", None), lit("0", xsd::INTEGER.as_str()));
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
    fn definitions_say_what_object_they_ask_for() {
        let born = "The subject entity was born on the date specified by the object entity.";
        assert_eq!(expects("birthDate", born), Expects::Date);
        assert_eq!(
            expects(
                "foundingYear",
                "The subject entity was founded in the year given by the object."
            ),
            Expects::Year
        );
        assert_eq!(expects("releaseDate", "When it came out."), Expects::Date);
        assert_eq!(
            expects(
                "location",
                "The subject entity is located in the place given by the object entity."
            ),
            Expects::Any
        );
        // "update" is not "date".
        assert_eq!(
            expects("updates", "The subject entity updates the object."),
            Expects::Any
        );
        assert!(expectation_violation("California", Expects::Date).is_some());
        assert!(expectation_violation("1959", Expects::Year).is_none());
        assert!(expectation_violation("California", Expects::Any).is_none());
    }

    #[test]
    fn years_are_four_digits_in_the_calendars_range() {
        for y in ["2000", " 1954 ", "1000", "2100"] {
            assert!(is_year(y), "{y}");
        }
        for n in ["3500", "17000", "999", "83.2", "20a0", ""] {
            assert!(!is_year(n), "{n}");
        }
    }

    #[test]
    fn a_year_becomes_the_full_date_the_text_writes() {
        let text = "Nie Haisheng was born on October 13, 1964 in Zaoyang. He flew in 2005.";
        assert_eq!(full_date(text, "1964").as_deref(), Some("1964-10-13"));
        // No date around it.
        assert_eq!(full_date(text, "2005"), None);
        assert_eq!(full_date(text, "1965"), None);
        let text = "Born on the 18th of November, 1923, she retired on 1 August 1974.";
        assert_eq!(full_date(text, "1923").as_deref(), Some("1923-11-18"));
        assert_eq!(full_date(text, "1974").as_deref(), Some("1974-08-01"));
        assert_eq!(
            full_date("It ran from May 2nd, 1908 (to 1990).", "1908").as_deref(),
            Some("1908-05-02")
        );
        // A piece of the date.
        assert_eq!(full_date(text, "18, 1923").as_deref(), Some("1923-11-18"));
        assert_eq!(full_date(text, "19, 1923"), None);
        assert_eq!(full_date(text, "Lyon 1923"), None);
        // Two dates in one year: which one is not for this step to guess.
        let text = "It opened on 2 May 1990 and closed on 3 June 1990.";
        assert_eq!(full_date(text, "1990"), None);
        assert_eq!(
            type_object("1923 November 18th", None),
            lit("1923-11-18", xsd::DATE.as_str())
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
