//! A condition written in a manifest: one Tera expression over the block's template inputs
//! (`suppress_if`, a variant's `when`), compiled once in the sandbox as
//! `{% if EXPRESSION %}1{% endif %}`.
//!
//! A condition that cannot be evaluated (a field that is missing, a type that does not
//! compare) does not hold: the rule is skipped, never an error.

use super::sandbox::{self, RenderFailure};
use super::suppress::error_chain;

/// A compiled condition; `setting` names it in errors (`suppress_if`, `when`).
#[derive(Debug, Clone)]
pub(crate) struct Condition {
    tera: tera::Tera,
    setting: &'static str,
}

impl Condition {
    /// Compiles `expression`; refused when it is empty, holds `{% %}` or reaches a function
    /// templates may not call.
    pub(crate) fn compile(setting: &'static str, expression: &str) -> Result<Self, String> {
        if expression.contains("%}") || expression.contains("{%") || expression.trim().is_empty() {
            return Err(format!(
                "{setting} must be one Tera expression, without {{% %}}"
            ));
        }
        let source = format!("{{% if {expression} %}}1{{% endif %}}");
        sandbox::check_template(setting, &source, |_| false, &sandbox::OFFERED)
            .map_err(|refusal| format!("{setting}: {}", refusal.reason))?;
        let mut tera = sandbox::new_tera();
        tera.add_raw_template(setting, &source)
            .map_err(|e| format!("{setting} does not compile: {}", error_chain(&e)))?;
        Ok(Self { tera, setting })
    }

    /// Whether the condition holds for these template inputs.
    pub(crate) fn holds(&self, context: &tera::Context) -> bool {
        match sandbox::render(&self.tera, self.setting, context) {
            Ok(out) => out == "1",
            Err(RenderFailure::Tera(error)) => {
                tracing::debug!(setting = self.setting, error = %error_chain(&error), "condition not evaluable; does not hold");
                false
            }
            Err(RenderFailure::TooLarge(_)) => false,
        }
    }
}
