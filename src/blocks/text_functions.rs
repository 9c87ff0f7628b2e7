//! The templates' text functions, measured with the renderer's fonts, fallback and layout
//! (`crate::render::text_fit`), so a text a template fits is a text the renderer draws that
//! wide:
//!
//! - `text_lines(text, width, size, weight=400, family="Inter", max_lines=0, ellipsis="…")` →
//!   the lines of `text` wrapped at `width` pixels, the last ending in `ellipsis` when
//!   `max_lines` cuts it;
//! - `fit_size(text, width, max, min, weight=400, family="Inter", step=1)` → the largest size
//!   from `max` down to `min` (in steps of `step`) at which `text` fits `width` on one line;
//!   `min` when none does;
//! - `text_width(text, size, weight=400, family="Inter")` → the text's width in pixels.
//!
//! Their results depend only on their arguments (and the installed fonts), so a render stays
//! a function of its inputs and its cache key, and each call's outcome is kept: a name or a
//! product title that comes back costs a lookup. What they had to cut, or could not fit, is
//! noted for `opentime check` ([`collect_notes`]).

use crate::render::text_fit;
use crate::render::text_layout::{Style, Typesetter};
use quick_cache::sync::Cache;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use svgtypes::FontFamily;
use tera::{Tera, Value};
use xxhash_rust::xxh3::Xxh3;

/// The functions' names, for the sandbox's list of what templates may call.
pub(super) const NAMES: [&str; 3] = ["text_lines", "fit_size", "text_width"];

/// Sizes and widths the functions accept, in pixels.
const MAX_PIXELS: f64 = 10_000.0;
/// Lines `max_lines` may ask for.
const MAX_LINES: u64 = 1_000;

/// Something a text function had to do to a text: cut it, or leave it wider than its box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextNote(pub String);

impl std::fmt::Display for TextNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

thread_local! {
    /// Notes of the renders in [`collect_notes`] on this thread (Tera renders synchronously).
    static NOTES: RefCell<Option<Vec<TextNote>>> = const { RefCell::new(None) };
}

/// Runs `render` and returns, with its result, what the text functions noted while it ran.
pub fn collect_notes<T>(render: impl FnOnce() -> T) -> (T, Vec<TextNote>) {
    NOTES.with(|notes| notes.replace(Some(Vec::new())));
    let result = render();
    let notes = NOTES.with(|notes| notes.replace(None)).unwrap_or_default();
    (result, notes)
}

/// Notes what `text` says, when [`collect_notes`] is listening on this thread (made only then).
fn note(text: impl FnOnce() -> String) {
    NOTES.with(|notes| {
        if let Some(notes) = notes.borrow_mut().as_mut() {
            let text = text();
            if notes.len() < 100 && !notes.iter().any(|n| n.0 == text) {
                notes.push(TextNote(text));
            }
        }
    });
}

/// Calls whose outcome is kept (a campaign's names and product titles come back render after
/// render).
const KEPT_CALLS: usize = 50_000;

/// What a call returned, and what it noted.
struct Outcome {
    value: Value,
    notes: Vec<String>,
}

type Function = fn(&Typesetter, &HashMap<String, Value>) -> tera::Result<Outcome>;

/// Registers the functions on `tera`, measuring with `typesetter`. Their outcomes are kept by
/// their arguments: they depend on nothing else.
pub(super) fn register(tera: &mut Tera, typesetter: &Arc<Typesetter>) {
    let kept: Arc<Cache<u128, Arc<Outcome>>> = Arc::new(Cache::new(KEPT_CALLS));
    let functions: [(&'static str, Function); 3] = [
        (NAMES[0], text_lines),
        (NAMES[1], fit_size),
        (NAMES[2], text_width),
    ];
    for (name, function) in functions {
        let (typesetter, kept) = (Arc::clone(typesetter), Arc::clone(&kept));
        tera.register_function(name, move |args: &HashMap<String, Value>| {
            let key = call_key(name, args);
            let outcome = match kept.get(&key) {
                Some(outcome) => outcome,
                None => {
                    let outcome = Arc::new(function(&typesetter, args)?);
                    kept.insert(key, Arc::clone(&outcome));
                    outcome
                }
            };
            for text in &outcome.notes {
                note(|| text.clone());
            }
            Ok(outcome.value.clone())
        });
    }
}

/// A call's function and arguments, hashed.
fn call_key(function: &str, args: &HashMap<String, Value>) -> u128 {
    let mut hasher = Xxh3::new();
    hasher.update(function.as_bytes());
    let mut names: Vec<&String> = args.keys().collect();
    names.sort();
    for name in names {
        hasher.update(&[0]);
        hasher.update(name.as_bytes());
        hasher.update(&[0]);
        if let Ok(value) = serde_json::to_vec(&args[name]) {
            hasher.update(&value);
        }
    }
    hasher.digest128()
}

/// A function's arguments, checked against the names it takes.
struct Args<'a> {
    function: &'static str,
    args: &'a HashMap<String, Value>,
}

impl<'a> Args<'a> {
    fn new(
        function: &'static str,
        args: &'a HashMap<String, Value>,
        known: &[&str],
    ) -> tera::Result<Self> {
        if let Some(unknown) = args.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(tera::Error::msg(format!(
                "{function}: unknown argument `{unknown}` (it takes {})",
                known.join(", ")
            )));
        }
        Ok(Self { function, args })
    }

    fn error(&self, message: String) -> tera::Error {
        tera::Error::msg(format!("{}: {message}", self.function))
    }

    /// A text argument (numbers are written as Tera writes them; null is empty).
    fn text(&self, name: &str) -> tera::Result<String> {
        match self.args.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(Value::Bool(b)) => Ok(b.to_string()),
            Some(Value::Null) => Ok(String::new()),
            Some(other) => Err(self.error(format!("`{name}` must be a text, not {other}"))),
            None => Err(self.error(format!("`{name}` is missing"))),
        }
    }

    fn optional_text(&self, name: &str, default: &str) -> tera::Result<String> {
        match self.args.get(name) {
            None => Ok(default.to_owned()),
            Some(_) => self.text(name),
        }
    }

    /// A number in `0 < n ≤ MAX_PIXELS`.
    fn pixels(&self, name: &str) -> tera::Result<f32> {
        let value = self
            .args
            .get(name)
            .ok_or_else(|| self.error(format!("`{name}` is missing")))?;
        let number = match value {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match number {
            Some(n) if n > 0.0 && n <= MAX_PIXELS => Ok(n as f32),
            _ => Err(self.error(format!(
                "`{name}` must be a number of pixels above 0 and at most {MAX_PIXELS}, not {value}"
            ))),
        }
    }

    fn optional_pixels(&self, name: &str, default: f32) -> tera::Result<f32> {
        match self.args.get(name) {
            None => Ok(default),
            Some(_) => self.pixels(name),
        }
    }

    /// `weight`: 1–1000, `normal` or `bold` (400 when absent).
    fn weight(&self) -> tera::Result<u16> {
        let value = match self.args.get("weight") {
            None => return Ok(400),
            Some(value) => value,
        };
        let weight = match value {
            Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            Value::String(s) => match s.trim() {
                "normal" => Some(400),
                "bold" => Some(700),
                other => other.parse::<u16>().ok(),
            },
            _ => None,
        };
        weight.filter(|w| (1..=1000).contains(w)).ok_or_else(|| {
            self.error(format!(
                "`weight` must be 1–1000, `normal` or `bold`, not {value}"
            ))
        })
    }

    /// `family`: a CSS font family list, as in `font-family` (`Inter` when absent).
    fn families(&self) -> tera::Result<Vec<FontFamily>> {
        let family = self.optional_text("family", "Inter")?;
        match svgtypes::parse_font_families(&family) {
            Ok(families) if !families.is_empty() => Ok(families),
            _ => Err(self.error(format!(
                "`family` must be a font-family list such as `Inter` or `'Noto Sans', sans-serif`, not `{family}`"
            ))),
        }
    }

    /// `max_lines`: 0 (no limit) or a positive whole number.
    fn max_lines(&self) -> tera::Result<usize> {
        match self.args.get("max_lines") {
            None => Ok(0),
            Some(value) => value
                .as_u64()
                .filter(|n| *n <= MAX_LINES)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    self.error(format!(
                        "`max_lines` must be a whole number from 0 (no limit) to {MAX_LINES}, not {value}"
                    ))
                }),
        }
    }
}

/// A number as templates should print it: whole numbers without a fraction, others to 1/100.
fn number(n: f32) -> Value {
    let n = f64::from(n);
    if n.fract() == 0.0 && n.abs() < 1e9 {
        Value::from(n as i64)
    } else {
        Value::from((n * 100.0).round() / 100.0)
    }
}

/// A text for a note: quoted, shortened.
fn quoted(text: &str) -> String {
    let short: String = text.chars().take(60).collect();
    if short.len() < text.len() {
        format!("\"{short}…\"")
    } else {
        format!("\"{short}\"")
    }
}

fn text_lines(typesetter: &Typesetter, args: &HashMap<String, Value>) -> tera::Result<Outcome> {
    let args = Args::new(
        "text_lines",
        args,
        &[
            "text",
            "width",
            "size",
            "weight",
            "family",
            "max_lines",
            "ellipsis",
        ],
    )?;
    let text = args.text("text")?;
    let width = args.pixels("width")?;
    let families = args.families()?;
    let style = Style {
        families: &families,
        weight: args.weight()?,
        size: args.pixels("size")?,
    };
    let max_lines = args.max_lines()?;
    let ellipsis = args.optional_text("ellipsis", "…")?;
    let wrapped = text_fit::lines(typesetter, &text, &style, width, max_lines, &ellipsis);
    let mut notes = Vec::new();
    if wrapped.cut {
        notes.push(format!(
            "text_lines cut {} to {} line(s) of {width} px",
            quoted(&text),
            wrapped.lines.len()
        ));
    }
    if wrapped.overflow {
        notes.push(format!(
            "text_lines: {} does not fit {width} px even one character a line",
            quoted(&text)
        ));
    }
    Ok(Outcome {
        value: Value::from(wrapped.lines),
        notes,
    })
}

fn fit_size(typesetter: &Typesetter, args: &HashMap<String, Value>) -> tera::Result<Outcome> {
    let args = Args::new(
        "fit_size",
        args,
        &["text", "width", "max", "min", "weight", "family", "step"],
    )?;
    let text = args.text("text")?;
    let width = args.pixels("width")?;
    let (max, min) = (args.pixels("max")?, args.pixels("min")?);
    if min > max {
        return Err(args.error(format!("`min` ({min}) is above `max` ({max})")));
    }
    let step = args.optional_pixels("step", 1.0)?;
    let families = args.families()?;
    let style = Style {
        families: &families,
        weight: args.weight()?,
        size: max,
    };
    let (size, fits) = text_fit::fit_size(typesetter, &text, &style, width, (min, max, step));
    let mut notes = Vec::new();
    if !fits {
        notes.push(format!(
            "fit_size: {} overflows {width} px even at the smallest size, {min} px",
            quoted(&text)
        ));
    }
    Ok(Outcome {
        value: number(size),
        notes,
    })
}

fn text_width(typesetter: &Typesetter, args: &HashMap<String, Value>) -> tera::Result<Outcome> {
    let args = Args::new("text_width", args, &["text", "size", "weight", "family"])?;
    let text = args.text("text")?;
    let families = args.families()?;
    let style = Style {
        families: &families,
        weight: args.weight()?,
        size: args.pixels("size")?,
    };
    Ok(Outcome {
        value: number(text_fit::width(typesetter, &text, &style)),
        notes: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{FontSettings, Renderer};
    use std::sync::OnceLock;

    fn renderer() -> &'static Renderer {
        static RENDERER: OnceLock<Renderer> = OnceLock::new();
        RENDERER.get_or_init(|| {
            let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
            Renderer::load_with(&assets, &FontSettings::debian_noto())
                .expect("Debian's Noto fonts: run scripts/test")
        })
    }

    fn rendered(source: &str) -> Result<String, String> {
        let mut tera = super::super::sandbox::new_template_tera(renderer().typesetter());
        tera.add_raw_template("t.svg", source)
            .map_err(|e| e.to_string())?;
        tera.render("t.svg", &tera::Context::new())
            .map_err(|e| crate::blocks::suppress::error_chain(&e))
    }

    #[test]
    fn text_lines_wraps_and_notes_what_it_cut() {
        let source = r#"{% for line in text_lines(text="Studio headphones (noise-cancelling, wireless, over-ear)", width=200, size=15, weight=700, max_lines=2) %}[{{ line }}]{% endfor %}"#;
        let (out, notes) = collect_notes(|| rendered(source));
        let out = out.unwrap();
        assert!(out.starts_with("[Studio headphones"), "{out}");
        assert_eq!(out.matches('[').count(), 2, "{out}");
        assert!(out.ends_with("…]"), "{out}");
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].0.contains("cut"), "{notes:?}");
        // A call that comes back is kept, and still noted; outside `collect_notes`, nothing is
        // noted (and nothing leaks into the next run).
        let mut tera = super::super::sandbox::new_template_tera(renderer().typesetter());
        tera.add_raw_template("t.svg", source).unwrap();
        for _ in 0..2 {
            let (again, notes_again) =
                collect_notes(|| tera.render("t.svg", &tera::Context::new()).unwrap());
            assert_eq!((&again, &notes_again), (&out, &notes));
        }
        assert!(rendered(source).is_ok());
        let (_, notes) = collect_notes(|| {
            rendered(r#"{{ text_lines(text="Bob", width=200, size=15) | join(sep="|") }}"#)
        });
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn fit_size_and_text_width_print_plain_numbers() {
        assert_eq!(
            rendered(r#"{{ fit_size(text="Hi Bob", width=400, max=30, min=12, weight="bold") }}"#)
                .unwrap(),
            "30"
        );
        let fitted: f64 = rendered(
            r#"{{ fit_size(text="Spring is here, Maximiliane-Charlotte!", width=300, max=30, min=12, weight=700, step=0.5) }}"#,
        )
        .unwrap()
        .parse()
        .unwrap();
        assert!(
            (12.0..30.0).contains(&fitted) && (fitted * 2.0).fract() == 0.0,
            "{fitted}"
        );
        let (out, notes) = collect_notes(|| {
            rendered(
                r#"{{ fit_size(text="Maximiliane-Charlotte von Hohenzollern", width=50, max=30, min=12) }}"#,
            )
        });
        assert_eq!(out.unwrap(), "12");
        assert!(notes[0].0.contains("overflows 50 px"), "{notes:?}");
        let width: f64 =
            rendered(r#"{{ text_width(text="Мария", size=20, family="Inter, sans-serif") }}"#)
                .unwrap()
                .parse()
                .unwrap();
        assert!(width > 40.0 && width < 80.0, "{width}");
    }

    #[test]
    fn bad_arguments_are_errors_that_name_the_function() {
        for (source, expected) in [
            (
                r#"{{ text_lines(text="a", size=15) }}"#,
                "text_lines: `width` is missing",
            ),
            (
                r#"{{ text_lines(text="a", width=-3, size=15) }}"#,
                "`width` must be a number",
            ),
            (
                r#"{{ text_lines(text="a", width=9, size=15, maxlines=2) }}"#,
                "unknown argument `maxlines`",
            ),
            (
                r#"{{ text_lines(text="a", width=9, size=15, max_lines=-1) }}"#,
                "`max_lines` must be",
            ),
            (
                r#"{{ text_width(text="a", size=15, weight=1200) }}"#,
                "`weight` must be 1–1000",
            ),
            (
                r#"{{ text_width(text="a", size=15, family="") }}"#,
                "`family` must be",
            ),
            (
                r#"{{ fit_size(text="a", width=9, max=10, min=20) }}"#,
                "`min` (20) is above `max` (10)",
            ),
            (
                r#"{{ text_width(text=[1], size=15) }}"#,
                "`text` must be a text",
            ),
        ] {
            let error = rendered(source).unwrap_err();
            assert!(error.contains(expected), "{source}: {error}");
        }
    }
}
