//! The names and numbers a text writes (its anchors), and which of them a list of triples
//! leaves out: text only, no model. The cover pass ([`crate::cover`]) gives the ones left out
//! back to the model, and [`crate::names`] finds a name's whole mention among them. A module
//! of its own so that the fuzz targets can compile it with the name checks. Entry points:
//! [`anchors`] and [`uncovered`].

use crate::words::words;
use std::collections::HashSet;

/// Most names given back for one chunk.
pub const MAX_ANCHORS: usize = 6;

/// Lower-case words that join the capitalised words of one name ("Republic of China",
/// "Coaracy da Mata Fonseca").
const CONNECTORS: &[&str] = &[
    "of", "de", "da", "do", "dos", "das", "del", "della", "di", "du", "la", "le", "von", "van",
    "der", "den", "y", "al", "el",
];

/// Capitalised words that are not names on their own.
const NOT_NAMES: &[&str] = &[
    "the", "a", "an", "this", "that", "these", "those", "it", "its", "he", "she", "his", "her",
    "they", "their", "we", "our", "i", "in", "on", "at", "by", "for", "from", "with", "as", "and",
    "but", "or", "also", "after", "before", "during", "since", "there", "here", "when", "while",
    "although", "however", "both",
];

/// One word of the text with what follows it.
#[derive(Debug)]
struct Word<'a> {
    text: &'a str,
    /// Byte offset of the word in the text.
    at: usize,
    /// Punctuation after it ends a name (a comma, a bracket, a sentence end).
    breaks: bool,
    /// A comma right after it.
    comma: bool,
    /// The first word of a sentence.
    starts_sentence: bool,
}

fn split_words(text: &str) -> Vec<Word<'_>> {
    let mut out: Vec<Word<'_>> = Vec::new();
    let mut sentence_start = true;
    for raw in text.split_whitespace() {
        let raw_at = raw.as_ptr() as usize - text.as_ptr() as usize;
        let lead = raw
            .char_indices()
            .find(|(_, c)| c.is_alphanumeric())
            .map(|(i, _)| i);
        let Some(lead) = lead else {
            // Punctuation alone ("-", "(") breaks a name.
            if let Some(last) = out.last_mut() {
                last.breaks = true;
            }
            sentence_start |= raw.ends_with(['.', '!', '?']);
            continue;
        };
        if lead > 0 {
            if let Some(last) = out.last_mut() {
                last.breaks = true;
            }
        }
        // A sign belongs to its number ("UTC offset of -6").
        let lead = if lead > 0
            && raw[..lead].ends_with(['-', '+', '\u{2212}'])
            && raw[lead..].starts_with(|c: char| c.is_ascii_digit())
        {
            raw[..lead]
                .char_indices()
                .next_back()
                .map_or(lead, |(i, _)| i)
        } else {
            lead
        };
        let body = &raw[lead..];
        // Trailing punctuation, keeping the dots of initials and abbreviations ("A.M.", "Jr.").
        let end = body
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_alphanumeric())
            .map_or(0, |(i, c)| i + c.len_utf8());
        let word = &body[..end];
        let tail = &body[end..];
        let initial = word.chars().count() <= 2 || word.contains('.');
        let ends_sentence =
            tail.contains(['!', '?']) || (tail.starts_with('.') && !(initial && tail == "."));
        let (word, breaks) = if tail == "." && initial && !ends_sentence {
            (&body[..end + 1], false)
        } else {
            (
                word,
                !tail.is_empty() && !tail.starts_with(['\'', '\u{2019}']),
            )
        };
        out.push(Word {
            text: word,
            at: raw_at + lead,
            breaks: breaks || ends_sentence,
            comma: tail.starts_with(','),
            starts_sentence: sentence_start,
        });
        sentence_start = ends_sentence;
    }
    out
}

fn capitalised(w: &str) -> bool {
    w.chars().next().is_some_and(char::is_uppercase)
}

fn has_digit(w: &str) -> bool {
    w.chars().any(|c| c.is_ascii_digit())
}

fn is_ordinal(w: &str) -> bool {
    let lower = w.to_lowercase();
    ["st", "nd", "rd", "th"].iter().any(|s| {
        lower
            .strip_suffix(s)
            .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
    })
}

fn is_month(w: &str) -> bool {
    crate::literal::month(w).is_some()
}

/// The names and numbers `text` writes, in order, once each: runs of capitalised words
/// (joined by connectors such as "of", with numbers inside or in front: "Apollo 14", "1147
/// Stavropolis"), dates written with a month name, and numbers. A capitalised word alone at
/// the start of a sentence is a name only when the text also capitalises it elsewhere.
pub(crate) fn anchors(text: &str) -> Vec<Anchor> {
    let ws = split_words(text);
    let mid_sentence_caps: HashSet<&str> = ws
        .iter()
        .filter(|w| !w.starts_sentence && capitalised(w.text))
        .map(|w| w.text)
        .collect();
    let mut out: Vec<Anchor> = Vec::new();
    let mut push = |text: String, within: Option<String>| {
        if !text.is_empty() && !out.iter().any(|a| a.text == text) {
            out.push(Anchor { text, within });
        }
    };
    // The last name and the index of its last word: a name right after it and a comma, and
    // ending there ("Valparaíso, Chile."), is in apposition to it.
    let mut last_name: Option<(String, usize)> = None;
    let mut i = 0;
    while i < ws.len() {
        let w = &ws[i];
        // A date: a month name with numbers around it ("November 18th 1923", "11 June 1929",
        // "the 30th of March, 2007").
        let month_next = |k: usize| {
            ws.get(k).is_some_and(|n| is_month(n.text))
                || (ws.get(k).is_some_and(|n| n.text == "of" && !n.breaks)
                    && ws.get(k + 1).is_some_and(|n| is_month(n.text)))
        };
        if is_month(w.text) || (has_digit(w.text) && !w.breaks && month_next(i + 1)) {
            let mut j = i;
            let mut parts = Vec::new();
            while let Some(x) = ws.get(j) {
                if !(is_month(x.text) || has_digit(x.text) || x.text == "of") {
                    break;
                }
                parts.push(x);
                j += 1;
                // "October 13, 1964", "March, 2007": a comma before the year.
                let year_next = ws.get(j).is_some_and(|n| {
                    n.text.len() == 4 && n.text.chars().all(|c| c.is_ascii_digit())
                });
                if x.breaks && !year_next {
                    break;
                }
            }
            if parts.iter().any(|p| has_digit(p.text)) {
                push(span(text, &parts), None);
                i = j;
                continue;
            }
        }
        let starts_name = capitalised(w.text)
            || (has_digit(w.text)
                && !w.breaks
                && ws
                    .get(i + 1)
                    .is_some_and(|n| capitalised(n.text) && !is_month(n.text)));
        if !starts_name {
            // A number, not an ordinal ("the 30th", "1st"), which is a part of a date or a
            // name or nothing on its own.
            if has_digit(w.text) && !is_ordinal(w.text) {
                push(w.text.to_owned(), None);
            }
            i += 1;
            continue;
        }
        // The longest run of name words from here.
        let mut j = i;
        let mut end = i;
        while let Some(x) = ws.get(j) {
            let part =
                capitalised(x.text) && !is_month(x.text) || (j > i && has_digit(x.text)) || j == i;
            // "Republic of China", "Fellowship of the Ring".
            let name_at = |k: usize| ws.get(k).is_some_and(|n| capitalised(n.text));
            let the_at = |k: usize| ws.get(k).is_some_and(|n| n.text == "the" && !n.breaks);
            let connector = j > i
                && !x.breaks
                && ((CONNECTORS.contains(&x.text)
                    && (name_at(j + 1) || (the_at(j + 1) && name_at(j + 2))))
                    || (x.text == "the" && CONNECTORS.contains(&ws[j - 1].text) && name_at(j + 1)));
            if !(part || connector) {
                break;
            }
            if part {
                end = j;
            }
            j += 1;
            if x.breaks {
                break;
            }
        }
        let mut words: Vec<&Word<'_>> = ws[i..=end].iter().collect();
        // A leading article or pronoun is not part of the name.
        while words.len() > 1 && NOT_NAMES.contains(&words[0].text.to_lowercase().as_str()) {
            words.remove(0);
        }
        let single = words.len() == 1;
        let first = words[0];
        let keep = !(single
            && (NOT_NAMES.contains(&first.text.to_lowercase().as_str())
                || (first.starts_sentence && !mid_sentence_caps.contains(first.text))));
        if keep {
            let name = span(text, &words);
            let after_comma = last_name
                .as_ref()
                .filter(|(_, e)| e + 1 == i && ws[*e].comma)
                .map(|(n, _)| n.clone());
            let ends_there = ws[end].breaks
                || ws
                    .get(end + 1)
                    .is_none_or(|n| !capitalised(n.text) && !["and", "or"].contains(&n.text));
            let within = after_comma.filter(|_| ends_there);
            push(name.clone(), within);
            last_name = Some((name, end));
        }
        i = end + 1;
    }
    out
}

/// A name or number of the text: with `within`, the name it follows in apposition
/// ("Valparaíso" for "Chile" in "from Valparaíso, Chile;"), which the text places it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Anchor {
    pub text: String,
    pub within: Option<String>,
}

/// The text from the first word to the end of the last, its white space made single spaces.
fn span(text: &str, words: &[&Word<'_>]) -> String {
    match (words.first(), words.last()) {
        (Some(a), Some(b)) => text[a.at..b.at + b.text.len()]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// The runs of digits in `s`, split at anything else: "1964-10-13" and "October 13, 1964"
/// share 13 and 1964. (The pipeline's own `digit_runs` joins digit groups, "3,990" as 3990,
/// which would read "May 2 1908" as 21908 here.)
fn digit_runs(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            cur.push(c);
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Whether some name of `triples` already holds `anchor`: every word of the anchor in one
/// name, or a name of two or more words all inside the anchor; for numbers and dates, the
/// digits (a date's year).
fn covered(anchor: &str, triples: &[[String; 3]]) -> bool {
    let names: Vec<&String> = triples.iter().flat_map(|t| [&t[0], &t[2]]).collect();
    let runs = digit_runs(anchor);
    let is_date = anchor.split_whitespace().any(is_month);
    if runs.len() == anchor.split_whitespace().count() || is_date {
        // A number or a date: its digits (a date's year) written in some name.
        let years: Vec<&String> = runs.iter().filter(|r| is_date && r.len() == 4).collect();
        let needed = if years.is_empty() {
            runs.iter().collect()
        } else {
            years
        };
        let have: HashSet<String> = names.iter().flat_map(|n| digit_runs(n)).collect();
        return needed.iter().all(|r| have.contains(*r));
    }
    let a: HashSet<String> = words(anchor).into_iter().collect();
    if a.is_empty() {
        return true;
    }
    names.iter().any(|n| {
        let w: HashSet<String> = words(n).into_iter().collect();
        a.is_subset(&w) || (w.len() >= 2 && w.is_subset(&a))
    })
}

/// The names of `text` (see [`anchors`]) that no triple holds, at most [`MAX_ANCHORS`].
pub(crate) fn uncovered(text: &str, triples: &[[String; 3]]) -> Vec<Anchor> {
    anchors(text)
        .into_iter()
        // A name in apposition is left alone: given back, the small model relates it to the
        // name before it with whatever relation its list last used (Valparaíso employer
        // Chile), and without that name to the wrong entity.
        .filter(|a| a.within.is_none() && !covered(&a.text, triples))
        .take(MAX_ANCHORS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(a: Vec<Anchor>) -> Vec<String> {
        a.into_iter().map(|a| a.text).collect()
    }

    #[test]
    fn anchors_are_names_dates_and_numbers() {
        let a = texts(anchors(
            "Born in New Hampshire on November 18th 1923 and dying in California, Alan \
             Shepard was a US national who was selected by NASA in 1959.",
        ));
        assert_eq!(
            a,
            [
                "New Hampshire",
                "November 18th 1923",
                "California",
                "Alan Shepard",
                "US",
                "NASA",
                "1959"
            ]
        );
        let a = texts(anchors(
            "Nie Haisheng was born in Hubei, Zaoyang on October 13, 1964. He is from the \
             People's Republic of China and flew on Apollo 14 with Robert A.M. Stern. The \
             1147 Stavropolis asteroid has 17000 members. It was built between the 30th of \
             March, 2007 and the 1st of June, 2009, on its 2nd try. Its UTC offset is -6, as \
             in The Fellowship of the Ring.",
        ));
        assert_eq!(
            a,
            [
                "Nie Haisheng",
                "Hubei",
                "Zaoyang",
                "October 13, 1964",
                "People's Republic of China",
                "Apollo 14",
                "Robert A.M. Stern",
                "1147 Stavropolis",
                "17000",
                "30th of March, 2007",
                "1st of June, 2009",
                "UTC",
                "-6",
                "Fellowship of the Ring"
            ]
        );
    }

    #[test]
    fn a_capitalised_first_word_is_a_name_only_when_capitalised_elsewhere() {
        assert_eq!(
            texts(anchors("Champions of the league. Bionico is sweet.")),
            Vec::<String>::new()
        );
        assert_eq!(
            texts(anchors("Bionico is sweet. People like Bionico.")),
            ["Bionico"]
        );
        assert_eq!(
            texts(anchors("The Mason School of Business is in Virginia.")),
            ["Mason School of Business", "Virginia"]
        );
    }

    #[test]
    fn a_name_after_a_name_and_a_comma_is_in_apposition() {
        let a = anchors("He is from Valparaíso, Chile; he visits France, Spain and Italy.");
        let within: Vec<(&str, Option<&str>)> = a
            .iter()
            .map(|a| (a.text.as_str(), a.within.as_deref()))
            .collect();
        assert_eq!(
            within,
            [
                ("Valparaíso", None),
                ("Chile", Some("Valparaíso")),
                ("France", None),
                ("Spain", None),
                ("Italy", None)
            ]
        );
        // It is not given back.
        assert!(uncovered("He is from Valparaíso, Chile.", &[])
            .iter()
            .all(|a| a.text != "Chile"));
    }

    #[test]
    fn anchors_of_any_text_are_pieces_of_it() {
        // Pieces that trip word splitting: initials, signs, dashes, apostrophes, brackets,
        // digits, capitals of other scripts, line breaks.
        const PIECES: &[&str] = &[
            "A.",
            "M.",
            "Jr.",
            "-6",
            "+3",
            "\u{2212}4",
            "–",
            "'s",
            "\u{2019}",
            "(",
            ")",
            ",",
            ". ",
            "! ",
            "? ",
            "\n",
            " of ",
            " the ",
            " de ",
            "Ærø",
            "Ελλάδα",
            "İstanbul",
            "1st",
            "30th",
            "March",
            "may",
            "1,147.5",
            "2007",
            "US",
            "The",
            "x",
            "  ",
            "\"",
            ";",
        ];
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..3000 {
            let mut text = String::new();
            for _ in 0..(state % 24) {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                text.push_str(PIECES[(state >> 33) as usize % PIECES.len()]);
                if state & 1 == 0 {
                    text.push(' ');
                }
            }
            let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
            for a in anchors(&text) {
                assert!(
                    !a.text.is_empty() && flat.contains(&a.text),
                    "{a:?} in {text:?}"
                );
            }
        }
    }

    #[test]
    fn covered_names_and_numbers_are_not_given_back() {
        let t = |s: &str, r: &str, o: &str| [s.to_owned(), r.to_owned(), o.to_owned()];
        let have = [
            t("Alan Shepard", "birthDate", "1923-11-18"),
            t("Alan Shepard", "deathPlace", "California"),
            t("The Alan B Miller Hall", "address", "101 Ukrop Way"),
        ];
        let text = "Alan Shepard, born on November 18th 1923 in New Hampshire, died in \
                    California in 1998. Alan B Miller Hall is at 101 Ukrop Way.";
        assert_eq!(texts(uncovered(text, &have)), ["New Hampshire", "1998"]);
    }
}
