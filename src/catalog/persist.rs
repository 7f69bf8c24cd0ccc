//! The state directory: each target's last good listing, so a restarted sidecar serves its
//! catalog before any upstream answers.
//!
//! One file per target, `{name}.catalog.json`, replaced atomically (write a temporary file,
//! fsync, rename over the old one, fsync the directory): a crash leaves the old file or the
//! new one, never half of either. A file from another format version, for another upstream
//! (another target fingerprint: for `mcp_server`, another URL), or that does not parse is
//! reported and ignored, never fatal, never half-loaded.
//! What is saved is the upstream's own listing; curation and normalization are re-applied at
//! load, so config changes take effect on restart.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::targets::Listing;

const FORMAT: &str = "mcp-sidecar/catalog";
const VERSION: u32 = 1;

pub struct StateDir {
    path: PathBuf,
}

/// A listing as saved.
#[derive(Debug)]
pub struct Saved {
    pub listing: Listing,
    pub synced_at: SystemTime,
}

/// A saved file: `L` is the owned `Listing` when loading, a borrowed `&Listing` when saving
/// (so a save does not copy the whole listing, which at 10,000 tools would be a third copy
/// alive during a sync, beside the new listing and the published catalog).
#[derive(Serialize, Deserialize)]
struct File_<L> {
    format: String,
    version: u32,
    target: String,
    /// SHA-256 of the target's fingerprint (`Target::fingerprint`, for `mcp_server` its URL):
    /// a saved listing is only for the upstream it came from. The fingerprint itself is not
    /// stored, in case it carries credentials. (Named for the URL it was first; renaming it
    /// would orphan every saved file.)
    url_sha256: String,
    synced_at_unix: u64,
    listing: L,
}

fn fingerprint_hash(fingerprint: &str) -> String {
    Sha256::digest(fingerprint.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl StateDir {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn file(&self, target: &str) -> PathBuf {
        self.path.join(format!("{target}.catalog.json"))
    }

    /// `Ok(None)`: nothing saved for this target.
    pub fn load(&self, target: &str, fingerprint: &str) -> Result<Option<Saved>, String> {
        let path = self.file(target);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        // One full parse in the common case; the header is read only to explain a failure.
        let saved = match serde_json::from_slice::<File_<Listing>>(&bytes) {
            Ok(saved) if saved.format == FORMAT && saved.version == VERSION => saved,
            outcome => {
                #[derive(Deserialize)]
                struct Header {
                    format: String,
                    version: u32,
                }
                let header: Header = serde_json::from_slice(&bytes)
                    .map_err(|e| format!("{} is not a saved catalog: {e}", path.display()))?;
                if header.format != FORMAT || header.version != VERSION {
                    return Err(format!(
                        "{} is {} version {}, this sidecar reads {FORMAT} version {VERSION}",
                        path.display(),
                        header.format,
                        header.version
                    ));
                }
                return Err(match outcome {
                    Err(e) => format!("{} is corrupt: {e}", path.display()),
                    Ok(_) => format!("{} is not a saved catalog", path.display()),
                });
            }
        };
        if saved.target != target || saved.url_sha256 != fingerprint_hash(fingerprint) {
            return Err(format!(
                "{} was saved for another target or upstream",
                path.display()
            ));
        }
        Ok(Some(Saved {
            listing: saved.listing,
            synced_at: UNIX_EPOCH + Duration::from_secs(saved.synced_at_unix),
        }))
    }

    pub fn save(
        &self,
        target: &str,
        fingerprint: &str,
        listing: &Listing,
        synced_at: SystemTime,
    ) -> std::io::Result<()> {
        fs::create_dir_all(&self.path)?;
        let record = File_ {
            format: FORMAT.into(),
            version: VERSION,
            target: target.into(),
            url_sha256: fingerprint_hash(fingerprint),
            synced_at_unix: synced_at
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs(),
            listing,
        };
        let final_path = self.file(target);
        let temporary = self.path.join(format!(".{target}.catalog.json.tmp"));
        {
            // Buffered: serde_json writes token by token (850,000 writes for 10,000 tools).
            let mut file = std::io::BufWriter::with_capacity(1 << 20, File::create(&temporary)?);
            serde_json::to_writer(&mut file, &record)?;
            file.flush()?;
            file.get_ref().sync_all()?;
        }
        fs::rename(&temporary, &final_path)?;
        // The rename itself must reach the disk too.
        File::open(&self.path)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("mcp-sidecar-persist-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn listing() -> Listing {
        Listing {
            tools: vec![
                json!({"name": "a", "inputSchema": {"type": "object"}})
                    .as_object()
                    .unwrap()
                    .clone(),
            ],
            instructions: Some("hi".into()),
            protocol_version: "2025-11-25".into(),
            ..Default::default()
        }
    }

    #[test]
    fn round_trip_and_no_leftovers() {
        let dir = temp_dir("roundtrip");
        let state = StateDir::new(dir.clone());
        assert!(state.load("t", "http://x").unwrap().is_none());
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        state.save("t", "http://x", &listing(), at).unwrap();
        let saved = state.load("t", "http://x").unwrap().unwrap();
        assert_eq!(saved.listing.tools, listing().tools);
        assert_eq!(saved.listing.instructions.as_deref(), Some("hi"));
        assert_eq!(saved.synced_at, at);
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn corrupt_foreign_and_mismatched_files_are_refused() {
        let dir = temp_dir("bad");
        let state = StateDir::new(dir.clone());
        state
            .save("t", "http://x", &listing(), SystemTime::now())
            .unwrap();
        assert!(
            state
                .load("t", "http://other")
                .unwrap_err()
                .contains("another target or upstream")
        );
        fs::write(
            dir.join("t.catalog.json"),
            b"{\"format\":\"mcp-sidecar/catalog\",\"version\":1,\"tar",
        )
        .unwrap();
        assert!(
            state
                .load("t", "http://x")
                .unwrap_err()
                .contains("not a saved catalog")
        );
        fs::write(
            dir.join("t.catalog.json"),
            br#"{"format":"mcp-sidecar/catalog","version":99}"#,
        )
        .unwrap();
        assert!(
            state
                .load("t", "http://x")
                .unwrap_err()
                .contains("version 99")
        );
        fs::write(
            dir.join("t.catalog.json"),
            br#"{"format":"mcp-sidecar/catalog","version":1,"target":"t"}"#,
        )
        .unwrap();
        assert!(state.load("t", "http://x").unwrap_err().contains("corrupt"));
        fs::remove_dir_all(dir).unwrap();
    }
}
