//! An edit tried before it is written: the campaign copied into a temporary folder with one
//! file replaced, loaded whole there (the same load the server does), so a preview can render
//! it and a save can check it without touching the live campaign.

use crate::blocks::Campaign;
use crate::render::Renderer;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Template files an editor may open, besides `blocks.toml` and `samples/*.json`.
const TEMPLATE_EXTENSIONS: [&str; 4] = ["svg", "html", "xml", "tera"];
/// Largest file the editor accepts.
pub(super) const MAX_FILE_BYTES: usize = 512 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    #[error("`{0}` is not a file of this campaign the studio edits")]
    NotEditable(String),
    #[error("the file is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge,
    #[error("the file is not UTF-8 text")]
    NotText,
    #[error("cannot stage the campaign: {0}")]
    Io(String),
    /// The edited campaign does not load (its message names the live campaign's paths).
    #[error("{0}")]
    Load(String),
}

/// The files of a campaign the editor offers, relative to its folder, in a stable order:
/// `blocks.toml`, the templates, the fallback templates, the samples.
pub(super) fn editable_files(campaign_dir: &Path) -> Vec<String> {
    let list = |sub: &str, extensions: &[&str]| {
        let mut names: Vec<String> = std::fs::read_dir(campaign_dir.join(sub))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|entry| entry.file_name().to_str().map(str::to_owned))
            .filter(|name| {
                Path::new(name)
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| extensions.contains(&e))
                    && plain_file_name(name)
            })
            .map(|name| {
                if sub.is_empty() {
                    name
                } else {
                    format!("{sub}/{name}")
                }
            })
            .collect();
        names.sort();
        names
    };
    let mut files = vec!["blocks.toml".to_owned()];
    files.extend(list("", &TEMPLATE_EXTENSIONS));
    files.extend(list("fallback", &["svg", "html"]));
    files.extend(list("samples", &["json"]));
    files
}

/// A file name without folders, hidden dots or unusual characters.
fn plain_file_name(name: &str) -> bool {
    !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `file` if the editor may write it in `campaign_dir`.
pub(super) fn editable(campaign_dir: &Path, file: &str) -> Result<String, StagingError> {
    editable_files(campaign_dir)
        .into_iter()
        .find(|f| f == file)
        .ok_or_else(|| StagingError::NotEditable(file.to_owned()))
}

/// Checks an edit's text: bounded, UTF-8.
pub(super) fn edit_text(body: &[u8]) -> Result<&str, StagingError> {
    if body.len() > MAX_FILE_BYTES {
        return Err(StagingError::TooLarge);
    }
    std::str::from_utf8(body).map_err(|_| StagingError::NotText)
}

/// A campaign loaded from a staged copy; the copy lives as long as this.
pub(super) struct StagedCampaign {
    pub campaign: Arc<Campaign>,
    /// The staged copy's folder, to name the live one in messages instead.
    staged_dir: PathBuf,
    live_dir: PathBuf,
    _root: tempfile::TempDir,
}

impl StagedCampaign {
    /// `message` with the staged copy's paths written as the live campaign's.
    pub(super) fn live_paths(&self, message: &str) -> String {
        renamed(message, &self.staged_dir, &self.live_dir)
    }
}

/// Copies the campaign folder `live_dir` with `file` replaced by `text`, and loads the copy
/// (reusing the prepared fallbacks of `in_service`, the version serving now, that did not
/// change).
pub(super) fn stage(
    live_dir: &Path,
    in_service: Option<&Campaign>,
    renderer: &Renderer,
    file: &str,
    text: &str,
) -> Result<StagedCampaign, StagingError> {
    let io = |e: std::io::Error| StagingError::Io(e.to_string());
    let name = live_dir
        .file_name()
        .ok_or_else(|| StagingError::Io("the campaign folder has no name".into()))?;
    let root = tempfile::Builder::new()
        .prefix("opentime-studio-")
        .tempdir()
        .map_err(io)?;
    let staged_dir = root.path().join(name);
    copy_campaign(live_dir, &staged_dir).map_err(io)?;
    std::fs::write(staged_dir.join(file), text).map_err(io)?;
    let campaign = Campaign::load_after(&staged_dir, renderer, in_service)
        .map_err(|error| StagingError::Load(renamed(&error.to_string(), &staged_dir, live_dir)))?;
    Ok(StagedCampaign {
        campaign: Arc::new(campaign),
        staged_dir,
        live_dir: live_dir.to_owned(),
        _root: root,
    })
}

/// `message` with the paths under `from` written under `to`.
fn renamed(message: &str, from: &Path, to: &Path) -> String {
    message.replace(&from.display().to_string(), &to.display().to_string())
}

/// Copies a campaign folder (files and sub-folders; links are left out).
fn copy_campaign(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_campaign(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Writes `text` to `path` whole or not at all (a temporary file beside it, then a rename),
/// so the file watcher never reads half a file.
pub(super) fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temporary = tempfile::Builder::new()
        .prefix(".opentime-save-")
        .tempfile_in(dir)?;
    std::io::Write::write_all(&mut temporary, text.as_bytes())?;
    temporary.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_campaigns_own_files_are_editable() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/demo");
        let files = editable_files(&dir);
        assert_eq!(files[0], "blocks.toml");
        assert!(files.contains(&"cart.svg".to_owned()));
        assert!(files.contains(&"samples/alice.json".to_owned()));
        assert!(files.contains(&"fallback/cart.svg".to_owned()));
        assert!(!files.iter().any(|f| f.ends_with(".png")));
        for bad in [
            "../demo/cart.svg",
            "/etc/passwd",
            "samples/../cart.svg",
            "nope.svg",
        ] {
            assert!(editable(&dir, bad).is_err(), "{bad}");
        }
        assert!(edit_text(&[0xff, 0xfe]).is_err());
        assert!(edit_text(&vec![b'a'; MAX_FILE_BYTES + 1]).is_err());
    }
}
