//! Direction from the text's own grammar: a relation named by a noun ("capital", "owner",
//! "leader") is stated the other way round by "Santiago is the capital of Chile" (Chile's
//! capital is Santiago). Entry point: [`stated_reversed`].
//!
//! Small models keep the text's word order and write [Santiago, capital, Chile]; a schema
//! whose relations are attribute nouns (the object is the subject's capital, owner, leader)
//! wants [Chile, capital, Santiago]. The patterns here are English phrasings of "the R of X
//! is Y"; anything else leaves the triple as written.
//!
//! A relation defined by a verb ("The subject entity works or worked for the organisation
//! given by the object entity") is stated the other way round when the text puts the
//! triple's subject right after that verb ("... works for the Norwegian Polar Institute" for
//! [Norwegian Polar Institute, employer, Ingrid Solberg]), and, for a passive definition
//! ("is operated by the object entity"), when the text has the triple's subject doing the
//! verb to its object ("MotorSport Vision operates the Bedford Aerodrome" for [MotorSport
//! Vision, operatingOrganisation, Bedford Aerodrome]).
//!
//! The text's words also choose between two relations offered for one pair of entities
//! ([`relation_words_share`]): the one whose name the sentence uses ("16,800 of them are
//! undergraduates": numberOfUndergraduateStudents, not academicStaffSize).

use crate::words::{word_spans, words};

/// Words that may stand between a name and "the R of": verbs of being and adverbs.
const LINKS: &[&str] = &[
    "is",
    "was",
    "are",
    "were",
    "has",
    "have",
    "had",
    "been",
    "be",
    "became",
    "becomes",
    "remains",
    "remained",
    "also",
    "still",
    "currently",
    "now",
    "formerly",
];
/// Articles before the relation's noun or a name.
const ARTICLES: &[&str] = &["the", "a", "an"];

/// Nouns that classify rather than relate: "X is a type of Y" says what X is, not that X is
/// Y's type.
const CLASSIFIERS: &[&str] = &[
    "type", "kind", "sort", "form", "part", "example", "instance", "variety", "class", "category",
    "genre",
];

/// The words of a text (as [`words`] gives them) with its commas and sentence ends as tokens
/// of their own, so that a pattern does not run from one clause into the next. A period
/// after one or two letters ("B.", "Dr.") is an abbreviation's and is not kept.
fn tokens(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut piece = String::new();
    let flush = |piece: &mut String, out: &mut Vec<String>| {
        out.extend(words(piece));
        piece.clear();
    };
    let mut chars = text.chars().peekable();
    let mut prev = ' ';
    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        match c {
            ',' | ';' | ':' | '!' | '?' | '(' | ')' => {
                flush(&mut piece, &mut out);
                out.push(",".into());
            }
            // A decimal point ("387.63") is part of its number.
            '.' if prev.is_ascii_digit() && next.is_some_and(|n| n.is_ascii_digit()) => {
                piece.push(c)
            }
            '.' => {
                flush(&mut piece, &mut out);
                if out.last().is_some_and(|w| w.chars().count() > 2) {
                    out.push(".".into());
                }
            }
            _ => piece.push(c),
        }
        prev = c;
    }
    flush(&mut piece, &mut out);
    out
}

/// Whether `text` has the words `w` at position `p`.
fn at(text: &[String], p: usize, w: &[String]) -> bool {
    p + w.len() <= text.len() && text[p..p + w.len()] == *w
}

/// Whether `text` states that `value` is the `relation` of `holder` ("value is the relation
/// of holder", "value, the relation of holder", "holder's relation is value", "the relation
/// of holder is value").
fn states(text: &[String], relation: &[String], holder: &[String], value: &[String]) -> bool {
    if relation
        .last()
        .is_some_and(|w| CLASSIFIERS.contains(&w.as_str()))
    {
        return false;
    }
    let at = |p: usize, w: &[String]| at(text, p, w);
    // Past the words of `set` at `p`, at most `most`: the position and how many.
    let skip = |mut p: usize, set: &[&str], most: usize| -> (usize, usize) {
        let mut n = 0;
        while n < most && p < text.len() && set.contains(&text[p].as_str()) {
            p += 1;
            n += 1;
        }
        (p, n)
    };
    // The relation's noun at `p` (its last word may be plural); the position after it.
    let noun = |p: usize| -> Option<usize> {
        let (last, head) = relation.split_last()?;
        if !at(p, head) {
            return None;
        }
        let q = p + head.len();
        let w = text.get(q)?;
        (w == last || *w == format!("{last}s") || *w == format!("{last}es")).then_some(q + 1)
    };
    // "R of (the) holder" at `p` ("the architect for X", "an ethnic group in X" say the
    // same); the position after it.
    let of_holder = |p: usize| -> Option<usize> {
        let q = noun(p)?;
        if !matches!(text.get(q).map(String::as_str), Some("of" | "for" | "in")) {
            return None;
        }
        let (r, _) = skip(q + 1, ARTICLES, 1);
        at(r, holder).then_some(r + holder.len())
    };
    // "is (the) value" at `p`, with at least one linking verb.
    let linked_value = |p: usize| -> bool {
        let (q, links) = skip(p, LINKS, 3);
        let (q, _) = skip(q, ARTICLES, 1);
        links > 0 && at(q, value)
    };
    for p in 0..text.len() {
        // value is (the) R of (the) holder; value, the R of (the) holder
        if at(p, value) {
            let after = p + value.len();
            let (q, comma) = skip(after, &[","], 1);
            let (q, links) = skip(q, LINKS, 3);
            let (q, _) = skip(q, ARTICLES, 1);
            if (comma + links > 0) && of_holder(q).is_some() {
                return true;
            }
        }
        // holder's R is value: the possessive "s" is a word of its own here.
        if at(p, holder) && text.get(p + holder.len()).map(String::as_str) == Some("s") {
            if let Some(q) = noun(p + holder.len() + 1) {
                if linked_value(q) {
                    return true;
                }
            }
        }
        // the R of (the) holder is value; a R of (the) holder is value
        if ARTICLES.contains(&text[p].as_str()) {
            if let Some(q) = of_holder(p + 1) {
                if linked_value(q) {
                    return true;
                }
            }
        }
    }
    false
}

/// Auxiliaries a definition may put before its verb ("is located in", "was designed by").
const AUXILIARIES: &[&str] = &[
    "is", "was", "are", "were", "has", "have", "had", "been", "be",
];
/// Prepositions that may follow a definition's verb and belong to its phrase.
const PREPOSITIONS: &[&str] = &[
    "for", "by", "in", "on", "at", "to", "with", "from", "of", "into", "as", "under", "through",
];
/// Words that are not verbs where a definition's verb would stand.
const NOT_VERBS: &[&str] = &["the", "a", "an", "its", "their", "his", "her", "not"];

/// The verb phrases a definition "The subject entity [aux] VERB [or VERB2] [PREP] ..." states
/// its relation with ("works for", "worked for"; "located in"; "designed by").
fn definition_phrases(definition: &str) -> Vec<Vec<String>> {
    let w = words(definition);
    let Some(at) = w
        .windows(2)
        .position(|p| p[0] == "subject" && p[1] == "entity")
        .map(|p| p + 2)
    else {
        return Vec::new();
    };
    let mut p = at;
    while w.get(p).is_some_and(|x| AUXILIARIES.contains(&x.as_str())) {
        p += 1;
    }
    let Some(verb) = w.get(p) else {
        return Vec::new();
    };
    if NOT_VERBS.contains(&verb.as_str()) || PREPOSITIONS.contains(&verb.as_str()) {
        return Vec::new();
    }
    let mut verbs = vec![verb.clone()];
    p += 1;
    if w.get(p).map(String::as_str) == Some("or") {
        if let Some(v2) = w.get(p + 1) {
            verbs.push(v2.clone());
            p += 2;
        }
    }
    let prep = w
        .get(p)
        .filter(|x| PREPOSITIONS.contains(&x.as_str()))
        .cloned();
    verbs
        .into_iter()
        .map(|v| {
            let mut phrase = vec![v];
            phrase.extend(prep.clone());
            phrase
        })
        .collect()
}

/// Whether `name` starts at `q` in `text`, or after an article there and at most `extra`
/// more words ("the firm Herrera y Lagos"). A name may start with its own article ("by The
/// Two Towers"), so it is tried at `q` first.
fn name_at(text: &[String], q: usize, name: &[String], extra: usize) -> bool {
    if at(text, q, name) {
        return true;
    }
    let q = if text.get(q).is_some_and(|x| ARTICLES.contains(&x.as_str())) {
        q + 1
    } else {
        q
    };
    (0..=extra).any(|k| at(text, q + k, name))
}

/// Whether `text` has one of `phrases` followed by `name` (after an article, and at most one
/// more word: "works for the firm Herrera y Lagos").
fn follows_phrase(text: &[String], phrases: &[Vec<String>], name: &[String]) -> bool {
    let at = |p: usize, w: &[String]| at(text, p, w);
    phrases.iter().filter(|ph| ph.len() >= 2).any(|ph| {
        (0..text.len()).any(|p| {
            if !at(p, ph) {
                return false;
            }
            name_at(text, p + ph.len(), name, 1)
        })
    })
}

/// Irregular participles a definition may use ("written by"), with their active forms.
const IRREGULAR: &[(&str, &[&str])] = &[
    ("written", &["wrote", "writes", "write"]),
    ("built", &["built", "builds", "build"]),
    ("made", &["made", "makes", "make"]),
    ("run", &["ran", "runs", "run"]),
    ("led", &["led", "leads", "lead"]),
    ("held", &["held", "holds", "hold"]),
    ("drawn", &["drew", "draws", "draw"]),
    ("sung", &["sang", "sings", "sing"]),
    ("taught", &["taught", "teaches", "teach"]),
    ("bought", &["bought", "buys", "buy"]),
    ("sold", &["sold", "sells", "sell"]),
    ("won", &["won", "wins", "win"]),
    ("given", &["gave", "gives", "give"]),
    ("shown", &["showed", "shows", "show"]),
];

/// The active forms of a definition's passive phrases ("operated by" -> "operates",
/// "operate", "operated" not followed by "by"; "owned by" -> "owns"): regular verbs only.
fn active_forms(phrases: &[Vec<String>]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for ph in phrases {
        let [participle, by] = ph.as_slice() else {
            continue;
        };
        if by != "by" {
            continue;
        }
        if let Some((_, forms)) = IRREGULAR.iter().find(|(p, _)| p == participle) {
            out.extend(forms.iter().map(|f| (*f).to_owned()));
            continue;
        }
        let Some(stem) = participle.strip_suffix("ed") else {
            continue;
        };
        if stem.is_empty() {
            continue;
        }
        // "operated" -> "operate"; "designed" -> "design".
        let with_e = format!("{stem}e");
        for form in [
            participle.clone(),
            format!("{stem}s"),
            format!("{stem}es"),
            format!("{with_e}s"),
            with_e,
        ] {
            if !out.contains(&form) {
                out.push(form);
            }
        }
    }
    out
}

/// Whether `text` has `agent` right before an active form of the relation's verb (not
/// followed by "by") and `patient` after it, an article and at most one more word between:
/// "MotorSport Vision operates the Bedford Aerodrome" says the aerodrome is operated by
/// MotorSport Vision.
fn acts_on(text: &[String], forms: &[String], agent: &[String], patient: &[String]) -> bool {
    let at = |p: usize, w: &[String]| at(text, p, w);
    // The agent by its full name, or by its first or last word alone at the start of a
    // sentence or clause ("Grigory discovered 1147 Stavropolis" after "Grigory Neujmin was
    // born ...").
    let mut short: Vec<&[String]> = Vec::new();
    if agent.len() >= 2 {
        short.extend([&agent[..1], &agent[agent.len() - 1..]]);
    }
    (0..text.len()).any(|p| {
        let clause_start = p == 0 || matches!(text[p - 1].as_str(), "." | ",");
        let q = if at(p, agent) {
            p + agent.len()
        } else if clause_start && short.iter().any(|m| at(p, m)) {
            p + 1
        } else {
            return false;
        };
        // Past a clause about the agent: "J.R.R. Tolkien, who was born in 1892, wrote ...".
        let q = match (text.get(q).map(String::as_str), text.get(q + 1)) {
            (Some(","), Some(w)) if w == "who" || w == "which" => (q + 2..text.len())
                .take_while(|&k| text[k] != ".")
                .find(|&k| text[k] == ",")
                .map_or(q, |k| k + 1),
            _ => q,
        };
        if !text.get(q).is_some_and(|v| forms.contains(v))
            || text.get(q + 1).map(String::as_str) == Some("by")
        {
            return false;
        }
        name_at(text, q + 1, patient, 1)
    })
}

/// Whether `name` comes after one of `phrases` in the same sentence.
fn after_phrase(text: &[String], phrases: &[Vec<String>], name: &[String]) -> bool {
    let at = |p: usize, w: &[String]| at(text, p, w);
    phrases.iter().filter(|ph| ph.len() >= 2).any(|ph| {
        (0..text.len()).filter(|&p| at(p, ph)).any(|p| {
            (p + ph.len()..text.len())
                .take_while(|&q| text[q] != ".")
                .any(|q| at(q, name))
        })
    })
}

/// Whether the text gives the relation of `definition` another object than `object` in so
/// many words: `other`, one of the subject's other objects of that relation, comes right
/// after the definition's verb phrase ("he works for the firm Herrera y Lagos"), and
/// `object` nowhere after it in that sentence ("an architect from Valparaíso, Chile; he works
/// for ..." read as [Tomás Herrera, employer, Valparaíso]).
pub(crate) fn stated_for_another(
    text: &str,
    definition: &str,
    object: &str,
    others: &[&str],
) -> bool {
    let phrases = definition_phrases(definition);
    if phrases.is_empty() || others.is_empty() {
        return false;
    }
    let t = tokens(text);
    let o = words(object);
    !o.is_empty()
        && !after_phrase(&t, &phrases, &o)
        && others.iter().any(|n| {
            let n = words(n);
            !n.is_empty() && follows_phrase(&t, &phrases, &n)
        })
}

/// Whether `text` states the triple [`subject`, `relation`, `object`] the other way round:
/// it says the subject is the relation of the object ("Santiago is the capital of Chile" for
/// [Santiago, capital, Chile]) and never the object the relation of the subject; or it puts
/// the subject, and never the object, right after the verb phrase of the relation's
/// `definition`.
pub(crate) fn stated_reversed(
    text: &str,
    subject: &str,
    relation: &str,
    definition: &str,
    object: &str,
) -> bool {
    let (t, r, s, o) = (tokens(text), words(relation), words(subject), words(object));
    if r.is_empty() || s.is_empty() || o.is_empty() || s == o {
        return false;
    }
    if states(&t, &r, &o, &s) && !states(&t, &r, &s, &o) {
        return true;
    }
    let phrases = definition_phrases(definition);
    // A definition "... located in ..." and the text's "Quezon City in the Philippines": the
    // name before "in" is where the relation starts, whatever the verb phrase is next to
    // ("located in Quezon City in the Philippines").
    if phrases.iter().any(|ph| ph.len() == 2 && ph[1] == "in") {
        match (in_place(&t, &s, &o), in_place(&t, &o, &s)) {
            (true, false) => return false,
            (false, true) => return true,
            _ => {}
        }
    }
    let phrases_say = follows_phrase(&t, &phrases, &s) && !follows_phrase(&t, &phrases, &o);
    let forms = active_forms(&phrases);
    phrases_say || (acts_on(&t, &forms, &s, &o) && !acts_on(&t, &forms, &o, &s))
}

/// Whether `text` writes `inner` right before "in", an article and `outer`.
fn in_place(text: &[String], inner: &[String], outer: &[String]) -> bool {
    (0..text.len()).any(|p| {
        let q = p + inner.len();
        if !at(text, p, inner) || text.get(q).map(String::as_str) != Some("in") {
            return false;
        }
        name_at(text, q + 1, outer, 0)
    })
}

/// Words that open a clause about the name right before them.
const RELATIVES: &[&str] = &["which", "whose", "where"];

/// Where the words `w` first occur in `text` at or after `from`.
fn find(text: &[String], w: &[String], from: usize) -> Option<usize> {
    (from..text.len()).find(|&p| at(text, p, w))
}

/// The entity a relative clause holding the object is about, when that is another of
/// `names` than the subject: for "Prudnikov played for FC Terek Grozny, which is located in
/// Grozny", [Prudnikov, location, Grozny] is FC Terek Grozny's location; "Dijon, whose postal
/// code is 21000", "Azerbaijan, where Artur Rasizade was a leader" likewise. Small models
/// make the text's main entity the subject of every fact. The clause must lie between the
/// subject's mention and the object's, in one sentence, and the name must end right before
/// "which", "whose" or "where" (a comma allowed). A name that is not capitalised, or opens
/// with "a"/"an" ("an American who", "a TV series which"), describes the subject rather than
/// naming another entity, and a number is no holder. `None` otherwise.
pub(crate) fn clause_holder<'a>(
    text: &str,
    subject: &str,
    object: &str,
    names: &'a [String],
) -> Option<&'a str> {
    let (t, s, o) = (tokens(text), words(subject), words(object));
    if s.is_empty() || o.is_empty() {
        return None;
    }
    let after_subject = find(&t, &s, 0)? + s.len();
    let sentence_end = find(&t, &[".".to_owned()], after_subject).unwrap_or(t.len());
    // Each mention of the object in the sentence, in order ("Grozny" is also the end of "FC
    // Terek Grozny", before the clause).
    let mut from = after_subject;
    while let Some(po) = find(&t[..sentence_end], &o, from) {
        from = po + 1;
        let nearest = |f: &dyn Fn(&str) -> bool| (after_subject..po).rev().find(|&p| f(&t[p]));
        let relative = nearest(&|w| RELATIVES.contains(&w));
        let that = nearest(&|w| w == "that");
        let direct = relative.map(|r| if t[r - 1] == "," { r - 1 } else { r });
        // "The Fellowship of the Ring, a fantasy novel that was released on ...": the clause
        // is about the name the description stands beside.
        let described = [relative, that]
            .into_iter()
            .flatten()
            .filter_map(|r| described_name_end(&t, after_subject, r));
        for end in direct.into_iter().chain(described) {
            let holder = longest_holder(names, &s, &o, |w| {
                end >= after_subject + w.len() && t[end - w.len()..end] == w[..]
            });
            if holder.is_some() {
                return holder;
            }
        }
    }
    None
}

/// Where the name ends that a description right before the relative word at `r` stands
/// beside: ", a fantasy novel that" and ", an airport which" describe the name before the
/// comma. The description is "a"/"an" and at most four more words (no comma, no number);
/// `None` otherwise.
fn described_name_end(t: &[String], from: usize, r: usize) -> Option<usize> {
    let a = (r.saturating_sub(5).max(from + 1)..r)
        .find(|&p| matches!(t[p].as_str(), "a" | "an") && t[p - 1] == ",")?;
    t[a + 1..r]
        .iter()
        .all(|w| w.chars().all(|c| c.is_alphabetic() || c == '-'))
        .then_some(a - 1)
}

/// The entity the text names as the holder of the triple's relation with this object, when
/// that is another of `names` than the subject: "The anthem of the German Empire is Die Wacht
/// am Rhein", "FC Spartak Moscow's grounds are the Otkrytiye Arena" and "The manager of FC
/// Amkar Perm is Gadzhi Gadzhiyev" state the German Empire's anthem, Spartak's ground and
/// Amkar's manager, whoever the model made the subject (small models give the text's main
/// entity every fact). The phrasings are those of [`stated_reversed`], with the relation's
/// name as the noun; a name that is not capitalised, or opens with "a"/"an", is no holder.
/// `None` when the text states the relation of the subject itself, or of no other name.
pub(crate) fn stated_holder<'a>(
    text: &str,
    subject: &str,
    relation: &str,
    object: &str,
    names: &'a [String],
) -> Option<&'a str> {
    let (t, r, s, o) = (tokens(text), words(relation), words(subject), words(object));
    if r.is_empty() || s.is_empty() || o.is_empty() || states(&t, &r, &s, &o) {
        return None;
    }
    longest_holder(names, &s, &o, |w| states(&t, &r, w, &o))
}

/// The longest of `names`, other than the subject's words `s` and the object's `o`, whose
/// words `fits`. A name that is not capitalised, or opens with "a"/"an" ("an American who",
/// "a TV series which"), describes an entity rather than naming one, and holds nothing.
fn longest_holder<'a>(
    names: &'a [String],
    s: &[String],
    o: &[String],
    fits: impl Fn(&[String]) -> bool,
) -> Option<&'a str> {
    names
        .iter()
        .filter(|n| {
            let first = n.split_whitespace().next().unwrap_or_default();
            n.chars().next().is_some_and(char::is_uppercase)
                && !matches!(first.to_lowercase().as_str(), "a" | "an")
        })
        .filter_map(|n| {
            let w = words(n);
            (!w.is_empty() && w != s && w != o && fits(&w)).then_some((w.len(), n.as_str()))
        })
        .max_by_key(|&(len, _)| len)
        .map(|(_, n)| n)
}

/// Words of relation names that tell no relation from another.
const RELATION_FILLERS: &[&str] = &[
    "of", "the", "a", "an", "to", "in", "on", "at", "by", "for", "has", "is", "and", "with", "as",
];

/// Endings taken off a word before comparing ("discovered", "discoverer" -> "discover";
/// "created", "creator" -> "creat"), longest first, leaving at least four letters.
const ENDINGS: &[&str] = &[
    "ations", "ation", "ions", "ion", "ings", "ing", "ers", "er", "ors", "or", "ed", "es", "s",
    "al",
];

fn stem(w: &str) -> &str {
    ENDINGS
        .iter()
        .find(|e| w.ends_with(*e) && w.chars().count() >= e.len() + 4)
        .map_or(w, |e| &w[..w.len() - e.len()])
}

/// Whether a relation name's word `r` is the text's word `t`: the same stem, or one's stem
/// of four letters or more opening the other ("metro" in "metropolitan", "origin" in
/// "originated").
fn same_word(r: &str, t: &str) -> bool {
    let (a, b) = (stem(r), stem(t));
    a == b
        || (a.chars().count() >= 4 && t.starts_with(a))
        || (b.chars().count() >= 4 && r.starts_with(b))
}

/// Words that end the phrase after a number: what follows them is another clause's.
const CLAUSE_WORDS: &[&str] = &[
    "and", "is", "are", "was", "were", "has", "have", "had", "with", "which", "that", "who", "it",
    "its", "while", "but",
];

/// Adjectives of measure after a number, as the noun a relation's name would use.
const MEASURES: &[(&str, &str)] = &[
    ("long", "length"),
    ("high", "height"),
    ("tall", "height"),
    ("wide", "width"),
    ("deep", "depth"),
    ("old", "age"),
];

/// What the text says a number counts or measures: the words around its first mention (by
/// value: "3,500" is 3500), lowercased. Up to four words after it ("17000 members", "83.2
/// metres above sea level", "4349 metres long", an adjective of measure read as its noun),
/// ending at punctuation, another number or a clause word ("11.5 and has an orbital period
/// ..."); and up to six before it when "of" or a form of "be" joins them to it ("orbital
/// period of 1249.6", "its population in the metropolitan area is 1777539"). A capitalised
/// word is a name, not a word for what is counted, and is left out. Empty when the text does
/// not write the number.
pub(crate) fn number_words(text: &str, number: &str) -> Vec<String> {
    let value = |s: &str| {
        s.replace(',', "")
            .replace('\u{2212}', "-")
            .parse::<f64>()
            .ok()
    };
    let Some(v) = value(number.trim()) else {
        return Vec::new();
    };
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut k = 0;
    while k < chars.len() {
        let (start, c) = chars[k];
        let after_word = k > 0 && chars[k - 1].1.is_alphanumeric();
        if !c.is_ascii_digit() || after_word {
            k += 1;
            continue;
        }
        let mut j = k;
        while j < chars.len()
            && (chars[j].1.is_ascii_digit()
                || (matches!(chars[j].1, ',' | '.')
                    && chars.get(j + 1).is_some_and(|n| n.1.is_ascii_digit())))
        {
            j += 1;
        }
        let end = chars.get(j).map_or(text.len(), |c| c.0);
        k = j;
        if value(&text[start..end]).is_none_or(|w| (w - v).abs() > 1e-9 * v.abs().max(1.0)) {
            continue;
        }
        let stop = |c: char| matches!(c, ',' | '.' | ';' | ':' | '(' | ')' | '!' | '?');
        let after = &text[end..];
        let after = &after[..after.find(stop).unwrap_or(after.len())];
        let before = &text[..start];
        let before = &before[before.rfind(stop).map_or(0, |p| p + 1)..];
        let lower = |piece: &str, r: &std::ops::Range<usize>| {
            !piece[r.clone()].starts_with(char::is_uppercase)
        };
        let mut out = Vec::new();
        let spans = word_spans(before);
        if spans
            .last()
            .is_some_and(|(w, _)| matches!(w.as_str(), "of" | "is" | "are" | "was" | "were"))
        {
            for (w, r) in spans.iter().rev().take(6) {
                if w.starts_with(|c: char| c.is_ascii_digit()) {
                    break;
                }
                if lower(before, r) {
                    out.push(w.clone());
                }
            }
        }
        for (w, r) in word_spans(after).into_iter().take(4) {
            if w.starts_with(|c: char| c.is_ascii_digit()) || CLAUSE_WORDS.contains(&w.as_str()) {
                break;
            }
            if lower(after, &r) {
                // "4349 metres long" measures a length.
                let measure = MEASURES.iter().find(|(a, _)| *a == w);
                out.push(measure.map_or(w, |(_, noun)| (*noun).to_owned()));
            }
        }
        return out;
    }
    Vec::new()
}

/// How many of a relation name's words (`relation`, camelCase split by
/// [`words`](crate::words::words); fillers left out) are among `words_near`
/// ([`number_words`]): numberOfMembers has one in "17000 members", elevationAboveTheSeaLevel
/// three in "83.2 metres above sea level".
pub(crate) fn named_by(relation: &[String], words_near: &[String]) -> usize {
    relation
        .iter()
        .filter(|w| !RELATION_FILLERS.contains(&w.as_str()))
        .filter(|w| {
            words_near
                .iter()
                .any(|t| !RELATION_FILLERS.contains(&t.as_str()) && same_word(w, t))
        })
        .count()
}

/// The share of `relation`'s words (its name, camelCase split, fillers left out) that the
/// text uses in the sentences writing `near`, one end of the triple (the whole text when no
/// sentence writes it): "16,800 of them are undergraduates" uses two of the three words of
/// numberOfUndergraduateStudents and none of academicStaffSize's. The text's own words
/// decide between two relations a model offers for one pair of entities before the model's
/// Yes/No does, which cannot tell such near neighbours apart.
pub(crate) fn relation_words_share(text: &str, relation: &str, near: &str) -> f32 {
    let r: Vec<String> = words(relation)
        .into_iter()
        .filter(|w| !RELATION_FILLERS.contains(&w.as_str()))
        .collect();
    if r.is_empty() {
        return 0.0;
    }
    // Sentences end at ".", "!" or "?" before a space: not inside "1249.6".
    let mut sentences: Vec<Vec<String>> = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let end =
            matches!(c, '.' | '!' | '?') && chars.peek().is_none_or(|&(_, n)| n.is_whitespace());
        if end {
            sentences.push(words(&text[start..=i]));
            start = i + 1;
        }
    }
    sentences.push(words(&text[start..]));
    let near = words(near).concat();
    let writing: Vec<&String> = sentences
        .iter()
        .filter(|s| !near.is_empty() && s.concat().contains(&near))
        .flatten()
        .collect();
    let window: Vec<&String> = if writing.is_empty() {
        sentences.iter().flatten().collect()
    } else {
        writing
    };
    let used = r
        .iter()
        .filter(|rw| window.iter().any(|tw| same_word(rw, tw)))
        .count();
    used as f32 / r.len() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKS: &str =
        "The subject entity works or worked for the organisation given by the object entity.";

    #[test]
    fn definitions_give_their_verb_phrases() {
        let phrase = |d| {
            definition_phrases(d)
                .into_iter()
                .map(|p| p.join(" "))
                .collect::<Vec<_>>()
        };
        assert_eq!(phrase(WORKS), ["works for", "worked for"]);
        assert_eq!(
            phrase("The subject entity is located in the place given by the object entity."),
            ["located in"]
        );
        assert_eq!(
            phrase("The subject entity was designed by the architect given by the object."),
            ["designed by"]
        );
        assert!(
            phrase("The subject entity is in the country given by the object entity.").is_empty()
        );
        assert!(
            phrase("The subject entity has the city given by the object as its capital.")
                .is_empty()
        );
        assert!(phrase("Capital city of a country").is_empty());
    }

    #[test]
    fn a_subject_right_after_the_definitions_verb_is_the_object() {
        let t = "Ingrid Solberg, born in Bergen, is a marine biologist who works for the \
                 Norwegian Polar Institute.";
        let npi = "Norwegian Polar Institute";
        let reversed = |s, o| stated_reversed(t, s, "employer", WORKS, o);
        assert!(reversed(npi, "Ingrid Solberg"));
        assert!(!reversed("Ingrid Solberg", npi));
        let t = "Tomás Herrera is an architect; he works for the firm Herrera y Lagos.";
        assert!(stated_reversed(
            t,
            "Herrera y Lagos",
            "employer",
            WORKS,
            "Tomás Herrera"
        ));
        // A place in another.
        let located = "The subject entity is located in the country given by the object entity.";
        let t = "GMA New Media is located in Quezon City in the Philippines.";
        assert!(stated_reversed(
            t,
            "Philippines",
            "country",
            located,
            "Quezon City"
        ));
        assert!(!stated_reversed(
            t,
            "Quezon City",
            "country",
            located,
            "Philippines"
        ));
        // A name that starts with its article.
        let t = "Ada Price works for The Economist.";
        assert!(stated_reversed(
            t,
            "The Economist",
            "employer",
            WORKS,
            "Ada Price"
        ));
        assert!(!stated_reversed(
            t,
            "Ada Price",
            "employer",
            WORKS,
            "The Economist"
        ));
        // A passive definition's verb in the active voice: the doer is the object.
        let designed = "The subject entity was designed by the architect given by the object.";
        assert!(stated_reversed(
            "Marta designed the museum.",
            "Marta",
            "architect",
            designed,
            "museum"
        ));
    }

    #[test]
    fn an_object_the_verb_phrase_names_outranks_one_it_does_not() {
        let t = "Tomás Herrera is an architect from Valparaíso, Chile; he works for the firm \
                 Herrera y Lagos and for Vela Studio.";
        let others = ["Herrera y Lagos", "Vela Studio"];
        assert!(stated_for_another(t, WORKS, "Valparaíso", &others));
        assert!(!stated_for_another(
            t,
            WORKS,
            "Vela Studio",
            &["Herrera y Lagos"]
        ));
        assert!(!stated_for_another(
            t,
            WORKS,
            "Herrera y Lagos",
            &["Vela Studio"]
        ));
        // Nothing to compare with, or no verb phrase in the definition: nothing said.
        assert!(!stated_for_another(t, WORKS, "Valparaíso", &[]));
        let employer = "The subject entity has the employer given by the object entity.";
        assert!(!stated_for_another(t, employer, "Valparaíso", &others));
    }

    #[test]
    fn classifying_nouns_and_other_clauses_leave_a_triple_alone() {
        assert!(!stated_reversed(
            "Hypermarcas is a type of S.A.",
            "Hypermarcas",
            "type",
            "",
            "S.A"
        ));
        // "the country of Mexico" names Mexico; the next sentence is not its value.
        let t = "Morelos is located in the country of Mexico. Ciudad Ayala city is big.";
        assert!(!stated_reversed(t, "Ciudad Ayala", "country", "", "Mexico"));
        assert_eq!(
            tokens("Alan B. Miller Hall, in Virginia. It is old."),
            ["alan", "b", "miller", "hall", ",", "in", "virginia", ".", "it", "is", "old", "."]
        );
    }

    #[test]
    fn the_active_voice_of_a_passive_definition_turns_a_triple_round() {
        let operated = "The subject entity is operated or managed by the object entity.";
        let t = "MotorSport Vision operates the Bedford Aerodrome. It serves Bedford Autodrome.";
        let rev = |t, s, d, o| stated_reversed(t, s, "r", d, o);
        assert!(rev(t, "MotorSport Vision", operated, "Bedford Aerodrome"));
        assert!(!rev(t, "Bedford Aerodrome", operated, "MotorSport Vision"));
        let owned = "The subject entity is owned by the object entity.";
        assert!(rev(
            "The College of William and Mary owns Alan B. Miller Hall.",
            "College of William and Mary",
            owned,
            "Alan B. Miller Hall"
        ));
        let designed = "The subject entity was designed or planned by the object entity.";
        assert!(rev(
            "Robert A.M. Stern designed the Alan B. Miller Hall.",
            "Robert A.M. Stern",
            designed,
            "Alan B. Miller Hall"
        ));
        // The passive is the definition's own phrase (read as before); another verb, and
        // texts that say both ways, leave the triple alone.
        let passive = "The Bedford Aerodrome operated by MotorSport Vision is small.";
        assert!(!rev(
            passive,
            "Bedford Aerodrome",
            operated,
            "MotorSport Vision"
        ));
        assert!(rev(
            passive,
            "MotorSport Vision",
            operated,
            "Bedford Aerodrome"
        ));
        assert!(!rev(
            "MotorSport Vision serves the Bedford Aerodrome.",
            "MotorSport Vision",
            operated,
            "Bedford Aerodrome"
        ));
        // Irregular verbs; the agent by one word of its name at a sentence start.
        let written = "The subject entity was written or created by the object entity.";
        assert!(rev(
            "J.R.R. Tolkien, who was born in 1892, wrote The Fellowship of the Ring.",
            "J.R.R. Tolkien",
            written,
            "The Fellowship of the Ring"
        ));
        let discovered = "The subject entity was discovered by the object entity.";
        let t = "Grigory Neujmin was born in Tbilisi. Grigory discovered 1147 Stavropolis.";
        assert!(rev(t, "Grigory Neujmin", discovered, "1147 Stavropolis"));
        assert!(!rev(t, "1147 Stavropolis", discovered, "Grigory Neujmin"));
        assert!(!rev(
            "Ann Lee met Grigory Neujmin and Lee discovered 1147 Stavropolis.",
            "Grigory Lee",
            discovered,
            "1147 Stavropolis"
        ));
        // A name that starts with its article.
        let published = "The subject entity was published by the object entity.";
        assert!(rev(
            "George Allen & Unwin published The Fellowship of the Ring, a novel.",
            "George Allen & Unwin",
            published,
            "The Fellowship of the Ring"
        ));
        assert!(!rev(
            "Xeno owns Yara and Yara owns Xeno.",
            "Xeno",
            owned,
            "Yara"
        ));
    }

    #[test]
    fn the_relation_of_phrasings_turn_a_triple_round() {
        let t = "Santiago is the capital of Chile.";
        assert!(stated_reversed(t, "Santiago", "capital", "", "Chile"));
        assert!(!stated_reversed(t, "Chile", "capital", "", "Santiago"));
        // "for" and "in" in place of "of"; an indefinite article.
        let t = "Robert A.M. Stern is the architect for Alan B. Miller Hall.";
        assert!(stated_reversed(
            t,
            "Robert A.M. Stern",
            "architect",
            "",
            "Alan B. Miller Hall"
        ));
        let t = "An ethnic group in Israel is the Israeli Jews.";
        assert!(stated_reversed(
            t,
            "Israeli Jews",
            "ethnicGroup",
            "",
            "Israel"
        ));
        assert!(!stated_reversed(
            t,
            "Israel",
            "ethnicGroup",
            "",
            "Israeli Jews"
        ));
        let t = "The College of William and Mary is the owner of the Alan B. Miller Hall.";
        assert!(stated_reversed(
            t,
            "College of William and Mary",
            "owner",
            "",
            "Alan B. Miller Hall"
        ));
        assert!(stated_reversed(
            "Dravik, the capital of the Vessen region, is old.",
            "Dravik",
            "capital",
            "",
            "Vessen region"
        ));
        assert!(stated_reversed(
            "Chile's capital is Santiago.",
            "Santiago",
            "capital",
            "",
            "Chile"
        ));
        assert!(stated_reversed(
            "The leaders of Ciudad Ayala were the City Manager and more.",
            "City Manager",
            "leader",
            "",
            "Ciudad Ayala"
        ));
        // Other phrasings, and texts that say both, leave the triple alone.
        assert!(!stated_reversed(
            "Santiago lies in Chile.",
            "Santiago",
            "capital",
            "",
            "Chile"
        ));
        assert!(!stated_reversed(
            "Alda is the owner of Brenn, and Brenn is the owner of Alda.",
            "Alda",
            "owner",
            "",
            "Brenn"
        ));
        assert!(!stated_reversed(
            "Bergen is the birth place of Ingrid Solberg.",
            "Bergen",
            "capital",
            "",
            "Ingrid Solberg"
        ));
    }

    #[test]
    fn relative_clauses_are_about_the_name_before_them() {
        let names = |ns: &[&str]| ns.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let text = "Aleksandr Prudnikov played for FC Terek Grozny, which is located in Grozny. \
                    The University of Burgundy is in Dijon, whose postal code is 21000.";
        let ns = names(&[
            "Aleksandr Prudnikov",
            "FC Terek Grozny",
            "Grozny",
            "University of Burgundy",
            "Dijon",
        ]);
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("Aleksandr Prudnikov", "Grozny", Some("FC Terek Grozny")),
            ("University of Burgundy", "21000", Some("Dijon")),
            // The object outside the clause, or the subject already the holder.
            ("Aleksandr Prudnikov", "FC Terek Grozny", None),
            ("FC Terek Grozny", "Grozny", None),
            ("University of Burgundy", "Dijon", None),
        ];
        for (subject, object, holder) in cases {
            assert_eq!(
                clause_holder(text, subject, object, &ns),
                *holder,
                "{subject} / {object}"
            );
        }
        // A description of the subject, a number, or a clause in another sentence: no holder.
        let text = "Alan Shepard was an American who was born in New Hampshire. The runway is \
                    3500 long, which is named 14L. Kestrel Road is old. Which town it links is \
                    Aldbury.";
        let ns = names(&["Alan Shepard", "American", "runway", "3500", "Kestrel Road"]);
        assert_eq!(
            clause_holder(text, "Alan Shepard", "New Hampshire", &ns),
            None
        );
        assert_eq!(clause_holder(text, "runway", "14L", &ns), None);
        assert_eq!(clause_holder(text, "Kestrel Road", "Aldbury", &ns), None);
        // A description beside a name, then "that" or "which": the clause is the name's.
        let text = "George Allen & Unwin published The Fellowship of the Ring, a fantasy novel \
                    that was released on July 29, 1954. Ada wrote that Bergen is old.";
        let ns = names(&[
            "George Allen & Unwin",
            "The Fellowship of the Ring",
            "Ada",
            "Bergen",
        ]);
        assert_eq!(
            clause_holder(text, "George Allen & Unwin", "1954", &ns),
            Some("The Fellowship of the Ring")
        );
        assert_eq!(clause_holder(text, "Ada", "old", &ns), None);
    }

    #[test]
    fn the_text_names_whose_attribute_a_value_is() {
        let names: Vec<String> = [
            "Liselotte Grschebina",
            "German Empire",
            "FC Spartak Moscow",
            "Israel",
            "a former club",
        ]
        .map(String::from)
        .to_vec();
        let holder = |text: &str, s: &str, r: &str, o: &str| stated_holder(text, s, r, o, &names);
        let t = "Liselotte Grschebina was born in the German Empire. The anthem of the German \
                 Empire is Die Wacht am Rhein.";
        assert_eq!(
            holder(t, "Liselotte Grschebina", "anthem", "Die Wacht am Rhein"),
            Some("German Empire")
        );
        // Stated of the subject itself, or of no name: left alone.
        assert_eq!(
            holder(t, "German Empire", "anthem", "Die Wacht am Rhein"),
            None
        );
        assert_eq!(
            holder(t, "Liselotte Grschebina", "birthPlace", "German Empire"),
            None
        );
        let t = "Prudnikov played for FC Spartak Moscow's youth team. FC Spartak Moscow's \
                 grounds are the Otkrytiye Arena.";
        assert_eq!(
            holder(t, "Aleksandr Prudnikov", "ground", "Otkrytiye Arena"),
            Some("FC Spartak Moscow")
        );
        // A decimal point is no sentence end.
        let t = "She died in Israel. The population density of Israel is 387.63 people per km.";
        assert_eq!(
            holder(t, "Liselotte Grschebina", "populationDensity", "387.63"),
            Some("Israel")
        );
        assert_eq!(
            holder(
                "The ground of a former club is Otkrytiye Arena.",
                "Prudnikov",
                "ground",
                "Otkrytiye Arena"
            ),
            None
        );
    }

    #[test]
    fn the_sentence_writing_a_value_says_which_relation_it_is() {
        let text = "The University of Burgundy has 27,400 students, 16,800 of them \
                    undergraduates. It has a staff of 2,900 and an academic board.";
        let share = |r: &str, near: &str| relation_words_share(text, r, near);
        assert!((share("numberOfUndergraduateStudents", "16800") - 2.0 / 3.0).abs() < 1e-6);
        assert!((share("numberOfStudents", "27400") - 0.5).abs() < 1e-6);
        assert_eq!(share("numberOfMembers", "27400"), 0.0);
        // Only the sentence writing the value counts.
        assert_eq!(share("academicStaffSize", "16800"), 0.0);
        assert!((share("academicStaffSize", "2900") - 2.0 / 3.0).abs() < 1e-6);
        // Stems and openings: "created" is the creator's word, "metropolitan" the metro's.
        let t = "Bananaman was created by Steve Bright.";
        assert_eq!(relation_words_share(t, "creator", "Steve Bright"), 1.0);
        assert_eq!(relation_words_share(t, "founder", "Steve Bright"), 0.0);
        let t = "The population of its metropolitan area is 1,777,539.";
        assert_eq!(relation_words_share(t, "populationMetro", "1777539"), 1.0);
        assert_eq!(relation_words_share(t, "populationTotal", "1777539"), 0.5);
        // A value no sentence writes: the whole text decides.
        assert_eq!(relation_words_share(t, "populationMetro", "12"), 1.0);
        assert_eq!(relation_words_share(t, "ofThe", "12"), 0.0);
    }

    #[test]
    fn a_numbers_own_words_name_what_it_counts() {
        let t = "The club has 17,000 members. It lies 83.2 metres above Sea Level Park, with an \
                 orbital period of 1249.6 days and 11.5 and an apoapsis. The total area is 165.33. \
                 The runway is 4349 metres long.";
        let w = |n: &str| number_words(t, n);
        assert_eq!(w("17000"), ["members"]);
        assert_eq!(w("83.2"), ["metres", "above"]);
        assert_eq!(
            w("1249.6"),
            ["of", "period", "orbital", "an", "with", "days"]
        );
        assert_eq!(w("11.5"), Vec::<String>::new());
        assert_eq!(w("165.33"), ["is", "area", "total"]);
        assert_eq!(w("4349"), ["is", "runway", "metres", "length"]);
        // Not written, or written inside another number or word: nothing.
        for n in ["17", "1249", "", "abc", "3"] {
            assert!(w(n).is_empty(), "{n}");
        }
        assert_eq!(named_by(&words("numberOfMembers"), &w("17000")), 1);
        assert_eq!(named_by(&words("elevationAboveTheSeaLevel"), &w("83.2")), 1);
        assert_eq!(named_by(&words("orbitalPeriod"), &w("1249.6")), 2);
        assert_eq!(named_by(&words("areaTotal"), &w("165.33")), 2);
        assert_eq!(named_by(&words("runwayLength"), &w("4349")), 2);
        assert_eq!(named_by(&words("longName"), &w("4349")), 0);
        assert_eq!(named_by(&words("height"), &w("83.2")), 0);
    }
}
