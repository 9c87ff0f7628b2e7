//! `opentime url CAMPAIGN/BLOCK --subscriber ID`: prints a signed, absolute URL alone on stdout.

use super::{split_block_path, CliError};
use crate::config::UrlArgs;
use crate::context::SubscriberId;

/// The signed URL of a block for one subscriber.
pub(crate) fn block_url(
    base: &str,
    campaign: &str,
    block: &str,
    extension: &str,
    subscriber: &str,
    token: &str,
) -> String {
    let route = if extension == "html" { "html" } else { "img" };
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("s", subscriber)
        .append_pair("t", token)
        .finish();
    format!("{base}/{route}/{campaign}/{block}.{extension}?{query}")
}

pub fn run_url(args: &UrlArgs) -> Result<String, CliError> {
    let (campaign, block, extension) = split_block_path(&args.block)?;
    let extension = extension.unwrap_or("png");
    if !matches!(extension, "png" | "gif" | "html") {
        return Err(CliError::Usage(format!(
            "`.{extension}`: use .png, .gif or .html"
        )));
    }
    let subscriber = SubscriberId::parse(&args.subscriber)
        .map_err(|e| CliError::Usage(format!("--subscriber: {e}")))?;
    let signer = args.common.signer()?;
    if signer.is_development() {
        eprintln!("warning: no OPENTIME_SECRET set; this URL is signed with the public development secret");
    }
    let base = args.common.public_base()?;
    Ok(block_url(
        &base,
        campaign,
        block,
        extension,
        subscriber.as_str(),
        &signer.token(subscriber.as_str()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_escape_the_subscriber() {
        assert_eq!(
            block_url(
                "https://r.example.com",
                "demo",
                "cart",
                "png",
                "bob+1@example.com",
                "TOK"
            ),
            "https://r.example.com/img/demo/cart.png?s=bob%2B1%40example.com&t=TOK"
        );
        assert!(block_url("http://h", "demo", "cart", "html", "a", "t")
            .starts_with("http://h/html/demo/cart.html?"));
    }
}
