//! `opentime tokens < subscribers.csv > tokens.csv`: copies a CSV of subscribers and adds an
//! `opentime_token` column, ready to upload into an ESP as a profile field.

use super::CliError;
use crate::config::TokensArgs;
use crate::context::SubscriberId;
use crate::signing::Signer;
use std::io::{Read, Write};

pub(crate) const TOKEN_COLUMN: &str = "opentime_token";

pub fn run_tokens(
    args: &TokensArgs,
    input: impl Read,
    output: impl Write,
) -> Result<usize, CliError> {
    let signer = args.common.signer()?;
    if signer.is_development() {
        eprintln!(
            "warning: no OPENTIME_SECRET set; these tokens use the public development secret"
        );
    }
    add_tokens(&signer, args.column.as_deref(), input, output)
}

/// Reads CSV with a header row, writes it back with the token column; returns the row count.
pub(crate) fn add_tokens(
    signer: &Signer,
    column: Option<&str>,
    input: impl Read,
    output: impl Write,
) -> Result<usize, CliError> {
    let csv_error = |e: csv::Error| CliError::Input {
        path: "stdin".into(),
        reason: e.to_string(),
    };
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(input);
    let headers = reader.headers().map_err(csv_error)?.clone();
    let index = match column {
        Some(name) => headers.iter().position(|h| h == name).ok_or_else(|| {
            CliError::Usage(format!("no column named `{name}` in the header row"))
        })?,
        None => headers
            .iter()
            .position(|h| h.eq_ignore_ascii_case("subscriber"))
            .or_else(|| headers.iter().position(|h| h.eq_ignore_ascii_case("id")))
            .unwrap_or(0),
    };
    let mut writer = csv::Writer::from_writer(output);
    let mut header_out = headers.clone();
    header_out.push_field(TOKEN_COLUMN);
    writer.write_record(&header_out).map_err(csv_error)?;
    let mut rows = 0;
    for (line, record) in reader.records().enumerate() {
        let mut record = record.map_err(csv_error)?;
        let raw = record.get(index).unwrap_or_default().trim().to_owned();
        let subscriber = SubscriberId::parse(&raw).map_err(|e| CliError::Input {
            path: format!("stdin:{}", line + 2),
            reason: e.to_string(),
        })?;
        record.push_field(&signer.token(subscriber.as_str()));
        writer.write_record(&record).map_err(csv_error)?;
        rows += 1;
    }
    writer.flush().map_err(|e| CliError::Input {
        path: "stdout".into(),
        reason: e.to_string(),
    })?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_a_verifiable_token_column() {
        let signer = Signer::from_secrets("tokens-test-secret-1").unwrap();
        let input = "email,subscriber\na@example.com,alice\nb@example.com,bob\n";
        let mut out = Vec::new();
        assert_eq!(
            add_tokens(&signer, None, input.as_bytes(), &mut out).unwrap(),
            2
        );
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "email,subscriber,opentime_token");
        let token = lines[1].rsplit(',').next().unwrap();
        assert!(signer.verify("alice", token));
        assert!(!signer.verify("bob", token));
    }

    #[test]
    fn names_the_line_of_a_bad_id() {
        let signer = Signer::development();
        let input = "id\nalice\nbad id\n";
        let error = add_tokens(&signer, None, input.as_bytes(), Vec::new()).unwrap_err();
        assert!(error.to_string().starts_with("stdin:3:"), "{error}");
    }
}
