//! `tessera eval` end to end on a small dataset in the EDC layout (written here, invented
//! texts), with the real small model.

#![allow(clippy::expect_used)]

use std::process::Command;

// The metric's own parser, compiled in from the binary's module.
#[allow(dead_code)]
#[path = "../src/cli/eval/dataset.rs"]
mod dataset;
#[allow(dead_code)]
#[path = "../src/cli/eval/webnlg.rs"]
mod webnlg;

fn f1(out: &str, mode: &str) -> f64 {
    out.lines()
        .find(|l| l.starts_with(mode))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {mode} line in:\n{out}"))
}

#[test]
fn eval_scores_a_small_dataset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for sub in ["datasets", "evaluate/references", "schemas"] {
        std::fs::create_dir_all(d.join(sub)).expect("mkdir");
    }
    std::fs::write(
        d.join("datasets/tiny.txt"),
        "Ada Lovelace was born in London.\nNiels Bohr was born in Copenhagen.\nGrace Hopper worked for the United States Navy.\n",
    )
    .expect("texts");
    std::fs::write(
        d.join("evaluate/references/tiny.txt"),
        "[['Ada_Lovelace', 'birthPlace', 'London']]\n[['Niels_Bohr', 'birthPlace', 'Copenhagen']]\n[['Grace_Hopper', 'employer', 'United_States_Navy']]\n",
    )
    .expect("references");
    std::fs::write(
        d.join("schemas/tiny_schema.csv"),
        "birthPlace,The subject entity was born in the place given by the object entity.\nemployer,The subject entity works for the organisation given by the object entity.\n",
    )
    .expect("schema");
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["eval", "tiny", "--data"])
            .arg(d)
            .args(["--start", "0"])
            .args(extra)
            .output()
            .expect("run tessera eval");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let gold = run(&["--gold-vs-gold"]);
    assert!((f1(&gold, "strict") - 1.0).abs() < 1e-9, "{gold}");
    let preds = d.join("predictions.txt");
    let out = run(&[
        "--model",
        "smollm2",
        "--threads",
        "2",
        "--predictions",
        preds.to_str().expect("utf-8 path"),
    ]);
    let partial = f1(&out, "partial");
    assert!(partial > 0.0 && partial <= 1.0, "{out}");
    assert!(
        out.contains("texts/s") && out.contains("error analysis"),
        "{out}"
    );
    let lines = std::fs::read_to_string(&preds).expect("predictions");
    assert_eq!(lines.lines().count(), 3);
    for l in lines.lines() {
        dataset::parse_triples(l).expect("predictions parse back");
    }
    // Scoring the written predictions again gives the run's own scores, without a model.
    let rescored = run(&["--score", preds.to_str().expect("utf-8 path")]);
    assert_eq!(f1(&rescored, "partial"), partial, "{rescored}");
    assert_eq!(f1(&rescored, "strict"), f1(&out, "strict"), "{rescored}");
    // A file of another length is refused, naming it.
    std::fs::write(&preds, "[]\n").expect("write");
    let short = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["eval", "tiny", "--data"])
        .arg(d)
        .args(["--start", "0", "--score"])
        .arg(&preds)
        .output()
        .expect("run");
    assert!(!short.status.success());
    let err = String::from_utf8_lossy(&short.stderr);
    assert!(
        err.contains("predictions.txt") && err.contains("1 lines"),
        "{err}"
    );

    // A broken dataset is one error line naming the file.
    std::fs::write(d.join("evaluate/references/tiny.txt"), "[['a', 'b']]\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["eval", "tiny", "--data"])
        .arg(d)
        .arg("--gold-vs-gold")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("references/tiny.txt") && err.lines().count() == 1,
        "{err}"
    );
}
