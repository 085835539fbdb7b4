//! The SPARQL Update extension: `INSERT TEXT` and `DROP SOURCE`.
//!
//! Entry point: [`parse`]. It splits an update request into its operations at top-level `;`
//! (outside strings, IRIs, comments and braces), keeps the running prologue (`PREFIX`,
//! `BASE`), parses only the extension operations itself and hands every other operation,
//! text unchanged and with the prologue in force, to oxigraph's parser. A request without
//! extension operations is returned whole as one standard part. Syntax:
//!
//! ```text
//! INSERT TEXT "..." [INTO GRAPH iri] [SCHEMA iri] [ALIGN TARGET|SELF] [REFINE n] [SOURCE iri] [AS EXAMPLE]
//! DROP SOURCE iri
//! ```
//!
//! Every SPARQL string form is accepted (short and long, single and double quotes, escapes); a
//! language tag or datatype after the string is ignored. Caps: [`crate::options::MAX_TEXT_BYTES`] per text,
//! [`MAX_REFINE`] rounds.

use crate::options::{Align, MAX_TEXT_BYTES};
pub use crate::options::{MAX_REFINE, MAX_TEXTS_PER_REQUEST};
use oxigraph::model::NamedNode;
use std::collections::HashMap;

/// One `INSERT TEXT` operation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InsertText {
    /// The text.
    pub text: String,
    /// `INTO GRAPH`.
    pub graph: Option<NamedNode>,
    /// `SCHEMA`.
    pub schema: Option<NamedNode>,
    /// `ALIGN`.
    pub align: Align,
    /// `REFINE`.
    pub refine: usize,
    /// `SOURCE`.
    pub source: Option<NamedNode>,
    /// `AS EXAMPLE`: the source becomes an example for later reads (see [`crate::examples`]).
    pub example: bool,
}

/// One operation of a request, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Standard SPARQL 1.1 Update text (with its prologue), for oxigraph.
    Standard(String),
    /// `INSERT TEXT`.
    InsertText(InsertText),
    /// `DROP SOURCE iri`.
    DropSource(NamedNode),
}

/// A syntax error in an extension operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SPARQL update syntax error at line {line}, column {column}: {message}")]
pub struct SyntaxError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// Splits and parses an update request. `base` is the request's base IRI (the endpoint).
pub fn parse(update: &str, base: Option<&str>) -> Result<Vec<Operation>, SyntaxError> {
    let pieces = split(update);
    // Without extension operations the request goes to oxigraph whole and untouched (its
    // parser reports its own errors, prologue included).
    if !pieces.iter().any(|(_, p)| is_extension(p)) {
        return Ok(vec![Operation::Standard(update.to_owned())]);
    }
    let mut prologue = String::new();
    let mut prefixes: HashMap<String, String> = HashMap::new();
    let mut base: Option<String> = base.map(str::to_owned);
    let mut ops: Vec<Operation> = Vec::new();
    let mut any_extension = false;
    for (start, piece) in &pieces {
        let mut p = Parser {
            src: update,
            pos: *start,
            end: *start + piece.len(),
        };
        // The prologue of this piece: what it declares anew, and whether it changes what an
        // earlier operation's names mean.
        let mut declared: Vec<(String, String)> = Vec::new();
        let mut redefines = false;
        loop {
            p.skip_ws();
            let at = p.pos;
            if p.keyword("PREFIX") {
                p.skip_ws();
                let name = p.pname_ns()?;
                p.skip_ws();
                let iri = p.iri_ref()?;
                let iri = resolve(base.as_deref(), &iri).map_err(|m| p.error_at(at, m))?;
                match prefixes.insert(name.clone(), iri.clone()) {
                    Some(old) if old != iri => redefines = true,
                    Some(_) => {}
                    None => declared.push((name, iri)),
                }
            } else if p.keyword("BASE") {
                p.skip_ws();
                let iri = p.iri_ref()?;
                let new = resolve(base.as_deref(), &iri).map_err(|m| p.error_at(at, m))?;
                redefines |= base.as_deref() != Some(new.as_str());
                base = Some(new);
            } else {
                break;
            }
            prologue.push_str(&update[at..p.pos]);
            prologue.push('\n');
        }
        let body_start = p.pos;
        let op = if p.keywords(&["INSERT", "TEXT"]) {
            any_extension = true;
            Some(Operation::InsertText(
                p.insert_text(&prefixes, base.as_deref())?,
            ))
        } else if p.keywords(&["DROP", "SOURCE"]) {
            any_extension = true;
            p.skip_ws();
            let iri = p.iri(&prefixes, base.as_deref())?;
            p.expect_end()?;
            Some(Operation::DropSource(iri))
        } else {
            None
        };
        match op {
            Some(op) => ops.push(op),
            None => {
                let body = update[body_start..p.end].trim();
                if body.is_empty() {
                    continue;
                }
                // Consecutive standard operations stay one request (one transaction). The
                // parser takes one prologue, at the start, so a prefix this piece declares
                // goes there; a piece that gives a name or the base another meaning starts a
                // request of its own.
                let merge = !redefines && matches!(ops.last(), Some(Operation::Standard(_)));
                if let (true, Some(Operation::Standard(prev))) = (merge, ops.last_mut()) {
                    let mut head: String = declared
                        .iter()
                        .map(|(k, v)| format!("PREFIX {k}: <{v}>\n"))
                        .collect();
                    head.push_str(prev);
                    *prev = head;
                    prev.push_str(" ;\n");
                    prev.push_str(body);
                } else {
                    let mut s = String::new();
                    if let Some(b) = &base {
                        s.push_str(&format!("BASE <{b}>\n"));
                    }
                    for (k, v) in &prefixes {
                        s.push_str(&format!("PREFIX {k}: <{v}>\n"));
                    }
                    s.push_str(body);
                    ops.push(Operation::Standard(s));
                }
            }
        }
    }
    if !any_extension {
        return Ok(vec![Operation::Standard(update.to_owned())]);
    }
    let texts = ops
        .iter()
        .filter(|o| matches!(o, Operation::InsertText(_)))
        .count();
    if texts > MAX_TEXTS_PER_REQUEST {
        return Err(SyntaxError {
            line: 1,
            column: 1,
            message: format!(
                "the request holds {texts} INSERT TEXT operations; at most {MAX_TEXTS_PER_REQUEST} per request (send more texts in more requests, or use bulk ingestion)"
            ),
        });
    }
    Ok(ops)
}

/// Whether a piece is an extension operation, skipping its prologue leniently.
fn is_extension(piece: &str) -> bool {
    let mut p = Parser {
        src: piece,
        pos: 0,
        end: piece.len(),
    };
    loop {
        p.skip_ws();
        if p.keyword("PREFIX") || p.keyword("BASE") {
            match p.rest().find('>') {
                Some(n) => p.pos += n + 1,
                None => return false,
            }
        } else {
            break;
        }
    }
    p.keywords(&["INSERT", "TEXT"]) || p.keywords(&["DROP", "SOURCE"])
}

fn resolve(base: Option<&str>, iri: &str) -> Result<String, String> {
    match base {
        Some(b) => oxiri::Iri::parse(b)
            .map_err(|e| format!("invalid base IRI <{b}>: {e}"))?
            .resolve(iri)
            .map(|i| i.into_inner())
            .map_err(|e| format!("invalid IRI <{iri}>: {e}")),
        None => oxiri::Iri::parse(iri)
            .map(|i| i.into_inner().to_owned())
            .map_err(|e| format!("invalid IRI <{iri}> (relative IRIs need a BASE): {e}")),
    }
}

/// Splits at top-level `;`: returns (byte offset, piece) pairs.
fn split(s: &str) -> Vec<(usize, &str)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'<' => {
                // An IRI reference has no spaces; otherwise it is a comparison operator.
                if let Some(len) =
                    s[i + 1..].find(|c: char| c == '>' || c.is_whitespace() || c == '<')
                {
                    if s.as_bytes().get(i + 1 + len) == Some(&b'>') {
                        i += len + 2;
                        continue;
                    }
                }
            }
            q @ (b'"' | b'\'') => {
                let long = b.get(i + 1) == Some(&q) && b.get(i + 2) == Some(&q);
                i += if long { 3 } else { 1 };
                while i < b.len() {
                    if b[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if long {
                        if b[i] == q && b.get(i + 1) == Some(&q) && b.get(i + 2) == Some(&q) {
                            i += 3;
                            break;
                        }
                    } else if b[i] == q || b[i] == b'\n' {
                        i += 1;
                        break;
                    }
                    i += 1;
                }
                continue;
            }
            b'{' => depth += 1,
            b'}' => depth -= 1,
            b';' if depth == 0 => {
                out.push((start, &s[start..i]));
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push((start, &s[start.min(s.len())..]));
    out
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    end: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..self.end]
    }

    fn error_at(&self, at: usize, message: impl Into<String>) -> SyntaxError {
        let before = &self.src[..at.min(self.src.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        SyntaxError {
            line,
            column,
            message: message.into(),
        }
    }

    fn error(&self, message: impl Into<String>) -> SyntaxError {
        self.error_at(self.pos, message)
    }

    fn skip_ws(&mut self) {
        loop {
            let r = self.rest();
            let trimmed = r.trim_start();
            self.pos += r.len() - trimmed.len();
            if trimmed.starts_with('#') {
                let n = trimmed.find('\n').unwrap_or(trimmed.len());
                self.pos += n;
            } else {
                return;
            }
        }
    }

    /// Consumes a case-insensitive keyword followed by a non-name character.
    fn keyword(&mut self, kw: &str) -> bool {
        let r = self.rest();
        if r.len() >= kw.len()
            && r.is_char_boundary(kw.len())
            && r[..kw.len()].eq_ignore_ascii_case(kw)
            && !r[kw.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
        {
            self.pos += kw.len();
            true
        } else {
            false
        }
    }

    /// Consumes a sequence of keywords, or nothing.
    fn keywords(&mut self, kws: &[&str]) -> bool {
        let save = self.pos;
        for kw in kws {
            self.skip_ws();
            if !self.keyword(kw) {
                self.pos = save;
                return false;
            }
        }
        true
    }

    fn expect_end(&mut self) -> Result<(), SyntaxError> {
        self.skip_ws();
        if self.pos < self.end {
            return Err(self.error(format!(
                "unexpected {:?}",
                self.rest().chars().take(20).collect::<String>()
            )));
        }
        Ok(())
    }

    fn pname_ns(&mut self) -> Result<String, SyntaxError> {
        let r = self.rest();
        let n = r
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '.'))
            .unwrap_or(r.len());
        if r[n..].starts_with(':') {
            let name = r[..n].to_owned();
            self.pos += n + 1;
            Ok(name)
        } else {
            Err(self.error("expected a prefix name ending in ':'"))
        }
    }

    fn iri_ref(&mut self) -> Result<String, SyntaxError> {
        let r = self.rest();
        if !r.starts_with('<') {
            return Err(self.error("expected an IRI in <...>"));
        }
        match r[1..].find(|c: char| c == '>' || c.is_whitespace() || c == '<' || c == '"') {
            Some(n) if r[1 + n..].starts_with('>') => {
                let iri = r[1..1 + n].to_owned();
                self.pos += n + 2;
                Ok(iri)
            }
            _ => Err(self.error("unterminated IRI")),
        }
    }

    fn iri(
        &mut self,
        prefixes: &HashMap<String, String>,
        base: Option<&str>,
    ) -> Result<NamedNode, SyntaxError> {
        let at = self.pos;
        let iri = if self.rest().starts_with('<') {
            let raw = self.iri_ref()?;
            resolve(base, &raw).map_err(|m| self.error_at(at, m))?
        } else {
            let prefix = self.pname_ns()?;
            let ns = prefixes
                .get(&prefix)
                .ok_or_else(|| self.error_at(at, format!("undeclared prefix \"{prefix}:\"")))?;
            let r = self.rest();
            let n = r
                .find(|c: char| !(c.is_alphanumeric() || "_-.%".contains(c)))
                .unwrap_or(r.len());
            let local = r[..n].trim_end_matches('.').to_owned();
            self.pos += local.len();
            format!("{ns}{local}")
        };
        NamedNode::new(&iri).map_err(|e| self.error_at(at, format!("invalid IRI <{iri}>: {e}")))
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        let r = self.rest();
        let q = match r.chars().next() {
            Some(c @ ('"' | '\'')) => c,
            _ => return Err(self.error("INSERT TEXT expects a string")),
        };
        let long_delim: String = std::iter::repeat_n(q, 3).collect();
        let long = r.starts_with(&long_delim);
        let open = if long { 3 } else { 1 };
        let start = self.pos;
        let mut out = String::new();
        let mut chars = r[open..].char_indices();
        loop {
            let Some((i, c)) = chars.next() else {
                return Err(self.error_at(start, "unterminated string"));
            };
            if out.len() > MAX_TEXT_BYTES {
                return Err(self.error_at(
                    start,
                    format!("the text exceeds the cap of {MAX_TEXT_BYTES} bytes"),
                ));
            }
            match c {
                '\\' => {
                    let Some((_, e)) = chars.next() else {
                        return Err(self.error_at(start, "unterminated string"));
                    };
                    let esc = match e {
                        't' => '\t',
                        'n' => '\n',
                        'r' => '\r',
                        'b' => '\u{8}',
                        'f' => '\u{c}',
                        '"' => '"',
                        '\'' => '\'',
                        '\\' => '\\',
                        'u' | 'U' => {
                            let n = if e == 'u' { 4 } else { 8 };
                            let hex: String = chars.by_ref().take(n).map(|(_, c)| c).collect();
                            u32::from_str_radix(&hex, 16)
                                .ok()
                                .filter(|_| hex.len() == n)
                                .and_then(char::from_u32)
                                .ok_or_else(|| {
                                    self.error_at(start, format!("invalid escape \\{e}{hex}"))
                                })?
                        }
                        other => {
                            return Err(self.error_at(start, format!("invalid escape \\{other}")))
                        }
                    };
                    out.push(esc);
                }
                c if c == q && (!long || r[open + i..].starts_with(&long_delim)) => {
                    self.pos += open + i + if long { 3 } else { 1 };
                    break;
                }
                '\n' | '\r' if !long => {
                    return Err(self.error_at(start, "a line break in a short string"));
                }
                c => out.push(c),
            }
        }
        // A language tag or datatype is ignored.
        let r = self.rest();
        if let Some(tag) = r.strip_prefix('@') {
            let n = tag
                .find(|c: char| !(c.is_alphanumeric() || c == '-'))
                .unwrap_or(tag.len());
            self.pos += 1 + n;
        } else if r.starts_with("^^") {
            self.pos += 2;
            if self.rest().starts_with('<') {
                self.iri_ref()?;
            } else {
                self.pname_ns()?;
                let r = self.rest();
                let n = r
                    .find(|c: char| !(c.is_alphanumeric() || "_-.".contains(c)))
                    .unwrap_or(r.len());
                self.pos += n;
            }
        }
        Ok(out)
    }

    fn insert_text(
        &mut self,
        prefixes: &HashMap<String, String>,
        base: Option<&str>,
    ) -> Result<InsertText, SyntaxError> {
        self.skip_ws();
        let mut op = InsertText {
            text: self.string()?,
            ..InsertText::default()
        };
        let mut seen: Vec<&str> = Vec::new();
        let mut once = |p: &Self, what: &'static str| {
            if seen.contains(&what) {
                Err(p.error(format!("{what} is given twice")))
            } else {
                seen.push(what);
                Ok(())
            }
        };
        loop {
            self.skip_ws();
            if self.pos >= self.end {
                return Ok(op);
            }
            if self.keywords(&["INTO", "GRAPH"]) {
                once(self, "INTO GRAPH")?;
                self.skip_ws();
                op.graph = Some(self.iri(prefixes, base)?);
            } else if self.keyword("SCHEMA") {
                once(self, "SCHEMA")?;
                self.skip_ws();
                op.schema = Some(self.iri(prefixes, base)?);
            } else if self.keyword("ALIGN") {
                once(self, "ALIGN")?;
                self.skip_ws();
                op.align = if self.keyword("TARGET") {
                    Align::Target
                } else if self.keyword("SELF") {
                    Align::SelfCanonical
                } else {
                    return Err(self.error("ALIGN expects TARGET or SELF"));
                };
            } else if self.keyword("REFINE") {
                once(self, "REFINE")?;
                self.skip_ws();
                let r = self.rest();
                let n = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
                let rounds: usize = r[..n]
                    .parse()
                    .map_err(|_| self.error("REFINE expects a number of rounds"))?;
                if rounds > MAX_REFINE {
                    return Err(self.error(format!("REFINE is at most {MAX_REFINE}")));
                }
                op.refine = rounds;
                self.pos += n;
            } else if self.keyword("SOURCE") {
                once(self, "SOURCE")?;
                self.skip_ws();
                op.source = Some(self.iri(prefixes, base)?);
            } else if self.keywords(&["AS", "EXAMPLE"]) {
                once(self, "AS EXAMPLE")?;
                op.example = true;
            } else {
                return Err(self.error(format!(
                    "unexpected {:?} after INSERT TEXT (expected INTO GRAPH, SCHEMA, ALIGN, REFINE, SOURCE, AS EXAMPLE or ';')",
                    self.rest().chars().take(20).collect::<String>()
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(update: &str) -> InsertText {
        match parse(update, None).unwrap().as_slice() {
            [Operation::InsertText(op)] => op.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn plain_updates_pass_through_unchanged() {
        let u =
            "PREFIX ex: <http://e/> INSERT DATA { ex:a ex:b \"x;y\" } ; DELETE WHERE { ?s ?p ?o }";
        assert_eq!(
            parse(u, None).unwrap(),
            vec![Operation::Standard(u.to_owned())]
        );
        // "text" as a variable or inside a string is not the keyword.
        let u = "INSERT { ?s <http://e/p> \"INSERT TEXT\" } WHERE { ?s ?text ?o }";
        assert_eq!(
            parse(u, None).unwrap(),
            vec![Operation::Standard(u.to_owned())]
        );
    }

    #[test]
    fn the_design_example() {
        let u = r#"PREFIX ex: <http://example.org/>
INSERT TEXT """Alan Shepard was born on Nov 18, 1923; selected by NASA in 1959.
He was a member of the Apollo 14 crew.""" INTO GRAPH ex:astronauts ;
INSERT DATA { GRAPH ex:notes { ex:a ex:b ex:c } }"#;
        let ops = parse(u, None).unwrap();
        assert_eq!(ops.len(), 2);
        let Operation::InsertText(t) = &ops[0] else {
            panic!()
        };
        assert!(t
            .text
            .starts_with("Alan Shepard was born on Nov 18, 1923; selected"));
        assert!(t.text.ends_with("Apollo 14 crew."));
        assert_eq!(
            t.graph.as_ref().map(|g| g.as_str()),
            Some("http://example.org/astronauts")
        );
        let Operation::Standard(s) = &ops[1] else {
            panic!()
        };
        assert!(s.contains("PREFIX ex: <http://example.org/>"));
        assert!(s.ends_with("INSERT DATA { GRAPH ex:notes { ex:a ex:b ex:c } }"));
    }

    #[test]
    fn every_option_and_string_form() {
        let t = one("insert text 'short'@en into graph <http://e/g>");
        assert_eq!(t.text, "short");
        assert_eq!(t.graph.unwrap().as_str(), "http://e/g");
        let t = one(r#"INSERT TEXT "tab\tquote\" \u00e9\U0001F600" ALIGN target"#);
        assert_eq!(t.text, "tab\tquote\" é😀");
        assert_eq!(t.align, Align::Target);
        let t = one(
            "BASE <http://b/> PREFIX s: <schema/> INSERT TEXT '''multi\nline''' INTO GRAPH <g> SCHEMA s:main ALIGN SELF REFINE 2 SOURCE <doc/1> as example",
        );
        assert_eq!(t.text, "multi\nline");
        assert_eq!(t.graph.unwrap().as_str(), "http://b/g");
        assert_eq!(t.schema.unwrap().as_str(), "http://b/schema/main");
        assert_eq!(t.align, Align::SelfCanonical);
        assert_eq!(t.refine, 2);
        assert_eq!(t.source.unwrap().as_str(), "http://b/doc/1");
        assert!(t.example);
        assert!(!one("INSERT TEXT 'x'").example);
        let t = one("INSERT TEXT \"x\"^^<http://www.w3.org/2001/XMLSchema#string>");
        assert_eq!(t.text, "x");
        match parse("DROP SOURCE <http://e/s1>", None).unwrap().as_slice() {
            [Operation::DropSource(s)] => assert_eq!(s.as_str(), "http://e/s1"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_say_where() {
        for (u, needle) in [
            ("INSERT TEXT \"unterminated", "unterminated string"),
            ("INSERT TEXT 42", "expects a string"),
            ("INSERT TEXT \"x\" INTO GRAPH ex:g", "undeclared prefix"),
            ("INSERT TEXT \"x\" ALIGN SIDEWAYS", "TARGET or SELF"),
            ("INSERT TEXT \"x\" REFINE 99", "at most"),
            ("INSERT TEXT \"x\" REFINE 1 REFINE 2", "twice"),
            ("INSERT TEXT \"x\" INTO GRAPH <relative>", "relative"),
            ("INSERT TEXT \"x\" WHERE {}", "unexpected"),
            ("DROP SOURCE", "expected"),
            ("INSERT TEXT \"bad \\q escape\"", "invalid escape"),
            ("INSERT TEXT \"line\nbreak\"", "line break"),
        ] {
            let e = parse(u, None).unwrap_err();
            assert!(e.to_string().contains(needle), "{u}: {e}");
            assert!(e.line >= 1 && e.column >= 1);
        }
        let huge = format!("INSERT TEXT \"{}\"", "a".repeat(MAX_TEXT_BYTES + 10));
        assert!(parse(&huge, None).unwrap_err().message.contains("cap"));
    }

    /// Random splices of the grammar's pieces and hostile bytes: the parser answers every one
    /// with operations or an error, never a panic.
    #[test]
    fn random_inputs_never_panic() {
        let pieces = [
            "INSERT",
            " TEXT ",
            "\"",
            "'''",
            "\"\"\"",
            "\\",
            "\\u00",
            "\\U0001F6",
            "é",
            "😀",
            " INTO GRAPH ",
            "<http://e/g>",
            "<",
            ">",
            "ex:",
            "PREFIX ex: <http://e/> ",
            "BASE ",
            " SCHEMA ",
            " ALIGN ",
            "SELF",
            " REFINE ",
            "9",
            "99999999999999999999",
            " SOURCE ",
            " AS EXAMPLE ",
            ";",
            "{",
            "}",
            "#",
            "\n",
            "DROP SOURCE ",
            "@en",
            "^^",
            "INSERT DATA { <a> <b> <c> }",
        ];
        let mut x = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let mut s = String::new();
            for _ in 0..next() % 12 {
                s.push_str(pieces[(next() % pieces.len() as u64) as usize]);
            }
            let _ = parse(&s, None);
            let _ = parse(&s, Some("http://base/"));
        }
    }
}
