//! The query string of an open: `s` (subscriber), `t` (token), `scale`, and whatever else
//! the template may read as `query`. Bounded in size so a hostile URL cannot grow the cache key.
//!
//! `s` reads `+` as itself, not as a space: subscriber ids never hold spaces, and an ESP that
//! merges a plus-addressed id raw (`s=bob+news@example.com`) must still name `bob+news@…`.

use std::borrow::Cow;
use std::collections::BTreeMap;

const MAX_QUERY_BYTES: usize = 4096;
const MAX_PARAMS: usize = 32;
const MAX_KEY_BYTES: usize = 64;
const MAX_VALUE_BYTES: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    #[error("query string longer than {MAX_QUERY_BYTES} bytes")]
    TooLong,
    #[error("more than {MAX_PARAMS} query parameters")]
    TooMany,
    #[error("query parameter `{0}` is given twice")]
    Duplicate(String),
    #[error("query parameter name or value too long")]
    TooLarge,
    #[error("scale must be 1, 2 or 3")]
    BadScale,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct BlockQuery {
    pub subscriber: Option<String>,
    pub token: Option<String>,
    pub scale: u8,
    /// Every other parameter, visible to templates as `query`.
    pub template_query: BTreeMap<String, String>,
}

pub(super) fn parse(raw: Option<&str>) -> Result<BlockQuery, QueryError> {
    let raw = raw.unwrap_or_default();
    if raw.len() > MAX_QUERY_BYTES {
        return Err(QueryError::TooLong);
    }
    let mut query = BlockQuery {
        scale: 1,
        ..BlockQuery::default()
    };
    let mut seen = std::collections::BTreeSet::new();
    let raw = plus_kept_in_subscriber(raw);
    for (index, (key, value)) in form_urlencoded::parse(raw.as_bytes()).enumerate() {
        if index >= MAX_PARAMS {
            return Err(QueryError::TooMany);
        }
        if key.len() > MAX_KEY_BYTES || value.len() > MAX_VALUE_BYTES {
            return Err(QueryError::TooLarge);
        }
        if !seen.insert(key.to_string()) {
            return Err(QueryError::Duplicate(key.into_owned()));
        }
        match key.as_ref() {
            "s" => query.subscriber = Some(value.into_owned()),
            "t" => query.token = Some(value.into_owned()),
            "scale" => {
                query.scale = match value.as_ref() {
                    "1" => 1,
                    "2" => 2,
                    "3" => 3,
                    _ => return Err(QueryError::BadScale),
                }
            }
            _ => {
                query
                    .template_query
                    .insert(key.into_owned(), value.into_owned());
            }
        }
    }
    Ok(query)
}

/// `raw` with every `+` in the value of `s` written as `%2B`, so decoding keeps it a plus.
fn plus_kept_in_subscriber(raw: &str) -> Cow<'_, str> {
    let is_subscriber = |pair: &str| pair.split_once('=').is_some_and(|(key, _)| key == "s");
    if !raw
        .split('&')
        .any(|pair| is_subscriber(pair) && pair.contains('+'))
    {
        return Cow::Borrowed(raw);
    }
    let pairs: Vec<Cow<'_, str>> = raw
        .split('&')
        .map(|pair| {
            if is_subscriber(pair) {
                Cow::Owned(pair.replace('+', "%2B"))
            } else {
                Cow::Borrowed(pair)
            }
        })
        .collect();
    Cow::Owned(pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_known_and_template_parameters() {
        let query = parse(Some("s=alice&t=abc&scale=2&utm_source=mail&city=K%C3%B6ln")).unwrap();
        assert_eq!(query.subscriber.as_deref(), Some("alice"));
        assert_eq!(query.token.as_deref(), Some("abc"));
        assert_eq!(query.scale, 2);
        assert_eq!(query.template_query["city"], "Köln");
        assert_eq!(query.template_query.len(), 2);
        assert_eq!(parse(None).unwrap().scale, 1);
    }

    #[test]
    fn a_raw_merged_plus_address_keeps_its_plus() {
        let query = parse(Some("s=bob+news@example.com&t=a+b&city=New+York")).unwrap();
        assert_eq!(query.subscriber.as_deref(), Some("bob+news@example.com"));
        assert_eq!(
            query.token.as_deref(),
            Some("a b"),
            "only `s` keeps its plus"
        );
        assert_eq!(query.template_query["city"], "New York");
        let encoded = parse(Some("s=bob%2Bnews%40example.com")).unwrap();
        assert_eq!(encoded.subscriber.as_deref(), Some("bob+news@example.com"));
    }

    #[test]
    fn refuses_malformed_queries() {
        assert_eq!(parse(Some("scale=9")), Err(QueryError::BadScale));
        assert_eq!(parse(Some("scale=")), Err(QueryError::BadScale));
        assert_eq!(
            parse(Some("s=a&s=b")),
            Err(QueryError::Duplicate("s".into()))
        );
        assert_eq!(parse(Some(&"a".repeat(5000))), Err(QueryError::TooLong));
        let many: Vec<String> = (0..40).map(|i| format!("k{i}=v")).collect();
        assert_eq!(parse(Some(&many.join("&"))), Err(QueryError::TooMany));
        // Broken percent-encoding is decoded leniently, never a panic.
        assert!(parse(Some("x=%ZZ%&y=%")).is_ok());
    }

    proptest::proptest! {
        /// Any query string a client can send: parsed or refused, never a panic, and what is
        /// accepted stays within the bounds.
        #[test]
        fn any_query_is_parsed_within_bounds_or_refused(raw in "[a-z%=&0-9._~+ -]{0,300}|\\PC{0,300}") {
            if let Ok(query) = parse(Some(&raw)) {
                proptest::prop_assert!((1..=3).contains(&query.scale));
                proptest::prop_assert!(query.template_query.len() <= MAX_PARAMS);
                for (key, value) in &query.template_query {
                    proptest::prop_assert!(key.len() <= MAX_KEY_BYTES && value.len() <= MAX_VALUE_BYTES);
                    proptest::prop_assert!(!matches!(key.as_str(), "s" | "t" | "scale"));
                }
            }
        }
    }
}
