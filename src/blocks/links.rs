//! Click-through links of a block: `link` is a Tera template over the block's inputs plus `i`
//! (the clicked item's index), e.g. `{{ ctx.cart.items[i].url }}`. A target is used only when
//! it is an http(s) URL on one of the block's `link_hosts`; anything else (an empty render, an
//! error, another host, a URL with credentials or odd characters) goes to `default_link`, so
//! a tampered context can never turn opentime into an open redirect.

use super::sandbox::RenderFailure;
use super::suppress::error_chain;

const LINK: &str = "link";

#[derive(Debug, Clone)]
pub struct Links {
    /// The `link` template, when the block has one.
    template: Option<tera::Tera>,
    /// Hosts a target may point to: exact names, or `*.example.com` for any subdomain.
    hosts: Vec<String>,
    /// Where a click goes when the item's link is unusable.
    pub default: String,
}

/// Which link a click got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Item(String),
    Default(String),
    /// The link of the variant the open showed.
    Variant(String),
}

impl Target {
    pub fn url(&self) -> &str {
        match self {
            Target::Item(url) | Target::Default(url) | Target::Variant(url) => url,
        }
    }

    /// `item` or `default`, as recorded in the click event.
    pub fn label(&self) -> &'static str {
        match self {
            Target::Item(_) => "item",
            Target::Default(_) => "default",
            Target::Variant(_) => "variant",
        }
    }
}

impl Links {
    pub fn compile(
        template: Option<&str>,
        hosts: Vec<String>,
        default: String,
    ) -> Result<Self, String> {
        let hosts: Vec<String> = hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect();
        if template.is_some() && hosts.is_empty() {
            return Err("`link` needs `link_hosts`, the hosts its targets may point to".into());
        }
        if host_of(&default).is_none() {
            return Err(format!(
                "default_link `{default}` must be an absolute http(s) URL"
            ));
        }
        let template = match template {
            Some(text) => {
                super::sandbox::check_template(LINK, text, |_| false, &super::sandbox::OFFERED)
                    .map_err(|refusal| format!("link: {}", refusal.reason))?;
                let mut tera = super::sandbox::new_tera();
                tera.add_raw_template(LINK, text)
                    .map_err(|e| format!("link does not compile: {}", error_chain(&e)))?;
                Some(tera)
            }
            None => None,
        };
        Ok(Self {
            template,
            hosts,
            default,
        })
    }

    /// The target for item `index`, given the block's template context.
    pub fn target(&self, context: &tera::Context, index: Option<usize>) -> Target {
        let (Some(tera), Some(index)) = (&self.template, index) else {
            return Target::Default(self.default.clone());
        };
        let mut context = context.clone();
        context.insert("i", &index);
        match super::sandbox::render(tera, LINK, &context) {
            Ok(url) if self.allows(url.trim()) => Target::Item(url.trim().to_owned()),
            Ok(_) => Target::Default(self.default.clone()),
            Err(RenderFailure::Tera(error)) => {
                tracing::debug!(error = %error_chain(&error), "link not evaluable; default link");
                Target::Default(self.default.clone())
            }
            Err(RenderFailure::TooLarge(bytes)) => {
                tracing::debug!(bytes, "link too long; default link");
                Target::Default(self.default.clone())
            }
        }
    }

    /// Whether `url` is an http(s) URL on an allowed host.
    pub fn allows(&self, url: &str) -> bool {
        let Some(host) = host_of(url) else {
            return false;
        };
        self.hosts
            .iter()
            .any(|allowed| match allowed.strip_prefix("*.") {
                Some(domain) => host
                    .strip_suffix(domain)
                    .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1),
                None => host == *allowed,
            })
    }
}

/// The lower-cased host of an absolute http(s) URL with no credentials, whitespace, control
/// characters or backslashes; `None` for anything else.
fn host_of(url: &str) -> Option<String> {
    if !url.is_ascii()
        || url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
    {
        return None;
    }
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') || authority.starts_with('[') {
        return None;
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        Some(_) => return None,
        None => authority,
    };
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    valid.then(|| host.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn links() -> Links {
        Links::compile(
            Some("{{ ctx.cart.items[i].url }}"),
            vec!["shop.example.com".into(), "*.cdn.example.com".into()],
            "https://shop.example.com/cart".into(),
        )
        .unwrap()
    }

    #[test]
    fn item_links_on_allowed_hosts_only() {
        let context = tera::Context::from_value(json!({"ctx": {"cart": {"items": [
            {"url": "https://shop.example.com/p/1"},
            {"url": "https://evil.example/p/2"},
        ]}}}))
        .unwrap();
        let links = links();
        assert_eq!(
            links.target(&context, Some(0)),
            Target::Item("https://shop.example.com/p/1".into())
        );
        let default = Target::Default("https://shop.example.com/cart".into());
        assert_eq!(links.target(&context, Some(1)), default);
        assert_eq!(links.target(&context, Some(7)), default);
        assert_eq!(links.target(&context, None), default);
    }

    #[test]
    fn host_checks_resist_tricks() {
        let links = links();
        assert!(links.allows("https://SHOP.example.com:443/x?y#z"));
        assert!(links.allows("https://a.cdn.example.com/x"));
        assert!(!links.allows("https://cdn.example.com/x"));
        assert!(!links.allows("https://shop.example.com@evil.example/"));
        assert!(!links.allows("https://evil.example\\@shop.example.com/"));
        assert!(!links.allows("https://shop.example.com.evil.example/"));
        assert!(!links.allows("javascript:alert(1)//shop.example.com"));
        assert!(!links.allows("//shop.example.com/x"));
        assert!(!links.allows("https://shop.example.com/\nSet-Cookie: x"));
        assert!(Links::compile(None, vec![], "/relative".into()).is_err());
        assert!(Links::compile(Some("{{ x }}"), vec![], "https://a.example".into()).is_err());
    }

    proptest::proptest! {
        /// Whatever the context holds, a click goes to an allowed host or to the default link.
        #[test]
        fn clicks_go_only_to_allowed_hosts_or_the_default(
            url in "(https?://)?[a-z.]{0,20}(\\.example\\.com|\\.evil\\.test)?(:[0-9]{1,5})?(/\\PC{0,20})?|\\PC{0,40}",
            index in proptest::option::of(0usize..4),
        ) {
            let links = Links::compile(
                Some("{{ ctx.cart.items[i].url }}"),
                vec!["shop.example.com".into(), "*.cdn.example.com".into()],
                "https://shop.example.com/cart".into(),
            )
            .unwrap();
            let mut context = tera::Context::new();
            context.insert("ctx", &json!({"cart": {"items": [{"url": url}, {"url": url}]}}));
            match links.target(&context, index) {
                Target::Item(target) | Target::Variant(target) => proptest::prop_assert!(links.allows(&target)),
                Target::Default(target) => {
                    proptest::prop_assert_eq!(target, "https://shop.example.com/cart")
                }
            }
        }
    }

    #[test]
    fn link_templates_cannot_read_the_environment() {
        let error = Links::compile(
            Some(r#"https://shop.example.com/?k={{ get_env(name="OPENTIME_SECRET") }}"#),
            vec!["shop.example.com".into()],
            "https://shop.example.com/".into(),
        )
        .unwrap_err();
        assert!(error.contains("`get_env` is not available"), "{error}");
    }
}
