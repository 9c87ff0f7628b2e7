//! The fonts every render uses, loaded once from `assets/fonts` (never the system's, so a
//! render looks the same on every machine).

use super::RenderError;
use resvg::usvg::fontdb;
use std::path::Path;
use std::sync::Arc;

/// The family templates get when they name none.
pub(super) const DEFAULT_FAMILY: &str = "Inter";

pub(super) fn load(dir: &Path) -> Result<Arc<fontdb::Database>, RenderError> {
    let mut database = fontdb::Database::new();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| RenderError::Assets(format!("{}: {e}", dir.display())))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("otf" | "ttf")
        ) {
            let data = std::fs::read(&path)
                .map_err(|e| RenderError::Assets(format!("{}: {e}", path.display())))?;
            database.load_font_data(data);
        }
    }
    if database.is_empty() {
        return Err(RenderError::Assets(format!(
            "no fonts found in {}",
            dir.display()
        )));
    }
    database.set_sans_serif_family(DEFAULT_FAMILY);
    Ok(Arc::new(database))
}
