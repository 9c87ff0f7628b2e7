//! Images shipped in `assets/images`, which templates reference as `href="asset:NAME"`
//! (for example `asset:products/sneaker.png`). Loaded into memory once at start-up, and
//! resized once per size a template draws them at ([`AssetImages::sized`]): resvg decodes an
//! `<image>` on every render, so a 44 px slot should not hold a 128 px file.

use super::RenderError;
use crate::sources::product_photos::{resize_to_png, Fit};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Largest shipped image accepted, in bytes.
const MAX_ASSET_BYTES: u64 = 4 * 1024 * 1024;
/// Most bytes of resized copies kept. Templates draw a handful of sizes, so this only bounds a
/// bug or slot sizes taken from data; the copies are stored PNGs (their pixels as they are, so
/// a render decodes them as a copy): a 112×112 slot 50 KB, 201 KB at `scale=2`.
const MAX_SIZED_BYTES: usize = 64 * 1024 * 1024;

type SizedKey = (String, u32, u32, Fit);

pub struct AssetImages {
    by_name: HashMap<String, Arc<Vec<u8>>>,
    sized: Mutex<SizedCopies>,
    /// The cap on `sized`'s bytes: [`MAX_SIZED_BYTES`] (a test sets a smaller one).
    max_sized_bytes: usize,
}

impl Default for AssetImages {
    fn default() -> Self {
        Self {
            by_name: HashMap::new(),
            sized: Mutex::default(),
            max_sized_bytes: MAX_SIZED_BYTES,
        }
    }
}

/// The resized copies kept, and their bytes.
#[derive(Default)]
struct SizedCopies {
    by_key: HashMap<SizedKey, Arc<Vec<u8>>>,
    bytes: usize,
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

    /// The image `name` resized to `width`×`height` pixels by `fit`, made once and kept.
    pub fn sized(&self, name: &str, width: u32, height: u32, fit: Fit) -> Option<Arc<Vec<u8>>> {
        let key = (name.to_owned(), width, height, fit);
        if let Some(copy) = self.sized.lock().ok()?.by_key.get(&key) {
            return Some(Arc::clone(copy));
        }
        let resized = Arc::new(resize_to_png(self.get(name)?, width, height, fit)?);
        if let Ok(mut sized) = self.sized.lock() {
            let bytes = sized.bytes + resized.len();
            if bytes <= self.max_sized_bytes && !sized.by_key.contains_key(&key) {
                sized.bytes = bytes;
                sized.by_key.insert(key, Arc::clone(&resized));
            }
        }
        Some(resized)
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sized_copies_have_the_slot_size_and_are_made_once() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/images");
        let images = AssetImages::load(&dir).unwrap();
        let first = images
            .sized("products/mug.png", 44, 30, Fit::Cover)
            .unwrap();
        let decoded = image::load_from_memory(&first).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (44, 30));
        let again = images
            .sized("products/mug.png", 44, 30, Fit::Cover)
            .unwrap();
        assert!(Arc::ptr_eq(&first, &again), "kept, not resized again");
        assert!(images
            .sized("products/none.png", 44, 44, Fit::Cover)
            .is_none());
    }

    #[test]
    fn sized_copies_are_kept_up_to_their_byte_cap() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/images");
        let images = AssetImages {
            // Room for the 44×30 copy (about 7.9 KB), not for a second one.
            max_sized_bytes: 10_000,
            ..AssetImages::load(&dir).unwrap()
        };
        let first = images
            .sized("products/mug.png", 44, 30, Fit::Cover)
            .unwrap();
        let second = images
            .sized("products/mug.png", 30, 44, Fit::Cover)
            .unwrap();
        let decoded = image::load_from_memory(&second).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (30, 44), "still made");
        assert!(Arc::ptr_eq(
            &first,
            &images
                .sized("products/mug.png", 44, 30, Fit::Cover)
                .unwrap()
        ));
        assert!(
            !Arc::ptr_eq(
                &second,
                &images
                    .sized("products/mug.png", 30, 44, Fit::Cover)
                    .unwrap()
            ),
            "over the cap: made again, not kept"
        );
        assert_eq!(images.sized.lock().unwrap().bytes, first.len());
    }
}
