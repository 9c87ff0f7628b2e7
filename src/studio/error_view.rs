//! A template, manifest or sample error as the studio shows it: the whole message, and when
//! it names a place (`file:line:column: reason`, or TOML's "at line N, column M"), the file
//! relative to its campaign, the line and column, and the offending line read from disk.

use serde::Serialize;
use std::path::Path;

/// An error with the place it names, if any.
#[derive(Debug, Clone, Serialize)]
pub(super) struct ErrorView {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub place: Option<ErrorPlace>,
}

/// Where an error is: a file of the campaign, a line and column, the text of that line.
#[derive(Debug, Clone, Serialize)]
pub(super) struct ErrorPlace {
    /// The file relative to the campaign folder (`cart.svg`, `samples/alice.json`).
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The offending line as it is on disk (empty when it cannot be read).
    pub source_line: String,
}

impl ErrorView {
    /// Reads `message` for a place inside `campaign_dir`; the message's paths are shown
    /// relative to the templates folder (the campaign's parent), never as absolute paths.
    pub(super) fn new(message: &str, campaign_dir: &Path) -> Self {
        let root = campaign_dir.parent().unwrap_or(campaign_dir);
        let root_text = format!("{}/", root.display());
        let message = message.replace(&root_text, "");
        let place = place_in(&message, campaign_dir);
        Self { message, place }
    }
}

/// The first `campaign/file:line:column` the message names, else a TOML position in
/// `blocks.toml` when the message is about the manifest.
fn place_in(message: &str, campaign_dir: &Path) -> Option<ErrorPlace> {
    let campaign = campaign_dir.file_name()?.to_str()?;
    let prefix = format!("{campaign}/");
    for (start, _) in message.match_indices(&prefix) {
        if start > 0 && !message[..start].ends_with([' ', '\n', '`', '(', '"']) {
            continue;
        }
        let rest = &message[start + prefix.len()..];
        let mut parts = rest.splitn(4, ':');
        let (Some(file), Some(line), Some(column)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (Ok(line), Ok(column)) = (line.trim().parse(), column.trim().parse()) else {
            continue;
        };
        return Some(place(campaign_dir, file, line, column));
    }
    if message.contains(&format!("{campaign}/blocks.toml")) {
        let after = message.split("at line ").nth(1)?;
        let (line, rest) = after.split_once(", column ")?;
        let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
        return Some(place(
            campaign_dir,
            "blocks.toml",
            line.trim().parse().ok()?,
            column.parse().ok()?,
        ));
    }
    None
}

fn place(campaign_dir: &Path, file: &str, line: usize, column: usize) -> ErrorPlace {
    let source_line = std::fs::read_to_string(campaign_dir.join(file))
        .ok()
        .and_then(|text| text.lines().nth(line.saturating_sub(1)).map(str::to_owned))
        .unwrap_or_default();
    ErrorPlace {
        file: file.to_owned(),
        line,
        column,
        source_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A campaign folder `demo` holding one file.
    fn campaign_with(file: &str, text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("demo");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(file), text).unwrap();
        (root, dir)
    }

    #[test]
    fn a_tera_error_names_its_file_line_and_the_line_itself() {
        let (_root, dir) = campaign_with("cart.svg", "<svg>\n  {{ oops( }}\n</svg>\n");
        let message = format!("{}/cart.svg:2:12: expected an identifier", dir.display());
        let view = ErrorView::new(&message, &dir);
        assert_eq!(view.message, "demo/cart.svg:2:12: expected an identifier");
        let place = view.place.unwrap();
        assert_eq!(
            (place.file.as_str(), place.line, place.column),
            ("cart.svg", 2, 12)
        );
        assert_eq!(place.source_line, "  {{ oops( }}");
    }

    #[test]
    fn a_manifest_error_points_into_blocks_toml() {
        let (_root, dir) = campaign_with("blocks.toml", "[blocks.a]\nkind = image\n");
        let message = format!(
            "{}/blocks.toml: TOML parse error at line 2, column 8\n  |\n2 | kind = image",
            dir.display()
        );
        let place = ErrorView::new(&message, &dir).place.unwrap();
        assert_eq!((place.line, place.column), (2, 8));
        assert_eq!(place.source_line, "kind = image");
        assert!(ErrorView::new("demo/a.svg: no such variable", &dir)
            .place
            .is_none());
    }
}
