//! Every save the studio makes is kept: one folder per campaign and file under the history
//! directory (`OPENTIME_STUDIO_HISTORY`), one file per version named by when it was saved.
//! The first save of a file also keeps what was there before it, so it can be restored.
//! Versions are compared with the current file as a unified diff.

use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Versions listed per file, newest first.
const MAX_LISTED: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("no saved version `{0}`")]
    NoVersion(String),
    #[error("history: {0}")]
    Io(#[from] std::io::Error),
}

/// One kept version.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Version {
    /// Its id (`{unix ms}-{sequence}`), also its file name.
    pub id: String,
    /// When it was saved (RFC 3339, UTC).
    pub saved_at: String,
    pub bytes: u64,
    /// The file as it was before the studio's first save of it.
    pub original: bool,
}

pub(super) struct History {
    root: PathBuf,
    sequence: AtomicU64,
}

impl History {
    pub(super) fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
            sequence: AtomicU64::new(0),
        }
    }

    /// Keeps `saved` as the newest version of `campaign`'s `file`; on the file's first save,
    /// `before` (what it held) is kept first.
    pub(super) fn record(
        &self,
        campaign: &str,
        file: &str,
        before: &str,
        saved: &str,
    ) -> Result<Version, HistoryError> {
        let dir = self.dir(campaign, file);
        std::fs::create_dir_all(&dir)?;
        if self.list(campaign, file)?.is_empty() {
            self.write(&dir, before, ".original")?;
        }
        self.write(&dir, saved, "")
    }

    /// The versions of `campaign`'s `file`, newest first.
    pub(super) fn list(&self, campaign: &str, file: &str) -> Result<Vec<Version>, HistoryError> {
        let dir = self.dir(campaign, file);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        let mut versions: Vec<Version> = entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().to_str()?.to_owned();
                let (id, original) = match name.strip_suffix(".original") {
                    Some(id) => (id.to_owned(), true),
                    None => (name, false),
                };
                let millis: i64 = id.split('-').next()?.parse().ok()?;
                let saved_at = chrono::DateTime::from_timestamp_millis(millis)?
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                let bytes = entry.metadata().ok()?.len();
                Some(Version {
                    id,
                    saved_at,
                    bytes,
                    original,
                })
            })
            .collect();
        versions.sort_by_key(|v| std::cmp::Reverse(sort_key(&v.id)));
        versions.truncate(MAX_LISTED);
        Ok(versions)
    }

    /// The text of one version.
    pub(super) fn read(
        &self,
        campaign: &str,
        file: &str,
        id: &str,
    ) -> Result<String, HistoryError> {
        let version = self
            .list(campaign, file)?
            .into_iter()
            .find(|v| v.id == id)
            .ok_or_else(|| HistoryError::NoVersion(id.to_owned()))?;
        let suffix = if version.original { ".original" } else { "" };
        Ok(std::fs::read_to_string(
            self.dir(campaign, file).join(format!("{id}{suffix}")),
        )?)
    }

    fn write(&self, dir: &Path, text: &str, suffix: &str) -> Result<Version, HistoryError> {
        let now = chrono::Utc::now();
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{sequence}", now.timestamp_millis());
        std::fs::write(dir.join(format!("{id}{suffix}")), text)?;
        Ok(Version {
            id,
            saved_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            bytes: text.len() as u64,
            original: !suffix.is_empty(),
        })
    }

    /// The folder of one file's versions (`samples/alice.json` → `samples__alice.json`).
    fn dir(&self, campaign: &str, file: &str) -> PathBuf {
        self.root.join(campaign).join(file.replace('/', "__"))
    }
}

/// Versions in the order they were saved: by time, then by sequence.
fn sort_key(id: &str) -> (u64, u64) {
    let mut parts = id.split('-').map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// A unified diff from `old` to `new`, labelled with their names.
pub(super) fn diff(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_name, new_name)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_are_kept_with_the_original_and_compared() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::new(dir.path());
        assert!(history.list("demo", "cart.svg").unwrap().is_empty());
        history
            .record("demo", "cart.svg", "one\n", "two\n")
            .unwrap();
        let third = history
            .record("demo", "cart.svg", "two\n", "three\n")
            .unwrap();
        let versions = history.list("demo", "cart.svg").unwrap();
        assert_eq!(versions.len(), 3, "the original and two saves");
        assert_eq!(versions[0].id, third.id, "newest first");
        assert!(versions[2].original);
        assert_eq!(
            history.read("demo", "cart.svg", &versions[2].id).unwrap(),
            "one\n"
        );
        assert_eq!(
            history.read("demo", "cart.svg", &third.id).unwrap(),
            "three\n"
        );
        assert!(history.read("demo", "cart.svg", "../../etc").is_err());
        let change = diff("one\n", "three\n", "saved", "current");
        assert!(
            change.contains("-one") && change.contains("+three"),
            "{change}"
        );
        history
            .record("demo", "samples/alice.json", "{}", "{ }")
            .unwrap();
        assert_eq!(history.list("demo", "samples/alice.json").unwrap().len(), 2);
    }
}
