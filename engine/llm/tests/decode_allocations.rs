//! A CPU decode step allocates a fixed handful of times (its logits and their tensor), however
//! many layers the model has: nothing per layer, per matrix or per head. Counted with a global
//! allocator that counts every allocation in the process while a step runs.

// A global allocator is an unsafe trait; this one only forwards to the system's.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tessera_llm::gguf::GgufFile;
use tessera_llm::model::{LoadOptions, Model, Segment};
use tessera_llm::synth::{write_tiny, TinySpec};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations per decode step, after warm-up steps, for a tiny model of `layers` layers.
fn allocations_per_step(layers: usize) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    let spec = TinySpec {
        layers,
        ..TinySpec::default()
    };
    write_tiny(&path, &spec, 1).unwrap();
    let model = Model::load(&GgufFile::open(&path).unwrap(), &LoadOptions::default()).unwrap();
    // As generation runs: inside the inference pool, with a cache sized for the sequence.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    pool.install(|| {
        let mut cache = model.new_cache(64).unwrap();
        let mut step = |t: u32| {
            model
                .forward(&mut [Segment {
                    cache: &mut cache,
                    tokens: &[t],
                    all_logits: false,
                }])
                .unwrap()
        };
        for t in 0..4 {
            step(t);
        }
        // Averaged (rounded down) over enough steps that the one-off growth of a pool
        // thread's attention scratch (on its first task, or when the context passes another
        // block of 16 positions; which thread runs which task varies) is not counted as a
        // per-step allocation, while one allocation a layer and step still is.
        let steps = 32;
        ALLOCATIONS.store(0, Ordering::SeqCst);
        COUNTING.store(true, Ordering::SeqCst);
        for t in 0..steps {
            drop(step(10 + t));
        }
        COUNTING.store(false, Ordering::SeqCst);
        ALLOCATIONS.load(Ordering::SeqCst) / steps as usize
    })
}

#[test]
fn a_decode_step_allocates_only_its_logits() {
    let two = allocations_per_step(2);
    let six = allocations_per_step(6);
    eprintln!("allocations per decode step: {two} (2 layers), {six} (6 layers)");
    assert_eq!(two, six, "allocations grow with the layers: {two} vs {six}");
    // The logits' buffer and the tensor around it (storage, shape and strides, the view).
    assert!(two <= 12, "{two} allocations per step");
}
