//! Models by URL: a GGUF file fetched over HTTP(S), or from a Hugging Face repository, checked
//! against the SHA-256 the caller names and cached under `$TESSERA_HOME/models/url/`.
//! Entry points: [`ModelUrl::parse`] and [`ModelCache::fetch`].
//!
//! Forms accepted wherever a model name is (the checksum is required: a download is never
//! trusted on its own):
//! - `https://host/path/model.gguf#sha256=<64 hex digits>` (plain `http://` too: the checksum,
//!   not the transport, is what vouches for the bytes);
//! - `hf://owner/repo/path/in/repo.gguf#sha256=…`, or `hf://owner/repo@revision/path…#sha256=…`:
//!   the file `resolve/<revision>/<path>` (revision `main` by default) under `$HF_ENDPOINT`
//!   (default `https://huggingface.co`), with `$HF_TOKEN` as a bearer token when set.

use crate::registry::{
    io, sha256_hex, Cleanup, ModelCache, PullProgress, RegistryError, CACHE_FORMAT, MANIFEST,
};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

/// A model file to fetch: where from, what it is called, and its checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelUrl {
    /// The URL fetched (a `hf://` name resolved against the endpoint).
    pub url: String,
    /// The file name the model is cached under.
    pub file_name: String,
    /// The expected SHA-256, lowercase hex.
    pub sha256: String,
    /// Send `$HF_TOKEN` (only to the Hugging Face endpoint).
    hf: bool,
}

fn bad(url: &str, reason: impl Into<String>) -> RegistryError {
    RegistryError::BadUrl {
        url: url.to_owned(),
        reason: reason.into(),
    }
}

impl ModelUrl {
    /// Parses a model URL; `Ok(None)` when `s` is not one (a registry name or a path).
    pub fn parse(s: &str) -> Result<Option<Self>, RegistryError> {
        let (scheme, rest) = match s.split_once("://") {
            Some((scheme @ ("http" | "https" | "hf"), rest)) => (scheme, rest),
            _ => return Ok(None),
        };
        let (location, fragment) = rest.split_once('#').unwrap_or((rest, ""));
        let sha256 = fragment
            .split('&')
            .find_map(|p| p.strip_prefix("sha256="))
            .map(str::to_ascii_lowercase)
            .ok_or_else(|| {
                bad(
                    s,
                    "a model URL needs its checksum: append #sha256=<the file's SHA-256 in hex>",
                )
            })?;
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(s, "the sha256 is not 64 hexadecimal digits"));
        }
        let (url, path, hf) = if scheme == "hf" {
            let mut parts = location.splitn(3, '/');
            let (Some(owner), Some(repo), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(bad(
                    s,
                    "expected hf://owner/repo[@revision]/path/to/file.gguf",
                ));
            };
            let (repo, revision) = repo.split_once('@').unwrap_or((repo, "main"));
            if owner.is_empty() || repo.is_empty() || revision.is_empty() || path.is_empty() {
                return Err(bad(
                    s,
                    "expected hf://owner/repo[@revision]/path/to/file.gguf",
                ));
            }
            let endpoint = std::env::var("HF_ENDPOINT")
                .ok()
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "https://huggingface.co".into());
            let endpoint = endpoint.trim_end_matches('/');
            (
                format!("{endpoint}/{owner}/{repo}/resolve/{revision}/{path}"),
                path,
                true,
            )
        } else {
            let path = location.split(['?']).next().unwrap_or_default();
            (format!("{scheme}://{location}"), path, false)
        };
        let file_name = path
            .rsplit('/')
            .next()
            .filter(|f| !f.is_empty() && *f != "." && *f != "..")
            .ok_or_else(|| bad(s, "the URL names no file"))?
            .to_owned();
        Ok(Some(Self {
            url,
            file_name,
            sha256,
            hf,
        }))
    }

    /// The URL without credentials, for logs and manifests.
    pub fn display(&self) -> String {
        without_credentials(&self.url)
    }
}

/// `url` without a `user:password@` part, for logs, manifests and reports.
pub fn without_credentials(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((userinfo, host)) if !userinfo.contains('/') => format!("{scheme}://{host}"),
            _ => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl ModelCache {
    /// Where a model fetched from `url` lives once cached.
    pub fn url_location(&self, url: &ModelUrl) -> PathBuf {
        self.root()
            .join("url")
            .join(&url.sha256)
            .join(&url.file_name)
    }

    /// Whether the file of `url` is cached, complete, with the checksum it was fetched under.
    pub fn is_fetched(&self, url: &ModelUrl) -> bool {
        let dir = self.root().join("url").join(&url.sha256);
        let Ok(m) = fs::read_to_string(dir.join(MANIFEST)) else {
            return false;
        };
        let Ok(m) = serde_json::from_str::<serde_json::Value>(&m) else {
            return false;
        };
        m["format"] == CACHE_FORMAT
            && m["sha256"] == url.sha256.as_str()
            && fs::metadata(self.url_location(url))
                .is_ok_and(|md| Some(md.len()) == m["size"].as_u64())
    }

    /// Downloads the file of `url` (unless cached), checks its SHA-256 while it arrives and
    /// only then moves it into the cache. Returns its location.
    pub fn fetch(
        &self,
        url: &ModelUrl,
        progress: &mut dyn FnMut(PullProgress),
    ) -> Result<PathBuf, RegistryError> {
        let dest = self.url_location(url);
        if self.is_fetched(url) {
            return Ok(dest);
        }
        let shown = url.display();
        let failed = |reason: String| RegistryError::Download {
            package: shown.clone(),
            reason,
        };
        let dir = self.root().join("url");
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let work = dir.join(format!(".fetch-{}-{}", url.sha256, std::process::id()));
        let _cleanup = Cleanup(work.clone());
        fs::create_dir_all(&work).map_err(io(&work))?;
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            // A large model takes minutes: no limit on the whole transfer, and keep-alive
            // probes to notice a peer that vanished.
            .timeout(None)
            .tcp_keepalive(Duration::from_secs(60))
            .user_agent(concat!("tessera/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| failed(e.to_string()))?;
        let mut request = client.get(&url.url);
        if url.hf {
            if let Some(token) = std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty()) {
                request = request.bearer_auth(token);
            }
        }
        tracing::info!(url = %shown, "downloading model");
        let mut response = request
            .send()
            .map_err(|e| failed(format!("{e} (offline?)")))?;
        if !response.status().is_success() {
            return Err(failed(format!("the server answered {}", response.status())));
        }
        let total = response.content_length().unwrap_or(0);
        let part = work.join(&url.file_name);
        let mut out = fs::File::create(&part).map_err(io(&part))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut done = 0u64;
        loop {
            let n = response
                .read(&mut buf)
                .map_err(|e| failed(format!("the download broke off after {done} bytes: {e}")))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(io(&part))?;
            done += n as u64;
            progress(PullProgress::Download { done, total });
        }
        out.flush().map_err(io(&part))?;
        drop(out);
        if total > 0 && done != total {
            return Err(failed(format!("got {done} of {total} bytes")));
        }
        progress(PullProgress::Verify);
        let actual = sha256_hex(hasher);
        if actual != url.sha256 {
            return Err(RegistryError::Checksum {
                name: shown,
                file: url.file_name.clone(),
                expected: url.sha256.clone(),
                actual,
            });
        }
        let manifest = serde_json::json!({
            "format": CACHE_FORMAT,
            "url": shown,
            "file": url.file_name,
            "size": done,
            "sha256": url.sha256,
        });
        let mpath = work.join(MANIFEST);
        fs::write(
            &mpath,
            serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
        )
        .map_err(io(&mpath))?;
        let final_dir = dir.join(&url.sha256);
        if final_dir.exists() {
            fs::remove_dir_all(&final_dir).map_err(io(&final_dir))?;
        }
        fs::rename(&work, &final_dir).map_err(io(&final_dir))?;
        tracing::info!(url = %shown, path = %dest.display(), "model cached");
        Ok(dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn urls_parse_and_need_a_checksum() {
        assert_eq!(ModelUrl::parse("qwen2.5-0.5b").ok(), Some(None));
        assert_eq!(ModelUrl::parse("/models/m.gguf").ok(), Some(None));
        let u = ModelUrl::parse(&format!("https://example.org/x/m.gguf?dl=1#sha256={SHA}"))
            .ok()
            .flatten();
        assert_eq!(
            u.as_ref().map(|u| (u.url.as_str(), u.file_name.as_str())),
            Some(("https://example.org/x/m.gguf?dl=1", "m.gguf"))
        );
        assert!(matches!(
            ModelUrl::parse("https://example.org/m.gguf"),
            Err(RegistryError::BadUrl { .. })
        ));
        assert!(matches!(
            ModelUrl::parse("https://example.org/m.gguf#sha256=abc"),
            Err(RegistryError::BadUrl { .. })
        ));
        assert!(matches!(
            ModelUrl::parse(&format!("https://example.org/#sha256={SHA}")),
            Err(RegistryError::BadUrl { .. })
        ));
        assert!(matches!(
            ModelUrl::parse(&format!("hf://owner/m.gguf#sha256={SHA}")),
            Err(RegistryError::BadUrl { .. })
        ));
    }

    #[test]
    fn hugging_face_names_resolve_against_the_endpoint() {
        // HF_ENDPOINT is read at parse time; without it the public hub is used.
        let u = ModelUrl::parse(&format!("hf://Org/Repo-GGUF@v2/sub/m-q4.gguf#sha256={SHA}"))
            .ok()
            .flatten();
        let u = u.as_ref();
        assert!(
            u.is_some_and(|u| u.url.ends_with("/Org/Repo-GGUF/resolve/v2/sub/m-q4.gguf")),
            "{u:?}"
        );
        assert_eq!(u.map(|u| u.file_name.as_str()), Some("m-q4.gguf"));
    }

    #[test]
    fn credentials_never_reach_logs() {
        let u = ModelUrl::parse(&format!(
            "https://user:secret@example.org/m.gguf#sha256={SHA}"
        ))
        .ok()
        .flatten();
        assert_eq!(
            u.map(|u| u.display()),
            Some("https://example.org/m.gguf".to_owned())
        );
    }
}
