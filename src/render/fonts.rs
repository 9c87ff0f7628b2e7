//! The fonts every render uses, loaded once at start-up into one shared database: the shipped
//! fonts (`assets/fonts`, always, tried first), then the operator's font folders and files, then
//! the system's fonts (`/usr/share/fonts`, …) when enabled — see [`FontSettings`]. Which families
//! a character may fall back to, and in which order, is decided here too ([`Fonts::chain`]);
//! choosing a face per character is [`super::font_fallback`].
//!
//! Font files other than the shipped ones are memory-mapped, not read: the CJK collections alone
//! are 40 MB a weight, and a render touches only the pages of the glyphs it draws.

use super::RenderError;
use resvg::usvg::fontdb;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The family templates get when they name none (and when the one they name is not installed).
pub(super) const DEFAULT_FAMILY: &str = "Inter";

/// Families tried first, in this order, among the operator's and the system's fonts when
/// [`FontSettings::fallback`] names none: the Noto families that the Debian packages
/// `fonts-noto-core`, `fonts-noto-cjk` and `fonts-noto-color-emoji` install, one per script the
/// renderer is tested with. Other families follow: the rest of Noto Sans, then everything else,
/// by name.
const PREFERRED_FAMILIES: [&str; 8] = [
    "Noto Sans",
    "Noto Sans CJK SC",
    "Noto Sans Arabic",
    "Noto Sans Hebrew",
    "Noto Sans Devanagari",
    "Noto Sans Thai",
    "Noto Color Emoji",
    "DejaVu Sans",
];

/// Which fonts renders may use besides the shipped ones (`OPENTIME_FONT_PATHS`,
/// `OPENTIME_SYSTEM_FONTS`, `OPENTIME_FALLBACK_FONTS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FontSettings {
    /// The operator's font folders (searched recursively) and font files, tried after the
    /// shipped fonts and before the system's.
    pub paths: Vec<PathBuf>,
    /// Whether the system's font folders are loaded too.
    pub system: bool,
    /// The families a character missing from a text's own font may be drawn with, in the order
    /// they are tried (the shipped fonts always come first). Empty: every family loaded, in the
    /// default order ([`PREFERRED_FAMILIES`] first). When set, system fonts of other families
    /// are not loaded at all.
    pub fallback: Vec<String>,
}

impl Default for FontSettings {
    fn default() -> Self {
        Self {
            paths: Vec::new(),
            system: true,
            fallback: Vec::new(),
        }
    }
}

/// The Noto files of Debian's `fonts-noto-core`, `fonts-noto-cjk` and `fonts-noto-color-emoji`
/// that cover the scripts the renderer is tested with.
const DEBIAN_NOTO_FILES: [&str; 14] = [
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Bold.ttf",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansArabic-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSansArabic-Bold.ttf",
    "/usr/share/fonts/truetype/noto/NotoSansHebrew-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSansHebrew-Bold.ttf",
    "/usr/share/fonts/truetype/noto/NotoSansDevanagari-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSansDevanagari-Bold.ttf",
    "/usr/share/fonts/truetype/noto/NotoSansThai-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSansThai-Bold.ttf",
    "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",
    "/usr/share/fonts/truetype/noto/NotoSansSymbols2-Regular.ttf",
];

impl FontSettings {
    /// The shipped fonts only: renders look the same on every machine, and a character outside
    /// them is drawn as a box.
    pub fn shipped_only() -> Self {
        Self {
            system: false,
            ..Self::default()
        }
    }

    /// The shipped fonts and a fixed set of Debian's Noto files (Latin, Greek, Cyrillic, CJK,
    /// Arabic, Hebrew, Devanagari, Thai, emoji, symbols) and nothing else: renders that are the
    /// same on every Debian machine with those packages, whatever else is installed. The tests
    /// use it; `scripts/test` installs the packages.
    pub fn debian_noto() -> Self {
        Self {
            paths: DEBIAN_NOTO_FILES.iter().map(PathBuf::from).collect(),
            system: false,
            fallback: Vec::new(),
        }
    }
}

/// One family of the fallback chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChainFamily {
    pub name: String,
    /// A colour emoji family: tried first for emoji (see `font_fallback`).
    pub emoji: bool,
}

/// The loaded fonts and the order fallback tries their families in.
pub(crate) struct Fonts {
    pub database: Arc<fontdb::Database>,
    pub chain: Vec<ChainFamily>,
}

/// Where a face came from, for the default order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Origin {
    Shipped,
    Operator,
    System,
}

/// Loads the shipped fonts from `shipped_dir` and the others `settings` names.
pub(super) fn load(shipped_dir: &Path, settings: &FontSettings) -> Result<Fonts, RenderError> {
    let mut database = fontdb::Database::new();
    load_shipped(&mut database, shipped_dir)?;
    let shipped = families_of(&database);
    for path in &settings.paths {
        if path.is_dir() {
            database.load_fonts_dir(path);
        } else if path.is_file() {
            database
                .load_font_file(path)
                .map_err(|e| RenderError::Assets(format!("font {}: {e}", path.display())))?;
        } else {
            return Err(RenderError::Assets(format!(
                "font path {}: no such file or folder",
                path.display()
            )));
        }
    }
    let operator: BTreeSet<String> = families_of(&database)
        .difference(&shipped)
        .cloned()
        .collect();
    if settings.system {
        database.load_system_fonts();
    }
    let origin = |family: &str| {
        if shipped.contains(family) {
            Origin::Shipped
        } else if operator.contains(family) {
            Origin::Operator
        } else {
            Origin::System
        }
    };
    let chain = if settings.fallback.is_empty() {
        default_chain(&database, origin)
    } else {
        named_chain(&mut database, &settings.fallback, origin)?
    };
    share_file_data(&mut database);
    // A family that is not installed falls back to the default one, never to nothing.
    database.set_sans_serif_family(DEFAULT_FAMILY);
    database.set_serif_family(DEFAULT_FAMILY);
    database.set_monospace_family(DEFAULT_FAMILY);
    database.set_cursive_family(DEFAULT_FAMILY);
    database.set_fantasy_family(DEFAULT_FAMILY);
    Ok(Fonts {
        database: Arc::new(database),
        chain,
    })
}

/// The shipped fonts, read into memory (they are small).
fn load_shipped(database: &mut fontdb::Database, dir: &Path) -> Result<(), RenderError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| RenderError::Assets(format!("{}: {e}", dir.display())))?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("otf" | "ttf")
            )
        })
        .collect();
    files.sort();
    for path in files {
        let data = std::fs::read(&path)
            .map_err(|e| RenderError::Assets(format!("{}: {e}", path.display())))?;
        database.load_font_data(data);
    }
    if database.is_empty() {
        return Err(RenderError::Assets(format!(
            "no fonts found in {}",
            dir.display()
        )));
    }
    Ok(())
}

/// The name a face goes by: its English family name (the first one when none is English).
pub(super) fn family_name(face: &fontdb::FaceInfo) -> Option<&str> {
    face.families
        .iter()
        .find(|(_, language)| *language == fontdb::Language::English_UnitedStates)
        .or_else(|| face.families.first())
        .map(|(name, _)| name.as_str())
}

fn families_of(database: &fontdb::Database) -> BTreeSet<String> {
    database
        .faces()
        .filter_map(family_name)
        .map(str::to_owned)
        .collect()
}

/// A family name that can be written into an SVG attribute as `'name'` unchanged.
fn writable(name: &str) -> bool {
    !name.is_empty() && !name.contains(['\'', '"', '<', '>', '&', '\\']) && !name.contains(';')
}

fn chain_family(name: &str) -> ChainFamily {
    ChainFamily {
        name: name.to_owned(),
        emoji: name.contains("Emoji"),
    }
}

/// Every loaded family: shipped, then the operator's, then the system's, each group in the
/// default order.
fn default_chain(database: &fontdb::Database, origin: impl Fn(&str) -> Origin) -> Vec<ChainFamily> {
    let names: Vec<&str> = database.faces().filter_map(family_name).collect();
    default_order(names, origin)
        .into_iter()
        .map(chain_family)
        .collect()
}

/// `names` by origin, then [`PREFERRED_FAMILIES`], then Noto Sans before the rest, then by name;
/// without repeats or names that cannot be written into an attribute.
fn default_order(mut names: Vec<&str>, origin: impl Fn(&str) -> Origin) -> Vec<&str> {
    let rank = |name: &str| {
        let preferred = PREFERRED_FAMILIES
            .iter()
            .position(|p| *p == name)
            .unwrap_or(PREFERRED_FAMILIES.len());
        let noto_sans = !name.starts_with("Noto Sans");
        (origin(name), preferred, noto_sans, name.to_owned())
    };
    names.retain(|name| writable(name));
    names.sort_by_cached_key(|name| rank(name));
    names.dedup();
    names
}

/// The shipped families, then the ones `fallback` names, in its order. System fonts of other
/// families are dropped from the database; a named family that is not installed is an error.
fn named_chain(
    database: &mut fontdb::Database,
    fallback: &[String],
    origin: impl Fn(&str) -> Origin,
) -> Result<Vec<ChainFamily>, RenderError> {
    let loaded = families_of(database);
    let mut chain: Vec<ChainFamily> = loaded
        .iter()
        .filter(|name| origin(name) == Origin::Shipped)
        .map(|name| chain_family(name))
        .collect();
    for name in fallback {
        let name = name.trim();
        if !loaded.contains(name) {
            return Err(RenderError::Assets(format!(
                "fallback font family `{name}` is not installed (check OPENTIME_FONT_PATHS and \
                 OPENTIME_SYSTEM_FONTS; `fc-list : family` lists the system's)"
            )));
        }
        if !writable(name) {
            return Err(RenderError::Assets(format!(
                "fallback font family `{name}`: quotes, backslashes, `;`, `<`, `>` and `&` \
                 cannot be used in a family name"
            )));
        }
        if !chain.iter().any(|family| family.name == name) {
            chain.push(chain_family(name));
        }
    }
    let unused: Vec<fontdb::ID> = database
        .faces()
        .filter(|face| {
            family_name(face).is_some_and(|name| {
                origin(name) == Origin::System && !chain.iter().any(|f| f.name == name)
            })
        })
        .map(|face| face.id)
        .collect();
    for id in unused {
        database.remove_face(id);
    }
    Ok(chain)
}

/// Maps each font file once for good, instead of once per glyph lookup.
fn share_file_data(database: &mut fontdb::Database) {
    let files: Vec<fontdb::ID> = database
        .faces()
        .filter(|face| matches!(face.source, fontdb::Source::File(_)))
        .map(|face| face.id)
        .collect();
    for id in files {
        // SAFETY: the mapping is read-only and lives as long as the database. fontdb maps
        // every file it loads anyway (on each lookup, without this); the only hazard is a font
        // file truncated in place while the server runs, which package managers never do (they
        // replace files, and a mapping keeps the old one). The README says to restart after
        // changing fonts.
        let _ = unsafe { database.make_shared_face_data(id) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/fonts")
    }

    #[test]
    fn shipped_only_is_inter_and_generic_families_resolve_to_it() {
        let fonts = load(&shipped(), &FontSettings::shipped_only()).unwrap();
        let names: Vec<&str> = fonts.chain.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["Inter"]);
        for generic in [
            fontdb::Family::Serif,
            fontdb::Family::Monospace,
            fontdb::Family::Cursive,
        ] {
            let id = fonts.database.query(&fontdb::Query {
                families: &[fontdb::Family::Name("Not Installed"), generic],
                ..fontdb::Query::default()
            });
            let face = id.and_then(|id| fonts.database.face(id)).unwrap();
            assert_eq!(family_name(face), Some("Inter"));
        }
    }

    #[test]
    fn a_missing_font_path_or_fallback_family_is_an_error() {
        let missing = FontSettings {
            paths: vec![PathBuf::from("/nonexistent/fonts")],
            ..FontSettings::shipped_only()
        };
        let error = load(&shipped(), &missing).err().unwrap().to_string();
        assert!(error.contains("/nonexistent/fonts"), "{error}");
        let unknown = FontSettings {
            fallback: vec!["Comic Nope".into()],
            ..FontSettings::shipped_only()
        };
        let error = load(&shipped(), &unknown).err().unwrap().to_string();
        assert!(error.contains("`Comic Nope` is not installed"), "{error}");
    }

    #[test]
    fn the_default_order_puts_shipped_then_operator_then_preferred_system_families() {
        let origin = |name: &str| match name {
            "Inter" => Origin::Shipped,
            "Brand Sans" => Origin::Operator,
            _ => Origin::System,
        };
        let names = vec![
            "Noto Kufi Arabic",
            "DejaVu Sans",
            "Noto Sans Arabic",
            "Noto Sans Adlam",
            "Brand Sans",
            "Noto Color Emoji",
            "Inter",
            "Noto Sans",
            "Noto Sans CJK JP",
            "Noto Sans CJK SC",
            "Noto Sans",
            "Bad'Name",
        ];
        assert_eq!(
            default_order(names, origin),
            [
                "Inter",
                "Brand Sans",
                "Noto Sans",
                "Noto Sans CJK SC",
                "Noto Sans Arabic",
                "Noto Color Emoji",
                "DejaVu Sans",
                "Noto Sans Adlam",
                "Noto Sans CJK JP",
                "Noto Kufi Arabic",
            ]
        );
        assert!(chain_family("Noto Color Emoji").emoji);
        assert!(!chain_family("Noto Sans").emoji);
    }
}
