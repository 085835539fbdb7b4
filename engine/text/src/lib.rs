//! Tessera text: reading text into the store, in one layer above the inference core
//! (`tessera-llm`) and the store (`tessera-storage`).
//!
//! Entry points: [`Reader`] (what `INSERT TEXT` and `DROP SOURCE` do: models loaded on first
//! use, schema and entity indexes, one atomic commit per text) and [`grammar::parse`] (the
//! SPARQL Update extension's front parser). Inside, one file per stage of EDC+R with typed
//! outputs, [`Pipeline::run`] tying them together:
//! `extract` (with its cover pass) -> `define` -> `canonicalize` -> `refine` ([`pipeline`]),
//! then entity linking
//! ([`link`]), the commit plan and provenance ([`commit`], [`provenance`]).

mod anchors;
mod canonicalize;
pub mod check;
pub mod chunk;
pub mod commit;
mod cover;
pub mod csv;
mod define;
mod direction;
pub mod examples;
mod extract;
pub mod grammar;
pub mod link;
pub mod literal;
pub mod model;
mod names;
pub mod options;
pub mod output;
pub mod pipeline;
mod places;
pub mod prompts;
pub mod provenance;
mod reader;
mod refine;
pub mod schema;
mod words;

pub use commit::{entity_iri, entity_label, DroppedTriple, ReportStats, TextReport};
pub use define::{DefinitionCache, Definitions};
pub use examples::{ExamplePool, StoreExample};
pub use model::{TextEmbedder, TextModel};
pub use options::{Align, MAX_TEXT_BYTES};
pub use output::parse_triples;
pub use pipeline::{budget_per_text, EdcOptions, Pipeline, Plan, StageTokens, TOKEN_STAGES};
pub use reader::{
    entity_index_path, entity_index_seq, IndexReport, LoadProgress, ModelStatus, ModelsInfo,
    Reader, ReaderMetrics, TextConfig, TextOptions, STAGES,
};
pub use schema::{camel_case, definition_text, Schema};

use tessera_llm::embed::EmbedError;
use tessera_llm::{GenerateError, RegistryError};
use tessera_storage::StorageError;

/// Why a text cannot be read; nothing of it is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// Empty or only white space.
    #[error("the text is empty")]
    Empty,
    /// Over [`MAX_TEXT_BYTES`].
    #[error("the text is {bytes} bytes, over the cap of {cap}")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The cap.
        cap: usize,
    },
    /// Cut into more than [`options::MAX_CHUNKS_PER_TEXT`] chunks.
    #[error(
        "the text makes {chunks} chunks, over the cap of {cap} (a longer chunk length makes fewer)"
    )]
    TooManyChunks {
        /// Chunks it makes.
        chunks: usize,
        /// The cap.
        cap: usize,
    },
    /// Control characters other than white space.
    #[error("the text holds control characters (binary data?)")]
    Binary,
    /// Several texts with one `SOURCE`.
    #[error("SOURCE names one text; several texts each get their own source")]
    OneSourceManyTexts,
    /// An example triple names a relation the target schema does not hold.
    #[error("the relation {0:?} of an example triple is not a relation of the schema")]
    ExampleRelation(String),
    /// An example triple with an empty subject or object.
    #[error("an example triple has an empty subject or object")]
    ExampleTriple,
}

/// Refuses texts the pipeline cannot read.
pub fn check_text(text: &str) -> Result<(), InputError> {
    if text.trim().is_empty() {
        return Err(InputError::Empty);
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(InputError::TooLarge {
            bytes: text.len(),
            cap: MAX_TEXT_BYTES,
        });
    }
    if text
        .chars()
        .any(|c| c == '\0' || (c.is_control() && !c.is_whitespace()))
    {
        return Err(InputError::Binary);
    }
    Ok(())
}

/// What can go wrong running the pipeline (models in, plans out).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EdcError {
    /// The language model failed.
    #[error("language model: {0}")]
    Model(#[from] GenerateError),
    /// The embedder failed.
    #[error("embedder: {0}")]
    Embed(#[from] EmbedError),
    /// The input was unusable.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The remote language model failed.
    #[error(transparent)]
    Remote(tessera_llm::RemoteError),
    /// The run was cancelled; nothing was written.
    #[error("reading was cancelled")]
    Cancelled,
    /// The model answered a batch with the wrong number of outputs.
    #[error("the model returned {got} outputs for {asked} prompts")]
    Outputs {
        /// Prompts sent.
        asked: usize,
        /// Outputs received.
        got: usize,
    },
}

impl From<tessera_llm::RemoteError> for EdcError {
    fn from(e: tessera_llm::RemoteError) -> Self {
        match e {
            tessera_llm::RemoteError::Cancelled => Self::Cancelled,
            e => Self::Remote(e),
        }
    }
}

/// Which model failed to load, and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// Finding or fetching it.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Loading the language model.
    #[error(transparent)]
    Language(#[from] GenerateError),
    /// Loading the embedder.
    #[error(transparent)]
    Embedding(#[from] EmbedError),
    /// The device asked for is not available.
    #[error("device: {0}")]
    Device(String),
    /// Connecting to the remote language model.
    #[error(transparent)]
    Remote(#[from] tessera_llm::RemoteError),
}

/// Why reading a text (or dropping a source) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TextError {
    /// The text cannot be read (empty, too large, binary).
    #[error("the text cannot be read: {0}")]
    Input(#[from] InputError),
    /// The request's extension syntax.
    #[error(transparent)]
    Syntax(#[from] grammar::SyntaxError),
    /// The options cannot be honoured as given.
    #[error(transparent)]
    Options(#[from] provenance::SourceClash),
    /// A model could not be found or loaded.
    #[error("loading the {what} model {name:?}: {source}")]
    Model {
        /// `language` or `embedding`.
        what: &'static str,
        /// The name or path asked for.
        name: String,
        /// What went wrong.
        #[source]
        source: Box<ModelError>,
    },
    /// The pipeline failed.
    #[error("reading text: {0}")]
    Pipeline(EdcError),
    /// An IRI could not be formed.
    #[error("invalid IRI <{iri}>: {source}")]
    Iri {
        /// The IRI.
        iri: String,
        /// Why.
        #[source]
        source: oxigraph::model::IriParseError,
    },
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The request was cancelled (a timeout, a client gone) before its text was committed;
    /// nothing of it was written.
    #[error("reading was cancelled before the text was committed; nothing was written")]
    Cancelled,
    /// This database was set up to read no text ([`TextConfig::enabled`] false).
    #[error("this database reads no text (it was started without models, e.g. `tessera serve --no-text`)")]
    Disabled,
    /// Too many texts are queued for the model already: try again later.
    #[error(
        "{queued} INSERT TEXT requests are already queued for the model (the cap); try again later"
    )]
    Busy {
        /// Requests queued or running.
        queued: usize,
    },
}

impl From<EdcError> for TextError {
    fn from(e: EdcError) -> Self {
        match e {
            EdcError::Input(i) => Self::Input(i),
            EdcError::Cancelled | EdcError::Model(GenerateError::Cancelled) => Self::Cancelled,
            other => Self::Pipeline(other),
        }
    }
}

impl From<oxigraph::store::StorageError> for TextError {
    fn from(e: oxigraph::store::StorageError) -> Self {
        Self::Storage(e.into())
    }
}

impl TextError {
    /// Whether the request is at fault (bad text, options or syntax) rather than the server
    /// (a model that cannot load, the store): decides 400 against 503/500 over HTTP.
    pub fn is_client_error(&self) -> bool {
        matches!(self, Self::Input(_) | Self::Syntax(_) | Self::Options(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_texts_are_refused() {
        assert_eq!(check_text("  \n"), Err(InputError::Empty));
        assert_eq!(check_text("a\0b"), Err(InputError::Binary));
        assert!(matches!(
            check_text(&"a".repeat(MAX_TEXT_BYTES + 1)),
            Err(InputError::TooLarge { .. })
        ));
        assert_eq!(check_text("Ada Lovelace was born in London."), Ok(()));
    }
}
