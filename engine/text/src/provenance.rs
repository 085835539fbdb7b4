//! Sources: every text read is a source (`prov:Entity`) recorded in the sources graph, and its
//! triples also live in a named graph of the source's own. Entry points: [`drop_source`]
//! (`DROP SOURCE`: a triple leaves the target graph only when no other source supports it)
//! and [`check_source_graph`] (a source IRI may not name a graph that other data lives in).

use crate::TextError;
use oxigraph::model::{
    GraphName, GraphNameRef, NamedNode, NamedNodeRef, NamedOrBlankNode, Quad, Term,
};
use oxigraph::store::Transaction;
use tessera_storage::vocab::{prov, rdf, tessera};

/// A `SOURCE` that names a graph holding other data: dropping or re-reading the source would
/// wipe it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SOURCE <{source_iri}> is {clash}: a source's triples also live in a graph named by the source, which is replaced when the source is read again and cleared by DROP SOURCE, so a source needs an IRI of its own")]
pub struct SourceClash {
    /// The source IRI.
    pub source_iri: String,
    /// Which graph it names.
    pub clash: &'static str,
}

/// Refuses a source IRI that names a graph other data lives in: a source's own graph is
/// replaced when the source is read again and cleared when it is dropped, so it must be a
/// graph of its own, never the target graph, the schema graph or the sources graph.
pub fn check_source_graph(
    source: &NamedNode,
    target: Option<&NamedNode>,
    schema: Option<&NamedNode>,
) -> Result<(), SourceClash> {
    let clash = if target == Some(source) {
        "the target graph"
    } else if schema == Some(source) {
        "the schema graph"
    } else if source.as_ref() == tessera::SOURCES_GRAPH {
        "the graph of source records"
    } else if source.as_ref() == tessera::INDEX_GRAPH {
        "the graph of index commit counts"
    } else {
        return Ok(());
    };
    Err(SourceClash {
        source_iri: source.as_str().to_owned(),
        clash,
    })
}

/// Whether `source` is a recorded source.
pub fn is_source(tx: &Transaction<'_>, source: NamedNodeRef<'_>) -> Result<bool, TextError> {
    Ok(tx
        .quads_for_pattern(
            Some(source.into()),
            Some(rdf::TYPE),
            Some(prov::ENTITY.into()),
            Some(tessera::SOURCES_GRAPH.into()),
        )
        .next()
        .transpose()?
        .is_some())
}

/// The named graph a source's triples were written to (`None`: the default graph).
pub fn recorded_target(
    tx: &Transaction<'_>,
    source: NamedNodeRef<'_>,
) -> Result<Option<NamedNode>, TextError> {
    Ok(
        match tx
            .quads_for_pattern(
                Some(source.into()),
                Some(tessera::TARGET_GRAPH),
                None,
                Some(tessera::SOURCES_GRAPH.into()),
            )
            .next()
            .transpose()?
            .map(|q| q.object)
        {
            Some(Term::NamedNode(n)) if n.as_ref() != tessera::DEFAULT_GRAPH => Some(n),
            _ => None,
        },
    )
}

/// Removes a source (`DROP SOURCE`) in `tx`: its metadata, its graph, and each of its triples
/// from the target graph unless another source supports it. Returns the number of triples
/// removed from the target graph; `None` if there was no such source.
pub fn drop_source(
    tx: &mut Transaction<'_>,
    source: &NamedNode,
) -> Result<Option<usize>, TextError> {
    if !is_source(tx, source.as_ref())? {
        return Ok(None);
    }
    // A source recorded before such IRIs were refused: clearing its graph would clear the
    // target graph (the user's own triples with it).
    let target = recorded_target(tx, source.as_ref())?;
    check_source_graph(source, target.as_ref(), None)?;
    Ok(Some(drop_source_in(tx, source.as_ref())?))
}

pub(crate) fn drop_source_in(
    tx: &mut Transaction<'_>,
    source: NamedNodeRef<'_>,
) -> Result<usize, TextError> {
    let sources: GraphNameRef<'_> = tessera::SOURCES_GRAPH.into();
    let target: GraphName =
        recorded_target(tx, source)?.map_or(GraphName::DefaultGraph, GraphName::NamedNode);
    let own: Vec<Quad> = tx
        .quads_for_pattern(None, None, None, Some(GraphNameRef::NamedNode(source)))
        .collect::<Result<_, _>>()?;
    let mut removed = 0;
    for q in &own {
        // Another source still supports the triple if its graph holds it too.
        let mut supported = false;
        for other in tx.quads_for_pattern(
            Some(q.subject.as_ref()),
            Some(q.predicate.as_ref()),
            Some(q.object.as_ref()),
            None,
        ) {
            let other = other?;
            if let GraphName::NamedNode(g) = &other.graph_name {
                if g.as_ref() != source && is_source(tx, g.as_ref())? {
                    supported = true;
                    break;
                }
            }
        }
        if !supported {
            let in_target = Quad::new(
                q.subject.clone(),
                q.predicate.clone(),
                q.object.clone(),
                target.clone(),
            );
            if tx.contains(&in_target)? {
                tx.remove(&in_target);
                removed += 1;
            }
        }
    }
    tx.clear_graph(GraphNameRef::NamedNode(source))?;
    tx.remove_named_graph(NamedOrBlankNode::from(source.into_owned()).as_ref())?;
    // Metadata: the source node and its chunk and statement nodes.
    let meta: Vec<Quad> = tx
        .quads_for_pattern(Some(source.into()), None, None, Some(sources))
        .collect::<Result<_, _>>()?;
    for q in &meta {
        if q.predicate.as_ref() == tessera::CHUNK || q.predicate.as_ref() == tessera::STATEMENT {
            if let Term::NamedNode(c) = &q.object {
                let chunk: Vec<Quad> = tx
                    .quads_for_pattern(Some(c.as_ref().into()), None, None, Some(sources))
                    .collect::<Result<_, _>>()?;
                for cq in &chunk {
                    tx.remove(cq);
                }
            }
        }
        tx.remove(q);
    }
    Ok(removed)
}
