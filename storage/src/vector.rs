//! A persisted nearest-neighbour index of embeddings (HNSW, from `hnsw_rs`), keyed by strings
//! (IRIs), with the identity of the embedder and a fingerprint of what was embedded.
//!
//! Entry point: [`VectorIndex`]. On disk it is one file: a header (magic, format version,
//! embedder identity, fingerprint, dimension), the keys and vectors, and a SHA-256 of all of it.
//! The HNSW graph is built from the vectors when the file is read (a few milliseconds for a
//! schema); a file with another format version, embedder or fingerprint is *stale* and a
//! damaged one *corrupt*: both are reported, never misread, and the caller rebuilds.

use crate::StorageError;
use hnsw_rs::prelude::{Distance, Hnsw};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

const MAGIC: &[u8; 8] = b"TSRAVEC\0";
/// Version of the index file format.
pub const VECTOR_FORMAT_VERSION: u32 = 1;
/// Caps that keep a damaged header from asking for absurd allocations.
const MAX_DIM: usize = 1 << 14;
/// Indexes up to this many vectors are searched exactly, by a scan.
const EXACT_SEARCH_MAX: usize = 4096;
const MAX_KEY_BYTES: usize = 1 << 16;
const MAX_HEADER_STRING: usize = 1 << 12;

/// Why a persisted index cannot be used as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// There is no file.
    Missing,
    /// Written by another format version, another embedder or over other content.
    Stale(String),
    /// The file is damaged.
    Corrupt(String),
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing => f.write_str("missing"),
            Self::Stale(why) => write!(f, "stale ({why})"),
            Self::Corrupt(why) => write!(f, "corrupt ({why})"),
        }
    }
}

/// `1 - cos` for unit vectors, clamped at 0: `hnsw_rs`'s own dot distance asserts on the
/// rounding error of nearly identical vectors (a dot product a hair above 1), which would turn
/// a duplicate definition into a panic.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitCosine;

impl Distance<f32> for UnitCosine {
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        (1.0 - dot(va, vb)).max(0.0)
    }
}

/// Embeddings by key with an HNSW graph over them (cosine similarity of unit vectors).
pub struct VectorIndex {
    identity: String,
    fingerprint: String,
    dim: usize,
    keys: Vec<String>,
    vectors: Vec<f32>,
    positions: HashMap<String, usize>,
    graph: Hnsw<'static, f32, UnitCosine>,
}

impl std::fmt::Debug for VectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorIndex")
            .field("identity", &self.identity)
            .field("fingerprint", &self.fingerprint)
            .field("dim", &self.dim)
            .field("len", &self.keys.len())
            .finish()
    }
}

fn new_graph(capacity: usize) -> Hnsw<'static, f32, UnitCosine> {
    let mut g = Hnsw::new(24, capacity.max(16), 16, 200, UnitCosine);
    g.set_searching_mode(true);
    g
}

/// SHA-256 over index keys (each key names an entry and a hash of the text embedded for it).
pub fn fingerprint(keys: &[String]) -> String {
    let mut h = Sha256::new();
    for k in keys {
        h.update(k.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Embeds the entries at the given positions of the key list: one vector each.
pub type EmbedMissing<'a> = dyn FnMut(&[usize]) -> Result<Vec<Vec<f32>>, String> + 'a;

impl VectorIndex {
    /// An empty index of `dim`-dimensional vectors from the embedder `identity`.
    pub fn new(dim: usize, identity: impl Into<String>, fingerprint: impl Into<String>) -> Self {
        Self {
            identity: identity.into(),
            fingerprint: fingerprint.into(),
            dim,
            keys: Vec::new(),
            vectors: Vec::new(),
            positions: HashMap::new(),
            graph: new_graph(1024),
        }
    }

    /// Builds an index from `entries` at once.
    pub fn build(
        dim: usize,
        identity: impl Into<String>,
        fingerprint: impl Into<String>,
        entries: impl IntoIterator<Item = (String, Vec<f32>)>,
    ) -> Result<Self, StorageError> {
        let mut index = Self::new(dim, identity, fingerprint);
        let entries: Vec<(String, Vec<f32>)> = entries.into_iter().collect();
        index.graph = new_graph(entries.len());
        for (k, v) in entries {
            index.insert(k, &v)?;
        }
        Ok(index)
    }

    /// Brings an index in line with `keys` (sorted; each names an entry and a hash of its
    /// embedded text): reuses `current` or the file at `path` when they match (same embedder,
    /// same keys), else embeds only the keys no old index holds, rebuilds the HNSW graph and
    /// saves it. Returns the index and whether anything was (re)built. `what` names the index
    /// in logs.
    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        current: Option<VectorIndex>,
        path: Option<&Path>,
        what: &str,
        keys: &[String],
        identity: &str,
        dim: usize,
        embed: &mut EmbedMissing<'_>,
    ) -> Result<(VectorIndex, bool), StorageError> {
        let fp = fingerprint(keys);
        let mut old = current.filter(|c| c.identity() == identity);
        if old.is_none() {
            if let Some(p) = path {
                match VectorIndex::load(p, identity, None)? {
                    Ok(i) => old = Some(i),
                    Err(Unusable::Missing) => {
                        tracing::info!(path = %p.display(), "{what} index missing: building it")
                    }
                    Err(why) => {
                        tracing::warn!(path = %p.display(), %why, "{what} index unusable: rebuilding it")
                    }
                }
            }
        }
        if let Some(i) = old.take() {
            if i.fingerprint() == fp {
                return Ok((i, false));
            }
            old = Some(i);
        }
        let missing: Vec<usize> = (0..keys.len())
            .filter(|&i| old.as_ref().and_then(|o| o.get(&keys[i])).is_none())
            .collect();
        if !missing.is_empty() {
            // A first build is news; keeping up with each batch's additions is routine.
            if old.is_none() {
                tracing::info!(
                    entries = keys.len(),
                    embedding = missing.len(),
                    "indexing {what}"
                );
            } else {
                tracing::debug!(
                    entries = keys.len(),
                    embedding = missing.len(),
                    "indexing {what}"
                );
            }
        }
        let fresh = if missing.is_empty() {
            Vec::new()
        } else {
            embed(&missing).map_err(StorageError::Index)?
        };
        if fresh.len() != missing.len() {
            return Err(StorageError::Index(format!(
                "the embedder returned {} vectors for {} {what}",
                fresh.len(),
                missing.len()
            )));
        }
        let mut fresh_at: HashMap<usize, Vec<f32>> = missing.into_iter().zip(fresh).collect();
        let mut entries = Vec::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            let v = match old.as_ref().and_then(|o| o.get(k)) {
                Some(v) => v.to_vec(),
                None => fresh_at
                    .remove(&i)
                    .ok_or_else(|| StorageError::Index(format!("no vector for {k}")))?,
            };
            entries.push((k.clone(), v));
        }
        let index = VectorIndex::build(dim, identity, fp, entries)?;
        if let Some(p) = path {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir).map_err(|source| StorageError::Io {
                    what: format!("creating {}", dir.display()),
                    source,
                })?;
            }
            index.save(p)?;
        }
        Ok((index, true))
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it holds no vector.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The embedder the vectors came from.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The fingerprint of the embedded content.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Sets the fingerprint after the content changed.
    pub fn set_fingerprint(&mut self, fingerprint: impl Into<String>) {
        self.fingerprint = fingerprint.into();
    }

    /// The vector stored for `key`.
    pub fn get(&self, key: &str) -> Option<&[f32]> {
        self.positions
            .get(key)
            .map(|&i| &self.vectors[i * self.dim..(i + 1) * self.dim])
    }

    /// Adds a vector (a key already present keeps its first vector: rebuild to replace one).
    pub fn insert(&mut self, key: String, vector: &[f32]) -> Result<(), StorageError> {
        if vector.len() != self.dim {
            return Err(StorageError::Index(format!(
                "vector for {key} has {} dimensions, the index {}",
                vector.len(),
                self.dim
            )));
        }
        if self.positions.contains_key(&key) {
            return Ok(());
        }
        let id = self.keys.len();
        self.vectors.extend_from_slice(vector);
        self.positions.insert(key.clone(), id);
        self.keys.push(key);
        self.graph.insert_slice((vector, id));
        Ok(())
    }

    /// The `k` nearest keys to `query` with their cosine similarity, best first.
    pub fn search(&self, query: &[f32], k: usize) -> Vec<(&str, f32)> {
        if self.keys.is_empty() || query.len() != self.dim || k == 0 {
            return Vec::new();
        }
        if self.keys.len() <= EXACT_SEARCH_MAX {
            // Small indexes (most schemas) are scanned exactly: cheaper than the graph walk at
            // this size, and never misses a neighbour (HNSW can, e.g. among equal vectors).
            let mut hits: Vec<(&str, f32)> = self
                .keys
                .iter()
                .enumerate()
                .map(|(i, key)| {
                    let v = &self.vectors[i * self.dim..(i + 1) * self.dim];
                    (key.as_str(), dot(query, v))
                })
                .collect();
            hits.sort_by(|a, b| b.1.total_cmp(&a.1));
            hits.truncate(k);
            return hits;
        }
        let ef = (k * 4).max(64);
        let mut hits: Vec<(&str, f32)> = self
            .graph
            .search(query, k.min(self.keys.len()), ef)
            .into_iter()
            .filter_map(|n| {
                let key = self.keys.get(n.d_id)?;
                let v = &self.vectors[n.d_id * self.dim..(n.d_id + 1) * self.dim];
                Some((key.as_str(), dot(query, v)))
            })
            .collect();
        hits.sort_by(|a, b| b.1.total_cmp(&a.1));
        hits
    }

    /// Writes the index to `path` atomically (a temporary file renamed over it).
    pub fn save(&self, path: &Path) -> Result<(), StorageError> {
        let io = |source| StorageError::Io {
            what: format!("writing the index {}", path.display()),
            source,
        };
        let mut buf = Vec::with_capacity(64 + self.vectors.len() * 4 + self.keys.len() * 48);
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&VECTOR_FORMAT_VERSION.to_le_bytes());
        put_str(&mut buf, &self.identity);
        put_str(&mut buf, &self.fingerprint);
        buf.extend_from_slice(&(self.dim as u64).to_le_bytes());
        buf.extend_from_slice(&(self.keys.len() as u64).to_le_bytes());
        for (i, k) in self.keys.iter().enumerate() {
            put_str(&mut buf, k);
            for x in &self.vectors[i * self.dim..(i + 1) * self.dim] {
                buf.extend_from_slice(&x.to_le_bytes());
            }
        }
        let digest = Sha256::digest(&buf);
        buf.extend_from_slice(&digest);
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&buf).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok(())
    }

    /// Reads an index from `path`, usable only if it was written by this format version for
    /// the embedder `identity` over content with `fingerprint` (`None`: any).
    pub fn load(
        path: &Path,
        identity: &str,
        fingerprint: Option<&str>,
    ) -> Result<Result<Self, Unusable>, StorageError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Err(Unusable::Missing))
            }
            Err(source) => {
                return Err(StorageError::Io {
                    what: format!("reading the index {}", path.display()),
                    source,
                })
            }
        };
        Ok(Self::decode(&bytes, identity, fingerprint))
    }

    fn decode(bytes: &[u8], identity: &str, fingerprint: Option<&str>) -> Result<Self, Unusable> {
        let corrupt = |why: &str| Unusable::Corrupt(why.to_owned());
        if bytes.len() < MAGIC.len() + 4 + 32 || &bytes[..8] != MAGIC {
            return Err(corrupt("not a Tessera vector index"));
        }
        let (body, digest) = bytes.split_at(bytes.len() - 32);
        if Sha256::digest(body).as_slice() != digest {
            return Err(corrupt("checksum mismatch"));
        }
        let mut r = Reader { b: body, at: 8 };
        let version = r.u32().ok_or_else(|| corrupt("truncated header"))?;
        if version != VECTOR_FORMAT_VERSION {
            return Err(Unusable::Stale(format!(
                "format {version}, this build writes {VECTOR_FORMAT_VERSION}"
            )));
        }
        let found_identity = r
            .string(MAX_HEADER_STRING)
            .ok_or_else(|| corrupt("header"))?;
        let found_fingerprint = r
            .string(MAX_HEADER_STRING)
            .ok_or_else(|| corrupt("header"))?;
        if found_identity != identity {
            return Err(Unusable::Stale(format!(
                "embedded by {found_identity}, not {identity}"
            )));
        }
        if let Some(fp) = fingerprint {
            if found_fingerprint != fp {
                return Err(Unusable::Stale("the content changed since".into()));
            }
        }
        let dim = r.u64().ok_or_else(|| corrupt("header"))? as usize;
        let count = r.u64().ok_or_else(|| corrupt("header"))? as usize;
        if dim == 0 || dim > MAX_DIM {
            return Err(corrupt("dimension out of range"));
        }
        if count > r.remaining() / (dim * 4) {
            return Err(corrupt("more vectors than bytes"));
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let key = r
                .string(MAX_KEY_BYTES)
                .ok_or_else(|| corrupt("truncated key"))?;
            let v = r.f32s(dim).ok_or_else(|| corrupt("truncated vector"))?;
            if v.iter().any(|x| !x.is_finite()) {
                return Err(corrupt("a vector holds NaN or infinity"));
            }
            entries.push((key, v));
        }
        if r.remaining() != 0 {
            return Err(corrupt("trailing bytes"));
        }
        Self::build(dim, found_identity, found_fingerprint, entries)
            .map_err(|e| Unusable::Corrupt(e.to_string()))
    }
}

/// The dot product of two embeddings (cosine similarity of normalised ones), in eight lanes:
/// a plain `sum()` of floats stays scalar, because the compiler keeps the order of the
/// additions.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a8.zip(b8) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.b.len() - self.at
    }
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.b.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn string(&mut self, cap: usize) -> Option<String> {
        let n = usize::try_from(self.u64()?).ok()?;
        if n > cap {
            return None;
        }
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn f32s(&mut self, n: usize) -> Option<Vec<f32>> {
        Some(
            self.take(n.checked_mul(4)?)?
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(seed: u64, dim: usize) -> Vec<f32> {
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let v: Vec<f32> = (0..dim)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((x >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect();
        let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
        v.iter().map(|a| a / n).collect()
    }

    #[test]
    fn finds_the_exact_nearest_and_round_trips() {
        let dim = 32;
        let entries: Vec<(String, Vec<f32>)> =
            (0..300).map(|i| (format!("k{i}"), unit(i, dim))).collect();
        let index = VectorIndex::build(dim, "emb", "fp1", entries.clone()).unwrap();
        for (k, v) in entries.iter().step_by(7) {
            let hits = index.search(v, 3);
            assert_eq!(hits[0].0, k.as_str());
            assert!((hits[0].1 - 1.0).abs() < 1e-5);
            // Brute force agrees on the best neighbour other than itself.
            let mut brute: Vec<(usize, f32)> = entries
                .iter()
                .enumerate()
                .map(|(i, (_, w))| (i, dot(v, w)))
                .collect();
            brute.sort_by(|a, b| b.1.total_cmp(&a.1));
            assert_eq!(hits[1].0, entries[brute[1].0].0);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("schema.idx");
        index.save(&path).unwrap();
        let back = VectorIndex::load(&path, "emb", Some("fp1"))
            .unwrap()
            .unwrap();
        assert_eq!(back.len(), 300);
        assert_eq!(back.get("k5"), index.get("k5"));
        assert_eq!(back.search(&entries[9].1, 1)[0].0, "k9");
    }

    #[test]
    fn stale_corrupt_and_missing_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.idx");
        assert_eq!(
            VectorIndex::load(&path, "emb", None).unwrap().err(),
            Some(Unusable::Missing)
        );
        let index = VectorIndex::build(4, "emb", "fp", [("a".to_owned(), unit(1, 4))]).unwrap();
        index.save(&path).unwrap();
        assert!(matches!(
            VectorIndex::load(&path, "other", None).unwrap(),
            Err(Unusable::Stale(_))
        ));
        assert!(matches!(
            VectorIndex::load(&path, "emb", Some("fp2")).unwrap(),
            Err(Unusable::Stale(_))
        ));
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n / 2] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            VectorIndex::load(&path, "emb", None).unwrap(),
            Err(Unusable::Corrupt(_))
        ));
        std::fs::write(&path, b"TSRAVEC\0garbage").unwrap();
        assert!(matches!(
            VectorIndex::load(&path, "emb", None).unwrap(),
            Err(Unusable::Corrupt(_))
        ));
        // Wrong dimension on insert is an error, not a panic.
        let mut i = VectorIndex::new(4, "emb", "fp");
        assert!(i.insert("z".into(), &[1.0]).is_err());
    }
}
