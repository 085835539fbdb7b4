//! Text generation on a loaded model: [`LanguageModel`] is the entry point.
//!
//! Greedy and sampled decoding (temperature, top-p, seed), stop strings, token limits,
//! streaming, grammar constraints, a prefix cache (a fixed instruction + few-shot prefix is
//! computed once and reused by every request), batched decoding (several sequences in one
//! forward pass) and scoring of given continuations. Inference runs on its own thread pool, so
//! it never oversubscribes the cores that the database and the caller use.

use crate::constrain::{Constraint, ConstraintError, Guide, GuideFactory};
use crate::gguf::GgufFile;
use crate::model::{KvCache, KvSnapshot, LoadOptions, Model, ModelError, Segment};
use crate::tokenizer::{ChatMessage, Tokenizer, TokenizerError};
use candle_core::Tensor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod batch;

/// What can go wrong generating.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// Loading or running the model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Tokenization failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// A constraint was invalid.
    #[error(transparent)]
    Constraint(#[from] ConstraintError),
    /// The request was invalid.
    #[error("invalid request: {0}")]
    Request(String),
    /// The inference thread pool could not start.
    #[error("inference thread pool: {0}")]
    Threads(String),
    /// The caller cancelled the request (checked between decode steps).
    #[error("generation cancelled")]
    Cancelled,
    /// A forward pass that this request shared with others failed.
    #[error("the decode batch failed: {0}")]
    Batch(String),
}

/// A request's cancellation, checked between decode steps: whatever the caller decides (a
/// timeout, a client gone). The default never cancels.
#[derive(Clone, Default)]
pub struct Cancel(Option<Arc<dyn Fn() -> bool + Send + Sync>>);

impl Cancel {
    /// Cancelled once `is_cancelled` says so.
    pub fn new(is_cancelled: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(is_cancelled)))
    }

    /// Whether the request is cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.as_ref().is_some_and(|f| f())
    }
}

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Cancel(set)"
        } else {
            "Cancel(none)"
        })
    }
}

/// How to decode.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Most new tokens.
    pub max_tokens: usize,
    /// 0 is greedy.
    pub temperature: f32,
    /// Nucleus sampling mass (1.0 disables it).
    pub top_p: f32,
    /// Seed for sampling.
    pub seed: u64,
    /// Generation stops before the first of these strings.
    pub stop: Vec<String>,
    /// A grammar the output must follow.
    pub constraint: Option<Constraint>,
    /// Stops the request between decode steps.
    pub cancel: Cancel,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_tokens: 256,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            stop: Vec::new(),
            constraint: None,
            cancel: Cancel::default(),
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The model produced an end-of-generation token, or the grammar completed.
    End,
    /// A stop string appeared.
    Stop,
    /// `max_tokens` was reached.
    Length,
}

/// A prompt: an optional fixed prefix (served from the prefix cache) and the rest.
///
/// The prefix is tokenized on its own; end it at a natural boundary (a newline or a special
/// token) so that the split does not change the tokens.
#[derive(Debug, Clone, Default)]
pub struct Prompt {
    /// The cacheable part (instructions, few-shot examples).
    pub prefix: String,
    /// The request-specific part.
    pub text: String,
    /// Byte ranges of `text` that hold data (a document, user input) rather than template:
    /// tokenized with special-token parsing off, so a control token spelled inside them
    /// (`<|im_end|><|im_start|>system`) stays text and cannot end the turn.
    pub data: Vec<std::ops::Range<usize>>,
}

impl Prompt {
    /// A prompt with no cacheable prefix.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            prefix: String::new(),
            text: text.into(),
            data: Vec::new(),
        }
    }
}

/// The result of one generation.
#[derive(Debug, Clone)]
pub struct Generation {
    /// Generated text (without stop strings or end tokens).
    pub text: String,
    /// Generated token ids (empty where the backend does not report them: a remote model).
    pub tokens: Vec<u32>,
    /// How many tokens were generated.
    pub generated_tokens: usize,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Prompt tokens served from the prefix cache.
    pub cached_tokens: usize,
    /// Why it ended.
    pub finish: Finish,
    /// Time spent on the prompt.
    pub prefill: Duration,
    /// Time spent generating.
    pub decode: Duration,
}

/// A language model ready to serve requests; `Send + Sync`, share it behind an `Arc`.
pub struct LanguageModel {
    model: Arc<Model>,
    tokenizer: Arc<Tokenizer>,
    guides: Mutex<Option<GuideFactory>>,
    pool: rayon::ThreadPool,
    prefixes: Mutex<PrefixCache>,
    kv: Mutex<KvPool>,
    name: String,
    max_batch: usize,
    batcher: batch::Batcher,
}

impl std::fmt::Debug for LanguageModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LanguageModel")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Shortest common start worth computing once for several sequences (in tokens): a document,
/// not a chat template's opening. (Computing a prompt in two parts can move the last digits of
/// its scores, as a cached prefix does; prompts that share only a template keep one part.)
const MIN_SHARED_START: usize = 32;

/// A run of consecutive sequences `first..end` whose first `len` tokens are the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SharedStart {
    first: usize,
    end: usize,
    len: usize,
}

/// Runs of at least two consecutive sequences (with the same cached prefix, `same_prefix`)
/// whose pending tokens share a start of [`MIN_SHARED_START`] tokens or more; each member keeps
/// at least one token of its own, so its last position is still computed for it. A run grows
/// while each new member adds to the tokens saved.
fn shared_starts(
    pending: &[Vec<u32>],
    same_prefix: impl Fn(usize, usize) -> bool,
) -> Vec<SharedStart> {
    let common = |a: &[u32], b: &[u32]| a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let mut out = Vec::new();
    let mut first = 0;
    while first < pending.len() {
        let mut len = pending[first].len().saturating_sub(1);
        let mut end = first + 1;
        while end < pending.len() && same_prefix(first, end) {
            let l = common(&pending[first], &pending[end])
                .min(len)
                .min(pending[end].len().saturating_sub(1));
            // A member that shortens the shared start joins only if the run then saves more
            // tokens than without it (one unrelated prompt must not shrink a document's run).
            if l < MIN_SHARED_START
                || (end - first > 1 && l * (end - first) < len * (end - first - 1))
            {
                break;
            }
            len = l;
            end += 1;
        }
        if end - first >= 2 {
            out.push(SharedStart { first, end, len });
        }
        first = end;
    }
    out
}

/// Most prefixes kept; the least recently used goes first.
const PREFIX_SLOTS: usize = 8;

#[derive(Default)]
struct PrefixCache {
    entries: HashMap<Vec<u32>, (Arc<KvSnapshot>, u64)>,
    clock: u64,
}

impl PrefixCache {
    fn get(&mut self, key: &[u32]) -> Option<Arc<KvSnapshot>> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(key).map(|(s, used)| {
            *used = clock;
            s.clone()
        })
    }
    fn put(&mut self, key: Vec<u32>, snap: Arc<KvSnapshot>) {
        self.clock += 1;
        if self.entries.len() >= PREFIX_SLOTS {
            if let Some(old) = self
                .entries
                .iter()
                .min_by_key(|(_, (_, u))| *u)
                .map(|(k, _)| k.clone())
            {
                self.entries.remove(&old);
            }
        }
        self.entries.insert(key, (snap, self.clock));
    }
}

/// KV caches of finished sequences, kept for the next ones: a sequence reuses buffers
/// instead of allocating (and faulting in) fresh ones, and the pool holds at most `budget`
/// bytes while idle whatever the inputs were.
struct KvPool {
    caches: Vec<KvCache>,
    bytes: usize,
    budget: usize,
}

/// Fresh caches are sized in steps of this many tokens, so that one serves many requests.
const KV_STEP: usize = 256;

impl KvPool {
    /// The smallest pooled cache with room for `capacity` tokens, emptied.
    fn take(&mut self, capacity: usize) -> Option<KvCache> {
        let i = (0..self.caches.len())
            .filter(|&i| self.caches[i].capacity() >= capacity)
            .min_by_key(|&i| self.caches[i].capacity())?;
        let mut c = self.caches.swap_remove(i);
        self.bytes -= c.bytes();
        c.truncate(0);
        Some(c)
    }

    /// Keeps `cache` for later, dropping the smallest ones kept when over budget.
    fn put(&mut self, cache: KvCache) {
        let b = cache.bytes();
        if b > self.budget {
            return;
        }
        while self.bytes + b > self.budget {
            let Some(i) = (0..self.caches.len()).min_by_key(|&i| self.caches[i].capacity()) else {
                break;
            };
            self.bytes -= self.caches.swap_remove(i).bytes();
        }
        self.bytes += b;
        self.caches.push(cache);
    }
}

/// Options for loading a language model.
#[derive(Debug, Clone)]
pub struct ModelOptions {
    /// Inference threads (default: the number of cores). candle's matmul pool is
    /// process-wide: the first model loaded in a process sets its size.
    pub threads: usize,
    /// Loader options.
    pub load: LoadOptions,
    /// Most sequences decoded together: larger requests run in groups of this many, so the
    /// KV caches held at once stay bounded whatever the input.
    pub max_batch: usize,
    /// Most bytes of KV caches kept between requests for reuse.
    pub kv_pool_bytes: usize,
}

impl Default for ModelOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            load: LoadOptions::default(),
            max_batch: 16,
            kv_pool_bytes: 256 << 20,
        }
    }
}

/// A sequence in the running batch (or a scoring pass's single sequence).
struct Seq {
    cache: KvCache,
    pending: Vec<u32>,
    out: Vec<u32>,
    text: Vec<u8>,
    emitted: usize,
    guide: Option<Guide>,
    rng: StdRng,
    finish: Option<Finish>,
    prompt_tokens: usize,
    cached: usize,
    /// Tokenizing and finding the prefix, before the sequence joined a batch.
    prefill: Duration,
    /// The caller's request: its job and its place in that job.
    job: u64,
    index: usize,
    opts: GenerateOptions,
    /// When it joined the batch, and when its prompt was through (its first token picked).
    admitted: Instant,
    first: Option<Instant>,
}

impl LanguageModel {
    /// Loads a GGUF model file.
    pub fn load(path: impl AsRef<Path>, opts: &ModelOptions) -> Result<Self, GenerateError> {
        let path = path.as_ref();
        let file = GgufFile::open(path).map_err(ModelError::from)?;
        // candle's quantized matmul runs on its own process-wide worker pool, sized once from
        // CANDLE_NUM_THREADS (else every core): size it like ours, or `threads` would not bound
        // the work. The first model loaded in a process decides.
        if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
            std::env::set_var("CANDLE_NUM_THREADS", opts.threads.max(1).to_string());
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.threads.max(1))
            .thread_name(|i| format!("tessera-infer-{i}"))
            .build()
            .map_err(|e| GenerateError::Threads(e.to_string()))?;
        let tokenizer = Arc::new(Tokenizer::from_gguf(&file)?);
        let model = pool.install(|| Model::load(&file, &opts.load))?;
        let name = file
            .meta_str("general.name")
            .map(str::to_owned)
            .unwrap_or_else(|| path.display().to_string());
        Ok(Self {
            model: Arc::new(model),
            tokenizer,
            guides: Mutex::new(None),
            pool,
            prefixes: Mutex::new(PrefixCache::default()),
            kv: Mutex::new(KvPool {
                caches: Vec::new(),
                bytes: 0,
                budget: opts.kv_pool_bytes,
            }),
            name,
            max_batch: opts.max_batch.max(1),
            batcher: batch::Batcher::default(),
        })
    }

    /// The model's name (`general.name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Runs `f` on the inference thread pool.
    pub fn install<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.pool.install(f)
    }

    /// An empty KV cache with room for `capacity` tokens: a pooled one when there is one.
    fn kv_cache(&self, capacity: usize) -> Result<KvCache, ModelError> {
        let pooled = self
            .kv
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(capacity);
        match pooled {
            Some(c) => Ok(c),
            None => self.model.new_cache(capacity.div_ceil(KV_STEP) * KV_STEP),
        }
    }

    /// Returns caches to the pool.
    fn recycle(&self, caches: impl IntoIterator<Item = KvCache>) {
        let mut pool = self.kv.lock().unwrap_or_else(|e| e.into_inner());
        for c in caches {
            pool.put(c);
        }
    }

    /// The underlying model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Renders a chat with the model's template, ready for generation.
    pub fn chat(&self, messages: &[ChatMessage]) -> Result<String, GenerateError> {
        Ok(self.tokenizer.chat_prompt(messages)?)
    }

    fn guide_factory(&self) -> Result<GuideFactory, GenerateError> {
        let mut g = self.guides.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = &*g {
            return Ok(f.clone());
        }
        let eos = self
            .tokenizer
            .eog()
            .first()
            .copied()
            .or(self.tokenizer.eos())
            .unwrap_or(0);
        let f = GuideFactory::new(self.tokenizer.clone(), eos)?;
        *g = Some(f.clone());
        Ok(f)
    }

    /// Computes (or finds) the KV snapshot of a prefix.
    fn prefix(&self, prefix: &str) -> Result<Option<Arc<KvSnapshot>>, GenerateError> {
        if prefix.is_empty() {
            return Ok(None);
        }
        let ids = self.tokenizer.encode(prefix, true, true)?;
        if let Some(s) = self
            .prefixes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&ids)
        {
            return Ok(Some(s));
        }
        let mut cache = self.kv_cache(ids.len())?;
        self.model.forward(&mut [Segment {
            cache: &mut cache,
            tokens: &ids,
            all_logits: false,
        }])?;
        let snap = Arc::new(cache.snapshot()?);
        self.recycle([cache]);
        self.prefixes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .put(ids, snap.clone());
        Ok(Some(snap))
    }

    /// Token ids of a prompt's text: template parts with control tokens parsed, the `data`
    /// ranges as plain text (see [`Prompt::data`]).
    pub fn encode_text(
        &self,
        text: &str,
        data: &[std::ops::Range<usize>],
        add_bos: bool,
    ) -> Result<Vec<u32>, GenerateError> {
        let mut ids = Vec::new();
        let mut at = 0;
        let mut ranges: Vec<&std::ops::Range<usize>> = data
            .iter()
            .filter(|r| r.start < r.end && r.end <= text.len())
            .collect();
        ranges.sort_by_key(|r| r.start);
        let piece = |part: &str, special: bool, ids: &mut Vec<u32>| {
            if part.is_empty() {
                return Ok::<(), GenerateError>(());
            }
            let first = ids.is_empty() && add_bos;
            ids.extend(self.tokenizer.encode(part, first, special)?);
            Ok(())
        };
        for r in ranges {
            if r.start < at || !text.is_char_boundary(r.start) || !text.is_char_boundary(r.end) {
                continue;
            }
            piece(&text[at..r.start], true, &mut ids)?;
            piece(&text[r.start..r.end], false, &mut ids)?;
            at = r.end;
        }
        piece(&text[at..], true, &mut ids)?;
        if ids.is_empty() && add_bos {
            ids = self.tokenizer.encode("", true, true)?;
        }
        Ok(ids)
    }

    /// Tokens of a prompt, and how many of them are its prefix (served from the prefix
    /// cache once computed): a scored prompt's share of a token budget.
    pub fn prompt_size(&self, prompt: &Prompt) -> Result<(usize, usize), GenerateError> {
        let prefix = if prompt.prefix.is_empty() {
            0
        } else {
            self.tokenizer.encode(&prompt.prefix, true, true)?.len()
        };
        let rest = self
            .encode_text(&prompt.text, &prompt.data, prefix == 0)?
            .len();
        Ok((prefix + rest, prefix))
    }

    /// Prefix tokens computed once and kept for later requests (warms the cache).
    pub fn cache_prefix(&self, prefix: &str) -> Result<usize, GenerateError> {
        Ok(self
            .pool
            .install(|| self.prefix(prefix))?
            .map(|s| s.len())
            .unwrap_or(0))
    }

    /// Tokenizes a request and finds (or computes) its prefix, in the caller's thread: what a
    /// request needs before it can join the running batch.
    fn prepare(
        &self,
        prompt: &Prompt,
        opts: &GenerateOptions,
        job: u64,
        index: usize,
    ) -> Result<batch::Ready, GenerateError> {
        let t0 = Instant::now();
        let snap = self.prefix(&prompt.prefix)?;
        let mut rest = self.encode_text(&prompt.text, &prompt.data, snap.is_none())?;
        let cached = snap.as_ref().map(|s| s.len()).unwrap_or(0);
        if cached + rest.len() == 0 {
            return Err(GenerateError::Request("the prompt is empty".into()));
        }
        // A prompt that is all prefix: its last token runs again, for the logits.
        let mut keep = cached;
        if rest.is_empty() {
            let ids = self.tokenizer.encode(&prompt.prefix, true, true)?;
            rest.extend(ids.last());
            keep -= 1;
        }
        let guide = opts
            .constraint
            .as_ref()
            .map(|c| self.guide_factory()?.guide(c).map_err(GenerateError::from))
            .transpose()?;
        Ok(batch::Ready {
            job,
            index,
            snap,
            keep,
            rest,
            guide,
            opts: opts.clone(),
            prepared: t0.elapsed(),
        })
    }

    /// A prepared request with its KV cache (the prefix restored): a sequence ready to run.
    fn admit(&self, r: batch::Ready) -> Result<Seq, GenerateError> {
        let cached = r.keep;
        let mut cache = self.kv_cache(cached + r.rest.len() + r.opts.max_tokens)?;
        if let Some(s) = &r.snap {
            cache.restore(s)?;
            cache.truncate(cached);
        }
        Ok(Seq {
            cache,
            prompt_tokens: cached + r.rest.len(),
            pending: r.rest,
            out: Vec::new(),
            text: Vec::new(),
            emitted: 0,
            guide: r.guide,
            rng: StdRng::seed_from_u64(r.opts.seed.wrapping_add(r.index as u64)),
            finish: None,
            cached,
            prefill: r.prepared,
            job: r.job,
            index: r.index,
            opts: r.opts,
            admitted: Instant::now(),
            first: None,
        })
    }

    fn start(
        &self,
        prompt: &Prompt,
        opts: &GenerateOptions,
        index: usize,
    ) -> Result<Seq, GenerateError> {
        let ready = self.prepare(prompt, opts, 0, index)?;
        self.admit(ready)
    }

    /// Generates a continuation of one prompt; `on_text` receives the text as it is produced.
    pub fn generate(
        &self,
        prompt: &Prompt,
        opts: &GenerateOptions,
        mut on_text: impl FnMut(&str) + Send,
    ) -> Result<Generation, GenerateError> {
        let mut out = self.run(std::slice::from_ref(prompt), &[opts], &mut |_, s| {
            on_text(s)
        })?;
        out.pop()
            .ok_or_else(|| GenerateError::Request("no output".into()))
    }

    /// Generates continuations of several prompts, decoding them together: each step is one
    /// forward pass over every unfinished sequence.
    pub fn generate_batch(
        &self,
        prompts: &[Prompt],
        opts: &GenerateOptions,
    ) -> Result<Vec<Generation>, GenerateError> {
        let all = vec![opts; prompts.len()];
        self.run(prompts, &all, &mut |_, _| {})
    }

    /// Like [`generate_batch`](Self::generate_batch), with options (constraint, limits, stop
    /// strings) per prompt: requests that need different grammars still decode together.
    pub fn generate_each(
        &self,
        requests: &[(Prompt, GenerateOptions)],
    ) -> Result<Vec<Generation>, GenerateError> {
        let prompts: Vec<Prompt> = requests.iter().map(|r| r.0.clone()).collect();
        let opts: Vec<&GenerateOptions> = requests.iter().map(|r| &r.1).collect();
        self.run(&prompts, &opts, &mut |_, _| {})
    }

    fn run(
        &self,
        prompts: &[Prompt],
        opts: &[&GenerateOptions],
        on_text: &mut (dyn FnMut(usize, &str) + Send),
    ) -> Result<Vec<Generation>, GenerateError> {
        if opts.len() != prompts.len() {
            return Err(GenerateError::Request(
                "one set of options per prompt is needed".into(),
            ));
        }
        if opts.iter().any(|o| {
            o.temperature < 0.0 || !o.temperature.is_finite() || !(0.0..=1.0).contains(&o.top_p)
        }) {
            return Err(GenerateError::Request(
                "temperature must be >= 0 and top_p in [0, 1]".into(),
            ));
        }
        self.run_batched(prompts, opts, on_text)
    }

    fn pick(
        &self,
        s: &mut Seq,
        row: &mut [f32],
        opts: &GenerateOptions,
    ) -> Result<Option<u32>, GenerateError> {
        if let Some(g) = &mut s.guide {
            if !g.mask(row)? {
                return Ok(None);
            }
        }
        Ok(Some(sample(row, opts.temperature, opts.top_p, &mut s.rng)))
    }

    fn advance(
        &self,
        i: usize,
        s: &mut Seq,
        token: Option<u32>,
        opts: &GenerateOptions,
        on_text: &mut (dyn FnMut(usize, &str) + Send),
    ) -> Result<(), GenerateError> {
        let Some(token) = token else {
            s.finish = Some(Finish::End);
            return Ok(());
        };
        if let Some(g) = &mut s.guide {
            g.accept(token)?;
        }
        if self.tokenizer.eog().contains(&token) {
            s.finish = Some(Finish::End);
            return Ok(());
        }
        s.out.push(token);
        s.text.extend_from_slice(self.tokenizer.token_bytes(token));
        // Emit only complete UTF-8, and hold back what could still become a stop string.
        let valid = match std::str::from_utf8(&s.text) {
            Ok(t) => t.len(),
            Err(e) => e.valid_up_to(),
        };
        let text = std::str::from_utf8(&s.text[..valid]).unwrap_or("");
        if let Some(at) = opts
            .stop
            .iter()
            .filter_map(|st| text.find(st.as_str()))
            .min()
        {
            if at > s.emitted {
                on_text(i, &text[s.emitted..at]);
            }
            s.emitted = at.max(s.emitted);
            s.finish = Some(Finish::Stop);
            return Ok(());
        }
        let hold = opts
            .stop
            .iter()
            .map(|st| {
                (1..st.len())
                    .rev()
                    .find(|&k| text.ends_with(&st[..k]) && st.is_char_boundary(k))
                    .unwrap_or(0)
            })
            .max()
            .unwrap_or(0);
        let safe = valid - hold;
        if safe > s.emitted && text.is_char_boundary(safe) {
            on_text(i, &text[s.emitted..safe]);
            s.emitted = safe;
        }
        if s.guide.as_ref().is_some_and(Guide::is_done) {
            s.finish = Some(Finish::End);
        } else if s.out.len() >= opts.max_tokens {
            s.finish = Some(Finish::Length);
        } else {
            s.pending = vec![token];
        }
        if s.finish.is_some() && valid > s.emitted {
            on_text(i, &text[s.emitted..valid]);
            s.emitted = valid;
        }
        Ok(())
    }

    /// [`score`](Self::score) for several prompts; prompts whose options are all single tokens
    /// (multiple-choice letters) share one forward pass.
    pub fn score_batch(
        &self,
        requests: &[(&Prompt, &[&str])],
    ) -> Result<Vec<Vec<f32>>, GenerateError> {
        let mut out: Vec<Option<Vec<f32>>> = vec![None; requests.len()];
        let mut single: Vec<(usize, Vec<u32>)> = Vec::new();
        for (i, (prompt, options)) in requests.iter().enumerate() {
            let toks = options
                .iter()
                .map(|c| self.tokenizer.encode(c, false, false))
                .collect::<Result<Vec<_>, _>>()?;
            if !toks.is_empty() && toks.iter().all(|t| t.len() == 1) {
                single.push((i, toks.iter().map(|t| t[0]).collect()));
            } else {
                out[i] = Some(self.score(prompt, options)?);
            }
        }
        for single in single.chunks(self.max_batch) {
            let rows = self.pool.install(|| {
                let no_tokens = GenerateOptions {
                    max_tokens: 0,
                    ..Default::default()
                };
                let mut seqs = single
                    .iter()
                    .map(|(i, _)| self.start(requests[*i].0, &no_tokens, 0))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut pending: Vec<Vec<u32>> = seqs
                    .iter_mut()
                    .map(|s| std::mem::take(&mut s.pending))
                    .collect();
                // Several questions about one document start alike: their common start is
                // computed once, on the first of them, and copied to the others.
                let groups = shared_starts(&pending, |a, b| {
                    requests[single[a].0].0.prefix == requests[single[b].0].0.prefix
                });
                if !groups.is_empty() {
                    let mut segs: Vec<Segment<'_>> = Vec::with_capacity(groups.len());
                    let mut rest = seqs.iter_mut().enumerate();
                    for g in &groups {
                        let Some((_, s)) = rest.find(|(k, _)| *k == g.first) else {
                            break;
                        };
                        segs.push(Segment {
                            cache: &mut s.cache,
                            tokens: &pending[g.first][..g.len],
                            all_logits: false,
                        });
                    }
                    self.model.forward(&mut segs)?;
                    drop(segs);
                    for g in &groups {
                        let snap = seqs[g.first].cache.snapshot()?;
                        for s in &mut seqs[g.first + 1..g.end] {
                            s.cache.restore(&snap)?;
                        }
                        for p in &mut pending[g.first..g.end] {
                            p.drain(..g.len);
                        }
                    }
                }
                let mut segs: Vec<Segment<'_>> = seqs
                    .iter_mut()
                    .zip(&pending)
                    .map(|(s, p)| Segment {
                        cache: &mut s.cache,
                        tokens: p,
                        all_logits: false,
                    })
                    .collect();
                let rows = self.model.forward(&mut segs).map_err(GenerateError::from);
                drop(segs);
                self.recycle(seqs.into_iter().map(|s| s.cache));
                rows
            })?;
            for ((i, toks), l) in single.iter().zip(rows) {
                let row = log_softmax(
                    &l.squeeze(0)
                        .and_then(|t| t.to_vec1())
                        .map_err(ModelError::from)?,
                );
                out[*i] = Some(toks.iter().map(|&t| row[t as usize]).collect());
            }
        }
        Ok(out.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// Log-probabilities of each continuation after the prompt (sum over its tokens), computed
    /// without free generation. Single-token options (multiple-choice letters) cost one
    /// forward pass over the prompt; longer ones run together in one more pass.
    pub fn score(
        &self,
        prompt: &Prompt,
        continuations: &[&str],
    ) -> Result<Vec<f32>, GenerateError> {
        if continuations.is_empty() {
            return Ok(Vec::new());
        }
        self.pool.install(|| {
            let mut seq = self.start(
                prompt,
                &GenerateOptions {
                    max_tokens: 0,
                    ..Default::default()
                },
                0,
            )?;
            let pending = std::mem::take(&mut seq.pending);
            let conts = continuations
                .iter()
                .map(|c| self.tokenizer.encode(c, false, false))
                .collect::<Result<Vec<_>, _>>()?;
            if conts.iter().any(Vec::is_empty) {
                return Err(GenerateError::Request("an option is empty".into()));
            }
            let longest = conts.iter().map(Vec::len).max().unwrap_or(0);
            let last = self.model.forward(&mut [Segment {
                cache: &mut seq.cache,
                tokens: &pending,
                all_logits: false,
            }])?;
            let first = log_softmax(
                &last[0]
                    .squeeze(0)
                    .and_then(|t| t.to_vec1())
                    .map_err(ModelError::from)?,
            );
            let mut scores: Vec<f32> = conts.iter().map(|c| first[c[0] as usize]).collect();
            if longest > 1 {
                let snap = seq.cache.snapshot()?;
                let multi: Vec<usize> = (0..conts.len()).filter(|&i| conts[i].len() > 1).collect();
                let mut caches = multi
                    .iter()
                    .map(|_| {
                        let mut c = self.kv_cache(snap.len() + longest)?;
                        c.restore(&snap)?;
                        Ok(c)
                    })
                    .collect::<Result<Vec<_>, ModelError>>()?;
                let inputs: Vec<&[u32]> = multi
                    .iter()
                    .map(|&i| &conts[i][..conts[i].len() - 1])
                    .collect();
                let mut segs: Vec<Segment<'_>> = caches
                    .iter_mut()
                    .zip(&inputs)
                    .map(|(cache, t)| Segment {
                        cache,
                        tokens: t,
                        all_logits: true,
                    })
                    .collect();
                let out = self.model.forward(&mut segs)?;
                drop(segs);
                self.recycle(caches);
                for (&i, l) in multi.iter().zip(out) {
                    let rows: Vec<Vec<f32>> = l.to_vec2().map_err(ModelError::from)?;
                    for (r, next) in rows.iter().zip(&conts[i][1..]) {
                        scores[i] += log_softmax(r)[*next as usize];
                    }
                }
            }
            self.recycle([seq.cache]);
            Ok(scores)
        })
    }
}

fn log_softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
    let lse = max + sum.ln();
    row.iter().map(|v| v - lse).collect()
}

/// The last row of each segment's logits on the host. Rows of a batch on a GPU come back in
/// one transfer (a step then waits once, not once per sequence).
pub fn rows_to_host(logits: &[Tensor]) -> candle_core::Result<Vec<Vec<f32>>> {
    let last = |t: &Tensor| -> candle_core::Result<Tensor> {
        let n = t.dim(0)?;
        t.narrow(0, n.saturating_sub(1), n.min(1))
    };
    if logits.len() > 1 && !logits.iter().any(|t| t.device().is_cpu()) {
        let rows = logits
            .iter()
            .map(last)
            .collect::<candle_core::Result<Vec<_>>>()?;
        return Tensor::cat(&rows, 0)?
            .to_dtype(candle_core::DType::F32)?
            .to_vec2();
    }
    logits
        .iter()
        .map(|t| {
            last(t)?
                .squeeze(0)?
                .to_dtype(candle_core::DType::F32)?
                .to_vec1()
        })
        .collect()
}

/// Picks a token: argmax at temperature 0, else nucleus sampling.
pub fn sample(row: &[f32], temperature: f32, top_p: f32, rng: &mut impl Rng) -> u32 {
    let argmax = row
        .iter()
        .enumerate()
        .fold((0usize, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv {
                (i, v)
            } else {
                (bi, bv)
            }
        })
        .0 as u32;
    if temperature == 0.0 {
        return argmax;
    }
    let max = row[argmax as usize];
    let mut probs: Vec<(u32, f32)> = row
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .map(|(i, v)| (i as u32, ((v - max) / temperature).exp()))
        .collect();
    probs.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
    let total: f32 = probs.iter().map(|p| p.1).sum();
    let mut kept = 0.0;
    let mut cut = probs.len();
    for (i, p) in probs.iter().enumerate() {
        kept += p.1 / total;
        if kept >= top_p {
            cut = i + 1;
            break;
        }
    }
    probs.truncate(cut.max(1));
    let mass: f32 = probs.iter().map(|p| p.1).sum();
    let mut x = rng.random::<f32>() * mass;
    for (id, p) in &probs {
        x -= p;
        if x <= 0.0 {
            return *id;
        }
    }
    probs.last().map(|p| p.0).unwrap_or(argmax)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_that_start_alike_share_their_start() {
        let doc: Vec<u32> = (100..200).collect();
        let with = |tail: &[u32]| doc.iter().chain(tail).copied().collect::<Vec<u32>>();
        let pending = vec![
            with(&[1, 2]),
            with(&[1, 3]),
            with(&[4]),
            (0..30).collect(),
            with(&[5]),
        ];
        let all = |_: usize, _: usize| true;
        // The first three share the document and the token after it only for the first two:
        // the run keeps the document (100 tokens); the fourth starts differently; the fifth is
        // alone.
        assert_eq!(
            shared_starts(&pending, all),
            vec![SharedStart {
                first: 0,
                end: 3,
                len: 100
            }]
        );
        // A neighbour that shares only part of the document starts its own run rather than
        // shrinking this one.
        let part = |tail: &[u32]| doc[..40].iter().chain(tail).copied().collect::<Vec<u32>>();
        let pending = vec![with(&[1]), with(&[2]), part(&[7, 7]), part(&[7, 8])];
        assert_eq!(
            shared_starts(&pending, all),
            vec![
                SharedStart {
                    first: 0,
                    end: 2,
                    len: 100
                },
                SharedStart {
                    first: 2,
                    end: 4,
                    len: 41
                }
            ]
        );
        // A member keeps a token of its own: a sequence equal to the shared start caps it.
        let pending = vec![doc.clone(), with(&[1])];
        assert_eq!(
            shared_starts(&pending, all),
            vec![SharedStart {
                first: 0,
                end: 2,
                len: 99
            }]
        );
        // Short common starts, or different cached prefixes, are not worth it.
        let pending = vec![with(&[1]), with(&[2])];
        assert!(shared_starts(&pending, |_, _| false).is_empty());
        let short: Vec<Vec<u32>> = vec![(0..20).collect(), (0..19).chain([5]).collect()];
        assert!(shared_starts(&short, all).is_empty());
    }

    #[test]
    fn greedy_is_argmax_and_sampling_respects_top_p() {
        let row = [0.0, 3.0, 1.0, f32::NEG_INFINITY];
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(sample(&row, 0.0, 1.0, &mut rng), 1);
        // A tiny nucleus keeps only the best token.
        for _ in 0..50 {
            assert_eq!(sample(&row, 1.0, 0.01, &mut rng), 1);
        }
        let mut seen = [0; 4];
        for _ in 0..2000 {
            seen[sample(&row, 1.0, 1.0, &mut rng) as usize] += 1;
        }
        assert_eq!(seen[3], 0, "masked tokens are never sampled");
        assert!(seen[0] > 0 && seen[2] > 0 && seen[1] > seen[2]);
    }

    #[test]
    fn the_kv_pool_reuses_the_smallest_cache_that_fits_and_keeps_to_its_budget() {
        use crate::gguf::GgufFile;
        use crate::model::LoadOptions;
        use crate::synth::{write_tiny, TinySpec};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        write_tiny(&path, &TinySpec::default(), 1).unwrap();
        let model = Model::load(&GgufFile::open(&path).unwrap(), &LoadOptions::default()).unwrap();
        let cache = |n: usize| model.new_cache(n).unwrap();
        let per_token = cache(1).bytes();
        let mut pool = KvPool {
            caches: Vec::new(),
            bytes: 0,
            budget: per_token * (64 + 32),
        };
        let mut used = cache(32);
        used.truncate(0);
        pool.put(cache(16));
        pool.put(used);
        pool.put(cache(64));
        // 16 + 32 + 64 tokens exceed the budget of 96: the smallest went.
        assert_eq!(pool.bytes, per_token * 96);
        let mut caps: Vec<usize> = pool.caches.iter().map(KvCache::capacity).collect();
        caps.sort_unstable();
        assert_eq!(caps, [32, 64]);
        assert_eq!(pool.take(20).map(|c| c.capacity()), Some(32));
        assert!(pool.take(65).is_none());
        let c = pool.take(64).unwrap();
        assert!(c.is_empty());
        assert_eq!(pool.bytes, 0);
        // A cache larger than the whole budget is not kept.
        pool.put(cache(200));
        assert!(pool.caches.is_empty());
    }

    #[test]
    fn log_softmax_normalises() {
        let l = log_softmax(&[1.0, 2.0, 3.0]);
        let s: f32 = l.iter().map(|v| v.exp()).sum();
        assert!((s - 1.0).abs() < 1e-5);
    }
}
