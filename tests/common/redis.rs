//! A real `redis-server` per test, and reads of what the server wrote into it.

use super::free_port;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` owned by one test; killed when dropped.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> Self {
        let mut server = Self {
            port: free_port(),
            child: None,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--enable-debug-command", "local"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test installs it)");
        self.child = Some(child);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok(mut connection) =
                redis::Client::open(self.url()).and_then(|c| c.get_connection())
            {
                if redis::cmd("PING").query::<String>(&mut connection).is_ok() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("connect to the test redis")
    }

    /// Stops the server (as an outage would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Writes a sample context (a JSON object of fields) with one HSET per field, as the
    /// channels do.
    pub fn load_sample(&self, subscriber: &str, sample: &Path) {
        let text = std::fs::read_to_string(sample).expect("sample file");
        let fields: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&text).expect("sample JSON object");
        let mut connection = self.connection();
        for (field, value) in fields {
            redis::cmd("HSET")
                .arg(format!("ctx:{{{subscriber}}}"))
                .arg(field)
                .arg(value.to_string())
                .query::<()>(&mut connection)
                .expect("HSET");
        }
    }

    pub fn hset(&self, subscriber: &str, field: &str, value: &serde_json::Value) {
        redis::cmd("HSET")
            .arg(format!("ctx:{{{subscriber}}}"))
            .arg(field)
            .arg(value.to_string())
            .query::<()>(&mut self.connection())
            .expect("HSET");
    }

    /// Every entry of `events:opens`, oldest first.
    pub fn events(&self) -> Vec<HashMap<String, String>> {
        let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
            .arg("events:opens")
            .arg("-")
            .arg("+")
            .query(&mut self.connection())
            .unwrap();
        entries.into_iter().map(|(_, fields)| fields).collect()
    }

    /// Every field of a subscriber's context, as stored (JSON text).
    pub fn hgetall(&self, subscriber: &str) -> HashMap<String, String> {
        redis::cmd("HGETALL")
            .arg(format!("ctx:{{{subscriber}}}"))
            .query(&mut self.connection())
            .unwrap()
    }

    /// One field of a subscriber's context, parsed.
    pub fn hget_json(&self, subscriber: &str, field: &str) -> Option<serde_json::Value> {
        let raw: Option<String> = redis::cmd("HGET")
            .arg(format!("ctx:{{{subscriber}}}"))
            .arg(field)
            .query(&mut self.connection())
            .unwrap();
        raw.map(|r| serde_json::from_str(&r).unwrap())
    }

    /// The keys matching `pattern`.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        redis::cmd("KEYS")
            .arg(pattern)
            .query(&mut self.connection())
            .unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
