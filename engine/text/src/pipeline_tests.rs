//! Control-flow tests of the pipeline with a scripted fake model and a keyword embedder (the
//! real model runs in the integration tests).

#![allow(clippy::unwrap_in_result, clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::output::parse_triples;
use crate::schema::{camel_case, definition_text};
use crate::MAX_TEXT_BYTES;
use serde_json::json;
use std::sync::Mutex;
use tessera_llm::{ChatMessage, Constraint, Finish, GenerateOptions, Prompt};
use tessera_storage::vocab::xsd;
use tessera_storage::SchemaIndex;

/// A scripted fake language model: extraction and definition outputs by the text they are
/// asked about, and fixed option scores.
struct ScriptedFakeModel {
    triples: Vec<(&'static str, &'static str)>,
    refined: Vec<(&'static str, &'static str)>,
    pick: usize,
    /// Statements the support check finds in the text (the others it does not); empty: the
    /// check's answers follow `pick` like every other scored choice.
    supported: Vec<&'static str>,
    constraints: Mutex<Vec<String>>,
    scored: Mutex<Vec<String>>,
    /// Every generation prompt, fixed part and rest.
    prompts: Mutex<Vec<String>>,
    /// Answers of the cover pass by a name given back; empty: the model takes no further
    /// turns (as a chat server), and the pass is skipped.
    covers: Vec<(&'static str, &'static str)>,
}

impl TextModel for ScriptedFakeModel {
    fn identity(&self) -> String {
        "scripted-fake".into()
    }
    fn render(&self, fixed: &[ChatMessage], user: &str) -> Result<Prompt, EdcError> {
        Ok(Prompt {
            prefix: fixed.iter().map(|m| m.content.as_str()).collect(),
            text: user.to_owned(),
            data: Vec::new(),
        })
    }
    fn render_turns(
        &self,
        fixed: &[ChatMessage],
        user: &str,
        rest: &[ChatMessage],
    ) -> Result<Option<Prompt>, EdcError> {
        if self.covers.is_empty() {
            return Ok(None);
        }
        let mut p = self.render(fixed, user)?;
        for m in rest {
            p.text.push_str(&format!("\n[{}] {}", m.role, m.content));
        }
        Ok(Some(p))
    }
    fn generate(
        &self,
        prompts: &[Prompt],
        opts: &GenerateOptions,
    ) -> Result<Vec<Generation>, EdcError> {
        let grammar = match &opts.constraint {
            Some(Constraint::JsonSchema(v)) => v.to_string(),
            Some(Constraint::Lark(g)) => g.clone(),
            _ => String::new(),
        };
        self.constraints.lock().unwrap().push(grammar);
        self.prompts
            .lock()
            .unwrap()
            .extend(prompts.iter().map(|p| format!("{}{}", p.prefix, p.text)));
        Ok(prompts
            .iter()
            .map(|p| {
                let text = if p.text.contains("Relations to define:") {
                    let names = p.text.rsplit("Relations to define: ").next().unwrap_or("");
                    let obj: serde_json::Map<String, serde_json::Value> = names
                        .split(", ")
                        .map(|n| {
                            let def = if n.contains("born") || n.contains("Born") {
                                "The subject entity was born in the place of the object."
                            } else if n.contains("site") {
                                "The subject entity is located at the object."
                            } else {
                                "The subject entity likes the object entity."
                            };
                            (n.to_owned(), json!(def))
                        })
                        .collect();
                    serde_json::Value::Object(obj).to_string()
                } else if p.text.contains("The text also writes") {
                    let asked = p.text.rsplit("The text also writes").next().unwrap_or("");
                    self.covers
                        .iter()
                        .find(|(k, _)| asked.contains(k))
                        .map_or_else(|| "[]".into(), |(_, v)| (*v).to_owned())
                } else {
                    let script = if p.text.contains("Use these relations") {
                        &self.refined
                    } else {
                        &self.triples
                    };
                    script
                        .iter()
                        .find(|(k, _)| p.text.contains(k))
                        .map(|(_, v)| (*v).to_owned())
                        .unwrap_or_else(|| "[]".into())
                };
                Generation {
                    tokens: vec![1; 10],
                    generated_tokens: 10,
                    text,
                    prompt_tokens: 20,
                    cached_tokens: 15,
                    finish: Finish::End,
                    prefill: Duration::ZERO,
                    decode: Duration::ZERO,
                }
            })
            .collect())
    }
    fn score(&self, prompt: &Prompt, options: &[&str]) -> Result<Vec<f32>, EdcError> {
        self.scored.lock().unwrap().push(prompt.text.clone());
        if prompt.text.contains("Does the text state this?") && !self.supported.is_empty() {
            let statement = prompt.text.split("Statement: ").nth(1).unwrap_or("");
            let yes = self.supported.iter().any(|s| statement.starts_with(s));
            return Ok(if yes {
                vec![-0.01, -5.0]
            } else {
                vec![-5.0, -0.01]
            });
        }
        Ok((0..options.len())
            .map(|i| if i == self.pick { -0.1 } else { -5.0 })
            .collect())
    }
    fn prompt_size(&self, _prompt: &Prompt) -> Option<(usize, usize)> {
        Some((30, 25))
    }
}

fn fake(triples: Vec<(&'static str, &'static str)>, pick: usize) -> ScriptedFakeModel {
    ScriptedFakeModel {
        triples,
        refined: Vec::new(),
        pick,
        supported: Vec::new(),
        constraints: Mutex::new(Vec::new()),
        scored: Mutex::new(Vec::new()),
        prompts: Mutex::new(Vec::new()),
        covers: Vec::new(),
    }
}

/// Embeds by keywords: "born" and "located"/"site" are two directions, anything else a third;
/// "place" tilts towards the first so that similarities can be made ambiguous.
struct KeywordEmbedder;

impl TextEmbedder for KeywordEmbedder {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EdcError> {
        Ok(texts
            .iter()
            .map(|t| {
                let t = t.to_lowercase();
                let mut v = vec![0.0f32; 3];
                if t.contains("born") {
                    v[0] = 1.0;
                }
                if t.contains("located") || t.contains("site") {
                    v[1] = 1.0;
                }
                if v == [0.0; 3] {
                    v[2] = 1.0;
                }
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter().map(|x| x / n).collect()
            })
            .collect())
    }
}

/// A real schema index, in memory, over the keyword embedder's vectors.
fn index(rels: &[(&str, &str, Option<&str>)]) -> SchemaIndex {
    let relations: Vec<Relation> = rels
        .iter()
        .map(|(label, def, range)| Relation {
            iri: format!("http://example.org/{label}"),
            label: (*label).into(),
            definition: (*def).into(),
            range: range.map(str::to_owned),
        })
        .collect();
    SchemaIndex::sync(
        None,
        None,
        relations,
        "keywords",
        3,
        &mut |rels: &[&Relation]| {
            let texts: Vec<String> = rels
                .iter()
                .map(|r| definition_text(&r.label, &r.definition))
                .collect();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            KeywordEmbedder.embed(&refs).map_err(|e| e.to_string())
        },
    )
    .unwrap()
    .0
}

fn schema() -> SchemaIndex {
    index(&[
        (
            "birthPlace",
            "The subject entity was born in the place of the object.",
            None,
        ),
        (
            "location",
            "The subject entity is located in the object.",
            None,
        ),
        (
            "birthDate",
            "The subject entity was born on the date of the object.",
            Some(xsd::DATE.as_str()),
        ),
    ])
}

/// A plan's triples as (subject, relation, object text).
fn spo(plan: &Plan) -> Vec<(String, String, String)> {
    plan.triples
        .iter()
        .map(|t| (t.subject.clone(), relation(t), t.object.text().to_owned()))
        .collect()
}

fn relation(t: &PlannedTriple) -> String {
    match &t.relation {
        RelationRef::Schema(s) => s.label.clone(),
        RelationRef::New(i) => format!("new#{i}"),
    }
}

#[test]
fn target_alignment_by_name_similarity_model_and_drop() {
    let model = fake(
        vec![(
            "Ada",
            r#"[["Ada","birth date","Nov 18, 1923"],["Ada","bornIn","Lyon"],["Ada","site","Lyon"],["Ada","likes","tea"]]"#,
        )],
        0,
    );
    let schema = schema();
    // The support check is tested on its own below; here the calls are canonicalization's.
    let opts = EdcOptions {
        guided: false,
        support: 0.0,
        ..EdcOptions::default()
    };
    let p = Pipeline::new(&model, &KeywordEmbedder, opts);
    let plans = p
        .run(
            &["Ada was born in Lyon on Nov 18, 1923 and likes tea."],
            &Schema::new(&schema),
        )
        .unwrap();
    let plan = &plans[0];
    let got: Vec<(String, String, Object, Decision)> = plan
        .triples
        .iter()
        .map(|t| (t.subject.clone(), relation(t), t.object.clone(), t.decision))
        .collect();
    assert_eq!(
        got,
        vec![
            // By name (the range types the object as a date).
            (
                "Ada".into(),
                "birthDate".into(),
                Object::Literal {
                    value: "1923-11-18".into(),
                    datatype: xsd::DATE.as_str().into()
                },
                Decision::Name
            ),
            // Two schema relations share the "born" direction: ambiguous, the model picks A.
            (
                "Ada".into(),
                "birthPlace".into(),
                Object::Entity("Lyon".into()),
                Decision::Model
            ),
            // One schema relation in the "located" direction: unambiguous.
            (
                "Ada".into(),
                "location".into(),
                Object::Entity("Lyon".into()),
                Decision::Similarity
            ),
        ]
    );
    assert_eq!(plan.dropped.len(), 1);
    assert!(
        plan.dropped[0].reason.contains("likes"),
        "{}",
        plan.dropped[0].reason
    );
    assert!(plan.new_relations.is_empty());
    assert_eq!(model.scored.lock().unwrap().len(), 1, "one verification");
    assert!(model.scored.lock().unwrap()[0].contains("none of these"));
    // extract + define + one scored choice.
    assert_eq!(plan.stats.model_calls, 3);
    assert_eq!(
        (
            plan.stats.by_name,
            plan.stats.by_similarity,
            plan.stats.by_model
        ),
        (1, 1, 1)
    );
}

#[test]
fn self_canonicalization_adds_a_relation_once_per_batch() {
    let model = fake(
        vec![
            ("Ada", r#"[["Ada","likes","tea"]]"#),
            (
                "Bob",
                r#"[["Bob","likes","coffee"],["Bob","enjoys","cake"]]"#,
            ),
        ],
        9,
    );
    let opts = EdcOptions {
        align: Align::SelfCanonical,
        ..EdcOptions::default()
    };
    let p = Pipeline::new(&model, &KeywordEmbedder, opts);
    let plans = p
        .run(
            &["Ada likes tea.", "Bob likes coffee and enjoys cake."],
            &Schema::new(&schema()),
        )
        .unwrap();
    assert_eq!(plans[0].new_relations.len(), 1);
    assert_eq!(plans[0].new_relations[0].name, "likes");
    assert_eq!(relation(&plans[0].triples[0]), "new#0");
    // The second text reuses "likes" by name and maps "enjoys" (same embedding) to it.
    assert_eq!(plans[1].new_relations.len(), 1);
    assert_eq!(plans[1].new_relations[0].name, "likes");
    assert_eq!(plans[1].triples.len(), 2);
    assert!(plans[1].triples.iter().all(|t| relation(t) == "new#0"));
}

#[test]
fn refinement_extracts_again_with_hints() {
    let mut model = fake(vec![("Ada", r#"[["Ada","bornIn","Lyon"]]"#)], 0);
    model.refined = vec![(
        "Ada",
        r#"[["Ada","birthPlace","Lyon"],["Lyon","location","France"]]"#,
    )];
    let opts = EdcOptions {
        refine: 1,
        guided: false,
        ..EdcOptions::default()
    };
    let p = Pipeline::new(&model, &KeywordEmbedder, opts);
    let plans = p
        .run(&["Ada was born in Lyon, France."], &Schema::new(&schema()))
        .unwrap();
    let rels: Vec<String> = plans[0].triples.iter().map(relation).collect();
    assert_eq!(rels, ["birthPlace", "location"]);
    let grammars = model.constraints.lock().unwrap();
    // The refinement round saw the hints (the scripted model answers hinted prompts from its
    // second script) and extracted openly, as EDC+R does.
    let refine_grammar = grammars.last().unwrap();
    assert!(!refine_grammar.contains("\"enum\""), "{refine_grammar}");
    assert!(plans[0].stats.refine > Duration::ZERO || plans[0].stats.model_calls >= 3);
    // The token budget: each stage counts its own calls, the round's count under "refine",
    // and the totals are the stages' sums.
    let s = &plans[0].stats;
    let t = |stage: &str| s.tokens[TOKEN_STAGES.iter().position(|x| *x == stage).unwrap()];
    let one_call = StageTokens {
        prompt: 20,
        cached: 15,
        generated: 10,
    };
    assert_eq!(t("extract"), one_call);
    assert_eq!(t("define"), one_call, "bornIn needed a definition");
    assert!(t("refine").prompt >= 20 && t("refine").generated >= 10);
    assert_eq!(t("check").generated, 0);
    let sum = |f: fn(&StageTokens) -> usize| s.tokens.iter().map(f).sum::<usize>();
    assert_eq!(sum(|t| t.prompt), s.prompt_tokens);
    assert_eq!(sum(|t| t.cached), s.cached_tokens);
    assert_eq!(sum(|t| t.generated), s.generated_tokens);
}

#[test]
fn the_support_check_turns_reversed_triples_round_and_drops_unstated_ones() {
    let mut model = fake(
        vec![(
            "Ada",
            r#"[["Lyon","birthPlace","Ada"],["Bob","location","Lyon"],["Ada","birthDate","10 December 1815"]]"#,
        )],
        0,
    );
    model.supported = vec![
        "Ada was born in the place of Lyon",
        "Ada was born on the date of 10 December 1815",
    ];
    let opts = EdcOptions {
        support: 0.5,
        guided: false,
        ..EdcOptions::default()
    };
    let p = Pipeline::new(&model, &KeywordEmbedder, opts);
    let plans = p
        .run(
            &["Ada was born in Lyon on 10 December 1815; Bob wrote to her there."],
            &Schema::new(&schema()),
        )
        .unwrap();
    assert_eq!(
        spo(&plans[0]),
        [
            ("Ada".into(), "birthPlace".into(), "Lyon".into()),
            ("Ada".into(), "birthDate".into(), "1815-12-10".into()),
        ]
    );
    assert_eq!(plans[0].stats.reversed, 1);
    assert_eq!(plans[0].stats.unsupported, 1);
    let dropped: Vec<&str> = plans[0].dropped.iter().map(|d| d.reason.as_str()).collect();
    assert!(
        dropped
            .iter()
            .any(|r| r.starts_with("the text does not state it")),
        "{dropped:?}"
    );
    // Entity-to-entity triples are asked both ways, the date one way: five questions, each
    // opening with the text.
    let asked: Vec<String> = model
        .scored
        .lock()
        .unwrap()
        .iter()
        .filter(|t| t.contains("Does the text state this?"))
        .cloned()
        .collect();
    assert_eq!(asked.len(), 5, "{asked:#?}");
    assert!(asked.iter().all(|t| t.starts_with("Text: Ada was born")));
    // Without the check the triples stay, and the text's own phrasing ("born in Lyon", the
    // definition's "born in") still turns the first round.
    let opts = EdcOptions {
        support: 0.0,
        guided: false,
        ..EdcOptions::default()
    };
    let plans = Pipeline::new(&model, &KeywordEmbedder, opts)
        .run(
            &["Ada was born in Lyon on 10 December 1815; Bob wrote to her there."],
            &Schema::new(&schema()),
        )
        .unwrap();
    assert_eq!(plans[0].triples.len(), 3);
    assert_eq!(plans[0].triples[0].subject, "Ada");
    assert_eq!(plans[0].triples[0].object.text(), "Lyon");
    assert_eq!(plans[0].stats.reversed, 1);
}

/// Reads `text` with one refinement round, the first round unchecked.
fn read_with_one_refinement(model: &ScriptedFakeModel, text: &str) -> Vec<Plan> {
    let opts = EdcOptions {
        refine: 1,
        support: 0.0,
        guided: false,
        ..EdcOptions::default()
    };
    Pipeline::new(model, &KeywordEmbedder, opts)
        .run(&[text], &Schema::new(&schema()))
        .unwrap()
}

#[test]
fn refinement_adds_only_the_triples_the_text_supports() {
    // The first round's triples stay; a refinement round's new triples are checked even with
    // the check off for the first round.
    let mut model = fake(vec![("Ada", r#"[["Ada","birthPlace","Lyon"]]"#)], 0);
    model.refined = vec![(
        "Ada",
        r#"[["Ada","birthPlace","Lyon"],["Lyon","location","France"],["Ada","location","France"],["Ada","location","Lyon"]]"#,
    )];
    model.supported = vec![
        "Lyon is located in France",
        "Ada was born in the place of Lyon",
    ];
    let plans = read_with_one_refinement(&model, "Ada was born in Lyon, France.");
    assert_eq!(
        spo(&plans[0]),
        [
            ("Ada".into(), "birthPlace".into(), "Lyon".into()),
            ("Lyon".into(), "location".into(), "France".into()),
        ]
    );
    // Ada and Lyon: the round proposed another relation for them, so the first round's
    // triple was checked too, and it is the better stated.
    assert!(plans[0].triples[0].support.is_some_and(|p| p > 0.9));
    assert!(plans[0].triples[1].support.is_some_and(|p| p > 0.9));
    let dropped = |what: &str, object: &str, why: &str| {
        plans[0]
            .dropped
            .iter()
            .any(|d| d.triple[1] == what && d.triple[2] == object && d.reason.contains(why))
    };
    assert!(dropped(
        "location",
        "Lyon",
        "first round's relation for the same entities is better stated"
    ));
    // A new pair the text does not state is dropped by the check.
    assert!(dropped("location", "France", "does not state it"));
    assert_eq!(plans[0].stats.unsupported, 1);
    assert_eq!(plans[0].stats.corrected, 0);
}

#[test]
fn refinement_adds_facts_about_entities_the_first_round_missed_only() {
    // The round relates Ada and France, both read by the first round: not a missed fact.
    // Paris, which the first round did not read, comes in.
    let mut model = fake(
        vec![(
            "Ada",
            r#"[["Ada","birthPlace","Lyon"],["Lyon","location","France"]]"#,
        )],
        0,
    );
    model.refined = vec![(
        "Ada",
        r#"[["Ada","location","France"],["Ada","location","Paris"]]"#,
    )];
    model.supported = vec![
        "Ada was born in the place of Lyon",
        "Lyon is located in France",
        "Ada is located in France",
        "Ada is located in Paris",
    ];
    let plans = read_with_one_refinement(&model, "Ada, born in Lyon, France, lives in Paris.");
    assert_eq!(
        spo(&plans[0]),
        [
            ("Ada".into(), "birthPlace".into(), "Lyon".into()),
            ("Lyon".into(), "location".into(), "France".into()),
            ("Ada".into(), "location".into(), "Paris".into()),
        ]
    );
    assert!(plans[0].dropped.iter().any(|d| d.triple[2] == "France"
        && d.reason
            == "a refinement round related two entities the first round had read, neither new"));
}

/// The first round relates Ada and Lyon as location, the refinement round as birthPlace; the
/// model finds `supported` stated. The relation read, the replacements, and why the other
/// triple went.
fn location_corrected_to_birth_place(
    supported: &'static str,
    text: &str,
) -> (String, usize, String) {
    let mut model = fake(vec![("Ada", r#"[["Ada","location","Lyon"]]"#)], 0);
    model.refined = vec![("Ada", r#"[["Ada","birthPlace","Lyon"]]"#)];
    model.supported = vec![supported];
    let plans = read_with_one_refinement(&model, text);
    let read = spo(&plans[0]);
    assert_eq!(read.len(), 1, "{read:?}");
    assert_eq!((read[0].0.as_str(), read[0].2.as_str()), ("Ada", "Lyon"));
    let why = plans[0]
        .dropped
        .iter()
        .map(|d| format!("{}: {}", d.triple[1], d.reason))
        .collect();
    (read[0].1.clone(), plans[0].stats.corrected, why)
}

#[test]
fn refinement_corrects_by_the_texts_words_then_by_the_support() {
    // The text writes neither relation's words: the better-stated relation stands.
    let (r, corrected, why) = location_corrected_to_birth_place(
        "Ada was born in the place of Lyon",
        "Ada was born in Lyon.",
    );
    assert_eq!((r.as_str(), corrected), ("birthPlace", 1));
    assert!(
        why.starts_with(
            "location: a refinement round related the same entities another way, better stated"
        ),
        "{why}"
    );
    let (r, corrected, why) =
        location_corrected_to_birth_place("Ada is located in Lyon", "Ada lives in Lyon.");
    assert_eq!((r.as_str(), corrected), ("location", 0));
    assert!(
        why.starts_with(
            "birthPlace: the first round's relation for the same entities is better stated"
        ),
        "{why}"
    );
    // The model finds "located in" more likely stated, but the text writes birthPlace's
    // words where it writes Lyon: the refined relation stands.
    let (r, corrected, why) = location_corrected_to_birth_place(
        "Ada is located in Lyon",
        "Ada's birth place is Lyon. She is a poet.",
    );
    assert_eq!((r.as_str(), corrected), ("birthPlace", 1));
    assert!(why.starts_with("location: a refinement round related the same entities another way, in more of the text's words"), "{why}");
}

#[test]
fn truncated_output_keeps_complete_triples() {
    let t = r#"[["a","b","c"],["d","e","f"],["g","h"#;
    assert_eq!(parse_triples(t, Finish::Length).len(), 2);
    assert!(parse_triples("not json", Finish::End).is_empty());
}

#[test]
fn unusable_texts_are_refused() {
    let model = fake(Vec::new(), 0);
    let p = Pipeline::new(&model, &KeywordEmbedder, EdcOptions::default());
    for bad in ["", "   \n", "bin\0ary", "\u{7}bell"] {
        assert!(
            matches!(
                p.run(&[bad], &Schema::new(&schema())),
                Err(EdcError::Input(_))
            ),
            "{bad:?}"
        );
    }
    let huge = "a".repeat(MAX_TEXT_BYTES + 1);
    assert!(matches!(
        p.run(&[&huge], &Schema::new(&schema())),
        Err(EdcError::Input(_))
    ));
    // Chunk settings that would cut a text too fine are refused before the model runs.
    let fine = Pipeline::new(
        &model,
        &KeywordEmbedder,
        EdcOptions {
            chunk_chars: 20,
            chunk_overlap: 0,
            ..EdcOptions::default()
        },
    );
    let long = "Ada was born in Lyon. ".repeat(2000);
    assert!(matches!(
        fine.run(&[&long], &Schema::new(&schema())),
        Err(EdcError::Input(InputError::TooManyChunks { cap: 1024, .. }))
    ));
    assert!(
        model.constraints.lock().unwrap().is_empty(),
        "the model ran"
    );
}

#[test]
fn names_and_definition_texts() {
    assert_eq!(name_key("birth_Place"), "birthplace");
    assert_eq!(camel_case("place of birth"), "placeOfBirth");
    assert_eq!(definition_text("birthPlace", "x"), "birth place: x");
    assert_eq!(definition_text("place_of_birth", ""), "place of birth");
}

#[test]
fn guided_extraction_uses_schema_names_only_and_needs_no_definitions() {
    let mut model = fake(Vec::new(), 0);
    model.refined = vec![(
        "Ada",
        r#"[["Ada","birthPlace","Lyon"],["Ada","birthDate","1815-12-10"]]"#,
    )];
    let opts = EdcOptions {
        guided: true,
        support: 0.0,
        ..EdcOptions::default()
    };
    let p = Pipeline::new(&model, &KeywordEmbedder, opts);
    let plans = p
        .run(
            &["Ada was born in Lyon on 10 December 1815."],
            &Schema::new(&schema()),
        )
        .unwrap();
    let rels: Vec<String> = plans[0].triples.iter().map(relation).collect();
    assert_eq!(rels, ["birthPlace", "birthDate"]);
    assert!(plans[0]
        .triples
        .iter()
        .all(|t| t.decision == Decision::Name));
    // One call: the extraction; its grammar admits every schema relation and nothing else.
    assert_eq!(plans[0].stats.model_calls, 1);
    let grammars = model.constraints.lock().unwrap();
    assert_eq!(grammars.len(), 1);
    for name in ["birthPlace", "birthDate", "location"] {
        assert!(
            grammars[0].contains(&format!("\"{name}\"")),
            "{}",
            grammars[0]
        );
    }
    assert!(grammars[0].contains("\"enum\""));
}

#[test]
fn entities_the_text_does_not_mention_are_dropped() {
    // Names a small model copies from the worked examples, not from the text.
    let model = fake(
        vec![(
            "Ada",
            r#"[["Ada","birthPlace","Lyon"],["Kestrel Pass Road","location","Aldbury"],["Ada","location","Fenwick"],["Ada","birthDate","Nov 18, 1923"]]"#,
        )],
        0,
    );
    let p = Pipeline::new(&model, &KeywordEmbedder, EdcOptions::default());
    let plans = p
        .run(
            &["Ada was born in lyon on 18/11/1923."],
            &Schema::new(&schema()),
        )
        .unwrap();
    let kept: Vec<String> = plans[0].triples.iter().map(relation).collect();
    assert_eq!(kept, vec!["birthPlace", "birthDate"]);
    let reasons: Vec<&str> = plans[0].dropped.iter().map(|d| d.reason.as_str()).collect();
    assert_eq!(
        reasons,
        vec![
            "an entity the text does not mention",
            "an entity the text does not mention"
        ]
    );
    assert!(repeats_relation("runway length", "runwayLength"));
    assert!(repeats_relation("UTC", "utcOffset"));
    assert!(repeats_relation("the currency", "currency"));
    assert!(!repeats_relation("1095", "runwayLength"));
    assert!(!repeats_relation("Mexican peso", "currency"));
    assert!(!repeats_relation("of", "currency"));
    let words = word_set("Bionico contains chopped fruits and condensedMilk.");
    assert!(grounded("choppedFruits", &words));
    assert!(grounded("Condensed milk", &words));
    assert!(!grounded("Aldbury", &words));
}

#[test]
fn typed_literals_need_their_digits_in_the_text() {
    let text = "Al Asad Airbase has a runway length of 3,990 metres. It opened on 10 March 1983; \
                its orbital period is 1,249.6 days.";
    let runs = digit_runs(text);
    for ok in [
        "3990",
        "3990.0",
        "3,990 metres",
        "1983-03-10",
        "1983",
        "1249.6 days",
        "10",
    ] {
        assert!(numbers_grounded(ok, &runs), "{ok}");
    }
    for bad in ["1932", "25000", "1100000000000000", "100", "1984-03-10"] {
        assert!(!numbers_grounded(bad, &runs), "{bad}");
    }
}

#[test]
fn a_relation_phrase_is_defined_once_per_definition_cache() {
    let model = fake(
        vec![
            ("Ada", r#"[["Ada","site","Lyon"],["Ada","likes","tea"]]"#),
            ("Bob", r#"[["Bob","Site","Paris"]]"#),
        ],
        0,
    );
    let schema = schema();
    let cache = crate::define::DefinitionCache::default();
    let opts = EdcOptions {
        guided: false,
        ..EdcOptions::default()
    };
    let define_calls = |model: &ScriptedFakeModel| {
        model
            .constraints
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.contains("\"required\"") && g.contains("\"minLength\":8"))
            .count()
    };
    let p = Pipeline::new(&model, &KeywordEmbedder, opts.clone()).with_definition_cache(&cache);
    let first = p
        .run(
            &["Ada is at the site in Lyon and likes tea."],
            &Schema::new(&schema),
        )
        .unwrap();
    assert_eq!(define_calls(&model), 1);
    assert_eq!(cache.len(), 2, "site and likes");
    // "Site" is the same phrase: its definition comes from the cache, no define call, and it
    // resolves as before.
    let second = p
        .run(&["Bob is at the site in Paris."], &Schema::new(&schema))
        .unwrap();
    assert_eq!(define_calls(&model), 1, "no second define call");
    assert_eq!(relation(&first[0].triples[0]), "location");
    assert_eq!(relation(&second[0].triples[0]), "location");
    assert_eq!(second[0].triples[0].decision, Decision::Similarity);
    // Without the cache the phrase is defined again.
    let uncached = Pipeline::new(&model, &KeywordEmbedder, opts);
    uncached
        .run(&["Bob is at the site in Paris."], &Schema::new(&schema))
        .unwrap();
    assert_eq!(define_calls(&model), 2);
}

#[test]
fn store_examples_join_the_built_in_ones_nearest_last() {
    use crate::examples::{ExamplePool, StoreExample};
    let example = |text: &str, s: &str, r: &str, o: &str| StoreExample {
        text: text.into(),
        triples: vec![[s.into(), r.into(), o.into()]],
    };
    let examples = vec![
        example("Bruno was born in Turin.", "Bruno", "birthPlace", "Turin"),
        example("The mill is located in Esk.", "mill", "location", "Esk"),
        example("Cleo likes jazz.", "Cleo", "likes", "jazz"),
    ];
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    let pool = ExamplePool::new(examples.clone(), KeywordEmbedder.embed(&texts).unwrap());
    let schema = schema();
    let extraction = |model: &ScriptedFakeModel| -> String {
        model
            .prompts
            .lock()
            .unwrap()
            .iter()
            .find(|p| p.contains("knowledge-graph triples"))
            .cloned()
            .unwrap()
    };
    let text = "Ada was born in Lyon.";
    let model = fake(vec![("Ada", r#"[["Ada","birthPlace","Lyon"]]"#)], 0);
    let opts = EdcOptions {
        examples: 2,
        ..EdcOptions::default()
    };
    let plans = Pipeline::new(&model, &KeywordEmbedder, opts.clone())
        .with_examples(&pool)
        .run(&[text], &Schema::new(&schema))
        .unwrap();
    assert_eq!(spo(&plans[0]).len(), 1);
    let prompt = extraction(&model);
    // The built-in examples, then the two nearest store examples, the nearest last, then
    // the text.
    let at = |s: &str| prompt.find(s).unwrap_or_else(|| panic!("{s} in {prompt}"));
    let other = prompt
        .find("The mill is located in Esk.")
        .or_else(|| prompt.find("Cleo likes jazz."))
        .unwrap();
    assert!(at("Varnholm") < other, "{prompt}");
    assert!(other < at("Bruno was born in Turin."), "{prompt}");
    assert!(at("Bruno was born in Turin.") < at(text), "{prompt}");
    assert!(
        prompt.contains(r#"[["Bruno","birthPlace","Turin"]]"#),
        "{prompt}"
    );

    // No pool, an empty pool, or no examples asked for: the built-in examples.
    let empty = ExamplePool::default();
    for (pool, k) in [(None, 2), (Some(&empty), 2), (Some(&pool), 0)] {
        let model = fake(vec![("Ada", r#"[["Ada","birthPlace","Lyon"]]"#)], 0);
        let mut p = Pipeline::new(
            &model,
            &KeywordEmbedder,
            EdcOptions {
                examples: k,
                ..opts.clone()
            },
        );
        if let Some(pool) = pool {
            p = p.with_examples(pool);
        }
        p.run(&[text], &Schema::new(&schema)).unwrap();
        let prompt = extraction(&model);
        assert!(prompt.contains("Varnholm"), "{prompt}");
        assert!(!prompt.contains("Bruno"), "{prompt}");
    }
}

#[test]
fn objects_that_are_no_date_leave_date_relations_and_years_become_the_texts_dates() {
    let model = fake(
        vec![(
            "Ada",
            r#"[["Ada","deathDate","Bergen"],["Ada","birthDate","1815"]]"#,
        )],
        0,
    );
    let died_on = "The subject entity died on the date given by the object.";
    let died_in = "The subject entity died in the place given by the object entity.";
    let born_on = "The subject entity was born on the date given by the object.";
    let text = "Ada was born on 10 December 1815 and died in Bergen.";
    let p = Pipeline::new(&model, &KeywordEmbedder, EdcOptions::default());

    // No declared ranges: the definitions' words say what each relation asks for.
    let full = index(&[
        ("deathDate", died_on, None),
        ("deathPlace", died_in, None),
        ("birthDate", born_on, None),
    ]);
    let plans = p.run(&[text], &Schema::new(&full)).unwrap();
    assert_eq!(
        spo(&plans[0]),
        vec![
            ("Ada".into(), "deathPlace".into(), "Bergen".into()),
            ("Ada".into(), "birthDate".into(), "1815-12-10".into()),
        ]
    );
    assert_eq!(plans[0].stats.rerouted, 1);

    // With no relation asking for something else near it, the misread triple is dropped.
    let dates_only = index(&[("deathDate", died_on, None), ("birthDate", born_on, None)]);
    let plans = p.run(&[text], &Schema::new(&dates_only)).unwrap();
    assert_eq!(
        spo(&plans[0]),
        vec![("Ada".into(), "birthDate".into(), "1815-12-10".into())]
    );
    assert_eq!(plans[0].stats.rerouted, 0);
    assert!(plans[0]
        .dropped
        .iter()
        .any(|d| d.triple[2] == "Bergen" && d.reason.contains("asks for a date")));
}

#[test]
fn names_the_extraction_left_out_go_back_to_the_model_once_each() {
    let mut model = fake(vec![("Ada", r#"[["Ada Byron","birthPlace","London"]]"#)], 0);
    model.covers = vec![("Paris", r#"[["Ada Byron","location","Paris"]]"#)];
    let text = "Ada Byron was born in London and is located in Paris, with 1815 pages.";
    let p = Pipeline::new(&model, &KeywordEmbedder, EdcOptions::default());
    let plans = p.run(&[text], &Schema::new(&schema())).unwrap();
    // The written triple joins the extraction and goes through the later stages.
    assert_eq!(
        spo(&plans[0]),
        vec![
            ("Ada Byron".into(), "birthPlace".into(), "London".into()),
            ("Ada Byron".into(), "location".into(), "Paris".into()),
        ]
    );
    assert_eq!(plans[0].stats.covered, 1);
    // One continuation for the chunk: the model's own list, then the names it left out, each
    // held by one triple of the grammar, in text order.
    let prompts = model.prompts.lock().unwrap();
    let asked: Vec<&String> = prompts
        .iter()
        .filter(|p| p.contains("The text also writes"))
        .collect();
    assert_eq!(asked.len(), 1);
    assert!(asked[0].contains(r#"[assistant] [["Ada Byron","birthPlace","London"]]"#));
    assert!(
        asked[0].contains(r#"The text also writes "Paris", "1815"."#),
        "{}",
        asked[0]
    );
    let constraints = model.constraints.lock().unwrap();
    let lark = constraints
        .iter()
        .find(|g| g.starts_with("start:"))
        .unwrap();
    assert!(lark.starts_with(r#"start: "[" t0 "," t1 "]""#), "{lark}");
    assert!(lark.contains(r#""\"Paris\"""#) && lark.contains(r#""\"1815\"""#));
    drop((prompts, constraints));

    // Without further turns (a chat server), or switched off, there is no cover pass.
    for (covers, cover) in [(Vec::new(), true), (model.covers.clone(), false)] {
        let mut m = fake(vec![("Ada", r#"[["Ada Byron","birthPlace","London"]]"#)], 0);
        m.covers = covers;
        let opts = EdcOptions {
            cover,
            ..EdcOptions::default()
        };
        let plans = Pipeline::new(&m, &KeywordEmbedder, opts)
            .run(&[text], &Schema::new(&schema()))
            .unwrap();
        assert_eq!(plans[0].triples.len(), 1);
        assert_eq!(plans[0].stats.covered, 0);
    }
}

#[test]
fn a_value_is_never_the_subject() {
    let model = fake(
        vec![(
            "postgraduate",
            r#"[["9400","numberOfStudents","University of Burgundy"],["1959","location","Dijon"],["1970","numberOfStudents","9400"]]"#,
        )],
        0,
    );
    let schema = index(&[
        (
            "numberOfStudents",
            "The subject entity has the number of students given by the object.",
            None,
        ),
        (
            "location",
            "The subject entity is located in the object.",
            None,
        ),
    ]);
    let p = Pipeline::new(&model, &KeywordEmbedder, EdcOptions::default());
    let plans = p
        .run(
            &["Since 1970, 9400 postgraduate students attend the University of Burgundy in Dijon since 1959."],
            &Schema::new(&schema),
        )
        .unwrap();
    // A count turns round; a value related to a place or to another value is no fact.
    assert_eq!(
        spo(&plans[0]),
        vec![(
            "University of Burgundy".to_owned(),
            "numberOfStudents".to_owned(),
            "9400".to_owned()
        )]
    );
    let reasons: Vec<&str> = plans[0].dropped.iter().map(|d| d.reason.as_str()).collect();
    assert_eq!(
        reasons,
        vec![
            "a value (a number or a date) as the subject",
            "a value (a number or a date) as the subject"
        ]
    );
}

#[test]
fn a_place_of_a_known_kind_takes_the_schemas_relation_for_that_kind() {
    let model = fake(
        vec![(
            "Ciudad",
            r#"[["Ciudad Ayala","location","Mexico"],["Ciudad Ayala","location","Morelos"],["Ada","birthPlace","Mexico"],["Morelos","state","Mexico"],["Ada","location","Lyon"]]"#,
        )],
        0,
    );
    let text = "Ciudad Ayala is in Morelos, Mexico. Ada was born in Mexico. Morelos is a \
                state of Mexico. Ada lives in the city of Lyon.";
    let p = Pipeline::new(&model, &KeywordEmbedder, EdcOptions::default());
    let located = "The subject entity is located in the place given by the object entity.";
    let in_country = "The subject entity is located in the country given by the object entity.";
    let born = "The subject entity was born in the place given by the object entity.";
    let with_country = index(&[
        ("location", located, None),
        ("country", in_country, None),
        ("birthPlace", born, None),
        (
            "state",
            "The subject entity is located in the state given by the object entity.",
            None,
        ),
        (
            "city",
            "The subject entity is located in the city given by the object entity.",
            None,
        ),
    ]);
    let plans = p.run(&[text], &Schema::new(&with_country)).unwrap();
    assert_eq!(
        spo(&plans[0]),
        vec![
            ("Ciudad Ayala".into(), "country".into(), "Mexico".into()),
            ("Ciudad Ayala".into(), "location".into(), "Morelos".into()),
            ("Ada".into(), "birthPlace".into(), "Mexico".into()),
            // "a state of Mexico" no longer turns the triple round: its relation is country.
            ("Morelos".into(), "country".into(), "Mexico".into()),
            // The text says what kind of place Lyon is.
            ("Ada".into(), "city".into(), "Lyon".into()),
        ]
    );
    // Without a country relation the general one stays.
    let without = index(&[("location", located, None), ("birthPlace", born, None)]);
    let plans = p.run(&[text], &Schema::new(&without)).unwrap();
    assert_eq!(
        spo(&plans[0])[0],
        ("Ciudad Ayala".into(), "location".into(), "Mexico".into())
    );
}

#[test]
fn a_numbers_own_words_choose_its_relation() {
    let model = fake(
        vec![(
            "Ayala",
            r#"[["Ayala","height","610"],["Ayala","height","170"],["Ayala","height","1950"],["Ayala","height","12"]]"#,
        )],
        0,
    );
    let text = "Ayala lies 610 metres above sea level, was founded in 1950 and has 170 members. \
                Its tower is 12 metres in height.";
    let p = Pipeline::new(&model, &KeywordEmbedder, EdcOptions::default());
    let schema = index(&[
        (
            "height",
            "The subject entity has the height given by the object.",
            None,
        ),
        (
            "elevationAboveTheSeaLevel",
            "The subject entity lies at the elevation given by the object.",
            None,
        ),
        (
            "numberOfMembers",
            "The subject entity has the number of members given by the object.",
            None,
        ),
        (
            "membershipYear",
            "The subject entity took members in the year given by the object.",
            None,
        ),
    ]);
    let plans = p.run(&[text], &Schema::new(&schema)).unwrap();
    assert_eq!(
        spo(&plans[0]),
        vec![
            (
                "Ayala".into(),
                "elevationAboveTheSeaLevel".into(),
                "610".into()
            ),
            ("Ayala".into(), "numberOfMembers".into(), "170".into()),
            // A year names no relation of its own; a relation the number's words name stays.
            ("Ayala".into(), "height".into(), "1950".into()),
            ("Ayala".into(), "height".into(), "12".into()),
        ]
    );
}
