//! The entity registry: the named entities of a graph by their labels, and the index of label
//! embeddings that text ingestion links new mentions against.
//!
//! Entry points: [`Storage::entity_labels`] reads every `rdfs:label` and `skos:altLabel` of the
//! graph's named subjects (with their `rdf:type`s), once, when an index is first built;
//! [`EntityIndex::open`] reopens its log and [`EntityIndex::append`] adds what each commit
//! wrote. Lookups by normalised label ([`EntityIndex::by_key`]) and by nearest embedding
//! ([`EntityIndex::nearest_many`]).

use crate::vector::dot;
use crate::vocab::{rdf, rdfs, skos};
use crate::{Storage, StorageError};
use oxigraph::model::{GraphNameRef, NamedNodeRef, NamedOrBlankNodeRef, TermRef};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One label of an entity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct EntityLabel {
    /// The entity's IRI.
    pub iri: String,
    /// The label (`rdfs:label` or `skos:altLabel`).
    pub label: String,
    /// The entity's `rdf:type`s.
    pub types: Vec<String>,
}

impl Storage {
    /// Every label of the named subjects of `graph`, sorted by IRI then label.
    pub fn entity_labels(&self, graph: GraphNameRef<'_>) -> Result<Vec<EntityLabel>, StorageError> {
        let g = Some(graph);
        let mut labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for p in [rdfs::LABEL.as_str(), skos::ALT_LABEL.as_str()] {
            for q in
                self.store
                    .quads_for_pattern(None, Some(NamedNodeRef::new_unchecked(p)), None, g)
            {
                let q = q?;
                let (NamedOrBlankNodeRef::NamedNode(s), TermRef::Literal(l)) =
                    (q.subject.as_ref(), q.object.as_ref())
                else {
                    continue;
                };
                labels
                    .entry(s.as_str().to_owned())
                    .or_default()
                    .insert(l.value().to_owned());
            }
        }
        let mut out = Vec::new();
        for (iri, names) in labels {
            let mut types = Vec::new();
            for q in self.store.quads_for_pattern(
                Some(NamedNodeRef::new_unchecked(&iri).into()),
                Some(NamedNodeRef::new_unchecked(rdf::TYPE.as_str())),
                None,
                None,
            ) {
                if let TermRef::NamedNode(t) = q?.object.as_ref() {
                    types.push(t.as_str().to_owned());
                }
            }
            types.sort();
            types.dedup();
            for label in names {
                out.push(EntityLabel {
                    iri: iri.clone(),
                    label,
                    types: types.clone(),
                });
            }
        }
        Ok(out)
    }
}

/// Embeds texts: one vector each.
pub type EmbedTexts<'a> = dyn FnMut(&[&str]) -> Result<Vec<Vec<f32>>, String> + 'a;

const LOG_MAGIC: &[u8; 8] = b"TSRAENT\0";
/// Format version of entity index logs; another version is rebuilt, never misread.
pub const ENTITY_LOG_VERSION: u32 = 1;
const MAX_STRING: usize = 1 << 16;
const MAX_TYPES: usize = 1 << 10;
const MAX_DIM: usize = 1 << 14;
const RECORD_LABEL: u8 = 0;
const RECORD_SEQ: u8 = 1;

/// A graph's entity labels with their embeddings, kept in line with the store by appending
/// what each commit wrote (never by rescanning the graph).
///
/// On disk it is an append-only log beside the store: a header (format version, embedder,
/// dimension), then checksummed records, each a label with its vector or a commit mark
/// carrying the sequence number that the store records in the same transaction as the
/// triples. Appends follow the commit, so the log is never ahead of the store; a log behind
/// the store (a crash between commit and append) or a torn tail is detected at open and the
/// index rebuilt or the tail cut. Opening reads the vectors; nothing is embedded again.
///
/// Nearest-label search is an exact scan over all vectors, batched (one pass serves every
/// mention of a batch): no graph to build at open, and no missed neighbour. At 200,000 labels a
/// pass reads about 300 MB.
#[derive(Debug)]
pub struct EntityIndex {
    identity: String,
    dim: usize,
    labels: Vec<EntityLabel>,
    vectors: Vec<f32>,
    entries: HashSet<(String, String)>,
    by_key: HashMap<String, Vec<usize>>,
    seq: u64,
    path: Option<PathBuf>,
}

impl EntityIndex {
    /// An empty index (in memory until [`EntityIndex::build`] gives it a file).
    pub fn empty(identity: &str, dim: usize, seq: u64) -> Self {
        Self {
            identity: identity.to_owned(),
            dim,
            labels: Vec::new(),
            vectors: Vec::new(),
            entries: HashSet::new(),
            by_key: HashMap::new(),
            seq,
            path: None,
        }
    }

    /// Builds an index of `labels` (embedding them in chunks, `progress(done, total)` after
    /// each) at commit sequence `seq`, and writes its log to `path` (replacing any).
    pub fn build(
        path: Option<&Path>,
        identity: &str,
        dim: usize,
        labels: Vec<EntityLabel>,
        seq: u64,
        embed: &mut EmbedTexts<'_>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self, StorageError> {
        let mut index = Self::empty(identity, dim, seq);
        let total = labels.len();
        let mut records = Vec::with_capacity(total);
        for chunk in labels.chunks(256) {
            let texts: Vec<&str> = chunk.iter().map(|l| l.label.as_str()).collect();
            let vectors = embed(&texts).map_err(StorageError::Index)?;
            if vectors.len() != chunk.len() {
                return Err(StorageError::Index(format!(
                    "the embedder returned {} vectors for {} entity labels",
                    vectors.len(),
                    chunk.len()
                )));
            }
            records.extend(chunk.iter().cloned().zip(vectors));
            progress(records.len(), total);
        }
        index.add(records.clone())?;
        if let Some(p) = path {
            let mut buf = header(identity, dim);
            for (l, v) in &records {
                put_record(&mut buf, &label_record(l, v));
            }
            put_record(&mut buf, &seq_record(seq));
            write_new(p, &buf)?;
            index.path = Some(p.to_owned());
        }
        Ok(index)
    }

    /// Opens the log at `path` for a store whose recorded commit sequence is `store_seq`.
    /// `Ok(None)` (with the reason logged) when there is none, or it is from another format
    /// or embedder, corrupt, or behind the store: then build it again.
    pub fn open(
        path: &Path,
        identity: &str,
        dim: usize,
        store_seq: u64,
    ) -> Result<Option<Self>, StorageError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StorageError::Io {
                    what: format!("reading the entity index {}", path.display()),
                    source,
                })
            }
        };
        let unusable = |why: &str| {
            tracing::warn!(path = %path.display(), why, "entity index unusable: rebuilding it");
            Ok(None)
        };
        let head = header(identity, dim);
        if bytes.len() < LOG_MAGIC.len() + 4 || &bytes[..8] != LOG_MAGIC {
            return unusable("not a Tessera entity index");
        }
        if bytes[8..12] != ENTITY_LOG_VERSION.to_le_bytes() {
            return unusable("another format version");
        }
        if !bytes.starts_with(&head) {
            return unusable("another embedder or dimension");
        }
        let mut index = Self::empty(identity, dim, 0);
        let mut at = head.len();
        // Where the records that the store has committed end: later bytes are a torn record or
        // appends the store never saw, and are cut.
        let mut good_end = at;
        let mut pending = Vec::new();
        let mut seq = 0;
        while let Some((payload, next)) = read_record(&bytes, at) {
            match parse_record(payload, dim) {
                Some(Record::Label(l, v)) => pending.push((l, v)),
                Some(Record::Seq(s)) if s <= store_seq => {
                    index.add(std::mem::take(&mut pending))?;
                    seq = s;
                    good_end = next;
                }
                Some(Record::Seq(_)) => break,
                None => break,
            }
            at = next;
        }
        if seq < store_seq {
            return unusable("behind the store (a commit's labels were never appended)");
        }
        index.seq = seq;
        if good_end < bytes.len() {
            tracing::warn!(path = %path.display(), cut = bytes.len() - good_end, "entity index: cutting a tail the store never committed");
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|source| StorageError::Io {
                    what: format!("opening the entity index {}", path.display()),
                    source,
                })?;
            f.set_len(good_end as u64)
                .and_then(|()| f.sync_all())
                .map_err(|source| StorageError::Io {
                    what: format!("cutting the entity index {}", path.display()),
                    source,
                })?;
        }
        index.path = Some(path.to_owned());
        Ok(Some(index))
    }

    /// Adds what commit `seq` wrote: its labels with their vectors (labels already held are
    /// skipped), then the commit mark, appended to the log (synced) and to memory.
    pub fn append(
        &mut self,
        labels: Vec<(EntityLabel, Vec<f32>)>,
        seq: u64,
    ) -> Result<(), StorageError> {
        let labels: Vec<(EntityLabel, Vec<f32>)> = labels
            .into_iter()
            .filter(|(l, _)| !self.contains(&l.iri, &l.label))
            .collect();
        if let Some(p) = &self.path {
            let mut buf = Vec::new();
            for (l, v) in &labels {
                put_record(&mut buf, &label_record(l, v));
            }
            put_record(&mut buf, &seq_record(seq));
            let io = |source| StorageError::Io {
                what: format!("appending to the entity index {}", p.display()),
                source,
            };
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(p)
                .map_err(io)?;
            f.write_all(&buf).map_err(io)?;
            f.sync_data().map_err(io)?;
        }
        self.add(labels)?;
        self.seq = seq;
        Ok(())
    }

    fn add(&mut self, labels: Vec<(EntityLabel, Vec<f32>)>) -> Result<(), StorageError> {
        for (l, v) in labels {
            if v.len() != self.dim {
                return Err(StorageError::Index(format!(
                    "the vector of {:?} has {} dimensions, the index {}",
                    l.label,
                    v.len(),
                    self.dim
                )));
            }
            if !self.entries.insert((l.iri.clone(), l.label.clone())) {
                continue;
            }
            self.by_key
                .entry(crate::name_key(&l.label))
                .or_default()
                .push(self.labels.len());
            self.vectors.extend_from_slice(&v);
            self.labels.push(l);
        }
        Ok(())
    }

    /// Whether the index holds this label of this entity.
    pub fn contains(&self, iri: &str, label: &str) -> bool {
        self.entries.contains(&(iri.to_owned(), label.to_owned()))
    }

    /// The store's commit sequence this index reflects.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The embedder the vectors come from.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Labels whose normalised form ([`crate::name_key`]) equals `key`'s.
    pub fn by_key(&self, label: &str) -> Vec<&EntityLabel> {
        self.by_key
            .get(&crate::name_key(label))
            .map(|v| v.iter().map(|&i| &self.labels[i]).collect())
            .unwrap_or_default()
    }

    /// The `k` labels nearest to `embedding`, with cosine similarity, best first.
    pub fn nearest(&self, embedding: &[f32], k: usize) -> Vec<(&EntityLabel, f32)> {
        self.nearest_many(&[embedding], k).pop().unwrap_or_default()
    }

    /// [`EntityIndex::nearest`] for several queries in one pass over the vectors.
    pub fn nearest_many(&self, queries: &[&[f32]], k: usize) -> Vec<Vec<(&EntityLabel, f32)>> {
        let mut best: Vec<Vec<(usize, f32)>> = vec![Vec::with_capacity(k + 1); queries.len()];
        if k == 0 || queries.iter().any(|q| q.len() != self.dim) {
            return vec![Vec::new(); queries.len()];
        }
        for (i, v) in self.vectors.chunks_exact(self.dim).enumerate() {
            for (q, top) in queries.iter().zip(best.iter_mut()) {
                let s = dot(q, v);
                if top.len() < k || s > top[top.len() - 1].1 {
                    let at = top.partition_point(|x| x.1 >= s);
                    top.insert(at, (i, s));
                    top.truncate(k);
                }
            }
        }
        best.into_iter()
            .map(|top| top.into_iter().map(|(i, s)| (&self.labels[i], s)).collect())
            .collect()
    }
}

enum Record {
    Label(EntityLabel, Vec<f32>),
    Seq(u64),
}

fn header(identity: &str, dim: usize) -> Vec<u8> {
    let mut buf = LOG_MAGIC.to_vec();
    buf.extend_from_slice(&ENTITY_LOG_VERSION.to_le_bytes());
    put_str(&mut buf, identity);
    buf.extend_from_slice(&(dim as u64).to_le_bytes());
    buf
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

fn label_record(l: &EntityLabel, v: &[f32]) -> Vec<u8> {
    let mut p = vec![RECORD_LABEL];
    put_str(&mut p, &l.iri);
    put_str(&mut p, &l.label);
    p.extend_from_slice(&(l.types.len() as u32).to_le_bytes());
    for t in &l.types {
        put_str(&mut p, t);
    }
    for x in v {
        p.extend_from_slice(&x.to_le_bytes());
    }
    p
}

fn seq_record(seq: u64) -> Vec<u8> {
    let mut p = vec![RECORD_SEQ];
    p.extend_from_slice(&seq.to_le_bytes());
    p
}

/// A record: its length, the payload, and the first 8 bytes of the payload's SHA-256.
fn put_record(buf: &mut Vec<u8>, payload: &[u8]) {
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(payload);
    buf.extend_from_slice(&Sha256::digest(payload)[..8]);
}

fn read_record(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let len = u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize;
    let payload = bytes.get(at + 4..(at + 4).checked_add(len)?)?;
    let sum = bytes.get(at + 4 + len..at + 12 + len)?;
    (Sha256::digest(payload)[..8] == *sum).then_some((payload, at + 12 + len))
}

fn parse_record(p: &[u8], dim: usize) -> Option<Record> {
    struct R<'a>(&'a [u8]);
    impl R<'_> {
        fn take(&mut self, n: usize) -> Option<&[u8]> {
            if self.0.len() < n {
                return None;
            }
            let (a, b) = self.0.split_at(n);
            self.0 = b;
            Some(a)
        }
        fn u32(&mut self) -> Option<usize> {
            Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize)
        }
        fn string(&mut self) -> Option<String> {
            let n = self.u32()?;
            if n > MAX_STRING {
                return None;
            }
            String::from_utf8(self.take(n)?.to_vec()).ok()
        }
    }
    let (&kind, rest) = p.split_first()?;
    let mut r = R(rest);
    match kind {
        RECORD_SEQ => {
            let seq = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
            r.0.is_empty().then_some(Record::Seq(seq))
        }
        RECORD_LABEL if dim <= MAX_DIM => {
            let iri = r.string()?;
            let label = r.string()?;
            let n = r.u32()?;
            if n > MAX_TYPES {
                return None;
            }
            let types = (0..n).map(|_| r.string()).collect::<Option<Vec<_>>>()?;
            let v: Vec<f32> = r
                .take(dim * 4)?
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            if !r.0.is_empty() || v.iter().any(|x| !x.is_finite()) {
                return None;
            }
            Some(Record::Label(EntityLabel { iri, label, types }, v))
        }
        _ => None,
    }
}

/// Writes a file atomically (a synced temporary file renamed over it).
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let io = |source| StorageError::Io {
        what: format!("writing the entity index {}", path.display()),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
