//! When to reload the config: on SIGHUP, and when the config file changes.
//!
//! The file is polled (its modification time, size and inode, following symlinks) every
//! `reload.interval_ms` rather than watched with inotify (the `notify` crate): Kubernetes
//! updates a mounted ConfigMap by swapping a symlinked directory, which a watch on the file
//! itself misses, and inotify does not fire on network filesystems; one `stat` every two
//! seconds costs nothing and needs no dependency. A change is applied once the file has
//! stayed the same for one more interval, so a reload never reads a half-written file.
//!
//! What a reload does is [`crate::live::Live::reload`]'s.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use crate::live::{ConfigSource, Live, Reloaded};

/// What identifies a version of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode,
    })
}

/// Starts the reload triggers; they end when `live` is dropped.
pub fn spawn(
    live: &Arc<Live>,
    source: ConfigSource,
    file: Option<PathBuf>,
    watch: bool,
    interval: Duration,
) {
    let live = Arc::downgrade(live);
    tokio::spawn(run(live, source, file.filter(|_| watch), interval));
}

async fn run(live: Weak<Live>, source: ConfigSource, file: Option<PathBuf>, interval: Duration) {
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut applied = file.as_deref().and_then(stamp);
    let mut pending: Option<Stamp> = None;
    loop {
        #[cfg(unix)]
        let hup = async {
            match hangup.as_mut() {
                Some(h) => h.recv().await.is_some(),
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hup = std::future::pending::<bool>();
        let trigger = tokio::select! {
            true = hup => "SIGHUP",
            _ = tokio::time::sleep(interval), if file.is_some() => {
                let now = file.as_deref().and_then(stamp);
                if now == applied {
                    pending = None;
                    continue;
                }
                // Changed: wait until it has stayed the same for one interval.
                if pending != now {
                    pending = now;
                    continue;
                }
                "the config file changed"
            }
        };
        let Some(live) = live.upgrade() else { return };
        pending = None;
        applied = file.as_deref().and_then(stamp);
        tracing::info!("reloading the config ({trigger})");
        let source = source.clone();
        let next = tokio::task::spawn_blocking(move || source())
            .await
            .unwrap_or_else(|e| {
                Err(crate::config::ConfigError::new(
                    "config",
                    format!("reading failed: {e}"),
                ))
            });
        match live.reload(next).await {
            Ok(Reloaded::Unchanged) => tracing::info!("config unchanged"),
            Ok(Reloaded::Applied { .. }) => {}
            Err(e) => tracing::error!("config reload refused; the running config stays: {e}"),
        }
    }
}
