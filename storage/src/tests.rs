use super::*;
use oxigraph::model::NamedNode;

const TTL: &str = "<http://e/s> <http://e/p> <http://e/o> .";

#[test]
fn load_replace_and_drop_graph() -> Result<(), StorageError> {
    let storage = Storage::in_memory()?;
    let g = NamedNode::new_unchecked("http://e/g");
    let first = storage.replace_graph(
        Some(g.as_ref().into()),
        TTL.as_bytes(),
        RdfFormat::Turtle,
        None,
    )?;
    assert_eq!(first, GraphWrite::Created);
    let second = storage.replace_graph(
        Some(g.as_ref().into()),
        TTL.as_bytes(),
        RdfFormat::Turtle,
        None,
    )?;
    assert_eq!(second, GraphWrite::Updated);
    assert_eq!(storage.len()?, 1);
    assert!(storage.drop_graph(Some(g.as_ref().into()))?);
    assert!(!storage.drop_graph(Some(g.as_ref().into()))?);
    assert!(storage.is_empty()?);
    Ok(())
}

#[test]
fn malformed_input_writes_nothing() -> Result<(), StorageError> {
    let storage = Storage::in_memory()?;
    storage.load(TTL.as_bytes(), RdfFormat::Turtle, None, None)?;
    let bad = "<http://e/a> <http://e/b> <http://e/c> .\n<http://e/a> <http://e/b> .";
    let err = storage.load(bad.as_bytes(), RdfFormat::Turtle, None, None);
    assert!(matches!(err, Err(StorageError::Parse(_))), "{err:?}");
    assert_eq!(
        storage.len()?,
        1,
        "the failed load must not leave a partial write"
    );
    Ok(())
}

#[test]
fn dataset_format_into_a_graph_is_refused() -> Result<(), StorageError> {
    let storage = Storage::in_memory()?;
    let g = NamedNode::new_unchecked("http://e/g");
    let err = storage.load(
        TTL.as_bytes(),
        RdfFormat::NQuads,
        None,
        Some(g.as_ref().into()),
    );
    assert!(
        matches!(err, Err(StorageError::DatasetIntoGraph(_))),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn format_version_is_written_and_checked() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("store");
    format::check_or_init(&path)?;
    assert_eq!(
        std::fs::read_to_string(path.join(FORMAT_FILE))?.trim(),
        format!("tessera-store {FORMAT_VERSION}")
    );
    format::check_or_init(&path)?;
    std::fs::write(path.join(FORMAT_FILE), "tessera-store 999\n")?;
    let err = format::check_or_init(&path);
    assert!(
        matches!(err, Err(StorageError::FormatVersion { .. })),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn foreign_directory_is_refused() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("notes.txt"), "not a store")?;
    let err = format::check_or_init(dir.path());
    assert!(
        matches!(err, Err(StorageError::FormatVersion { .. })),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn readers_are_not_blocked_by_a_writer_and_writers_take_turns(
) -> Result<(), Box<dyn std::error::Error>> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;
    let storage = Storage::in_memory()?;
    storage.load(TTL.as_bytes(), RdfFormat::Turtle, None, None)?;
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let writer = {
        let storage = storage.clone();
        std::thread::spawn(move || {
            storage.write(|transaction| {
                transaction.insert(QuadRef::new(
                    NamedNode::new_unchecked("http://e/w").as_ref(),
                    NamedNode::new_unchecked("http://e/p").as_ref(),
                    NamedNode::new_unchecked("http://e/o").as_ref(),
                    GraphNameRef::DefaultGraph,
                ));
                let _ = entered_tx.send(());
                let _ = release_rx.recv();
                Ok::<_, StorageError>(())
            })
        })
    };
    entered_rx.recv()?;
    // The first writer holds the lock: a reader still answers, from the last commit.
    assert_eq!(storage.store().iter().count(), 1);
    // A second writer waits for its turn.
    let second_done = std::sync::Arc::new(AtomicBool::new(false));
    let second = {
        let storage = storage.clone();
        let done = second_done.clone();
        std::thread::spawn(move || {
            let result = storage.insert(QuadRef::new(
                NamedNode::new_unchecked("http://e/x").as_ref(),
                NamedNode::new_unchecked("http://e/p").as_ref(),
                NamedNode::new_unchecked("http://e/o").as_ref(),
                GraphNameRef::DefaultGraph,
            ));
            done.store(true, Ordering::SeqCst);
            result
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(
        !second_done.load(Ordering::SeqCst),
        "the second writer must wait for the first"
    );
    release_tx.send(())?;
    writer.join().map_err(|_| "writer panicked")??;
    second.join().map_err(|_| "second writer panicked")??;
    assert_eq!(storage.len()?, 3);
    Ok(())
}

#[test]
fn entity_labels_index_and_lookups() -> Result<(), Box<dyn std::error::Error>> {
    use crate::entities::{EntityIndex, EntityLabel};
    let storage = Storage::in_memory()?;
    let g = NamedNode::new_unchecked("http://e/facts");
    let ttl = r#"
        @prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
        @prefix skos: <http://www.w3.org/2004/02/skos/core#> .
        <http://e/ada> rdfs:label "Ada Lovelace" ; skos:altLabel "Countess of Lovelace" ;
            a <http://e/Person> .
        <http://e/lyon> rdfs:label "Lyon" .
        _:b rdfs:label "a blank node" .
    "#;
    storage.replace_graph(
        Some(g.as_ref().into()),
        ttl.as_bytes(),
        RdfFormat::Turtle,
        None,
    )?;
    let labels = storage.entity_labels(g.as_ref().into())?;
    let got: Vec<(&str, &str)> = labels
        .iter()
        .map(|l| (l.iri.as_str(), l.label.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("http://e/ada", "Ada Lovelace"),
            ("http://e/ada", "Countess of Lovelace"),
            ("http://e/lyon", "Lyon")
        ]
    );
    assert_eq!(labels[0].types, vec!["http://e/Person".to_owned()]);
    // A toy embedder: one axis per first letter.
    let calls = std::cell::Cell::new(0);
    let mut embed = |texts: &[&str]| -> Result<Vec<Vec<f32>>, String> {
        calls.set(calls.get() + texts.len());
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0.0; 26];
                let c = t.to_ascii_lowercase().bytes().next().unwrap_or(b'a');
                v[usize::from(c.saturating_sub(b'a')).min(25)] = 1.0;
                v
            })
            .collect())
    };
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("entities.log");
    let mut steps = 0;
    let index = EntityIndex::build(
        Some(&path),
        "toy",
        26,
        labels.clone(),
        3,
        &mut embed,
        &mut |_, _| steps += 1,
    )?;
    assert!(steps > 0);
    assert_eq!(index.seq(), 3);
    let by_key: Vec<&EntityLabel> = index.by_key("ada  LOVELACE!");
    assert_eq!(by_key.len(), 1);
    assert_eq!(by_key[0].iri, "http://e/ada");
    let mut q = vec![0.0; 26];
    q[usize::from(b'l' - b'a')] = 1.0;
    let near = index.nearest(&q, 1);
    assert_eq!(near[0].0.label, "Lyon");
    assert!(near[0].1 > 0.99);
    // Reopened at the store's sequence: nothing is embedded again.
    let before = calls.get();
    let mut index = EntityIndex::open(&path, "toy", 26, 3)?.ok_or("reopen")?;
    assert_eq!((calls.get(), index.len()), (before, 3));
    // A commit's new label is appended (only it is embedded) and reopens with the log.
    let paris = EntityLabel {
        iri: "http://e/paris".into(),
        label: "Paris".into(),
        types: Vec::new(),
    };
    let v = embed(&["Paris"])?.remove(0);
    index.append(vec![(paris.clone(), v.clone())], 4)?;
    assert_eq!(calls.get() - before, 1);
    assert_eq!(
        EntityIndex::open(&path, "toy", 26, 4)?
            .ok_or("reopen")?
            .len(),
        4
    );
    // A log behind the store (a commit whose labels were never appended) is not used.
    assert!(EntityIndex::open(&path, "toy", 26, 5)?.is_none());
    // An append the store never committed is cut at open, and stays cut.
    let rome = EntityLabel {
        iri: "http://e/rome".into(),
        label: "Rome".into(),
        types: Vec::new(),
    };
    index.append(vec![(rome, v)], 5)?;
    assert_eq!(
        EntityIndex::open(&path, "toy", 26, 4)?.ok_or("cut")?.len(),
        4
    );
    assert_eq!(
        EntityIndex::open(&path, "toy", 26, 5)?.map(|i| i.len()),
        None
    );
    // A torn tail (half a record) is cut too.
    let mut bytes = std::fs::read(&path)?;
    bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3]);
    std::fs::write(&path, &bytes)?;
    let reopened = EntityIndex::open(&path, "toy", 26, 4)?.ok_or("torn")?;
    assert_eq!(reopened.len(), 4);
    assert!(reopened.contains("http://e/paris", "Paris"));
    // Another embedder's log is not used.
    assert!(EntityIndex::open(&path, "other", 26, 4)?.is_none());
    // Several queries in one pass, each best first.
    let mut qa = vec![0.0; 26];
    qa[0] = 1.0;
    let many = reopened.nearest_many(&[&qa, &q], 2);
    assert_eq!(many[0][0].0.iri, "http://e/ada");
    assert_eq!(many[1][0].0.label, "Lyon");
    Ok(())
}
