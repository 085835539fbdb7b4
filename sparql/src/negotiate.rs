//! Content negotiation: `Accept` headers with q-values, and the media types of each kind of
//! response.
//!
//! Entry points: [`choose`] picks among offers; [`solutions_format`], [`graph_format`] and
//! [`dataset_format`] apply it to SPARQL results, graphs and whole datasets.

use oxigraph::io::RdfFormat;
use oxigraph::sparql::results::QueryResultsFormat;

/// One media range of an `Accept` header.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaRange {
    main: String,
    sub: String,
    q: f32,
}

/// Parses an `Accept` header; malformed ranges are ignored.
pub fn parse_accept(header: &str) -> Vec<MediaRange> {
    header
        .split(',')
        .filter_map(|range| {
            let mut parts = range.split(';');
            let media = parts.next()?.trim().to_ascii_lowercase();
            let (main, sub) = media.split_once('/')?;
            if main.is_empty() || sub.is_empty() {
                return None;
            }
            let mut q = 1.0;
            for param in parts {
                if let Some((name, value)) = param.split_once('=') {
                    if name.trim().eq_ignore_ascii_case("q") {
                        q = value.trim().parse::<f32>().ok()?.clamp(0.0, 1.0);
                    }
                }
            }
            Some(MediaRange {
                main: main.trim().to_owned(),
                sub: sub.trim().to_owned(),
                q,
            })
        })
        .collect()
}

/// Picks the offer the client prefers: the highest q-value of the most specific matching range,
/// ties going to the earlier offer. `None` means nothing is acceptable (406). A missing or
/// empty header accepts the first offer.
pub fn choose<T: Copy>(accept: Option<&str>, offers: &[(&str, T)]) -> Option<T> {
    let ranges = match accept.map(parse_accept) {
        Some(ranges) if !ranges.is_empty() => ranges,
        _ => return offers.first().map(|(_, t)| *t),
    };
    let mut best: Option<(f32, T)> = None;
    for (media, value) in offers {
        let Some((main, sub)) = media.split_once('/') else {
            continue;
        };
        // Most specific match wins: exact, then main/*, then */*.
        let mut matched: Option<(u8, f32)> = None;
        for range in &ranges {
            let specificity = if range.main == main && range.sub == sub {
                3
            } else if range.main == main && range.sub == "*" {
                2
            } else if range.main == "*" && range.sub == "*" {
                1
            } else {
                continue;
            };
            if matched.is_none_or(|(s, _)| specificity > s) {
                matched = Some((specificity, range.q));
            }
        }
        if let Some((_, q)) = matched {
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, *value));
            }
        }
    }
    best.map(|(_, value)| value)
}

/// Whether `accept` names `media_type` itself (not through a wildcard) with a non-zero q.
pub fn names_explicitly(accept: Option<&str>, media_type: &str) -> bool {
    let Some((main, sub)) = media_type.split_once('/') else {
        return false;
    };
    accept.is_some_and(|a| {
        parse_accept(a)
            .iter()
            .any(|r| r.main == main && r.sub == sub && r.q > 0.0)
    })
}

/// Short names accepted by the `format` URL parameter, which overrides `Accept`.
fn format_alias(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "json" | "srj" => "application/sparql-results+json",
        "xml" | "srx" => "application/sparql-results+xml",
        "csv" => "text/csv",
        "tsv" => "text/tab-separated-values",
        "ttl" | "turtle" => "text/turtle",
        "nt" | "ntriples" | "n-triples" => "application/n-triples",
        "nq" | "nquads" | "n-quads" => "application/n-quads",
        "trig" => "application/trig",
        "rdf" | "rdfxml" | "rdf/xml" | "rdf+xml" | "xml-rdf" => "application/rdf+xml",
        "jsonld" | "json-ld" => "application/ld+json",
        _ => return None,
    })
}

/// The effective accept header: the first `format` parameter that names a known short name
/// or a media type, else the `Accept` header. (Some clients send several `format` values,
/// e.g. `format=rdf+xml&format=application/rdf+xml`.)
pub fn effective_accept<'a>(format_params: &[&'a str], accept: Option<&'a str>) -> Option<&'a str> {
    for f in format_params {
        if let Some(alias) = format_alias(f) {
            return Some(alias);
        }
        if f.contains('/') && !parse_accept(f).is_empty() {
            return Some(f);
        }
    }
    accept
}

const SOLUTIONS: &[(&str, QueryResultsFormat)] = &[
    ("application/sparql-results+json", QueryResultsFormat::Json),
    ("application/sparql-results+xml", QueryResultsFormat::Xml),
    ("application/json", QueryResultsFormat::Json),
    ("application/xml", QueryResultsFormat::Xml),
    ("text/xml", QueryResultsFormat::Xml),
    ("text/csv", QueryResultsFormat::Csv),
    ("text/tab-separated-values", QueryResultsFormat::Tsv),
];

fn jsonld() -> RdfFormat {
    RdfFormat::JsonLd {
        profile: Default::default(),
    }
}

fn graph_offers() -> [(&'static str, RdfFormat); 8] {
    [
        ("text/turtle", RdfFormat::Turtle),
        ("application/n-triples", RdfFormat::NTriples),
        ("application/rdf+xml", RdfFormat::RdfXml),
        ("application/ld+json", jsonld()),
        ("application/n-quads", RdfFormat::NQuads),
        ("application/trig", RdfFormat::TriG),
        ("application/x-turtle", RdfFormat::Turtle),
        ("text/plain", RdfFormat::NTriples),
    ]
}

fn dataset_offers() -> [(&'static str, RdfFormat); 4] {
    [
        ("application/trig", RdfFormat::TriG),
        ("application/n-quads", RdfFormat::NQuads),
        ("application/ld+json", jsonld()),
        ("text/plain", RdfFormat::NQuads),
    ]
}

/// Format for SELECT and ASK results (JSON by default).
pub fn solutions_format(accept: Option<&str>) -> Option<QueryResultsFormat> {
    choose(accept, SOLUTIONS)
}

/// Format for a graph: CONSTRUCT/DESCRIBE results and Graph Store reads (Turtle by default).
pub fn graph_format(accept: Option<&str>) -> Option<RdfFormat> {
    choose(accept, &graph_offers())
}

/// Format for the graph a CONSTRUCT or DESCRIBE returns: [`graph_format`], except that an
/// `Accept` naming only the SPARQL results media types (`application/sparql-results+xml` or
/// `+json`) gets a graph all the same (RDF/XML when it asks for XML results, else Turtle)
/// rather than 406. Some clients (Debian's `roqet`) send their results `Accept` for every
/// query form and parse whatever RDF comes back. Generic types (`text/csv`) still get 406.
pub fn graph_format_for_query(accept: Option<&str>) -> Option<RdfFormat> {
    if let Some(format) = graph_format(accept) {
        return Some(format);
    }
    let ranges = parse_accept(accept?);
    let results_only = !ranges.is_empty()
        && ranges
            .iter()
            .all(|r| r.main == "application" && r.sub.starts_with("sparql-results+"));
    if !results_only {
        return None;
    }
    let wants_xml = ranges.iter().any(|r| r.q > 0.0 && r.sub.ends_with("xml"));
    Some(if wants_xml {
        RdfFormat::RdfXml
    } else {
        RdfFormat::Turtle
    })
}

/// Format for a whole dataset (TriG by default).
pub fn dataset_format(accept: Option<&str>) -> Option<RdfFormat> {
    choose(accept, &dataset_offers())
}

/// The `Content-Type` value of a results format.
pub fn solutions_content_type(format: QueryResultsFormat) -> &'static str {
    match format {
        QueryResultsFormat::Json => "application/sparql-results+json; charset=utf-8",
        QueryResultsFormat::Xml => "application/sparql-results+xml; charset=utf-8",
        QueryResultsFormat::Csv => "text/csv; charset=utf-8",
        _ => "text/tab-separated-values; charset=utf-8",
    }
}

/// The `Content-Type` value of an RDF format.
pub fn rdf_content_type(format: RdfFormat) -> &'static str {
    match format {
        RdfFormat::Turtle => "text/turtle; charset=utf-8",
        RdfFormat::NTriples => "application/n-triples; charset=utf-8",
        RdfFormat::NQuads => "application/n-quads; charset=utf-8",
        RdfFormat::TriG => "application/trig; charset=utf-8",
        RdfFormat::RdfXml => "application/rdf+xml; charset=utf-8",
        RdfFormat::N3 => "text/n3; charset=utf-8",
        _ => "application/ld+json; charset=utf-8",
    }
}

/// The RDF format of a request body from its `Content-Type` (parameters ignored).
pub fn rdf_format_of_content_type(content_type: &str) -> Option<RdfFormat> {
    let essence = content_type.split(';').next()?.trim().to_ascii_lowercase();
    match essence.as_str() {
        "text/plain" => Some(RdfFormat::NTriples),
        "application/x-turtle" => Some(RdfFormat::Turtle),
        "application/json" => Some(jsonld()),
        other => RdfFormat::from_media_type(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_values_decide() {
        let accept = "application/sparql-results+xml;q=0.5, text/csv";
        assert_eq!(
            solutions_format(Some(accept)),
            Some(QueryResultsFormat::Csv)
        );
    }

    #[test]
    fn specific_range_overrides_wildcard() {
        // text/* at q=1 but text/csv explicitly refused.
        let accept = "text/*, text/csv;q=0";
        assert_eq!(
            solutions_format(Some(accept)),
            Some(QueryResultsFormat::Xml)
        );
    }

    #[test]
    fn nothing_acceptable_is_none() {
        assert_eq!(solutions_format(Some("image/png")), None);
        assert_eq!(graph_format(Some("application/sparql-results+json")), None);
    }

    #[test]
    fn a_graph_query_asked_for_results_formats_gets_a_graph() {
        // roqet's Accept for every query form.
        assert_eq!(
            graph_format_for_query(Some("application/sparql-results+xml")),
            Some(RdfFormat::RdfXml)
        );
        assert_eq!(
            graph_format_for_query(Some("application/sparql-results+json")),
            Some(RdfFormat::Turtle)
        );
        assert_eq!(graph_format_for_query(Some("text/csv")), None);
        // A graph format listed still decides; something else entirely is still 406.
        assert_eq!(
            graph_format_for_query(Some(
                "application/sparql-results+xml, application/n-triples;q=0.1"
            )),
            Some(RdfFormat::NTriples)
        );
        assert_eq!(graph_format_for_query(Some("image/png")), None);
        assert_eq!(
            graph_format_for_query(Some("application/sparql-results+json, image/png")),
            None
        );
    }

    #[test]
    fn missing_or_wildcard_gives_the_default() {
        assert_eq!(solutions_format(None), Some(QueryResultsFormat::Json));
        assert_eq!(
            solutions_format(Some("*/*")),
            Some(QueryResultsFormat::Json)
        );
        assert_eq!(graph_format(Some("*/*;q=0.1")), Some(RdfFormat::Turtle));
        assert_eq!(dataset_format(None), Some(RdfFormat::TriG));
    }

    #[test]
    fn browser_accept_header_gets_something() {
        let accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert_eq!(
            solutions_format(Some(accept)),
            Some(QueryResultsFormat::Xml)
        );
        assert_eq!(graph_format(Some(accept)), Some(RdfFormat::Turtle));
    }

    #[test]
    fn format_parameter_overrides_accept() {
        let accept = effective_accept(&["tsv"], Some("application/json"));
        assert_eq!(solutions_format(accept), Some(QueryResultsFormat::Tsv));
        // Unknown values are skipped; the next usable one wins.
        let accept = effective_accept(&["bogus", "rdf+xml"], Some("text/turtle"));
        assert_eq!(graph_format(accept), Some(RdfFormat::RdfXml));
        let accept = effective_accept(&["bogus"], Some("text/turtle"));
        assert_eq!(graph_format(accept), Some(RdfFormat::Turtle));
    }

    #[test]
    fn malformed_ranges_are_ignored() {
        assert_eq!(parse_accept("garbage, text/csv;q=abc, text/tsv").len(), 1);
    }
}
