//! Which face draws a character: the text's own family when it has it, else the first family of
//! the fallback chain ([`super::fonts`]) whose face of the text's weight has every character of
//! the grapheme cluster (so a base letter and its accents, or an emoji and its modifiers, come
//! from one font). Two refinements over plain chain order: emoji clusters (a variation selector
//! 16, a skin tone, a flag, a pictograph) try colour emoji families first, and Chinese
//! characters in a text with kana or Hangul try the Japanese or Korean face first.
//!
//! The same choice serves both drawers: [`super::text_layout`] itemizes plain texts with it, and
//! usvg, for the texts it lays out itself, gets it as its font resolver ([`FontChoice::resolver`]).
//! Both the text-level query and the per-cluster choice are kept, so a large system font
//! database costs a lookup, not a scan, per text.

use super::fonts::ChainFamily;
use quick_cache::sync::Cache;
use resvg::usvg::{self, fontdb};
use skrifa::MetadataProvider;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};
use svgtypes::FontFamily;
use unicode_script::{Script, UnicodeScript};

/// Distinct clusters (and text-level queries) whose face is kept.
const KEPT_CHOICES: usize = 100_000;

/// What a text's other characters say about its Chinese characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Hint {
    None,
    /// The text has kana: Han characters are Japanese.
    Japanese,
    /// The text has Hangul: Han characters are Korean.
    Korean,
}

impl Hint {
    pub(crate) fn of(text: &str) -> Self {
        let mut hint = Hint::None;
        for c in text.chars().filter(|c| !c.is_ascii()) {
            match c.script() {
                Script::Hiragana | Script::Katakana => return Hint::Japanese,
                Script::Hangul => hint = Hint::Korean,
                _ => {}
            }
        }
        hint
    }
}

/// The text-level query key: a hash of the families, and the weight.
type QueryKey = (u64, u16);

pub(crate) struct FontChoice {
    database: Arc<fontdb::Database>,
    chain: Vec<ChainFamily>,
    /// The face of chain family `i` at a weight.
    family_faces: RwLock<HashMap<(usize, u16), Option<fontdb::ID>>>,
    /// A text's own face, by families and weight.
    primaries: Cache<QueryKey, Option<fontdb::ID>>,
    /// The chain's face for a cluster, by cluster, weight and hint.
    clusters: Cache<(Box<str>, u16, Hint), Option<fontdb::ID>>,
}

impl FontChoice {
    pub(crate) fn new(database: Arc<fontdb::Database>, chain: Vec<ChainFamily>) -> Self {
        Self {
            database,
            chain,
            family_faces: RwLock::new(HashMap::new()),
            primaries: Cache::new(KEPT_CHOICES),
            clusters: Cache::new(KEPT_CHOICES),
        }
    }

    pub(crate) fn database(&self) -> &Arc<fontdb::Database> {
        &self.database
    }

    /// The families of the fallback chain, in order.
    pub(crate) fn chain(&self) -> impl Iterator<Item = &str> {
        self.chain.iter().map(|family| family.name.as_str())
    }

    /// The face usvg's own query picks for `families` (then the default family) at `weight`,
    /// normal width and style.
    pub(crate) fn primary(&self, families: &[FontFamily], weight: u16) -> Option<fontdb::ID> {
        // Hashed, not written out: this runs for every text of every render. (Two lists with
        // one hash would share a face: a wrong family, never a wrong glyph or a crash.)
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        families.hash(&mut hasher);
        let key = (hasher.finish(), weight);
        if let Some(kept) = self.primaries.get(&key) {
            return kept;
        }
        let id = self.query(
            families,
            weight,
            fontdb::Stretch::Normal,
            fontdb::Style::Normal,
        );
        self.primaries.insert(key, id);
        id
    }

    fn query(
        &self,
        families: &[FontFamily],
        weight: u16,
        stretch: fontdb::Stretch,
        style: fontdb::Style,
    ) -> Option<fontdb::ID> {
        let mut names: Vec<fontdb::Family<'_>> = families
            .iter()
            .map(|family| match family {
                FontFamily::Serif => fontdb::Family::Serif,
                FontFamily::SansSerif => fontdb::Family::SansSerif,
                FontFamily::Cursive => fontdb::Family::Cursive,
                FontFamily::Fantasy => fontdb::Family::Fantasy,
                FontFamily::Monospace => fontdb::Family::Monospace,
                FontFamily::Named(name) => fontdb::Family::Name(name.as_str()),
            })
            .collect();
        // usvg's default selector ends with the serif family (the default family here).
        names.push(fontdb::Family::Serif);
        self.database.query(&fontdb::Query {
            families: &names,
            weight: fontdb::Weight(weight),
            stretch,
            style,
        })
    }

    /// The face of chain family `index` at `weight`.
    fn family_face(&self, index: usize, weight: u16) -> Option<fontdb::ID> {
        if let Ok(kept) = self.family_faces.read() {
            if let Some(id) = kept.get(&(index, weight)) {
                return *id;
            }
        }
        let family = self.chain.get(index)?;
        let id = self.database.query(&fontdb::Query {
            families: &[fontdb::Family::Name(&family.name)],
            weight: fontdb::Weight(weight),
            stretch: fontdb::Stretch::Normal,
            style: fontdb::Style::Normal,
        });
        if let Ok(mut kept) = self.family_faces.write() {
            kept.insert((index, weight), id);
        }
        id
    }

    /// Whether face `id` maps every character of `chars`.
    pub(crate) fn covers(&self, id: fontdb::ID, chars: &[char]) -> bool {
        self.database
            .with_face_data(id, |data, index| {
                let Ok(font) = skrifa::FontRef::from_index(data, index) else {
                    return false;
                };
                let charmap = font.charmap();
                chars.iter().all(|c| charmap.map(*c).is_some())
            })
            .unwrap_or(false)
    }

    /// The face that draws grapheme cluster `cluster` of a text whose own face is `own`: `own`
    /// when it has the cluster (and the cluster is not an emoji), else the chain's choice.
    /// `None` when no font has the cluster's first character.
    pub(crate) fn for_cluster(
        &self,
        cluster: &str,
        weight: u16,
        hint: Hint,
        own: Option<fontdb::ID>,
    ) -> Option<fontdb::ID> {
        let needed = needed_chars(cluster);
        if needed.is_empty() {
            return own;
        }
        if let Some(own) = own {
            if !is_emoji_cluster(cluster) && self.covers(own, &needed) {
                return Some(own);
            }
        }
        let key = (Box::from(cluster), weight, hint);
        if let Some(kept) = self.clusters.get(&key) {
            return kept.or(own.filter(|own| self.covers(*own, &needed[..1])));
        }
        let chosen = self.search(&needed, cluster, weight, hint, &[]);
        self.clusters.insert(key, chosen);
        chosen.or(own.filter(|own| self.covers(*own, &needed[..1])))
    }

    /// Whether any font of the chain has `c` (a character no font has is drawn as a box).
    pub(crate) fn has_any(&self, c: char) -> bool {
        let mut buffer = [0u8; 4];
        self.for_cluster(c.encode_utf8(&mut buffer), 400, Hint::None, None)
            .is_some()
    }

    /// The chain, in the order a cluster tries it: emoji families first for an emoji, the
    /// Japanese or Korean faces first for Chinese characters when `hint` says so.
    fn order(&self, cluster: &str, hint: Hint) -> Vec<usize> {
        let emoji = is_emoji_cluster(cluster);
        let script = cluster
            .chars()
            .map(|c| c.script())
            .find(|s| !matches!(s, Script::Common | Script::Inherited | Script::Unknown));
        let suffix = match (hint, script) {
            (Hint::Japanese, Some(Script::Han | Script::Hiragana | Script::Katakana)) => {
                Some(" JP")
            }
            (Hint::Korean, Some(Script::Han | Script::Hangul)) => Some(" KR"),
            _ => None,
        };
        let first = |family: &ChainFamily| {
            (emoji && family.emoji) || suffix.is_some_and(|s| family.name.ends_with(s))
        };
        let mut order: Vec<usize> = (0..self.chain.len())
            .filter(|i| first(&self.chain[*i]))
            .collect();
        order.extend((0..self.chain.len()).filter(|i| !first(&self.chain[*i])));
        order
    }

    /// The first chain face with all of `needed`, else the first with its first character;
    /// never one of `used`.
    fn search(
        &self,
        needed: &[char],
        cluster: &str,
        weight: u16,
        hint: Hint,
        used: &[fontdb::ID],
    ) -> Option<fontdb::ID> {
        let order = self.order(cluster, hint);
        let faces: Vec<fontdb::ID> = order
            .iter()
            .filter_map(|i| self.family_face(*i, weight))
            .filter(|id| !used.contains(id))
            .collect();
        faces
            .iter()
            .find(|id| self.covers(**id, needed))
            .or_else(|| faces.iter().find(|id| self.covers(**id, &needed[..1])))
            .copied()
    }

    /// usvg's font resolver with this choice: the text-level query kept, and a missing
    /// character's fallback taken from the chain (at the weight of the text's own face).
    pub(crate) fn resolver(self: &Arc<Self>) -> usvg::FontResolver<'static> {
        let (select, fallback) = (Arc::clone(self), Arc::clone(self));
        usvg::FontResolver {
            select_font: Box::new(move |font, _| {
                let stretch = stretch(font.stretch());
                let style = match font.style() {
                    usvg::FontStyle::Normal => fontdb::Style::Normal,
                    usvg::FontStyle::Italic => fontdb::Style::Italic,
                    usvg::FontStyle::Oblique => fontdb::Style::Oblique,
                };
                if stretch == fontdb::Stretch::Normal && style == fontdb::Style::Normal {
                    select.primary(font.families(), font.weight())
                } else {
                    select.query(font.families(), font.weight(), stretch, style)
                }
            }),
            select_fallback: Box::new(move |c, used, database| {
                let weight = used
                    .first()
                    .and_then(|id| database.face(*id))
                    .map_or(400, |face| face.weight.0);
                let mut buffer = [0u8; 4];
                let cluster: &str = c.encode_utf8(&mut buffer);
                fallback.search(&[c], cluster, weight, Hint::None, used)
            }),
        }
    }
}

fn stretch(stretch: usvg::FontStretch) -> fontdb::Stretch {
    match stretch {
        usvg::FontStretch::UltraCondensed => fontdb::Stretch::UltraCondensed,
        usvg::FontStretch::ExtraCondensed => fontdb::Stretch::ExtraCondensed,
        usvg::FontStretch::Condensed => fontdb::Stretch::Condensed,
        usvg::FontStretch::SemiCondensed => fontdb::Stretch::SemiCondensed,
        usvg::FontStretch::Normal => fontdb::Stretch::Normal,
        usvg::FontStretch::SemiExpanded => fontdb::Stretch::SemiExpanded,
        usvg::FontStretch::Expanded => fontdb::Stretch::Expanded,
        usvg::FontStretch::ExtraExpanded => fontdb::Stretch::ExtraExpanded,
        usvg::FontStretch::UltraExpanded => fontdb::Stretch::UltraExpanded,
    }
}

/// Characters a shaper hides when the font lacks them (joiners, variation selectors, bidi
/// marks, …): a face need not have them.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{E0001}'
            | '\u{E0100}'..='\u{E01EF}'
    ) || c.is_control()
}

/// The characters of `cluster` a face must have to draw it.
fn needed_chars(cluster: &str) -> Vec<char> {
    cluster.chars().filter(|c| !is_invisible(*c)).collect()
}

/// Whether `cluster` asks for an emoji picture: a variation selector 16, a skin tone or a
/// regional indicator, or a character of the pictograph and emoji blocks.
pub(crate) fn is_emoji_cluster(cluster: &str) -> bool {
    cluster.chars().any(|c| {
        matches!(
            c,
            '\u{FE0F}' | '\u{20E3}' | '\u{1F000}'..='\u{1FAFF}' | '\u{E0020}'..='\u{E007F}'
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_come_from_kana_and_hangul() {
        assert_eq!(Hint::of("佐藤 さくら"), Hint::Japanese);
        assert_eq!(Hint::of("김민준"), Hint::Korean);
        assert_eq!(Hint::of("张伟"), Hint::None);
        assert_eq!(Hint::of("Maria"), Hint::None);
    }

    #[test]
    fn emoji_clusters_and_invisible_characters() {
        for emoji in ["👍🏽", "🇩🇪", "❤\u{FE0F}", "1\u{FE0F}\u{20E3}", "🎉"] {
            assert!(is_emoji_cluster(emoji), "{emoji}");
        }
        for text in ["❤", "A", "©", "张"] {
            assert!(!is_emoji_cluster(text), "{text}");
        }
        assert_eq!(needed_chars("👨\u{200D}👩"), ['👨', '👩']);
        assert_eq!(needed_chars("\u{200F}"), Vec::<char>::new());
    }

    #[test]
    fn the_text_s_own_face_comes_first_and_the_shipped_fonts_have_no_cyrillic() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/fonts");
        let fonts =
            super::super::fonts::load(&root, &super::super::fonts::FontSettings::shipped_only())
                .unwrap();
        let choice = FontChoice::new(fonts.database, fonts.chain);
        let inter = choice.primary(&[FontFamily::Named("Inter".into())], 700);
        assert!(inter.is_some());
        assert_eq!(choice.for_cluster("é", 700, Hint::None, inter), inter);
        assert!(choice.has_any('€'));
        assert!(!choice.has_any('Ж'));
        assert_eq!(choice.for_cluster("Ж", 700, Hint::None, None), None);
        assert_eq!(choice.for_cluster("Ж", 700, Hint::None, inter), None);
    }
}
