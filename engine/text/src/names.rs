//! Entity names as the text gives them: a subject or object the model wrote, made into the
//! name the text uses in full. Entry points: [`Names::subject`] and [`Names::object`], called
//! over one chunk's triples in the order the model wrote them.
//!
//! Small models copy a possessive along with a name ("Pontiac Rageous's", from "the Pontiac
//! Rageous's assembly line") and answer with a pronoun ("It", "He") where the text names an
//! entity once and then refers back to it. A possessive is dropped when the text also uses the
//! bare name (so names that end in one, "St John's", keep it). A pronoun subject stands for the
//! last subject named before it in the chunk's output (models list facts in the text's order);
//! with none before it, or as an object, a pronoun names nothing and its triple is dropped.
//! They also carry the kind of thing along with a name ("FC Terek Grozny club", "1147
//! Stavropolis asteroid", "Shenzhou 10 mission") and the unit along with a number ("3500
//! metres"): the name is the name, and a number's unit is the relation's to say. A
//! description written before a name goes too ("BBC show Bananaman", "Israeli national
//! Liselotte Grschebina"), and so does a first word the model capitalised where the text
//! writes it in lowercase ("The Tennessee Titans", "Asteroid 1147 Stavropolis").

use crate::words::{word_spans, words};

/// Words that refer to an entity without naming it.
const PRONOUNS: &[&str] = &[
    "he", "she", "it", "they", "him", "her", "them", "his", "hers", "its", "their", "theirs",
    "this", "that", "these", "those", "who", "whom", "which", "i", "we", "you", "me", "us",
];

/// Whether `name` is only a pronoun.
pub(crate) fn is_pronoun(name: &str) -> bool {
    let name = name.trim();
    // Written in capitals, it is an abbreviation ("US", "IT").
    if name.chars().count() >= 2 && name.chars().all(|c| c.is_uppercase() || c == '.') {
        return false;
    }
    let n = name.to_lowercase();
    PRONOUNS.contains(&n.as_str())
}

/// Whether `text` uses `name` as a whole name somewhere not followed by an apostrophe.
fn used_bare(text: &str, name: &str) -> bool {
    whole_word_match(text, name, true)
}

/// Whether `text` has `name` between word boundaries; with `bare`, not followed by an
/// apostrophe either (a possessive is another use of the name).
fn whole_word_match(text: &str, name: &str, bare: bool) -> bool {
    starts_word_before(text, name, |rest| {
        rest.chars()
            .next()
            .is_none_or(|c| !c.is_alphanumeric() && !(bare && (c == '\'' || c == '\u{2019}')))
    })
}

/// Whether `text` has `name` at the start of a word with `follows` true of the text after it.
fn starts_word_before(text: &str, name: &str, follows: impl Fn(&str) -> bool) -> bool {
    text.match_indices(name).any(|(at, _)| {
        text[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric())
            && follows(&text[at + name.len()..])
    })
}

/// Whether `text` writes `name` as a whole name, ignoring case.
pub(crate) fn written_in(text: &str, name: &str) -> bool {
    let name = name.trim().to_lowercase();
    !name.is_empty() && whole_word_match(&text.to_lowercase(), &name, false)
}

/// `name` without a possessive ending ("'s", or "'" after an s) when `text` also uses the
/// bare name; else `name` as it is.
pub(crate) fn without_possessive<'a>(name: &'a str, text: &str) -> &'a str {
    for suffix in ["'s", "\u{2019}s", "'", "\u{2019}"] {
        let Some(bare) = name.strip_suffix(suffix) else {
            continue;
        };
        if !suffix.ends_with('s') && !bare.ends_with('s') {
            continue;
        }
        let bare = bare.trim_end();
        if !bare.is_empty() && (used_bare(text, bare) || owns_a_noun(text, name)) {
            return bare;
        }
    }
    name
}

/// Whether `text` writes `name` (ending in a possessive) before a lowercase word that is not
/// a verb: "FC Spartak Moscow's youth team", "the Pontiac Rageous's produced". A name that
/// ends in "'s" is followed by its verb ("St John's is a city") or by nothing.
fn owns_a_noun(text: &str, name: &str) -> bool {
    // What follows a name whose "'s" is its own: a verb, a conjunction, a preposition.
    const NOT_A_NOUN: &[&str] = &[
        "is", "was", "are", "were", "has", "had", "have", "does", "did", "will", "would", "can",
        "could", "may", "might", "must", "shall", "should", "and", "or", "in", "of", "at", "on",
    ];
    starts_word_before(text, name, |rest| {
        rest.strip_prefix(' ')
            .and_then(|r| r.split(|c: char| !c.is_alphabetic()).next())
            .is_some_and(|word| {
                word.chars().next().is_some_and(char::is_lowercase) && !NOT_A_NOUN.contains(&word)
            })
    })
}

/// `name` without the words of its triple's `relation` glued to it, when the text uses the
/// rest as a name: small models write the attribute into the subject ("1147 Stavropolis
/// epoch", "Bedford Aerodrome runway surface" for runwaySurfaceType, "epoch of 1147
/// Stavropolis"). `None` when nothing is to be taken off.
pub(crate) fn without_relation_words(name: &str, relation: &str, text: &str) -> Option<String> {
    let rel = words(relation);
    let tokens: Vec<&str> = name.split_whitespace().collect();
    if rel.is_empty() || tokens.len() < 2 {
        return None;
    }
    let token_words: Vec<String> = tokens.iter().map(|t| words(t).concat()).collect();
    // The relation's leading words, as many as `k`.
    let is_relation_start = |ws: &[String]| {
        !ws.is_empty() && ws.len() <= rel.len() && ws.iter().zip(&rel).all(|(a, b)| a == b)
    };
    let used = |rest: &[&str]| {
        let rest = rest.join(" ");
        (rest.chars().any(char::is_alphanumeric) && used_bare(text, &rest)).then_some(rest)
    };
    // Trailing: "1147 Stavropolis epoch"; but not where the text writes the whole name with
    // those words capitalised, as part of the name ("Quezon City" for the relation city).
    let part_of_name = |k: usize| {
        tokens[k..]
            .iter()
            .all(|t| t.chars().next().is_some_and(|c| !c.is_lowercase()))
            && whole_word_match(text, &tokens.join(" "), false)
    };
    for k in 1..tokens.len() {
        if is_relation_start(&token_words[k..]) && !part_of_name(k) {
            if let Some(rest) = used(&tokens[..k]) {
                return Some(rest);
            }
        }
    }
    // Leading, with "of": "epoch of 1147 Stavropolis".
    for k in 1..tokens.len().saturating_sub(1) {
        if token_words[k] == "of" && is_relation_start(&token_words[..k]) {
            if let Some(rest) = used(&tokens[k + 1..]) {
                return Some(rest);
            }
        }
    }
    None
}

/// `name` without the lowercase words after it: a number's unit ("1249.6 days" -> "1249.6")
/// or a proper name's kind ("Campeonato Brasileiro Série C league" -> "Campeonato Brasileiro
/// Série C"). A proper name here has at least two words, the first and the last before the
/// lowercase ones capitalised or a number, so that a described thing ("Contributing
/// property", "TV series") keeps its noun.
pub(crate) fn without_kind(name: &str) -> &str {
    // Each word with its byte offset in `name` (the words are slices of it), so that the
    // name's own spacing and punctuation survive in what is kept.
    let tokens: Vec<(usize, &str)> = name
        .split_whitespace()
        .map(|t| (t.as_ptr() as usize - name.as_ptr() as usize, t))
        .collect();
    let lowercase = |t: &str| t.chars().all(|c| c.is_alphabetic() && c.is_lowercase());
    if let [(_, t)] = tokens.as_slice() {
        return without_glued_unit(t);
    }
    let Some(k) = tokens.iter().rposition(|(_, t)| !lowercase(t)) else {
        return name;
    };
    if k + 1 == tokens.len() {
        return name;
    }
    let core = &tokens[..=k];
    let end = core[k].0 + core[k].1.len();
    let capital_or_number = |t: &str| {
        t.chars()
            .next()
            .is_some_and(|c| c.is_uppercase() || c.is_ascii_digit())
    };
    // A number may end a sentence the model copied ("1095. meters") or carry its unit
    // ("1147m above sea level").
    if let [(_, t)] = core {
        let number = without_glued_unit(t.trim_end_matches(['.', ',']));
        if crate::literal::is_number(number) {
            return number;
        }
    }
    let is_proper = core.len() >= 2 && capital_or_number(core[0].1) && capital_or_number(core[k].1);
    if is_proper {
        name[..end].trim_end_matches([',', '.'])
    } else {
        name
    }
}

/// A number without the unit written onto it ("70.308kg", "175.26cm"): up to three
/// lowercase letters after the digits; an ordinal's ("3rd") or a decade's ("1990s") letters
/// are not a unit.
fn without_glued_unit(t: &str) -> &str {
    let Some(at) = t.find(|c: char| c.is_alphabetic()) else {
        return t;
    };
    let (number, unit) = t.split_at(at);
    let unit_like = (1..=3).contains(&unit.chars().count())
        && unit.chars().all(|c| c.is_ascii_lowercase())
        && !["st", "nd", "rd", "th", "s"].contains(&unit);
    if unit_like && crate::literal::is_number(number) {
        number
    } else {
        t
    }
}

/// Lowercase words that join the parts of a proper name ("University of the Philippines",
/// "Leonardo da Vinci", "San Sebastián de los Reyes", "Zayed bin Sultan") rather than
/// describe what follows them.
const NAME_JOINERS: &[&str] = &[
    "a", "al", "am", "an", "and", "as", "at", "ben", "bin", "by", "da", "das", "de", "del",
    "della", "den", "der", "des", "di", "do", "dos", "du", "e", "el", "et", "for", "from", "ibn",
    "in", "la", "las", "le", "les", "los", "of", "on", "over", "sur", "the", "to", "und", "under",
    "upon", "van", "von", "with", "y", "zu", "zum",
];

/// `name` without a description written before it: "BBC show Bananaman", "Israeli national
/// Liselotte Grschebina", "The novel 1634: The Bavarian Crisis", "Apollo 14 crew member Alan
/// Shepard" are the names after the descriptive lowercase words. A lowercase word inside a
/// name that is not one of [`NAME_JOINERS`], with a capitalised word before it and a
/// capitalised or numbered word right after it, ends the description; a name with no such
/// word is whole.
pub(crate) fn without_descriptor(name: &str) -> &str {
    let tokens: Vec<(usize, &str)> = name
        .split_whitespace()
        .map(|t| (t.as_ptr() as usize - name.as_ptr() as usize, t))
        .collect();
    let starts_capital_or_number = |t: &str| {
        t.chars()
            .next()
            .is_some_and(|c| c.is_uppercase() || c.is_ascii_digit())
    };
    if !tokens
        .first()
        .is_some_and(|(_, t)| t.chars().next().is_some_and(char::is_uppercase))
    {
        return name;
    }
    let describing = |t: &str| {
        t.chars().count() >= 3
            && t.chars().all(|c| c.is_alphabetic() && c.is_lowercase())
            && !NAME_JOINERS.contains(&t)
    };
    for j in 1..tokens.len().saturating_sub(1) {
        if describing(tokens[j].1) && starts_capital_or_number(tokens[j + 1].1) {
            return &name[tokens[j + 1].0..];
        }
    }
    name
}

/// An object in lowercase words without the relation's own last words after them: "building
/// materials industry" for industry, "fantasy literary genre" for literaryGenre name the
/// value and then, again, the relation. A name (any capital) keeps them ("Pacific Daylight
/// Time" for timeZone, "V12 engine" for engine), and nothing is taken that leaves nothing.
pub(crate) fn without_relation_suffix<'a>(object: &'a str, relation: &str) -> &'a str {
    if object.chars().any(char::is_uppercase) {
        return object;
    }
    let rel = words(relation);
    let spans = word_spans(object);
    for k in (1..=rel.len().min(spans.len().saturating_sub(1))).rev() {
        let tail = &spans[spans.len() - k..];
        if tail.iter().map(|(w, _)| w).eq(rel[rel.len() - k..].iter()) {
            let end = spans[spans.len() - k - 1].1.end;
            return object[..end].trim_end();
        }
    }
    object
}

/// Prepositions a model copies from the text in front of a name or number.
const LEAD_PREPOSITIONS: &[&str] = &["in", "at", "on", "of", "from", "to", "by", "with", "for"];

/// `name` without a preposition (and an article after it) that the model copied in front of a
/// name or a number: "at 260855000000", "in the Campeonato Brasileiro Série C". What follows
/// must start with a capital or a digit, so that a described thing keeps its words.
pub(crate) fn without_lead_preposition(name: &str) -> &str {
    let name = name.trim();
    let Some((first, rest)) = name.split_once(' ') else {
        return name;
    };
    if !LEAD_PREPOSITIONS.contains(&first) {
        return name;
    }
    let rest = rest.trim_start();
    let rest = match rest.split_once(' ') {
        Some((article, after)) if ["the", "a", "an"].contains(&article) => after.trim_start(),
        _ => rest,
    };
    if rest
        .chars()
        .next()
        .is_some_and(|c| c.is_uppercase() || c.is_ascii_digit())
    {
        rest
    } else {
        name
    }
}

/// Abbreviations of three letters or more written with a period inside names.
const TITLES: &[&str] = &[
    "mrs", "gen", "col", "capt", "sgt", "lieut", "prof", "rev", "hon", "ave", "blvd", "mt", "ft",
    "inc", "ltd", "corp", "bros", "jr", "sr", "esq", "gov", "sen", "rep", "dept", "univ",
];

/// `name` up to the first sentence end inside it: a model that runs a name on past its
/// sentence ("Apollo 14. He", "-6. The") wrote one name and the next sentence's first word. A
/// period after a number or a word of three letters or more ends a sentence when a capital
/// follows; after one or two letters it is an abbreviation's ("Dr. Sarvapalli", "A.M. Stern").
pub(crate) fn without_run_on(name: &str) -> &str {
    let mut from = 0;
    while let Some(p) = name[from..].find(". ").map(|p| p + from) {
        let before = name[..p]
            .rsplit(|c: char| !c.is_alphanumeric())
            .next()
            .unwrap_or("");
        let number = !before.is_empty() && before.chars().all(|c| c.is_ascii_digit());
        let word = before.chars().count() > 2
            && before.chars().all(char::is_alphabetic)
            && !TITLES.contains(&before.to_lowercase().as_str());
        let capital = name[p + 2..].chars().next().is_some_and(char::is_uppercase);
        if (number || word) && capital {
            return name[..p].trim_end();
        }
        from = p + 2;
    }
    name
}

/// `name` without a first word the model capitalised where the text writes it in lowercase
/// before the rest of the name, and never capitalised: an article ("his former team the
/// Tennessee Titans") or a kind ("the asteroid 1147 Stavropolis", "the city Ciudad Ayala").
/// A word the text capitalises mid-sentence ("The Hague") is part of the name; the rest must
/// start with a capital or a digit.
pub(crate) fn without_added_lead<'a>(name: &'a str, text: &str) -> &'a str {
    let Some((first, rest)) = name.split_once(' ') else {
        return name;
    };
    let rest = rest.trim_start();
    let mut cs = first.chars();
    let capitalised = cs.next().is_some_and(char::is_uppercase) && cs.all(char::is_lowercase);
    if !capitalised
        || !rest
            .chars()
            .next()
            .is_some_and(|c| c.is_uppercase() || c.is_ascii_digit())
    {
        return name;
    }
    let lower = format!("{} {rest}", first.to_lowercase());
    let upper = format!("{first} {rest}");
    if whole_word_match(text, &lower, false) && !whole_word_match(text, &upper, false) {
        rest
    } else {
        name
    }
}

/// The full name a one-word subject shortens: the one name of `subjects` (the chunk's other
/// subjects) of two or three words, each capitalised and otherwise lowercase, that ends with
/// it ("Haisheng" after "Nie Haisheng", "Shepard" after "Alan Shepard"): texts name a person
/// in full once and by the surname after. `None` when no such name, or more than one, ends
/// with it.
pub(crate) fn full_name<'a>(short: &str, subjects: &[&'a str]) -> Option<&'a str> {
    let short = short.trim();
    let name_word = |w: &str| {
        let mut cs = w.chars();
        cs.next().is_some_and(char::is_uppercase) && cs.all(|c| c.is_lowercase())
    };
    if short.split_whitespace().count() != 1 || !name_word(short) {
        return None;
    }
    let mut found: Option<&'a str> = None;
    for &n in subjects {
        let ws: Vec<&str> = n.split_whitespace().collect();
        let fits = (2..=3).contains(&ws.len())
            && ws.iter().all(|w| name_word(w))
            && ws.last() == Some(&short);
        match (fits, found) {
            (false, _) => {}
            (true, None) => found = Some(n),
            (true, Some(f)) if f.split_whitespace().eq(n.split_whitespace()) => {}
            (true, Some(_)) => return None,
        }
    }
    found
}

/// The entity an attribute written as a subject belongs to: small models make the attribute
/// itself the subject ("population density" for "The population density of Mexico is 61.0",
/// "postal code" for "The postal code for Thurleigh is MK44"). A subject that is not a name
/// (it starts in lowercase) and that the text writes followed by "of", "for" or "at" (an
/// article allowed) and a name stands for that name. `None` otherwise.
pub(crate) fn attribute_holder(subject: &str, text: &str) -> Option<String> {
    let subject = subject.trim();
    if !subject.chars().next().is_some_and(char::is_lowercase) || is_pronoun(subject) {
        return None;
    }
    let attribute = words(subject);
    if attribute.is_empty() {
        return None;
    }
    let tw = words(text);
    let word = |q: usize| tw.get(q).map(String::as_str);
    // Where a name may start: right after "<attribute> of|for|at [the|a|an]".
    let mut starts = Vec::new();
    for p in 0..tw.len() {
        if !tw[p..].starts_with(&attribute) {
            continue;
        }
        let mut q = p + attribute.len();
        if !matches!(word(q), Some("of" | "for" | "at")) {
            continue;
        }
        q += 1;
        if matches!(word(q), Some("the" | "a" | "an")) {
            q += 1;
        }
        starts.push(q);
    }
    if starts.is_empty() {
        return None;
    }
    crate::anchors::anchors(text).into_iter().find_map(|a| {
        let name = words(&a.text);
        (!name.is_empty() && starts.iter().any(|&q| tw[q..].starts_with(&name))).then_some(a.text)
    })
}

/// Names the subjects and objects of one chunk's triples, in order.
#[derive(Debug, Default)]
pub(crate) struct Names {
    last_subject: Option<String>,
}

/// Why a name could not be given.
pub(crate) const PRONOUN_WITHOUT_NAME: &str = "a pronoun that names no entity";

impl Names {
    /// The subject's name: a pronoun becomes the last subject named before it.
    pub(crate) fn subject(&mut self, raw: &str, text: &str) -> Result<String, &'static str> {
        let raw = raw.trim();
        if is_pronoun(raw) {
            return self.last_subject.clone().ok_or(PRONOUN_WITHOUT_NAME);
        }
        let name = proper(raw, text).to_owned();
        self.last_subject = Some(name.clone());
        Ok(name)
    }

    /// An object's text: possessive dropped; a pronoun names nothing.
    pub(crate) fn object<'a>(&self, raw: &'a str, text: &'a str) -> Result<&'a str, &'static str> {
        let raw = raw.trim();
        if is_pronoun(raw) {
            return Err(PRONOUN_WITHOUT_NAME);
        }
        Ok(proper(raw, text))
    }
}

/// A name the model wrote, as the text names it: no possessive, no kind or unit after it, no
/// description or added article before it, and the text's own spelling where the model
/// respelled the text's words ("choppedFruits" for "chopped fruits").
pub(crate) fn proper<'a>(raw: &'a str, text: &'a str) -> &'a str {
    // The possessive twice: a kind taken off ("FC Spartak Moscow's youth team") may leave one.
    let name = without_added_lead(
        without_descriptor(without_possessive(
            without_kind(without_possessive(
                without_lead_preposition(without_run_on(raw)),
                text,
            )),
            text,
        )),
        text,
    );
    // A number stays the number `without_kind` left: the text's span around it may carry a
    // unit written onto it ("175.26cm"), which respelling would put back.
    if written_in(text, name) || crate::literal::is_number(name) {
        name
    } else {
        text_spelling(name, text)
            .or_else(|| one_word_respelled(name, text))
            .unwrap_or(name)
    }
}

/// The one span of `text` with `name`'s words but one, the odd word starting with the same
/// letter: a name of two or more words the model wrote with one word translated or
/// mistyped ("City Ayala" for "Ciudad Ayala", "Contribution property" for "Contributing
/// property"). `None` when no span, or more than one, is that close.
fn one_word_respelled<'a>(name: &str, text: &'a str) -> Option<&'a str> {
    let want = words(name);
    if want.len() < 2 {
        return None;
    }
    let spans = word_spans(text);
    let mut found = spans.windows(want.len()).filter(|w| {
        let odd: Vec<(&String, &String)> = w
            .iter()
            .map(|(t, _)| t)
            .zip(&want)
            .filter(|(t, n)| t != n)
            .collect();
        matches!(odd.as_slice(), [(t, n)] if t.chars().next() == n.chars().next())
    });
    let first = found.next()?;
    if found.next().is_some() {
        return None;
    }
    Some(&text[first[0].1.start..first[want.len() - 1].1.end])
}

/// The span of `text` whose words (as [`words`] splits them, camelCase included) are exactly
/// `name`'s, the first one found; `None` when the text has no such span.
fn text_spelling<'a>(name: &str, text: &'a str) -> Option<&'a str> {
    let want = words(name);
    if want.is_empty() {
        return None;
    }
    let spans = word_spans(text);
    spans.windows(want.len()).find_map(|w| {
        w.iter()
            .zip(&want)
            .all(|((t, _), n)| t == n)
            .then(|| &text[w[0].1.start..w[want.len() - 1].1.end])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn possessives_go_when_the_text_uses_the_bare_name() {
        let text = "The Pontiac Rageous was a car. The Pontiac Rageous's assembly line was in \
                    Detroit. St John's is a city; the Jones' house is old. Jones was here.";
        assert_eq!(
            without_possessive("Pontiac Rageous's", text),
            "Pontiac Rageous"
        );
        assert_eq!(
            without_possessive("Pontiac Rageous\u{2019}s", text),
            "Pontiac Rageous"
        );
        // Only ever written with its 's: part of the name.
        assert_eq!(without_possessive("St John's", text), "St John's");
        assert_eq!(without_possessive("Jones'", text), "Jones");
        assert_eq!(without_possessive("Detroit", text), "Detroit");
        // "Rage" occurs only inside "Rageous": not a use of the bare name.
        assert_eq!(without_possessive("Rage's", text), "Rage's");
        // Before a noun: the possessor, though the text never writes the name bare.
        let text = "He played for FC Spartak Moscow's youth team. The last Pontiac Rageous's \
                    produced were made in 1997. St John's is a city. Bob's.";
        assert_eq!(
            without_possessive("FC Spartak Moscow's", text),
            "FC Spartak Moscow"
        );
        assert_eq!(
            without_possessive("Pontiac Rageous's", text),
            "Pontiac Rageous"
        );
        assert_eq!(without_possessive("St John's", text), "St John's");
        assert_eq!(without_possessive("Bob's", text), "Bob's");
        // The kind after it taken off, then the possessive it leaves.
        assert_eq!(
            proper("FC Spartak Moscow's youth team", text),
            "FC Spartak Moscow"
        );
    }

    #[test]
    fn relation_words_come_off_subjects_the_text_names_without_them() {
        let text = "The Bedford Aerodrome runway surface is concrete. The epoch of 1147 \
                    Stavropolis is 31 July 2016. The Population Council met.";
        let strip = |n, r| without_relation_words(n, r, text);
        assert_eq!(
            strip("Bedford Aerodrome runway surface", "runwaySurfaceType").as_deref(),
            Some("Bedford Aerodrome")
        );
        assert_eq!(
            strip("1147 Stavropolis epoch", "epoch").as_deref(),
            Some("1147 Stavropolis")
        );
        assert_eq!(
            strip("epoch of 1147 Stavropolis", "epoch").as_deref(),
            Some("1147 Stavropolis")
        );
        // Capitalised in the text, the relation's words are part of the name.
        let text = "GMA New Media is in Quezon City, a city of the Philippines.";
        assert_eq!(without_relation_words("Quezon City", "city", text), None);
        assert_eq!(
            without_relation_words(
                "Quezon city",
                "city",
                "Quezon is a city. Quezon city is big."
            ),
            Some("Quezon".into())
        );
        // Words of another relation, or a rest the text never uses alone, stay.
        assert_eq!(strip("Bedford Aerodrome runway surface", "length"), None);
        assert_eq!(strip("Population Council", "population"), None);
        assert_eq!(strip("Bedford", "bedford"), None);
    }

    #[test]
    fn an_attribute_subject_stands_for_the_name_it_belongs_to() {
        let text = "The population density of Mexico is 61.0. The postal code for Thurleigh is \
                    MK44. The orbital period of the 1147 Stavropolis asteroid is 1249.6.";
        let holder = |s| attribute_holder(s, text);
        assert_eq!(holder("population density").as_deref(), Some("Mexico"));
        assert_eq!(holder("populationDensity").as_deref(), Some("Mexico"));
        assert_eq!(holder("postal code").as_deref(), Some("Thurleigh"));
        assert_eq!(
            holder("orbital period").as_deref(),
            Some("1147 Stavropolis")
        );
        // Names, pronouns, and attributes the text does not tie to a name stay.
        assert_eq!(holder("Mexico"), None);
        assert_eq!(holder("it"), None);
        assert_eq!(holder("population"), None);
        assert_eq!(holder("capital"), None);
    }

    #[test]
    fn kinds_and_units_come_off_names_and_numbers() {
        for (name, kept) in [
            ("FC Terek Grozny club", "FC Terek Grozny"),
            ("1147 Stavropolis asteroid", "1147 Stavropolis"),
            ("Shenzhou 10 mission", "Shenzhou 10"),
            (
                "Campeonato Brasileiro Série C league",
                "Campeonato Brasileiro Série C",
            ),
            ("1249.6 days", "1249.6"),
            ("4,349 metres", "4,349"),
            ("\u{2212}6 hours", "\u{2212}6"),
            // A described thing keeps its noun; a name without lowercase words after it is
            // whole.
            ("Contributing property", "Contributing property"),
            ("TV series", "TV series"),
            ("healthcare products", "healthcare products"),
            ("University of Burgundy", "University of Burgundy"),
            ("Madrid", "Madrid"),
            ("11/18/1932 born", "11/18/1932 born"),
            ("2 May 1961", "2 May 1961"),
            // Every word lowercase: nothing to keep apart.
            ("post metal", "post metal"),
        ] {
            assert_eq!(without_kind(name), kept, "{name}");
        }
    }

    #[test]
    fn a_name_with_one_word_respelled_takes_the_texts() {
        let text = "Ciudad Ayala is a city whose leader is the City Manager. It is a \
                    Contributing property.";
        // Two spans as close ("City Manager" and "Ciudad Ayala" for "City Aqua"), a word
        // with another first letter, or one word: left as written.
        for (model, named) in [
            ("City Ayala", "Ciudad Ayala"),
            ("Contribution property", "Contributing property"),
            ("City Aqua", "City Aqua"),
            ("Town Ayala", "Town Ayala"),
            ("Cuidad", "Cuidad"),
        ] {
            assert_eq!(proper(model, text), named);
        }
    }

    #[test]
    fn units_written_onto_numbers_come_off() {
        assert_eq!(without_kind("70.308kg"), "70.308");
        assert_eq!(without_kind("1147m above sea level"), "1147");
        assert_eq!(without_kind("175.26cm"), "175.26");
        let text = "Piotr is 175.26cm tall and weighs 70.308kg.";
        assert_eq!(proper("175.26cm", text), "175.26");
        assert_eq!(proper("70.308kg", text), "70.308");
        for kept in ["3rd", "1990s", "4x4", "V8", "12metres"] {
            assert_eq!(without_kind(kept), kept);
        }
    }

    #[test]
    fn prepositions_before_names_and_numbers_come_off() {
        for (model, named) in [
            ("at 260855000000", "260855000000"),
            (
                "in the Campeonato Brasileiro Série C",
                "Campeonato Brasileiro Série C",
            ),
            (
                "of youth side of FC Spartak Moscow",
                "of youth side of FC Spartak Moscow",
            ),
            ("in", "in"),
            ("to the north", "to the north"),
            ("Inside Out", "Inside Out"),
        ] {
            assert_eq!(without_lead_preposition(model), named);
        }
    }

    #[test]
    fn objects_do_not_repeat_their_relation() {
        for (object, relation, kept) in [
            (
                "building materials industry",
                "industry",
                "building materials",
            ),
            ("fantasy literary genre", "literaryGenre", "fantasy"),
            ("post-metal genre", "genre", "post-metal"),
            ("Pacific Daylight Time", "timeZone", "Pacific Daylight Time"),
            ("genre", "genre", "genre"),
            (
                "council-manager government",
                "governmentType",
                "council-manager government",
            ),
        ] {
            assert_eq!(without_relation_suffix(object, relation), kept);
        }
    }

    #[test]
    fn names_end_at_a_sentence_end() {
        assert_eq!(without_run_on("Apollo 14. He"), "Apollo 14");
        assert_eq!(without_run_on("-6. The"), "-6");
        assert_eq!(
            without_run_on("Broadcasting House. It"),
            "Broadcasting House"
        );
        for kept in [
            "Acharya Dr. Sarvapalli Radhakrishnan Road",
            "Robert A.M. Stern",
            "J. R. R. Tolkien",
            "Mrs. Dalloway",
            "St. Louis",
            "Acme Inc. Group",
            "387.63",
            "the end. of it",
        ] {
            assert_eq!(without_run_on(kept), kept);
        }
        let text = "He was a crew member of Apollo 14. He died in California.";
        assert_eq!(proper("Apollo 14. He", text), "Apollo 14");
    }

    #[test]
    fn descriptions_and_added_first_words_come_off_names() {
        for (name, kept) in [
            ("BBC show Bananaman", "Bananaman"),
            ("BBC's show Bananaman", "Bananaman"),
            (
                "Israeli national Liselotte Grschebina",
                "Liselotte Grschebina",
            ),
            (
                "The novel 1634: The Bavarian Crisis",
                "1634: The Bavarian Crisis",
            ),
            ("The coupe style Pontiac Rageous", "Pontiac Rageous"),
            ("Apollo 14 crew member Alan Shepard", "Alan Shepard"),
            // Words that join a name's parts are not descriptions.
            ("San Sebastián de los Reyes", "San Sebastián de los Reyes"),
            (
                "University of the Philippines",
                "University of the Philippines",
            ),
            ("Zayed bin Sultan Al Nahyan", "Zayed bin Sultan Al Nahyan"),
            (
                "One Flew over the Cuckoo's Nest",
                "One Flew over the Cuckoo's Nest",
            ),
            // Not a name: a described thing stays as written.
            ("healthcare products", "healthcare products"),
            ("professional photographer", "professional photographer"),
            ("Contributing property", "Contributing property"),
            ("2 May 1961", "2 May 1961"),
        ] {
            assert_eq!(without_descriptor(name), kept, "{name}");
        }
        let text = "Akeem Ayers debuted with his former team the Tennessee Titans. The Hague \
                    is in the Netherlands; The Hague's court sits there.";
        assert_eq!(
            without_added_lead("The Tennessee Titans", text),
            "Tennessee Titans"
        );
        assert_eq!(without_added_lead("The Hague", text), "The Hague");
        assert_eq!(without_added_lead("The Netherlands", text), "Netherlands");
        assert_eq!(without_added_lead("The Gambia", text), "The Gambia");
        let text = "The asteroid 1147 Stavropolis was found in the city Ciudad Ayala. City \
                    Hall is old.";
        assert_eq!(
            without_added_lead("Asteroid 1147 Stavropolis", text),
            "1147 Stavropolis"
        );
        assert_eq!(
            without_added_lead("City Ciudad Ayala", text),
            "Ciudad Ayala"
        );
        assert_eq!(without_added_lead("City Hall", text), "City Hall");
        let mut names = Names::default();
        assert_eq!(
            names
                .subject(
                    "BBC show Bananaman",
                    "BBC show Bananaman last aired in 1986."
                )
                .as_deref(),
            Ok("Bananaman")
        );
    }

    #[test]
    fn respelled_names_take_the_texts_spelling() {
        let text = "Bionico is made from chopped fruits and sour cream; it is a Contributing \
                    Property of the town.";
        assert_eq!(proper("choppedFruits", text), "chopped fruits");
        assert_eq!(proper("sour_cream", text), "sour cream");
        assert_eq!(
            proper("contributingProperty", text),
            "Contributing Property"
        );
        assert_eq!(
            proper("contributing property", text),
            "contributing property"
        );
        assert_eq!(proper("Granola", text), "Granola");
    }

    #[test]
    fn a_surname_subject_is_the_full_name_the_chunk_uses() {
        let subjects = ["Nie Haisheng", "Shenzhou 10", "Nie Haisheng"];
        assert_eq!(full_name("Haisheng", &subjects), Some("Nie Haisheng"));
        assert_eq!(full_name("Nie Haisheng", &subjects), None);
        // Not a person's name: a club, a number, a place inside another name.
        assert_eq!(full_name("Grozny", &["FC Terek Grozny"]), None);
        assert_eq!(full_name("10", &subjects), None);
        // Two people of that surname: neither.
        assert_eq!(
            full_name("Ribicoff", &["Abraham Ribicoff", "Ruth Ribicoff"]),
            None
        );
    }

    #[test]
    fn names_written_in_the_text_whole_and_in_any_case() {
        let text = "Chile's capital is Santiago; the Alcobendas airport.";
        assert!(written_in(text, "chile"));
        assert!(written_in(text, "Alcobendas Airport"));
        assert!(!written_in(text, "Alcobendas Campus"));
        assert!(!written_in(text, "Santia"));
        assert!(!written_in(text, " "));
    }

    #[test]
    fn pronoun_subjects_take_the_last_name_and_otherwise_drop() {
        let text = "Alan Shepard was born in New Hampshire. He died in California.";
        let mut names = Names::default();
        assert_eq!(names.subject("He", text), Err(PRONOUN_WITHOUT_NAME));
        assert_eq!(
            names.subject("Alan Shepard", text).as_deref(),
            Ok("Alan Shepard")
        );
        assert_eq!(names.subject(" he ", text).as_deref(), Ok("Alan Shepard"));
        assert_eq!(names.object("California", text), Ok("California"));
        assert_eq!(names.object("it", text), Err(PRONOUN_WITHOUT_NAME));
        assert!(!is_pronoun("Ithaca"));
    }
}
