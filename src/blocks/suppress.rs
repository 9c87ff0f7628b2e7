//! Suppression: a block stops showing its offer when a condition over the context holds,
//! e.g. `suppress_if = 'ctx.sms.intent == "upgrade"'` once the SMS channel learned the person
//! upgraded. The condition is a Tera expression over the same inputs as the template, so the
//! decision is part of what the render cache key covers.
//!
//! A condition that cannot be evaluated (say `ctx.sms` is missing) does not suppress: the
//! block is shown as if the condition were false.

use super::condition::Condition;

/// What a suppressed block shows instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instead {
    /// Another SVG template of the campaign, at the block's size.
    Template(String),
    /// An image file of the campaign (SVG, PNG or GIF).
    Image(String),
    /// A 1×1 transparent pixel (and an empty HTML fragment).
    Pixel,
}

#[derive(Debug, Clone)]
pub struct Suppression {
    condition: Condition,
    pub instead: Instead,
}

impl Suppression {
    /// Compiles `condition`; `template` and `image` are the two ways to say what to show
    /// instead (at most one; neither means a transparent pixel).
    pub fn compile(
        condition: &str,
        template: Option<String>,
        image: Option<String>,
    ) -> Result<Self, String> {
        let instead = match (template, image) {
            (Some(_), Some(_)) => {
                return Err("give suppressed_template or suppressed_image, not both".into())
            }
            (Some(template), None) => Instead::Template(template),
            (None, Some(image)) => Instead::Image(image),
            (None, None) => Instead::Pixel,
        };
        Ok(Self {
            condition: Condition::compile("suppress_if", condition)?,
            instead,
        })
    }

    /// Whether the block is suppressed for these template inputs.
    pub fn applies(&self, context: &tera::Context) -> bool {
        self.condition.holds(context)
    }

    /// The template shown instead, when it is one (checked to exist when the campaign loads).
    pub fn template(&self) -> Option<&String> {
        match &self.instead {
            Instead::Template(template) => Some(template),
            _ => None,
        }
    }
}

/// A Tera error with its causes, on one line.
pub(crate) fn error_chain(error: &tera::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context(value: serde_json::Value) -> tera::Context {
        tera::Context::from_value(value).unwrap()
    }

    #[test]
    fn suppresses_only_when_the_condition_holds() {
        let rule = Suppression::compile(r#"ctx.sms.intent == "upgrade""#, None, None).unwrap();
        assert_eq!(rule.instead, Instead::Pixel);
        assert!(rule.applies(&context(json!({"ctx": {"sms": {"intent": "upgrade"}}}))));
        assert!(!rule.applies(&context(json!({"ctx": {"sms": {"intent": "cancel"}}}))));
        assert!(
            !rule.applies(&context(json!({"ctx": {}}))),
            "missing data does not suppress"
        );
    }

    #[test]
    fn refuses_bad_settings() {
        assert!(Suppression::compile("ctx.a ==", None, None).is_err());
        assert!(Suppression::compile("true %}{% raw", None, None).is_err());
        assert!(Suppression::compile("true", Some("a.svg".into()), Some("b.png".into())).is_err());
        let error = Suppression::compile(r#"get_env(name="OPENTIME_SECRET") != """#, None, None)
            .unwrap_err();
        assert!(error.contains("`get_env` is not available"), "{error}");
    }
}
