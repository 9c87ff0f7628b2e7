//! A campaign's polls, as declared in `blocks.toml`: the options, where a vote is thanked
//! (an allow-listed link) and whether a subscriber may change their vote.
//!
//! ```toml
//! [polls.sport]
//! options = ["running", "yoga", "cycling"]
//! labels = { running = "Running", yoga = "Yoga", cycling = "Cycling" }
//! thank_you = "https://shop.example.com/thanks?vote={option}"
//! link_hosts = ["shop.example.com"]
//! change = false        # true: a second vote replaces the first
//! ```
//! An email links each option to `/vote/{campaign}/{poll}/{option}?s=…&t=…`; a block with
//! `poll = "sport"` shows the live counts (`poll.options[i].votes`, `.share`, `poll.total`).

use super::links::Links;
use serde::Deserialize;
use std::collections::BTreeMap;

const MAX_OPTIONS: usize = 16;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PollSettings {
    pub(crate) options: Vec<String>,
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) thank_you: String,
    #[serde(default)]
    pub(crate) link_hosts: Vec<String>,
    #[serde(default)]
    pub(crate) change: bool,
}

#[derive(Debug, Clone)]
pub struct Poll {
    pub name: String,
    /// Option names, in the manifest's order.
    pub options: Vec<String>,
    labels: BTreeMap<String, String>,
    /// The thank-you link, with `{option}` where the chosen option goes.
    thank_you: String,
    hosts: Links,
    /// Whether a second vote replaces the first (otherwise it is ignored).
    pub change: bool,
}

impl Poll {
    pub(crate) fn compile(name: &str, s: PollSettings) -> Result<Self, String> {
        let named = |reason: String| format!("poll `{name}`: {reason}");
        if !super::is_valid_name(name) {
            return Err(named("names use a-z, 0-9, - and _ only".into()));
        }
        if s.options.len() < 2 || s.options.len() > MAX_OPTIONS {
            return Err(named(format!("list 2..={MAX_OPTIONS} options")));
        }
        for (index, option) in s.options.iter().enumerate() {
            if !super::is_valid_name(option) || s.options[..index].contains(option) {
                return Err(named(format!(
                    "option {option:?}: names use a-z, 0-9, - and _, each once"
                )));
            }
        }
        if let Some(unknown) = s.labels.keys().find(|label| !s.options.contains(label)) {
            return Err(named(format!("labels: {unknown:?} is not an option")));
        }
        let hosts = Links::compile(None, s.link_hosts, s.thank_you.replace("{option}", "x"))
            .map_err(|reason| named(format!("thank_you: {reason}")))?;
        if !hosts.allows(&s.thank_you.replace("{option}", "x")) {
            return Err(named("thank_you must be on the poll's link_hosts".into()));
        }
        Ok(Self {
            name: name.to_owned(),
            options: s.options,
            labels: s.labels,
            thank_you: s.thank_you,
            hosts,
            change: s.change,
        })
    }

    /// The option's label (its name when it has none).
    pub fn label<'a>(&'a self, option: &'a str) -> &'a str {
        self.labels.get(option).map_or(option, String::as_str)
    }

    pub fn has_option(&self, option: &str) -> bool {
        self.options.iter().any(|o| o == option)
    }

    /// Where a vote for `option` is thanked (option names are URL-safe by construction).
    pub fn thank_you(&self, option: &str) -> String {
        let url = self.thank_you.replace("{option}", option);
        if self.hosts.allows(&url) {
            url
        } else {
            self.hosts.default.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> PollSettings {
        PollSettings {
            options: vec!["a".into(), "b".into()],
            labels: BTreeMap::new(),
            thank_you: "https://shop.example.com/thanks?vote={option}".into(),
            link_hosts: vec!["shop.example.com".into()],
            change: false,
        }
    }

    #[test]
    fn thank_you_links_carry_the_option_and_stay_on_the_hosts() {
        let poll = Poll::compile("p", settings()).unwrap();
        assert_eq!(
            poll.thank_you("b"),
            "https://shop.example.com/thanks?vote=b"
        );
        assert_eq!(poll.label("a"), "a");
        for change in [
            |s: &mut PollSettings| s.thank_you = "https://evil.example/".into(),
            |s: &mut PollSettings| s.options = vec!["a".into(), "a".into()],
            |s: &mut PollSettings| s.options = vec!["a".into()],
            |s: &mut PollSettings| {
                s.labels.insert("c".into(), "C".into());
            },
        ] {
            let mut s = settings();
            change(&mut s);
            assert!(Poll::compile("p", s).is_err());
        }
    }
}
