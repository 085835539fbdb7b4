//! The model's one running batch: continuous batching across requests and callers. Entry
//! point: `LanguageModel::run_batched`, which every generation goes through.
//!
//! Requests from any thread join one queue. The running batch holds at most `max_batch`
//! sequences and takes the next request as soon as one of its sequences ends, so a long
//! output no longer leaves the others' places empty until it is done; a new prompt is
//! prefilled in chunks of [`PREFILL_CHUNK`] tokens inside the same forward passes that decode
//! the others. No thread is set aside for it: whichever waiting caller finds no step in
//! progress runs the next step (for every caller's sequences) and hands each caller its events
//! (streamed text, results). A caller that stops waiting (an error, a panic in its callback)
//! takes its requests out of the queue and the batch.

use super::*;
use std::collections::VecDeque;
use std::sync::{Condvar, MutexGuard};

/// Most prompt tokens of one sequence run in one step: a long prompt is prefilled over several
/// steps, between which the other sequences keep decoding.
pub(super) const PREFILL_CHUNK: usize = 512;

/// A request tokenized and with its prefix found, waiting for a place in the batch.
pub(super) struct Ready {
    pub(super) job: u64,
    pub(super) index: usize,
    pub(super) snap: Option<Arc<KvSnapshot>>,
    /// Tokens of the snapshot kept (all but the last when the prompt is all prefix).
    pub(super) keep: usize,
    pub(super) rest: Vec<u32>,
    pub(super) guide: Option<Guide>,
    pub(super) opts: GenerateOptions,
    pub(super) prepared: Duration,
}

/// What a step tells a caller about one of its requests.
enum Event {
    Text(usize, String),
    Done(usize, Box<Result<Generation, GenerateError>>),
}

/// The queue, the running batch and the callers' mailboxes.
#[derive(Default)]
pub(super) struct Batcher {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Ready>,
    active: Vec<Seq>,
    /// A step is running (its sequences are out of `active`).
    stepping: bool,
    next_job: u64,
    /// One mailbox per waiting caller; a job without one is abandoned.
    mail: HashMap<u64, Vec<Event>>,
}

impl Batcher {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Takes a caller's job out of the queue when it stops waiting, however it stops; the step
/// drops its sequences still in the batch.
struct Job<'a> {
    batcher: &'a Batcher,
    id: u64,
}

impl Drop for Job<'_> {
    fn drop(&mut self) {
        let mut st = self.batcher.lock();
        st.mail.remove(&self.id);
        st.queue.retain(|r| r.job != self.id);
    }
}

/// Hands the step back if it unwinds: the sequences it held fail, their callers are told.
struct Stepping<'a> {
    batcher: &'a Batcher,
    held: Vec<(u64, usize)>,
    finished: bool,
}

impl Drop for Stepping<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut st = self.batcher.lock();
        for &(job, index) in &self.held {
            if let Some(m) = st.mail.get_mut(&job) {
                m.push(Event::Done(
                    index,
                    Box::new(Err(GenerateError::Batch("a decode step panicked".into()))),
                ));
            }
        }
        st.stepping = false;
        drop(st);
        self.batcher.wake.notify_all();
    }
}

impl LanguageModel {
    /// Runs `prompts` through the shared batch; returns when all are done, or at the first
    /// that fails (the rest are withdrawn). `on_text` receives streamed text by prompt index.
    pub(super) fn run_batched(
        &self,
        prompts: &[Prompt],
        opts: &[&GenerateOptions],
        on_text: &mut (dyn FnMut(usize, &str) + Send),
    ) -> Result<Vec<Generation>, GenerateError> {
        let b = &self.batcher;
        let job = {
            let mut st = b.lock();
            st.next_job += 1;
            let id = st.next_job;
            st.mail.insert(id, Vec::new());
            Job { batcher: b, id }
        };
        let ready = self.pool.install(|| {
            prompts
                .iter()
                .zip(opts)
                .enumerate()
                .map(|(i, (p, o))| self.prepare(p, o, job.id, i))
                .collect::<Result<Vec<_>, _>>()
        })?;
        b.lock().queue.extend(ready);
        let mut results: Vec<Option<Generation>> = (0..prompts.len()).map(|_| None).collect();
        let mut left = prompts.len();
        while left > 0 {
            let events = {
                let mut st = b.lock();
                loop {
                    let mine = st.mail.get_mut(&job.id).map(std::mem::take);
                    match mine {
                        Some(events) if !events.is_empty() => break events,
                        Some(_) => {}
                        None => return Err(GenerateError::Batch("the request was lost".into())),
                    }
                    if st.stepping {
                        st = b.wake.wait(st).unwrap_or_else(|e| e.into_inner());
                    } else {
                        st.stepping = true;
                        drop(st);
                        self.step();
                        st = b.lock();
                    }
                }
            };
            for e in events {
                match e {
                    Event::Text(i, s) => on_text(i, &s),
                    Event::Done(i, r) => {
                        if let Some(slot) = results.get_mut(i) {
                            if slot.is_none() {
                                left -= 1;
                            }
                            *slot = Some((*r)?);
                        }
                    }
                }
            }
        }
        Ok(results.into_iter().flatten().collect())
    }

    /// One forward pass over the running batch, after letting in what the queue holds (up to
    /// `max_batch` sequences); called with `stepping` set, which it clears.
    fn step(&self) {
        let b = &self.batcher;
        let (mut seqs, admitted, gone) = {
            let mut st = b.lock();
            let alive: std::collections::HashSet<u64> = st.mail.keys().copied().collect();
            let (seqs, gone): (Vec<Seq>, Vec<Seq>) = std::mem::take(&mut st.active)
                .into_iter()
                .partition(|s| alive.contains(&s.job));
            st.queue.retain(|r| alive.contains(&r.job));
            let room = self
                .max_batch
                .saturating_sub(seqs.len())
                .min(st.queue.len());
            let admitted: Vec<Ready> = st.queue.drain(..room).collect();
            (seqs, admitted, gone)
        };
        self.recycle(gone.into_iter().map(|s| s.cache));
        let mut guard = Stepping {
            batcher: b,
            held: seqs
                .iter()
                .map(|s| (s.job, s.index))
                .chain(admitted.iter().map(|r| (r.job, r.index)))
                .collect(),
            finished: false,
        };
        let mut events: Vec<(u64, Event)> = Vec::new();
        for r in admitted {
            let (job, index) = (r.job, r.index);
            match self.admit(r) {
                Ok(s) => seqs.push(s),
                Err(e) => events.push((job, Event::Done(index, Box::new(Err(e))))),
            }
        }
        let done = self
            .pool
            .install(|| self.decode_step(&mut seqs, &mut events));
        let mut caches = Vec::new();
        let mut running = Vec::with_capacity(seqs.len());
        for (s, result) in seqs.into_iter().zip(done) {
            match result {
                None => running.push(s),
                Some(r) => {
                    let mut s = s;
                    let (job, index) = (s.job, s.index);
                    let r = r.map(|()| finished(&mut s));
                    caches.push(s.cache);
                    events.push((job, Event::Done(index, Box::new(r))));
                }
            }
        }
        self.recycle(caches);
        let mut st = b.lock();
        for (job, e) in events {
            if let Some(m) = st.mail.get_mut(&job) {
                m.push(e);
            }
        }
        st.active = running;
        st.stepping = false;
        guard.finished = true;
        drop(st);
        b.wake.notify_all();
    }

    /// Feeds every sequence its next tokens (a chunk of its prompt, or its last token) in one
    /// forward pass and picks the next token of each whose prompt is through. Per sequence:
    /// `None` while it runs, `Some(Ok)` when it has ended, `Some(Err)` when it failed alone.
    fn decode_step(
        &self,
        seqs: &mut [Seq],
        events: &mut Vec<(u64, Event)>,
    ) -> Vec<Option<Result<(), GenerateError>>> {
        let context = self.model.config().context;
        let mut done: Vec<Option<Result<(), GenerateError>>> = seqs
            .iter()
            .map(|s| {
                if s.opts.cancel.is_cancelled() {
                    return Some(Err(GenerateError::Cancelled));
                }
                let needed = s.cache.len() + s.pending.len().min(PREFILL_CHUNK);
                (needed > context).then(|| {
                    Err(GenerateError::Model(ModelError::Context {
                        needed,
                        context,
                    }))
                })
            })
            .collect();
        let feeds: Vec<Vec<u32>> = seqs
            .iter_mut()
            .zip(&done)
            .map(|(s, d)| {
                if d.is_some() {
                    return Vec::new();
                }
                if s.pending.is_empty() {
                    // Cannot happen (a running sequence always has a token to feed), but a
                    // sequence with none would never end.
                    return Vec::new();
                }
                let n = s.pending.len().min(PREFILL_CHUNK);
                s.pending.drain(..n).collect()
            })
            .collect();
        for (d, f) in done.iter_mut().zip(&feeds) {
            if d.is_none() && f.is_empty() {
                *d = Some(Err(GenerateError::Request(
                    "a sequence had nothing to run".into(),
                )));
            }
        }
        let fed: Vec<usize> = (0..seqs.len()).filter(|&i| !feeds[i].is_empty()).collect();
        if fed.is_empty() {
            return done;
        }
        let logits = {
            let mut segs: Vec<Segment<'_>> = Vec::with_capacity(fed.len());
            let mut at = fed.iter().peekable();
            for (i, s) in seqs.iter_mut().enumerate() {
                if at.peek() == Some(&&i) {
                    at.next();
                    segs.push(Segment {
                        cache: &mut s.cache,
                        tokens: &feeds[i],
                        all_logits: false,
                    });
                }
            }
            self.model
                .forward(&mut segs)
                .and_then(|l| rows_to_host(&l).map_err(ModelError::from))
        };
        let rows = match logits {
            Ok(rows) => rows,
            Err(e) => {
                // The pass itself failed: every sequence in it fails, each caller told why.
                let why = e.to_string();
                for &i in &fed {
                    done[i] = Some(Err(GenerateError::Batch(why.clone())));
                }
                return done;
            }
        };
        let now = Instant::now();
        for (&i, mut row) in fed.iter().zip(rows) {
            let s = &mut seqs[i];
            if !s.pending.is_empty() {
                continue; // more of its prompt to come
            }
            s.first.get_or_insert(now);
            let opts = std::mem::take(&mut s.opts);
            let (job, index) = (s.job, s.index);
            let mut emit = |_: usize, t: &str| events.push((job, Event::Text(index, t.to_owned())));
            let r = self
                .pick(s, &mut row, &opts)
                .and_then(|t| self.advance(index, s, t, &opts, &mut emit));
            s.opts = opts;
            match r {
                Err(e) => done[i] = Some(Err(e)),
                Ok(()) if s.finish.is_some() => done[i] = Some(Ok(())),
                Ok(()) => {}
            }
        }
        done
    }
}

/// The result of a sequence that has ended.
fn finished(s: &mut Seq) -> Generation {
    let end = Instant::now();
    let first = s.first.unwrap_or(end);
    Generation {
        generated_tokens: s.out.len(),
        text: String::from_utf8_lossy(&s.text[..s.emitted]).into_owned(),
        tokens: std::mem::take(&mut s.out),
        prompt_tokens: s.prompt_tokens,
        cached_tokens: s.cached,
        finish: s.finish.unwrap_or(Finish::Length),
        prefill: s.prefill + first.duration_since(s.admitted),
        decode: end.duration_since(first),
    }
}
