//! What an `INSERT TEXT` request can ask for and the caps on it, with no dependencies (the
//! fuzz targets compile this file in beside the grammar's).

/// Largest text one `INSERT TEXT` takes, whichever way it comes in.
pub const MAX_TEXT_BYTES: usize = 1 << 20;

/// Most chunks one text is cut into (a 1 MiB text makes about 800 with the default chunk
/// length); smaller chunk settings that would exceed it are refused.
pub const MAX_CHUNKS_PER_TEXT: usize = 1024;

/// Most `INSERT TEXT` operations in one update request.
pub const MAX_TEXTS_PER_REQUEST: usize = 64;

/// Most refinement rounds.
pub const MAX_REFINE: usize = 5;

/// Target alignment or self-canonicalization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Align {
    /// Only relations of the schema: a triple without a match is dropped.
    #[default]
    Target,
    /// A relation without a match joins the schema with its definition.
    SelfCanonical,
}
