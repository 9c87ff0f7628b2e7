//! `opentime url CAMPAIGN/BLOCK [--subscriber ID] [--query KEY=VALUE …]`: prints a signed,
//! absolute URL alone on stdout.

use super::{split_block_path, CliError};
use crate::config::UrlArgs;
use crate::context::SubscriberId;
use std::collections::BTreeMap;

/// What a block URL carries besides its path.
#[derive(Default)]
pub(crate) struct UrlQuery<'a> {
    /// The subscriber and their token.
    pub subscriber: Option<(&'a str, &'a str)>,
    /// Other parameters, in key order.
    pub params: BTreeMap<String, String>,
    /// The query signature, last.
    pub signature: Option<String>,
}

/// The URL of a block.
pub(crate) fn block_url(
    base: &str,
    campaign: &str,
    block: &str,
    extension: &str,
    query: &UrlQuery<'_>,
) -> String {
    let route = if extension == "html" { "html" } else { "img" };
    let mut encoded = form_urlencoded::Serializer::new(String::new());
    if let Some((subscriber, token)) = query.subscriber {
        encoded.append_pair("s", subscriber).append_pair("t", token);
    }
    for (key, value) in &query.params {
        encoded.append_pair(key, value);
    }
    if let Some(signature) = &query.signature {
        encoded.append_pair("sig", signature);
    }
    let encoded = encoded.finish();
    let separator = if encoded.is_empty() { "" } else { "?" };
    format!("{base}/{route}/{campaign}/{block}.{extension}{separator}{encoded}")
}

/// `--query KEY=VALUE` arguments as parameters.
fn query_params(pairs: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    let mut params = BTreeMap::new();
    for pair in pairs {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| CliError::Usage(format!("--query {pair}: expected KEY=VALUE")))?;
        if matches!(key, "s" | "t" | "scale" | "sig") || key.is_empty() {
            return Err(CliError::Usage(format!(
                "--query {pair}: `{key}` is not a template parameter"
            )));
        }
        if params.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(CliError::Usage(format!("--query: `{key}` is given twice")));
        }
    }
    Ok(params)
}

pub fn run_url(args: &UrlArgs) -> Result<String, CliError> {
    let (campaign, block, extension) = split_block_path(&args.block)?;
    let extension = extension.unwrap_or("png");
    if !matches!(extension, "png" | "gif" | "html") {
        return Err(CliError::Usage(format!(
            "`.{extension}`: use .png, .gif or .html"
        )));
    }
    let subscriber = args
        .subscriber
        .as_deref()
        .map(SubscriberId::parse)
        .transpose()
        .map_err(|e| CliError::Usage(format!("--subscriber: {e}")))?;
    let params = query_params(&args.query)?;
    let signer = args.common.signer()?;
    if signer.is_development() {
        eprintln!("warning: no OPENTIME_SECRET set; this URL is signed with the public development secret");
    }
    let base = args.common.public_base()?;
    let token = subscriber.as_ref().map(|s| signer.token(s.as_str()));
    let signature = (args.signed || !params.is_empty())
        .then(|| signer.query_signature(&format!("{campaign}/{block}"), &params));
    let query = UrlQuery {
        subscriber: subscriber
            .as_ref()
            .map(SubscriberId::as_str)
            .zip(token.as_deref()),
        params,
        signature,
    };
    Ok(block_url(&base, campaign, block, extension, &query))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn for_subscriber<'a>(subscriber: &'a str, token: &'a str) -> UrlQuery<'a> {
        UrlQuery {
            subscriber: Some((subscriber, token)),
            ..UrlQuery::default()
        }
    }

    #[test]
    fn urls_escape_the_subscriber() {
        assert_eq!(
            block_url(
                "https://r.example.com",
                "demo",
                "cart",
                "png",
                &for_subscriber("bob+1@example.com", "TOK")
            ),
            "https://r.example.com/img/demo/cart.png?s=bob%2B1%40example.com&t=TOK"
        );
        assert!(block_url(
            "http://h",
            "demo",
            "cart",
            "html",
            &for_subscriber("a", "t")
        )
        .starts_with("http://h/html/demo/cart.html?"));
    }

    #[test]
    fn shared_urls_carry_their_parameters_and_signature_last() {
        let query = UrlQuery {
            subscriber: None,
            params: query_params(&["until=2026-12-24T18:00:00+01:00".into(), "lang=de".into()])
                .unwrap(),
            signature: Some("SIG".into()),
        };
        assert_eq!(
            block_url("http://h", "demo", "countdown", "gif", &query),
            "http://h/img/demo/countdown.gif?lang=de&until=2026-12-24T18%3A00%3A00%2B01%3A00&sig=SIG"
        );
        assert_eq!(
            block_url("http://h", "demo", "banner", "png", &UrlQuery::default()),
            "http://h/img/demo/banner.png"
        );
        for bad in ["novalue", "s=alice", "sig=x", "=x"] {
            assert!(query_params(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(query_params(&["a=1".into(), "a=2".into()]).is_err());
    }
}
