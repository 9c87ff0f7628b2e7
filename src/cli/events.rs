//! `opentime events --group NAME`: the helper that reads every event stream (each shard of a
//! sharded stream) as one consumer of a consumer group, printing one JSON object per event on
//! stdout and acknowledging what it printed. Reading, groups and acknowledgement are
//! `store/redis/consumer.rs`; this file only turns them into lines.

use super::CliError;
use crate::config::EventsArgs;
use crate::store::redis::consumer::{Delivered, Wanted};
use serde_json::{Map, Value};
use std::io::Write;
use std::time::Duration;

/// How long `--follow` waits before asking again when every stream had nothing new.
const POLL_EVERY: Duration = Duration::from_millis(250);

/// What a run did (the binary prints it on stderr).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsRead {
    /// Streams read (the shards).
    pub streams: u16,
    /// Streams the group was created on by this run.
    pub groups_created: usize,
    /// Events printed.
    pub printed: u64,
}

/// Reads the events as `args` say, writing JSON lines to `out`.
pub async fn run_events(args: &EventsArgs, mut out: impl Write) -> Result<EventsRead, CliError> {
    for (what, name) in [("--group", &args.group), ("--consumer", &args.consumer)] {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
        if !valid {
            return Err(CliError::Usage(format!(
                "{what} must be 1-64 characters of A-Z a-z 0-9 . _ : -"
            )));
        }
    }
    let store = super::connect_redis(&args.redis, "events are read").await?;
    let groups_created = store.create_group(&args.group, args.from_start).await?;
    let mut printed = 0;
    // First what this consumer was given before and never acknowledged, then new events.
    let mut wanted = Wanted::Pending;
    loop {
        let batch = store
            .read_group(&args.group, &args.consumer, args.count, wanted)
            .await?;
        if batch.is_empty() {
            if wanted == Wanted::Pending {
                wanted = Wanted::New;
                continue;
            }
            if !args.follow {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL_EVERY) => continue,
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        for entry in &batch {
            writeln!(out, "{}", line(entry)).map_err(output_error)?;
        }
        out.flush().map_err(output_error)?;
        if args.no_ack {
            // Unacknowledged entries stay pending: asking for them again would loop.
            wanted = Wanted::New;
        } else {
            store.acknowledge(&args.group, &batch).await?;
        }
        printed += batch.len() as u64;
    }
    Ok(EventsRead {
        streams: store.stream_shards(),
        groups_created,
        printed,
    })
}

/// One event as a JSON object: its fields, plus the stream and entry id it was read from.
fn line(entry: &Delivered) -> Value {
    let mut object = Map::new();
    object.insert("stream".into(), Value::String(entry.stream.clone()));
    object.insert("entry".into(), Value::String(entry.entry.clone()));
    for (name, value) in &entry.fields {
        object
            .entry(name.clone())
            .or_insert_with(|| Value::String(value.clone()));
    }
    Value::Object(object)
}

fn output_error(error: std::io::Error) -> CliError {
    CliError::Usage(format!("cannot write the events: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_the_fields_and_where_they_came_from() {
        let entry = Delivered {
            stream: "events:opens:{3}".into(),
            entry: "1700000000000-0".into(),
            fields: vec![
                ("id".into(), "abc-1".into()),
                ("stream".into(), "spoofed".into()),
                ("type".into(), "open".into()),
            ],
        };
        assert_eq!(
            line(&entry),
            serde_json::json!({"stream": "events:opens:{3}", "entry": "1700000000000-0", "id": "abc-1", "type": "open"})
        );
    }
}
