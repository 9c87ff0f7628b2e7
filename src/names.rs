//! Names that end up inside URLs, Redis keys and metric labels — campaigns, blocks and the
//! ingest API's channels — and the one rule they all follow.

/// Whether `name` is acceptable: 1 to 64 characters of `a-z`, `0-9`, `-` and `_`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}
