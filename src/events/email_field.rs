//! The subscriber's `email` context field, as events change it. The Redis sink does the same
//! in a Lua script (`store/redis/events.rs`); this is the reference, used by the embedded store.
//!
//! Only subscribers who have a context get the field (an open never creates a context).
//! `{"last_open": RFC3339, "open_count": N, "last_campaign": "…", "last_click": …,
//!   "click_count": N, "last_prefetch": …}` — other keys a channel may have put there are kept.
//! A machine's fetch (a scanner, a previewer, a prefetch, a HEAD request) only sets
//! `last_prefetch`: it is not a person opening or clicking.

use super::{Event, EventKind};
use chrono::SecondsFormat;
use serde_json::{Map, Value};

/// The `email` field after `event`, from its current value (anything that is not an object is
/// replaced by one).
pub(crate) fn apply(current: Option<&Value>, event: &Event) -> Value {
    let mut email = match current {
        Some(Value::Object(fields)) => fields.clone(),
        _ => Map::new(),
    };
    let at = Value::String(event.at.to_rfc3339_opts(SecondsFormat::Millis, true));
    let bump = |email: &mut Map<String, Value>, key: &str| {
        let count = email.get(key).and_then(Value::as_u64).unwrap_or(0);
        email.insert(key.to_owned(), Value::from(count.saturating_add(1)));
    };
    if event.machine {
        email.insert("last_prefetch".into(), at);
        return Value::Object(email);
    }
    match event.kind {
        EventKind::Open | EventKind::Pixel => {
            email.insert("last_open".into(), at);
            bump(&mut email, "open_count");
        }
        EventKind::Click => {
            email.insert("last_click".into(), at);
            bump(&mut email, "click_count");
        }
        EventKind::Vote => {
            email.insert("last_vote".into(), at);
        }
    }
    email.insert(
        "last_campaign".into(),
        Value::String(event.campaign.clone()),
    );
    Value::Object(email)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn open(machine: bool) -> Event {
        Event {
            id: "e1".into(),
            kind: EventKind::Open,
            campaign: "demo".into(),
            block: "cart".into(),
            subscriber: Some("alice".into()),
            at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            client: "browser",
            machine,
            evidence: "test".into(),
            item: None,
            link: None,
            variant: None,
            option: None,
            counted: None,
        }
    }

    #[test]
    fn opens_count_and_prefetches_do_not() {
        let first = apply(None, &open(false));
        assert_eq!(
            first,
            json!({"last_open": "2023-11-14T22:13:20.000Z", "open_count": 1, "last_campaign": "demo"})
        );
        let second = apply(Some(&first), &open(false));
        assert_eq!(second["open_count"], 2);
        let prefetched = apply(Some(&json!({"address": "a@example.com"})), &open(true));
        assert_eq!(
            prefetched,
            json!({"address": "a@example.com", "last_prefetch": "2023-11-14T22:13:20.000Z"})
        );
        assert_eq!(apply(Some(&json!("junk")), &open(false))["open_count"], 1);
    }
}
