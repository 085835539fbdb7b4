//! `tessera eval`: extraction quality on a dataset in the EDC layout, with the WebNLG metric.

mod dataset;
mod webnlg;

use crate::cli::ingest::ModelArgs;
use anyhow::Context;
use clap::Args;
use dataset::Dataset;
use oxigraph::model::{GraphName, NamedNode};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;
use tessera::{Align, Database, TextOptions};
use webnlg::Triple;

/// `tessera eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Dataset name (`webnlg` reads DIR/datasets/webnlg.txt, ...).
    pub name: String,
    /// Directory in the EDC layout.
    #[arg(long)]
    pub data: PathBuf,
    /// First item (items before it may have served as few-shot examples elsewhere).
    #[arg(long, default_value_t = 6)]
    pub start: usize,
    /// At most this many items.
    #[arg(long)]
    pub limit: Option<usize>,
    /// A seeded random subset of this many items (from `--start` on), in dataset order.
    #[arg(long)]
    pub sample: Option<usize>,
    /// Seed of `--sample`.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Read the items `--sample` leaves out instead (calibration data disjoint from the
    /// scored sample), in dataset order.
    #[arg(long, requires = "sample")]
    pub outside_sample: bool,
    /// Store examples: before reading, write up to this many items with their gold triples as
    /// sources marked as examples (extraction then shows each text the nearest of them after
    /// the built-in examples). They come from the items `--sample` does not score,
    /// in its seeded order, leaving out every item that shares a gold triple with a sampled
    /// one: the dataset states each fact in several texts, so an item-disjoint pool would
    /// show the model most of the answers.
    #[arg(long, requires = "sample")]
    pub store_examples: Option<usize>,
    /// EDC+R refinement rounds.
    #[arg(long, default_value_t = 0)]
    pub refine: usize,
    /// Texts decoded together.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Write predictions in the EDC output format (one Python list per line) here.
    #[arg(long)]
    pub predictions: Option<PathBuf>,
    /// Score the gold triples against themselves (checks the metric; no model).
    #[arg(long)]
    pub gold_vs_gold: bool,
    /// Score a predictions file (the `--predictions` format, one line per selected item, in
    /// order) against the selected items' gold triples instead of reading them (no model).
    #[arg(long, conflicts_with = "gold_vs_gold")]
    pub score: Option<PathBuf>,
    /// Model options.
    #[command(flatten)]
    pub models: ModelArgs,
}

fn py_list(triples: &[Triple]) -> String {
    let q = |s: &str| {
        if s.contains('\'') {
            format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
        } else {
            format!("'{}'", s.replace('\\', "\\\\"))
        }
    };
    let items: Vec<String> = triples
        .iter()
        .map(|t| format!("[{}, {}, {}]", q(&t[0]), q(&t[1]), q(&t[2])))
        .collect();
    format!("[{}]", items.join(", "))
}

/// A gold name as a store label: words apart, no quotes.
fn label_of(s: &str) -> String {
    let s = s.replace('_', " ");
    let t = s.trim();
    t.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(t)
        .to_owned()
}

/// A gold triple, compared without case, spacing or punctuation.
fn fact_key(t: &Triple) -> String {
    t.iter().map(|s| key(s)).collect::<Vec<_>>().join("|")
}

fn key(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Where the points went, by stage.
#[derive(Default)]
struct Analysis {
    exact: usize,
    reversed: usize,
    wrong_relation: usize,
    entity_form: usize,
    missed: usize,
    spurious: usize,
}

fn analyse(a: &mut Analysis, pred: &[Triple], gold: &[Triple]) {
    let k = |t: &Triple| [key(&t[0]), key(&t[1]), key(&t[2])];
    let p: Vec<[String; 3]> = pred.iter().map(k).collect();
    let mut used = vec![false; p.len()];
    for g in gold.iter().map(k) {
        let mut pick = |f: &dyn Fn(&[String; 3]) -> bool| -> bool {
            if let Some(i) = (0..p.len()).find(|&i| !used[i] && f(&p[i])) {
                used[i] = true;
                true
            } else {
                false
            }
        };
        if pick(&|x| *x == g) {
            a.exact += 1;
        } else if pick(&|x| x[0] == g[2] && x[2] == g[0] && x[1] == g[1]) {
            a.reversed += 1;
        } else if pick(&|x| x[0] == g[0] && x[2] == g[2]) {
            a.wrong_relation += 1;
        } else if pick(&|x| {
            x[1] == g[1]
                && (x[0] == g[0]
                    || x[2] == g[2]
                    || x[0].contains(&g[0])
                    || g[0].contains(&x[0])
                    || x[2].contains(&g[2])
                    || g[2].contains(&x[2]))
        }) {
            a.entity_form += 1;
        } else {
            a.missed += 1;
        }
    }
    a.spurious += used.iter().filter(|u| !**u).count();
}

/// Runs `tessera eval`.
pub fn eval(args: EvalArgs) -> anyhow::Result<()> {
    let data = Dataset::load(&args.data, &args.name)?;
    let mut items: Vec<usize> = (args.start..data.texts.len()).collect();
    let mut pool: Vec<usize> = Vec::new();
    if let Some(n) = args.sample {
        // A seeded shuffle (splitmix64), then dataset order.
        let mut x = args.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        for i in (1..items.len()).rev() {
            let j = (next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
        let rest = items.split_off(n.min(items.len()));
        let sample = std::mem::replace(&mut items, rest);
        // The example pool is always the part not scored, in the seeded order.
        if args.outside_sample {
            pool = sample;
        } else {
            pool = std::mem::replace(&mut items, sample);
        }
        items.sort_unstable();
        let facts: std::collections::HashSet<String> = items
            .iter()
            .flat_map(|&i| data.gold[i].iter().map(fact_key))
            .collect();
        pool.retain(|&i| !data.gold[i].iter().any(|t| facts.contains(&fact_key(t))));
        pool.truncate(args.store_examples.unwrap_or(0));
    }
    if let Some(l) = args.limit {
        items.truncate(l);
    }
    let gold: Vec<Vec<Triple>> = items.iter().map(|&i| data.gold[i].clone()).collect();
    let mut out = std::io::stdout().lock();
    if args.gold_vs_gold {
        let s = webnlg::score(&gold, &gold);
        print_scores(&mut out, &s)?;
        return Ok(());
    }
    if let Some(path) = &args.score {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading predictions {}", path.display()))?;
        let lines: Vec<&str> = text.lines().collect();
        anyhow::ensure!(
            lines.len() == items.len(),
            "{}: {} lines of predictions for {} selected items",
            path.display(),
            lines.len(),
            items.len()
        );
        let predicted = lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                dataset::parse_triples(l)
                    .map_err(|m| anyhow::anyhow!("{} line {}: {m}", path.display(), i + 1))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        print_scores(&mut out, &webnlg::score(&predicted, &gold))?;
        print_analysis(&mut out, &predicted, &gold)?;
        return Ok(());
    }
    let db = Database::in_memory()?.with_text_config(args.models.config());
    let schema = NamedNode::new("urn:tessera:eval:schema")?;
    let g = GraphName::NamedNode(schema.clone());
    let quads =
        tessera::text::schema::relation_quads(&data.schema, &g, "http://tessera.local/relation/")?;
    crate::cli::ingest::write_quads(&db, &quads)?;
    let opts = TextOptions {
        graph: Some(NamedNode::new("urn:tessera:eval:facts")?),
        schema: Some(schema),
        align: Align::Target,
        refine: args.refine,
        source: None,
        ..TextOptions::default()
    };
    if !pool.is_empty() {
        let examples: Vec<tessera::StoreExample> = pool
            .iter()
            .map(|&i| tessera::StoreExample {
                text: data.texts[i].clone(),
                triples: data.gold[i]
                    .iter()
                    .map(|t| t.clone().map(|s| label_of(&s)))
                    .collect(),
            })
            .collect();
        let written = db.insert_examples(&examples, &opts)?;
        let failed: Vec<String> = written
            .iter()
            .filter_map(|r| r.as_ref().err().map(ToString::to_string))
            .collect();
        if let Some(e) = failed.first() {
            anyhow::bail!(
                "{} of {} store examples could not be written: {e}",
                failed.len(),
                examples.len()
            );
        }
        writeln!(
            out,
            "store examples: {} items that share no gold triple with the sampled ones",
            pool.len(),
        )?;
    }
    let bar = indicatif::ProgressBar::new(items.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "eval [{bar:30}] {pos}/{len} texts {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let t0 = Instant::now();
    let (mut calls, mut prompt, mut cached, mut generated, mut failed) = (0, 0, 0, 0, 0);
    let mut dropped: std::collections::BTreeMap<String, usize> = Default::default();
    let mut stage_ms = [0u64; 5];
    let mut stage_tokens = [tessera::text::StageTokens::default(); 5];
    let (mut reversed, mut unsupported, mut rerouted, mut covered) = (0, 0, 0, 0);
    let mut predicted: Vec<Vec<Triple>> = vec![Vec::new(); items.len()];
    let texts: Vec<&str> = items.iter().map(|&i| data.texts[i].as_str()).collect();
    db.insert_texts_each(&texts, &opts, args.batch, &mut |k, r| {
        match r {
            Ok(r) => {
                calls += r.stats.model_calls;
                prompt += r.stats.prompt_tokens;
                cached += r.stats.cached_tokens;
                generated += r.stats.generated_tokens;
                stage_ms[0] += r.stats.extract_ms;
                stage_ms[1] += r.stats.define_ms;
                stage_ms[2] += r.stats.canonicalize_ms;
                stage_ms[3] += r.stats.refine_ms;
                stage_ms[4] += r.stats.check_ms;
                reversed += r.stats.reversed;
                for (t, o) in stage_tokens.iter_mut().zip(&r.stats.tokens) {
                    t.add(o);
                }
                unsupported += r.stats.unsupported;
                rerouted += r.stats.rerouted;
                covered += r.stats.covered;
                for d in &r.dropped {
                    let why = d.reason.split(" (").next().unwrap_or(&d.reason);
                    let why = if why.starts_with("no schema relation") {
                        "no schema relation matches"
                    } else if why.starts_with("no definition") {
                        "no definition written"
                    } else {
                        why
                    };
                    *dropped.entry(why.to_owned()).or_default() += 1;
                }
                predicted[k] = r.facts.clone();
            }
            Err(e) => {
                failed += 1;
                tracing::warn!(error = %e, "text failed");
            }
        }
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    if let Some(p) = &args.predictions {
        let lines: Vec<String> = predicted.iter().map(|t| py_list(t)).collect();
        std::fs::write(p, lines.join("\n") + "\n")
            .with_context(|| format!("writing {}", p.display()))?;
    }
    let s = webnlg::score(&predicted, &gold);
    let n = items.len().max(1) as f64;
    writeln!(
        out,
        "{} on {} items (from {}{}), model {}, refine {}, {}",
        args.name,
        items.len(),
        args.start,
        args.sample
            .map(|k| format!(
                ", {} seeded sample of {k} with seed {}",
                if args.outside_sample {
                    "outside the"
                } else {
                    "the"
                },
                args.seed
            ))
            .unwrap_or_default(),
        args.models.describe(),
        args.refine,
        if pool.is_empty() {
            "built-in examples".to_owned()
        } else {
            format!("{} store examples", pool.len())
        }
    )?;
    print_scores(&mut out, &s)?;
    writeln!(
        out,
        "speed: {:.3} texts/s ({secs:.0} s); per text: {:.2} model calls, {:.0} prompt tokens ({:.0} from the prefix cache), {:.0} generated tokens; {failed} texts failed",
        n / secs.max(1e-9),
        calls as f64 / n,
        prompt as f64 / n,
        cached as f64 / n,
        generated as f64 / n
    )?;
    writeln!(
        out,
        "time per text by stage: extract {:.2} s, define {:.2} s, canonicalize {:.2} s, refine {:.2} s, check {:.2} s",
        stage_ms[0] as f64 / 1000.0 / n,
        stage_ms[1] as f64 / 1000.0 / n,
        stage_ms[2] as f64 / 1000.0 / n,
        stage_ms[3] as f64 / 1000.0 / n,
        stage_ms[4] as f64 / 1000.0 / n
    )?;
    writeln!(
        out,
        "tokens per text by stage (prompt not cached + cached, generated): {}",
        tessera::text::budget_per_text(&stage_tokens, n)
    )?;
    writeln!(
        out,
        "direction: {reversed} triples turned round (by the text's phrasing or the support check); support check: {unsupported} dropped as not stated"
    )?;
    writeln!(
        out,
        "relation kind: {rerouted} triples moved from a date or year relation their object is not to the nearest relation asking for neither"
    )?;
    writeln!(
        out,
        "cover pass: {covered} triples written for names and numbers the first extraction left out"
    )?;
    print_analysis(&mut out, &predicted, &gold)?;
    for (why, k) in dropped {
        writeln!(out, "dropped: {why}: {k}")?;
    }
    Ok(())
}

fn print_analysis(
    out: &mut impl Write,
    predicted: &[Vec<Triple>],
    gold: &[Vec<Triple>],
) -> anyhow::Result<()> {
    let mut a = Analysis::default();
    for (p, g) in predicted.iter().zip(gold) {
        analyse(&mut a, p, g);
    }
    let total_gold: usize = gold.iter().map(Vec::len).sum();
    writeln!(
        out,
        "error analysis over {total_gold} gold triples: exact {} | reversed {} | right entities, wrong relation {} | right relation, entity form differs {} | missed by extraction {}; spurious predictions {}",
        a.exact, a.reversed, a.wrong_relation, a.entity_form, a.missed, a.spurious
    )?;
    Ok(())
}

fn print_scores(out: &mut impl Write, s: &webnlg::Totals) -> anyhow::Result<()> {
    writeln!(
        out,
        "mode      precision recall  F1     ({} pairs)",
        s.pairs
    )?;
    for (name, m) in [
        ("partial", s.scores.partial),
        ("strict", s.scores.strict),
        ("exact", s.scores.exact),
        ("ent_type", s.scores.ent_type),
    ] {
        writeln!(
            out,
            "{name:<9} {:.4}    {:.4}  {:.4}",
            m.precision, m.recall, m.f1
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str, r: &str, o: &str) -> Triple {
        [s.to_owned(), r.to_owned(), o.to_owned()]
    }

    #[test]
    fn the_error_analysis_tells_reversed_from_wrong_relation() {
        let gold = [
            t("Santiago", "capital", "Chile"),
            t("Ingrid Solberg", "employer", "Norwegian Polar Institute"),
            t("Oslo", "country", "Norway"),
            t("Bergen", "leader", "Anna Berg"),
        ];
        let pred = [
            t("Chile", "capital", "Santiago"),
            t("Ingrid Solberg", "employer", "Norwegian Polar Institute"),
            t("Oslo", "location", "Norway"),
            t("Bergen", "mayor", "Nobody"),
            t("X", "y", "Z"),
        ];
        let mut a = Analysis::default();
        analyse(&mut a, &pred, &gold);
        assert_eq!(
            (
                a.exact,
                a.reversed,
                a.wrong_relation,
                a.entity_form,
                a.missed,
                a.spurious
            ),
            (1, 1, 1, 0, 1, 2)
        );
    }
}
