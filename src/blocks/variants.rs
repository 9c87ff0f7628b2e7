//! A block's variants: what it shows instead of its own template, and where its click then
//! goes. Either a rule set — each variant's `when` condition is tried top to bottom, the first
//! that holds wins, and the last variant, without `when`, is the default — or the arms of a
//! test (`[blocks.NAME.test]`), split by weight or learned from clicks (`crate::open::arms`).
//!
//! ```toml
//! [[blocks.hero.variants]]
//! name = "rain"
//! when = 'feeds.weather.current.precipitation > 0'
//! template = "hero_rain.svg"      # or image = "rain.png" (a file of the campaign)
//! link = "https://shop.example.com/umbrellas"
//!
//! [[blocks.hero.variants]]
//! name = "default"                # no `when`: the default, always last
//! link = "https://shop.example.com/"
//! ```
//! A variant with neither `template` nor `image` shows the block's own template. The chosen
//! variant is part of the render input (so of the cache key), recorded in the open event, and
//! the click of that open goes to its `link`.

use super::condition::Condition;
use serde::Deserialize;

/// Most variants one block may list.
pub(crate) const MAX_VARIANTS: usize = 32;

/// One variant as written in `blocks.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VariantSettings {
    pub(crate) name: String,
    /// Tera expression; absent on the default (rule sets) and on every arm (tests).
    pub(crate) when: Option<String>,
    pub(crate) template: Option<String>,
    pub(crate) html: Option<String>,
    pub(crate) image: Option<String>,
    pub(crate) link: Option<String>,
    /// A test's share of opens (relative; default 1).
    pub(crate) weight: Option<u32>,
}

/// A test's settings as written: `[blocks.NAME.test]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestSettings {
    /// `split` (by weight, for good) or `learn` (Thompson sampling once `min_opens` is reached).
    pub(crate) mode: String,
    /// Human opens, over all arms, before a learning test stops splitting by weight.
    pub(crate) min_opens: Option<u64>,
}

/// How a block picks its variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// The first variant whose `when` holds; the last is the default.
    Rules,
    /// A test split by the arms' weights, sticky per subscriber.
    Split,
    /// A test that learns: by weight until `min_opens` human opens, then Thompson sampling on
    /// clicks per human open.
    Learn { min_opens: u64 },
}

/// What a variant shows in place of the block's template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shows {
    /// The block's own template.
    Block,
    /// Another SVG template of the campaign, at the block's size.
    Template(String),
    /// An image file of the campaign (SVG, PNG or GIF).
    Image(String),
}

#[derive(Debug, Clone)]
pub struct Variant {
    pub name: String,
    condition: Option<Condition>,
    pub shows: Shows,
    /// The HTML fragment template shown instead of the block's, when the variant has one.
    pub html: Option<String>,
    /// Where the click of an open that showed this variant goes.
    pub link: Option<String>,
    pub weight: u32,
}

#[derive(Debug, Clone)]
pub struct Variants {
    pub choice: Choice,
    list: Vec<Variant>,
}

impl Variants {
    /// Checks and compiles a block's variants; `allowed_link` says whether a link may be used
    /// (an absolute http(s) URL on the block's link hosts).
    pub(crate) fn compile(
        settings: Vec<VariantSettings>,
        test: Option<TestSettings>,
        allowed_link: impl Fn(&str) -> bool,
    ) -> Result<Self, String> {
        let choice = match &test {
            None => Choice::Rules,
            Some(test) => match test.mode.as_str() {
                "split" if test.min_opens.is_some() => {
                    return Err("test.min_opens applies to mode = \"learn\" only".into())
                }
                "split" => Choice::Split,
                "learn" => Choice::Learn {
                    min_opens: test.min_opens.unwrap_or(1000),
                },
                other => return Err(format!("test.mode = {other:?}: use split or learn")),
            },
        };
        if settings.len() < 2 || settings.len() > MAX_VARIANTS {
            return Err(format!("variants: list 2..={MAX_VARIANTS} variants"));
        }
        let last = settings.len() - 1;
        let mut list: Vec<Variant> = Vec::with_capacity(settings.len());
        for (index, v) in settings.into_iter().enumerate() {
            let named = |reason: String| format!("variant `{}`: {reason}", v.name);
            if !super::is_valid_name(&v.name) {
                return Err(named("names use a-z, 0-9, - and _ only".into()));
            }
            if list.iter().any(|earlier| earlier.name == v.name) {
                return Err(named("the name is used twice".into()));
            }
            let condition = match (choice, &v.when, index == last) {
                (Choice::Rules, Some(_), true) => {
                    return Err(named(
                        "the last variant is the default and has no `when`".into(),
                    ))
                }
                (Choice::Rules, None, false) => {
                    return Err(named(
                        "needs `when` (only the last variant, the default, has none)".into(),
                    ))
                }
                (Choice::Rules, Some(when), false) => {
                    Some(Condition::compile("when", when).map_err(named)?)
                }
                (Choice::Split | Choice::Learn { .. }, Some(_), _) => {
                    return Err(named("the arms of a test have no `when`".into()))
                }
                (_, None, _) => None,
            };
            if choice == Choice::Rules && v.weight.is_some() {
                return Err(named("`weight` is for the arms of a test".into()));
            }
            let weight = v.weight.unwrap_or(1);
            if weight == 0 {
                return Err(named("weight must be at least 1".into()));
            }
            let shows = match (v.template, v.image) {
                (Some(_), Some(_)) => return Err(named("give template or image, not both".into())),
                (Some(template), None) => Shows::Template(template),
                (None, Some(image)) => Shows::Image(image),
                (None, None) => Shows::Block,
            };
            if let Some(link) = &v.link {
                if !allowed_link(link) {
                    return Err(named(format!(
                        "link `{link}` must be an absolute http(s) URL on the block's link_hosts"
                    )));
                }
            }
            list.push(Variant {
                name: v.name,
                condition,
                shows,
                html: v.html,
                link: v.link,
                weight,
            });
        }
        Ok(Self { choice, list })
    }

    /// The variant the rules pick for these template inputs: the first whose condition
    /// holds, else the default (the last).
    pub fn by_rules(&self, context: &tera::Context) -> &Variant {
        self.list
            .iter()
            .find(|variant| variant.condition.as_ref().is_some_and(|c| c.holds(context)))
            .or(self.list.last())
            .unwrap_or_else(|| unreachable!("compile keeps at least two variants"))
    }

    pub fn get(&self, name: &str) -> Option<&Variant> {
        self.list.iter().find(|variant| variant.name == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Variant> {
        self.list.iter()
    }

    /// Whether a test picks the variant (rather than rules).
    pub fn is_test(&self) -> bool {
        self.choice != Choice::Rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn variant(name: &str, when: Option<&str>) -> VariantSettings {
        VariantSettings {
            name: name.into(),
            when: when.map(str::to_owned),
            template: None,
            html: None,
            image: None,
            link: None,
            weight: None,
        }
    }

    #[test]
    fn the_first_rule_that_holds_wins_and_the_default_closes_the_list() {
        let variants = Variants::compile(
            vec![
                variant("cold", Some("feeds.weather.t < 5")),
                variant("warm", Some("feeds.weather.t < 20")),
                variant("hot", None),
            ],
            None,
            |_| true,
        )
        .unwrap();
        let pick = |t: serde_json::Value| {
            let context = tera::Context::from_value(json!({"feeds": {"weather": {"t": t}}}));
            variants.by_rules(&context.unwrap()).name.clone()
        };
        assert_eq!(pick(json!(1)), "cold");
        assert_eq!(pick(json!(10)), "warm");
        assert_eq!(pick(json!(30)), "hot");
        assert_eq!(
            pick(json!(null)),
            "hot",
            "a rule that cannot be evaluated is skipped"
        );
    }

    #[test]
    fn bad_lists_are_refused_with_a_reason() {
        let compile =
            |list, test| Variants::compile(list, test, |l: &str| l.starts_with("https://a."));
        let cases: Vec<(Vec<VariantSettings>, Option<TestSettings>, &str)> = vec![
            (vec![variant("a", None)], None, "list 2"),
            (
                vec![variant("a", None), variant("b", None)],
                None,
                "needs `when`",
            ),
            (
                vec![variant("a", Some("true")), variant("b", Some("true"))],
                None,
                "has no `when`",
            ),
            (
                vec![variant("a", Some("true")), variant("a", None)],
                None,
                "used twice",
            ),
            (
                vec![variant("a", Some("true")), variant("b", None)],
                Some(TestSettings {
                    mode: "learn".into(),
                    min_opens: None,
                }),
                "arms of a test",
            ),
            (
                vec![variant("a", None), variant("b", None)],
                Some(TestSettings {
                    mode: "bandit".into(),
                    min_opens: None,
                }),
                "use split or learn",
            ),
            (
                vec![
                    VariantSettings {
                        link: Some("https://evil.example/".into()),
                        ..variant("a", Some("true"))
                    },
                    variant("b", None),
                ],
                None,
                "link_hosts",
            ),
        ];
        for (list, test, expected) in cases {
            let error = compile(list, test).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
        let test = compile(
            vec![
                VariantSettings {
                    weight: Some(3),
                    ..variant("a", None)
                },
                variant("b", None),
            ],
            Some(TestSettings {
                mode: "learn".into(),
                min_opens: Some(50),
            }),
        )
        .unwrap();
        assert_eq!(test.choice, Choice::Learn { min_opens: 50 });
        assert_eq!(test.get("a").map(|v| v.weight), Some(3));
    }
}
