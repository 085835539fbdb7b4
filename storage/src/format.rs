//! The on-disk format version of a store directory.
//!
//! Entry point: [`check_or_init`]. A new directory gets a `TESSERA_FORMAT` file; an existing
//! store with another version, or a directory that holds something else, is refused.

use crate::StorageError;
use std::fs;
use std::path::Path;

/// Name of the format file inside a store directory.
pub const FORMAT_FILE: &str = "TESSERA_FORMAT";
/// The store format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
const MAGIC: &str = "tessera-store";

/// Checks the format file of `dir`, writing it if the directory is new or empty.
pub fn check_or_init(dir: &Path) -> Result<(), StorageError> {
    let io = |what: &str, source| StorageError::Io {
        what: format!("{what} {}", dir.display()),
        source,
    };
    let file = dir.join(FORMAT_FILE);
    match fs::read_to_string(&file) {
        Ok(content) => {
            let found = content.trim();
            let expected = format!("{MAGIC} {FORMAT_VERSION}");
            if found == expected {
                Ok(())
            } else {
                Err(StorageError::FormatVersion {
                    path: dir.to_owned(),
                    found: found.chars().take(64).collect(),
                    expected: FORMAT_VERSION,
                    hint: "open it with the Tessera version that wrote it, or dump and reload it",
                })
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(|e| io("cannot create the store directory", e))?;
            let is_empty = fs::read_dir(dir)
                .map_err(|e| io("cannot list the store directory", e))?
                .next()
                .is_none();
            if !is_empty {
                return Err(StorageError::FormatVersion {
                    path: dir.to_owned(),
                    found: "none (no TESSERA_FORMAT file)".into(),
                    expected: FORMAT_VERSION,
                    hint: "the directory is not empty and is not a Tessera store; choose an empty or new directory",
                });
            }
            fs::write(&file, format!("{MAGIC} {FORMAT_VERSION}\n"))
                .map_err(|e| io("cannot write the format file in", e))
        }
        Err(e) => Err(io("cannot read the format file in", e)),
    }
}
