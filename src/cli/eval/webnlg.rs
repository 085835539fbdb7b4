//! The WebNLG text-to-triples metric (Partial, Strict, Exact, and Ent_type), ported from the
//! evaluation script of the EDC benchmark (itself adapted from the WebNLG challenge's script),
//! step for step, including its quirks, so that scores are comparable with published ones.
//!
//! Entry point: [`score`]. Per text, the shorter of the predicted and gold lists is padded
//! with empty triples; every (predicted, gold) pair is scored by token spans over subject,
//! predicate and object (the reference's n-gram matching, then `nervaluate` 0.1.8's counting);
//! the pairs are assigned one to one to maximise the sum of the mean of the four F1 scores
//! (the reference enumerates permutations; the Hungarian method finds the same optimum); and
//! the reported precision, recall and F1 of each mode are means over all assigned pairs.
//!
//! Where this port differs: `nltk.word_tokenize` is reproduced by the Treebank rules of
//! `NLTKWordTokenizer` without Punkt sentence splitting first (triple elements are short
//! phrases); `unidecode` is `deunicode`; among assignments with the same total the reference
//! keeps the first permutation, the Hungarian method may keep another.

use fancy_regex::{Captures, Regex};
use std::sync::OnceLock;

/// Counts and scores of one mode.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ModeScore {
    /// Exactly matching spans.
    pub correct: usize,
    /// Spans with the wrong boundary or label.
    pub incorrect: usize,
    /// Overlapping spans.
    pub partial: usize,
    /// Gold spans not predicted.
    pub missed: usize,
    /// Predicted spans matching nothing.
    pub spurious: usize,
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1.
    pub f1: f64,
}

/// The four modes of one pair (or their means over many pairs).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PairScore {
    /// Span and type.
    pub ent_type: ModeScore,
    /// Overlap counts half.
    pub partial: ModeScore,
    /// Exact span and type.
    pub strict: ModeScore,
    /// Exact span.
    pub exact: ModeScore,
}

impl PairScore {
    fn weight(&self) -> f64 {
        (self.ent_type.f1 + self.partial.f1 + self.strict.f1 + self.exact.f1) / 4.0
    }
}

/// Scores over a whole set.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    /// Means of precision, recall and F1 per mode; sums of the counts.
    pub scores: PairScore,
    /// Number of assigned pairs.
    pub pairs: usize,
}

/// A triple as strings.
pub type Triple = [String; 3];

/// Scores predictions against gold triples, one list per text.
pub fn score(predicted: &[Vec<Triple>], gold: &[Vec<Triple>]) -> Totals {
    let mut selected: Vec<PairScore> = Vec::new();
    for (p, g) in predicted.iter().zip(gold) {
        let mut cands: Vec<String> = p.iter().map(normalize).collect();
        let mut refs: Vec<String> = g.iter().map(normalize).collect();
        let n = cands.len().max(refs.len());
        cands.resize(n, String::new());
        refs.resize(n, String::new());
        if n == 0 {
            continue;
        }
        let pair: Vec<Vec<PairScore>> = cands
            .iter()
            .map(|c| refs.iter().map(|r| evaluate_pair(r, c)).collect())
            .collect();
        let weights: Vec<Vec<f64>> = pair
            .iter()
            .map(|row| row.iter().map(PairScore::weight).collect())
            .collect();
        for (i, j) in assign_max(&weights).into_iter().enumerate() {
            selected.push(pair[i][j]);
        }
    }
    let n = selected.len().max(1) as f64;
    let mean = |f: &dyn Fn(&PairScore) -> ModeScore| -> ModeScore {
        let mut m = ModeScore::default();
        for s in &selected {
            let x = f(s);
            m.correct += x.correct;
            m.incorrect += x.incorrect;
            m.partial += x.partial;
            m.missed += x.missed;
            m.spurious += x.spurious;
            m.precision += x.precision / n;
            m.recall += x.recall / n;
            m.f1 += x.f1 / n;
        }
        m
    };
    Totals {
        scores: PairScore {
            ent_type: mean(&|s| s.ent_type),
            partial: mean(&|s| s.partial),
            strict: mean(&|s| s.strict),
            exact: mean(&|s| s.exact),
        },
        pairs: selected.len(),
    }
}

fn re(pattern: &str) -> Regex {
    match Regex::new(pattern) {
        Ok(r) => r,
        // The patterns are constants of this file, covered by its tests.
        Err(e) => unreachable!("invalid built-in pattern {pattern}: {e}"),
    }
}

fn replace_all(r: &Regex, text: &str, rep: impl Fn(&Captures<'_>) -> String) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut last = 0;
    let mut at = 0;
    while at <= text.len() {
        let Ok(Some(c)) = r.captures_from_pos(text, at) else {
            break;
        };
        let Some(m) = c.get(0) else { break };
        out.push_str(&text[last..m.start()]);
        out.push_str(&rep(&c));
        last = m.end();
        at = if m.end() == m.start() {
            // Step over an empty match.
            match text[m.end()..].chars().next() {
                Some(ch) => {
                    out.push(ch);
                    last = m.end() + ch.len_utf8();
                    m.end() + ch.len_utf8()
                }
                None => break,
            }
        } else {
            m.end()
        };
    }
    out.push_str(&text[last.min(text.len())..]);
    out
}

fn g(c: &Captures<'_>, i: usize) -> String {
    c.get(i).map_or(String::new(), |m| m.as_str().to_owned())
}

/// The reference's normalisation of one triple: camelCase split, lower case, `_` as space,
/// whitespace collapsed, ASCII transliteration, a trailing `(...)` dropped from the object.
fn normalize(t: &Triple) -> String {
    static CAMEL: OnceLock<Regex> = OnceLock::new();
    static SPACES: OnceLock<Regex> = OnceLock::new();
    static PAREN: OnceLock<Regex> = OnceLock::new();
    let joined = format!("{} | {} | {}", t[0], t[1], t[2]);
    let camel = CAMEL.get_or_init(|| re("([a-z])([A-Z])"));
    let s = replace_all(camel, &joined, |c| format!("{} {}", g(c, 1), g(c, 2))).to_lowercase();
    let s = s.replace('_', " ");
    let s = replace_all(SPACES.get_or_init(|| re(r"\s+")), &s, |_| " ".into());
    let s = deunicode::deunicode(&s);
    let mut parts: Vec<String> = s.split(" | ").map(str::to_owned).collect();
    if let Some(last) = parts.last_mut() {
        let paren = PAREN.get_or_init(|| re(r"^(.*?)(\s\((.*?)\))$"));
        if let Ok(Some(c)) = paren.captures(last) {
            *last = g(&c, 1);
            return parts.join(" | ");
        }
    }
    s
}

const PUNCT: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

fn is_punct(c: char) -> bool {
    PUNCT.contains(c)
}

/// `nltk.word_tokenize` for a short phrase: the `NLTKWordTokenizer` rules.
pub fn word_tokenize(text: &str) -> Vec<String> {
    struct Rules {
        starting: Vec<(Regex, &'static str)>,
        punctuation: Vec<(Regex, &'static str)>,
        parens: Regex,
        dashes: Regex,
        ending: Vec<(Regex, &'static str)>,
        contractions: Vec<Regex>,
    }
    static RULES: OnceLock<Rules> = OnceLock::new();
    let r = RULES.get_or_init(|| Rules {
        starting: vec![
            (re("([«“‘„]|[`]+)"), " $1 "),
            (re(r#"^""#), "``"),
            (re("(``)"), " $1 "),
            (re(r#"([ \(\[{<])("|'{2})"#), "$1 `` "),
            (
                re(r"(?i)(?<!\w)(')(?!(?:re|ve|ll|m|t|s|d|n)\b)(?=\w)"),
                "$1 ",
            ),
        ],
        punctuation: vec![
            (re(r#"([^\.])(\.)([\]\)}>"'»”’ ]*)\s*$"#), "$1 $2 $3 "),
            (re(r"([:,])([^\d])"), " $1 $2"),
            (re(r"([:,])$"), " $1 "),
            (re(r"\.{2,}"), " $0 "),
            (re(r"[;@#$%&]"), " $0 "),
            (re("[\u{2012}-\u{2015}]"), " $0 "),
            (re(r#"([^\.])(\.)([\]\)}>"']*)\s*$"#), "$1 $2$3 "),
            (re(r"[?!]"), " $0 "),
            (re(r"([^'])' "), "$1 ' "),
            (re(r"[*]"), " $0 "),
        ],
        parens: re(r"[\]\[\(\)\{\}\<\>]"),
        dashes: re("--"),
        ending: vec![
            (re("([»”’])"), " $1 "),
            (re("''"), " '' "),
            (re("\""), " '' "),
            (re(r"\s+"), " "),
            (re(r"([^' ])('[sS]|'[mM]|'[dD]|') "), "$1 $2 "),
            (re(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), "$1 $2 "),
        ],
        contractions: [
            r"(?i)\b(can)(not)\b",
            r"(?i)\b(d)('ye)\b",
            r"(?i)\b(gim)(me)\b",
            r"(?i)\b(gon)(na)\b",
            r"(?i)\b(got)(ta)\b",
            r"(?i)\b(lem)(me)\b",
            r"(?i)\b(more)('n)\b",
            r"(?i)\b(wan)(na)(?=\s)",
            r"(?i) ('t)(is)\b",
            r"(?i) ('t)(was)\b",
        ]
        .iter()
        .map(|p| re(p))
        .collect(),
    });
    let sub = |text: &str, rule: &Regex, template: &str| {
        replace_all(rule, text, |c| {
            let mut out = String::new();
            let mut chars = template.chars().peekable();
            while let Some(ch) = chars.next() {
                if ch == '$' {
                    if let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                        chars.next();
                        out.push_str(&g(c, d as usize));
                        continue;
                    }
                }
                out.push(ch);
            }
            out
        })
    };
    let mut t = text.to_owned();
    for (rule, template) in &r.starting {
        t = sub(&t, rule, template);
    }
    for (rule, template) in &r.punctuation {
        t = sub(&t, rule, template);
    }
    t = sub(&t, &r.parens, " $0 ");
    t = sub(&t, &r.dashes, " -- ");
    t = format!(" {t} ");
    for (rule, template) in &r.ending {
        t = sub(&t, rule, template);
    }
    for rule in &r.contractions {
        t = sub(&t, rule, " $1 $2 ");
    }
    t.split_whitespace().map(str::to_owned).collect()
}

/// Tokens of one element, with the reference's punctuation filter.
#[derive(Clone, Copy)]
enum Filter {
    /// Drop tokens made only of punctuation (the reference side).
    Only,
    /// Drop single punctuation characters (the candidate side).
    Single,
    /// Drop tokens holding any punctuation (the switched comparisons).
    Any,
}

fn tokens(text: &str, filter: Filter) -> Vec<String> {
    word_tokenize(text)
        .into_iter()
        .filter(|w| match filter {
            Filter::Only => w.is_empty() || !w.chars().all(is_punct),
            Filter::Single => !(w.chars().count() == 1 && w.chars().all(is_punct)),
            Filter::Any => !w.chars().any(is_punct),
        })
        .map(|w| w.to_lowercase())
        .collect()
}

fn find_sub_list(sl: &[String], l: &[String]) -> Option<(usize, usize)> {
    let first = sl.first()?;
    (0..l.len())
        .filter(|&i| &l[i] == first)
        .find(|&i| l.get(i..i + sl.len()) == Some(sl))
        .map(|i| (i, i + sl.len() - 1))
}

/// The reference's `nonrefwords`: marks matching n-grams, longest first, recursing after each
/// match with the same length (its found-number counter is per call, as in the reference).
fn nonrefwords(refs: &mut [String], cands: &mut [String], mut found: usize, mut n: usize) {
    while n > 0 {
        let grams: Vec<Vec<String>> = if n <= cands.len() {
            cands.windows(n).map(<[String]>::to_vec).collect()
        } else {
            Vec::new()
        };
        for gram in grams {
            let Some((rs, re_)) = find_sub_list(&gram, refs) else {
                continue;
            };
            let ref_index: Vec<usize> = (rs..=re_).collect();
            for &i in &ref_index {
                refs[i] = format!("FOUNDREF-{found}-{i}");
            }
            // The reference would fail here if the n-gram vanished from the candidate in a
            // recursive call; it never does on real data, and skipping is the safe reading.
            let Some((cs, ce)) = find_sub_list(&gram, cands) else {
                continue;
            };
            for (k, i) in (cs..=ce).enumerate() {
                cands[i] = format!("FOUNDCAND-{found}-{}", ref_index[k]);
            }
            found += 1;
            nonrefwords(refs, cands, found, n);
        }
        n -= 1;
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Span {
    label: &'static str,
    start: i64,
    end: i64,
}

struct RefDict {
    found: bool,
    refs: Vec<Span>,
    cands: Vec<Span>,
    total: i64,
}

/// `FOUNDCAND-12` of `FOUNDCAND-12-3` (the reference's `^((.*?)-\d+)`).
fn head(s: &str) -> &str {
    let b = s.as_bytes();
    for i in 0..b.len() {
        if b[i] == b'-' && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
            let mut j = i + 1;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            return &s[..j];
        }
    }
    s
}

fn i64_of(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The reference's `getrefdict`.
fn getrefdict(
    refs: &[String],
    cands: &mut [String],
    ref_label: &'static str,
    cand_label: &'static str,
    base: i64,
) -> RefDict {
    let first_found = cands.iter().position(|c| c.starts_with("FOUNDCAND"));
    let Some(first_found) = first_found else {
        let (nr, nc) = (i64_of(refs.len()), i64_of(cands.len()));
        return if refs.is_empty() {
            RefDict {
                found: false,
                refs: vec![],
                cands: vec![Span {
                    label: cand_label,
                    start: base,
                    end: base + nc - 1,
                }],
                total: nc,
            }
        } else if cands.is_empty() {
            RefDict {
                found: false,
                refs: vec![Span {
                    label: ref_label,
                    start: base,
                    end: base + nr - 1,
                }],
                cands: vec![],
                // The reference returns its one-element list of spans here.
                total: 1,
            }
        } else {
            RefDict {
                found: false,
                refs: vec![Span {
                    label: ref_label,
                    start: base,
                    end: base + nr - 1,
                }],
                cands: vec![Span {
                    label: cand_label,
                    start: base + nr,
                    end: base + nr + nc - 1,
                }],
                total: nr + nc,
            }
        };
    };
    let before_linked = cands[first_found].ends_with("-0");
    let first_cand = head(&cands[first_found]).to_owned();
    let mut last_found_idx: Option<usize> = None;
    let mut last_cand = String::new();
    if refs.last().is_some_and(|r| r.starts_with("FOUNDREF"))
        && !cands.last().is_some_and(|c| c.starts_with("FOUNDCAND"))
    {
        let last_found = cands
            .iter()
            .rev()
            .find(|c| c.starts_with("FOUNDCAND"))
            .cloned()
            .unwrap_or_default();
        let cand_version = refs
            .last()
            .map(|r| r.replace("FOUNDREF", "FOUNDCAND"))
            .unwrap_or_default();
        if last_found == cand_version {
            last_found_idx = cands.iter().position(|c| *c == last_found);
            last_cand = head(&last_found).to_owned();
        }
    }
    let mut before = Vec::new();
    let mut after = Vec::new();
    let mut unlinked = Vec::new();
    let mut unlink = 1;
    #[allow(clippy::needless_range_loop)] // the reference's loop, index and all
    for idx in 0..cands.len() {
        if !cands[idx].starts_with("FOUNDCAND") {
            if idx < first_found && before_linked {
                cands[idx] = format!("{first_cand}-LINKED");
                before.push(cands[idx].clone());
            } else if last_found_idx.is_some_and(|l| idx > l) {
                cands[idx] = format!("{last_cand}-LINKED");
                after.push(cands[idx].clone());
            } else {
                unlinked.push(format!("NOTFOUND-{unlink}"));
            }
        } else {
            unlink += 1;
        }
    }
    let total: Vec<String> = before
        .iter()
        .chain(refs)
        .chain(&after)
        .chain(&unlinked)
        .map(|x| x.replace("FOUNDREF", "FOUNDCAND"))
        .collect();
    let ref_start = i64_of(before.len());
    let ref_end = i64_of(before.len() + refs.len()) - 1;
    let ref_spans = vec![Span {
        label: ref_label,
        start: base + ref_start,
        end: base + ref_end,
    }];
    let mut cand_spans = Vec::new();
    let mut current = String::new();
    let mut begin: i64 = 0;
    let mut collecting = false;
    let last = total.len().saturating_sub(1);
    for (idx, c) in total.iter().enumerate() {
        let idx_i = i64_of(idx);
        if c.starts_with("FOUNDCAND") || c.starts_with("NOTFOUND") {
            collecting = true;
            let cur = head(c);
            if cur != current {
                if !current.is_empty() {
                    cand_spans.push(Span {
                        label: cand_label,
                        start: base + begin,
                        end: base + idx_i - 1,
                    });
                }
                current = cur.to_owned();
                begin = idx_i;
            }
            if idx == last {
                cand_spans.push(Span {
                    label: cand_label,
                    start: base + begin,
                    end: base + idx_i,
                });
            }
        } else if collecting {
            cand_spans.push(Span {
                label: cand_label,
                start: base + begin,
                end: base + idx_i - 1,
            });
        }
    }
    RefDict {
        found: true,
        refs: ref_spans,
        cands: cand_spans,
        total: i64_of(total.len()),
    }
}

/// Matches the tokens of `refsub` and `candsub` and builds their spans.
fn compare(
    refsub: &str,
    candsub: &str,
    filters: (Filter, Filter),
    labels: (&'static str, &'static str),
    base: i64,
) -> (RefDict, Vec<String>, Vec<String>) {
    let mut refs = tokens(refsub, filters.0);
    let mut cands = tokens(candsub, filters.1);
    let n = cands.len();
    nonrefwords(&mut refs, &mut cands, 1, n);
    let d = getrefdict(&refs, &mut cands, labels.0, labels.1, base);
    (d, refs, cands)
}

/// The reference's `evaluaterefcand` for one normalised pair.
fn evaluate_pair(reference: &str, candidate: &str) -> PairScore {
    let mut r: Vec<String> = reference.split(" | ").map(str::to_owned).collect();
    let mut c: Vec<String> = candidate.split(" | ").map(str::to_owned).collect();
    let blank = || vec![String::new(); 3];
    let index_len = if r.len() > 1 && c.len() > 1 {
        r.len()
    } else if r.len() == 1 {
        r = blank();
        c.len()
    } else {
        c = blank();
        r.len()
    };
    let at = |v: &Vec<String>, i: usize| v.get(i).cloned().unwrap_or_default();
    let strict = (Filter::Only, Filter::Single);
    let mut parts: [Option<RefDict>; 3] = [None, None, None];
    for idx in 0..index_len {
        let slot = idx.min(2);
        let base = match slot {
            0 => 0,
            1 => parts[0].as_ref().map_or(0, |p| p.total),
            _ => {
                parts[0].as_ref().map_or(0, |p| p.total) + parts[1].as_ref().map_or(0, |p| p.total)
            }
        };
        let label = ["SUB", "PRED", "OBJ"][slot];
        let (d, _, _) = compare(&at(&r, idx), &at(&c, idx), strict, (label, label), base);
        parts[slot] = Some(d);
    }
    let found = |p: &Option<RefDict>| p.as_ref().is_some_and(|d| d.found);
    let total = |p: &Option<RefDict>| p.as_ref().map_or(0, |d| d.total);
    let any = (Filter::Any, Filter::Any);
    let mut switched = false;
    if !found(&parts[0]) && !found(&parts[2]) {
        let (d1, _, _) = compare(&at(&r, 0), &at(&c, 2), any, ("SUB", "OBJ"), 0);
        let (d2, refs2, mut cands2) = compare(
            &at(&r, 2),
            &at(&c, 0),
            any,
            ("OBJ", "SUB"),
            d1.total + total(&parts[1]),
        );
        if d1.found || d2.found {
            let sub_total = d1.total;
            parts[0] = Some(d1);
            parts[2] = Some(d2);
            // The reference recomputes the predicate from the lists it just used.
            parts[1] = Some(getrefdict(&refs2, &mut cands2, "PRED", "PRED", sub_total));
            switched = true;
        }
    }
    if !found(&parts[0]) && !found(&parts[1]) && !switched {
        let (d1, _, _) = compare(&at(&r, 0), &at(&c, 1), any, ("SUB", "PRED"), 0);
        let (d2, _, _) = compare(&at(&r, 1), &at(&c, 0), any, ("PRED", "SUB"), d1.total);
        if d1.found || d2.found {
            parts[0] = Some(d1);
            parts[1] = Some(d2);
            switched = true;
        }
    }
    if !found(&parts[1]) && !found(&parts[2]) && !switched {
        let sub_total = total(&parts[0]);
        let (d1, _, _) = compare(&at(&r, 1), &at(&c, 2), any, ("PRED", "OBJ"), sub_total);
        let (d2, _, _) = compare(
            &at(&r, 2),
            &at(&c, 1),
            any,
            ("OBJ", "PRED"),
            sub_total + d1.total,
        );
        if d1.found || d2.found {
            parts[1] = Some(d1);
            parts[2] = Some(d2);
        }
    }
    let mut true_spans = Vec::new();
    let mut pred_spans = Vec::new();
    for p in parts.into_iter().flatten() {
        true_spans.extend(p.refs);
        pred_spans.extend(p.cands);
    }
    nervaluate(&true_spans, &pred_spans)
}

/// `nervaluate` 0.1.8's `compute_metrics` and precision/recall for one document.
fn nervaluate(truth: &[Span], pred: &[Span]) -> PairScore {
    let mut s = PairScore::default();
    let mut overlapped: Vec<Span> = Vec::new();
    for p in pred {
        if truth.contains(p) {
            overlapped.push(p.clone());
            for m in [&mut s.strict, &mut s.ent_type, &mut s.exact, &mut s.partial] {
                m.correct += 1;
            }
            continue;
        }
        let mut found = false;
        for t in truth {
            let overlap =
                t.start.max(p.start) <= t.end.min(p.end) && t.start <= t.end && p.start <= p.end;
            if t.start == p.start && t.end == p.end && t.label != p.label {
                s.strict.incorrect += 1;
                s.ent_type.incorrect += 1;
                s.partial.correct += 1;
                s.exact.correct += 1;
                overlapped.push(t.clone());
                found = true;
                break;
            } else if overlap && !overlapped.contains(t) {
                overlapped.push(t.clone());
                s.strict.incorrect += 1;
                s.partial.partial += 1;
                s.exact.incorrect += 1;
                if p.label == t.label {
                    s.ent_type.correct += 1;
                } else {
                    s.ent_type.incorrect += 1;
                }
                found = true;
                break;
            }
        }
        if !found {
            for m in [&mut s.strict, &mut s.ent_type, &mut s.exact, &mut s.partial] {
                m.spurious += 1;
            }
        }
    }
    for t in truth {
        if !overlapped.contains(t) {
            for m in [&mut s.strict, &mut s.ent_type, &mut s.exact, &mut s.partial] {
                m.missed += 1;
            }
        }
    }
    let pr = |m: &mut ModeScore, half: bool| {
        let actual = m.correct + m.incorrect + m.partial + m.spurious;
        let possible = m.correct + m.incorrect + m.partial + m.missed;
        let hit = m.correct as f64 + if half { 0.5 * m.partial as f64 } else { 0.0 };
        m.precision = if actual > 0 { hit / actual as f64 } else { 0.0 };
        m.recall = if possible > 0 {
            hit / possible as f64
        } else {
            0.0
        };
        m.f1 = if m.precision + m.recall > 0.0 {
            2.0 * m.precision * m.recall / (m.precision + m.recall)
        } else {
            0.0
        };
    };
    pr(&mut s.partial, true);
    pr(&mut s.ent_type, true);
    pr(&mut s.strict, false);
    pr(&mut s.exact, false);
    s
}

/// Maximum-weight perfect assignment on a square matrix (Hungarian method, O(n^3)); returns
/// the column of each row.
fn assign_max(w: &[Vec<f64>]) -> Vec<usize> {
    let n = w.len();
    if n == 0 {
        return Vec::new();
    }
    // Minimise the negated weights; 1-based arrays as in the classic formulation.
    let cost = |i: usize, j: usize| -w[i - 1][j - 1];
    let mut u = vec![0.0; n + 1];
    let mut v = vec![0.0; n + 1];
    let mut p = vec![0usize; n + 1];
    let mut way = vec![0usize; n + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        let mut minv = vec![f64::INFINITY; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0;
            for j in 1..=n {
                if !used[j] {
                    let cur = cost(i0, j) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut col = vec![0; n];
    for j in 1..=n {
        if p[j] > 0 {
            col[p[j] - 1] = j - 1;
        }
    }
    col
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str, r: &str, o: &str) -> Triple {
        [s.into(), r.into(), o.into()]
    }

    #[test]
    fn tokenizer_follows_nltk() {
        assert_eq!(word_tokenize("\"1983-10-03\""), ["``", "1983-10-03", "''"]);
        assert_eq!(
            word_tokenize("alan b. miller hall"),
            ["alan", "b.", "miller", "hall"]
        );
        assert_eq!(word_tokenize("it's done."), ["it", "'s", "done", "."]);
        assert_eq!(word_tokenize("(millimetres)"), ["(", "millimetres", ")"]);
        assert_eq!(word_tokenize("a, b"), ["a", ",", "b"]);
        assert_eq!(word_tokenize("cannot"), ["can", "not"]);
    }

    #[test]
    fn normalisation_follows_the_reference() {
        assert_eq!(
            normalize(&t(
                "Alan_B._Miller_Hall",
                "currentTenants",
                "17068.8 (millimetres)"
            )),
            "alan b. miller hall | current tenants | 17068.8"
        );
        assert_eq!(normalize(&t("Ærø", "x", "y")), "aero | x | y");
    }

    #[test]
    fn identical_and_disjoint_pairs() {
        let gold = vec![vec![t("Alan_Shepard", "birthPlace", "New_Hampshire")]];
        let same = score(&gold, &gold);
        assert!((same.scores.strict.f1 - 1.0).abs() < 1e-12);
        assert!((same.scores.partial.f1 - 1.0).abs() < 1e-12);
        let other = vec![vec![t("Paris", "capitalOf", "France")]];
        let none = score(&other, &gold);
        assert!(none.scores.strict.f1 < 1e-12);
        // A missing prediction is an empty triple paired with the gold one.
        let missing = score(&[vec![]], &gold);
        assert_eq!(missing.pairs, 1);
        assert!(missing.scores.partial.f1 < 1e-12);
    }

    #[test]
    fn hungarian_finds_the_best_assignment() {
        let w = vec![
            vec![0.1, 0.9, 0.0],
            vec![0.8, 0.7, 0.1],
            vec![0.0, 0.2, 0.3],
        ];
        assert_eq!(assign_max(&w), [1, 0, 2]);
        // Brute force agrees on random matrices.
        let mut x = 12345u64;
        for n in 1..6 {
            for _ in 0..20 {
                let w: Vec<Vec<f64>> = (0..n)
                    .map(|_| {
                        (0..n)
                            .map(|_| {
                                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                                (x >> 40) as f64 / (1u64 << 24) as f64
                            })
                            .collect()
                    })
                    .collect();
                let got: f64 = assign_max(&w)
                    .iter()
                    .enumerate()
                    .map(|(i, &j)| w[i][j])
                    .sum();
                let best = permutations(n)
                    .iter()
                    .map(|p| p.iter().enumerate().map(|(i, &j)| w[i][j]).sum::<f64>())
                    .fold(f64::NEG_INFINITY, f64::max);
                assert!((got - best).abs() < 1e-9, "{got} vs {best}");
            }
        }
    }

    fn permutations(n: usize) -> Vec<Vec<usize>> {
        if n == 0 {
            return vec![vec![]];
        }
        let mut out = Vec::new();
        for p in permutations(n - 1) {
            for k in 0..=p.len() {
                let mut q = p.clone();
                q.insert(k, n - 1);
                out.push(q);
            }
        }
        out
    }
}
