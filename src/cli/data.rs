//! `tessera query`, `update`, `load` and `dump`: the store from the command line, and the
//! helpers the other commands share (opening a store, reading an argument or a file).

use anyhow::{bail, Context as _};
use indicatif::{ProgressBar, ProgressStyle};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tessera::io::RdfFormat;
use tessera::model::{GraphNameRef, NamedNode};
use tessera::sparql::results::{QueryResultsFormat, QueryResultsSerializer};
use tessera::sparql::QueryResults;
use tessera::Database;

pub fn open_or_memory(location: Option<&Path>) -> anyhow::Result<Database> {
    Ok(match location {
        Some(path) => Database::open(path)?,
        None => {
            tracing::warn!("no --location given: the database lives in memory and is lost on exit");
            Database::in_memory()?
        }
    })
}

pub fn text_arg(
    inline: Option<String>,
    file: Option<PathBuf>,
    what: &str,
) -> anyhow::Result<String> {
    match (inline, file) {
        (Some(text), _) => Ok(text),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let mut text = String::new();
            io::stdin()
                .read_to_string(&mut text)
                .with_context(|| format!("cannot read the {what} from stdin"))?;
            Ok(text)
        }
        (None, Some(path)) => std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the {what} file {}", path.display())),
        (None, None) => bail!("give the {what} with --{what} or --{what}-file"),
    }
}

pub fn rdf_format(name: &str) -> anyhow::Result<RdfFormat> {
    let name = name.to_ascii_lowercase();
    RdfFormat::from_extension(&name)
        .or_else(|| RdfFormat::from_media_type(&name))
        .or_else(|| match name.as_str() {
            "turtle" => Some(RdfFormat::Turtle),
            "ntriples" | "n-triples" => Some(RdfFormat::NTriples),
            "nquads" | "n-quads" => Some(RdfFormat::NQuads),
            "rdfxml" | "rdf/xml" | "xml" => Some(RdfFormat::RdfXml),
            "json-ld" => RdfFormat::from_extension("jsonld"),
            _ => None,
        })
        .with_context(|| {
            format!("unknown RDF format '{name}' (use ttl, nt, nq, trig, rdf, jsonld or n3)")
        })
}

pub fn format_of_path(path: &Path) -> Option<RdfFormat> {
    let name = path.file_name()?.to_str()?;
    let name = name.strip_suffix(".gz").unwrap_or(name);
    let (_, ext) = name.rsplit_once('.')?;
    RdfFormat::from_extension(ext)
}

pub fn load(
    location: &Path,
    files: &[PathBuf],
    format: Option<&str>,
    graph: Option<&str>,
) -> anyhow::Result<()> {
    let forced = format.map(rdf_format).transpose()?;
    let graph = graph
        .map(|g| NamedNode::new(g).with_context(|| format!("invalid graph IRI '{g}'")))
        .transpose()?;
    // Check every input before touching the store.
    let mut inputs = Vec::new();
    for path in files {
        let format = match forced {
            Some(f) => f,
            None if path.as_os_str() == "-" => bail!("loading from stdin needs --format"),
            None => format_of_path(path).with_context(|| {
                format!(
                    "cannot tell the RDF format of {} from its extension; use --format",
                    path.display()
                )
            })?,
        };
        inputs.push((path, format));
    }
    let db = Database::open(location)?;
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let start = Instant::now();
    let mut total = 0u64;
    for (path, format) in inputs {
        let reader: Box<dyn Read> = if path.as_os_str() == "-" {
            Box::new(io::stdin().lock())
        } else {
            let file =
                File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            if path.extension().is_some_and(|e| e == "gz") {
                Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file)))
            } else {
                Box::new(BufReader::new(file))
            }
        };
        let name = path.display().to_string();
        let progress = bar.clone();
        let base = total;
        total += db
            .bulk_load(
                reader,
                format,
                graph.as_ref().map(|g| g.as_ref().into()),
                move |n| {
                    let secs = start.elapsed().as_secs_f64().max(1e-9);
                    progress.set_message(format!(
                        "{name}: {} triples ({:.0} triples/s)",
                        base + n,
                        (base + n) as f64 / secs
                    ));
                },
            )
            .with_context(|| format!("loading {} failed", path.display()))?;
    }
    db.flush()?;
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "loaded {total} triples from {} files in {secs:.1} s ({:.0} triples/s)",
        files.len(),
        total as f64 / secs.max(1e-9)
    );
    Ok(())
}

pub fn dump(
    location: &Path,
    file: Option<&Path>,
    format: Option<&str>,
    graph: Option<&str>,
) -> anyhow::Result<()> {
    let format = match (format, file.and_then(format_of_path)) {
        (Some(f), _) => rdf_format(f)?,
        (None, Some(f)) => f,
        (None, None) => RdfFormat::NQuads,
    };
    let graph = match graph {
        None => None,
        Some("default") => Some(tessera::model::GraphName::DefaultGraph),
        Some(g) => Some(
            NamedNode::new(g)
                .with_context(|| format!("invalid graph IRI '{g}'"))?
                .into(),
        ),
    };
    if graph.is_none() && !format.supports_datasets() {
        bail!(
            "{} holds one graph; choose --graph IRI (or --graph default), or a dataset format such as nq or trig",
            format.name()
        );
    }
    let db = Database::open(location)?;
    let graph_ref = graph.as_ref().map(|g| match g {
        tessera::model::GraphName::NamedNode(n) => GraphNameRef::NamedNode(n.as_ref()),
        _ => GraphNameRef::DefaultGraph,
    });
    match file {
        Some(path) => {
            let out =
                File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            db.dump(BufWriter::new(out), format, graph_ref)?
                .flush()
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        None => {
            db.dump(BufWriter::new(io::stdout().lock()), format, graph_ref)?
                .flush()?;
        }
    }
    Ok(())
}

pub fn print_results(
    results: QueryResults<'_>,
    format: Option<&str>,
    mut out: impl Write,
) -> anyhow::Result<()> {
    match results {
        QueryResults::Solutions(solutions) => {
            let format = solutions_format(format.unwrap_or("tsv"))?;
            let mut serializer = QueryResultsSerializer::from_format(format)
                .serialize_solutions_to_writer(&mut out, solutions.variables().to_vec())?;
            for solution in solutions {
                serializer.serialize(&solution?)?;
            }
            serializer.finish()?;
        }
        QueryResults::Boolean(value) => {
            let format = solutions_format(format.unwrap_or("tsv"))?;
            QueryResultsSerializer::from_format(format)
                .serialize_boolean_to_writer(&mut out, value)?;
        }
        QueryResults::Graph(triples) => {
            let format = rdf_format(format.unwrap_or("ttl"))?;
            let mut serializer =
                tessera::io::RdfSerializer::from_format(format).for_writer(&mut out);
            for triple in triples {
                serializer.serialize_triple(&triple?)?;
            }
            serializer.finish()?;
        }
    }
    out.flush()?;
    Ok(())
}

pub fn solutions_format(name: &str) -> anyhow::Result<QueryResultsFormat> {
    QueryResultsFormat::from_extension(name)
        .or_else(|| QueryResultsFormat::from_media_type(name))
        .with_context(|| format!("unknown results format '{name}' (use json, xml, csv or tsv)"))
}
