//! Images shipped in `assets/images`, which templates reference as `href="asset:NAME"`
//! (for example `asset:products/sneaker.png`). Loaded into memory once at start-up.

use super::RenderError;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Largest shipped image accepted, in bytes.
const MAX_ASSET_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Default)]
pub struct AssetImages {
    by_name: HashMap<String, Arc<Vec<u8>>>,
}

impl AssetImages {
    /// Loads every PNG, JPEG, GIF and WebP file under `dir`, named by its relative path.
    pub fn load(dir: &Path) -> Result<Self, RenderError> {
        let mut images = Self::default();
        if dir.is_dir() {
            images.load_dir(dir, dir)?;
        }
        Ok(images)
    }

    fn load_dir(&mut self, root: &Path, dir: &Path) -> Result<(), RenderError> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| RenderError::Assets(format!("{}: {e}", dir.display())))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                self.load_dir(root, &path)?;
                continue;
            }
            let is_image = matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("png" | "jpg" | "jpeg" | "gif" | "webp")
            );
            let small_enough = entry
                .metadata()
                .map(|m| m.len() <= MAX_ASSET_BYTES)
                .unwrap_or(false);
            if !is_image || !small_enough {
                continue;
            }
            let Ok(relative) = path.strip_prefix(root) else {
                continue;
            };
            let name = relative.to_string_lossy().replace('\\', "/");
            let bytes = std::fs::read(&path)
                .map_err(|e| RenderError::Assets(format!("{}: {e}", path.display())))?;
            self.by_name.insert(name, Arc::new(bytes));
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Vec<u8>>> {
        self.by_name.get(name)
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}
