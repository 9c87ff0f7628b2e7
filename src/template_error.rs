//! Turns Tera's nested errors into one line a template author can act on:
//! `templates/demo/cart.svg:12:5: expected an identifier`.
//!
//! Shared by every block that renders a template (campaigns compiling and filling templates,
//! countdowns drawing their frames), so a template error reads the same wherever it happens.

use std::error::Error as _;
use std::path::Path;

/// Describes a Tera error for `template` (a file in `dir`) as `path:line:column: reason`,
/// or `path: reason` when Tera gives no position (most render-time errors).
pub(crate) fn describe_tera_error(error: &tera::Error, dir: &Path, template: &str) -> String {
    let mut messages = vec![error.to_string()];
    let mut source = error.source();
    while let Some(inner) = source {
        messages.push(inner.to_string());
        source = inner.source();
    }
    let path = dir.join(template);
    // Parse errors carry a pest report: " --> 12:5", the offending line, then "= expected …".
    for message in &messages {
        if let Some(position) = message
            .lines()
            .find_map(|line| line.trim_start().strip_prefix("--> "))
        {
            let reason = message
                .lines()
                .find_map(|line| line.trim_start().strip_prefix("= "))
                .unwrap_or("syntax error");
            return format!("{}:{}: {}", path.display(), position.trim(), reason.trim());
        }
    }
    // Otherwise the innermost message is the most specific one.
    let reason = messages
        .iter()
        .rev()
        .find(|m| !m.starts_with("Failed to "))
        .or(messages.last())
        .map(String::as_str)
        .unwrap_or("unknown template error");
    format!("{}: {}", path.display(), reason.replace('\n', " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_name_file_line_and_column() {
        let mut tera = tera::Tera::default();
        let error = tera
            .add_raw_template(
                "cart.svg",
                "<svg>\n<text>{{ name }}</text>\n<text>{{ oops( }}</text>",
            )
            .unwrap_err();
        let described = describe_tera_error(&error, Path::new("templates/demo"), "cart.svg");
        assert!(
            described.starts_with("templates/demo/cart.svg:3:"),
            "{described}"
        );
        assert!(described.contains("expected"), "{described}");
    }

    #[test]
    fn render_errors_keep_the_specific_reason() {
        let mut tera = tera::Tera::default();
        tera.add_raw_template("a.svg", "{{ missing.field }}")
            .unwrap();
        let error = tera.render("a.svg", &tera::Context::new()).unwrap_err();
        let described = describe_tera_error(&error, Path::new("t/demo"), "a.svg");
        assert!(described.starts_with("t/demo/a.svg: "), "{described}");
        assert!(described.contains("missing.field"), "{described}");
    }
}
