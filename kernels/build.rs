//! Compiles the CUDA kernels to PTX, only when the `cuda` feature is on (a CPU build never
//! looks for a CUDA toolkit). `nvcc` comes from `CUDA_HOME/bin` or the PATH (see
//! `scripts/cuda.sh`); `CUDA_COMPUTE_CAP` picks the virtual architecture (default 90, Hopper).
//! No network is used.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src/cuda/decode.cu");
    println!("cargo::rerun-if-env-changed=CUDA_COMPUTE_CAP");
    println!("cargo::rerun-if-env-changed=CUDA_HOME");
    if env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out = PathBuf::from(env::var("OUT_DIR").unwrap_or_else(|_| ".".into()));
    let cap = env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "90".into());
    let nvcc = env::var_os("CUDA_HOME")
        .map(|h| PathBuf::from(h).join("bin").join("nvcc"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("nvcc"));
    let ptx = out.join("decode.ptx");
    let status = Command::new(&nvcc)
        .args(["--ptx", "-O3", "-std=c++17"])
        .arg(format!("--gpu-architecture=compute_{cap}"))
        .arg("src/cuda/decode.cu")
        .arg("-o")
        .arg(&ptx)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "{}: compiling src/cuda/decode.cu failed ({s})",
            nvcc.display()
        ),
        Err(e) => panic!(
            "{}: {e} (the cuda feature needs nvcc: see scripts/cuda.sh)",
            nvcc.display()
        ),
    }
}
