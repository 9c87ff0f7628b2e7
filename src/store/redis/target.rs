//! Which Redis to use, from the settings: one server (`OPENTIME_REDIS_URL=redis://…`), a master
//! watched by Sentinel (`OPENTIME_REDIS_URL=redis+sentinel://host:port,…/MASTER`) or a Redis
//! Cluster (`OPENTIME_REDIS_CLUSTER=host:port,…`, seed nodes). Parsed once at start-up, so a
//! typo is an error before anything connects; [`RedisTarget::describe`] names it for the logs
//! without its credentials.

use std::fmt;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum TargetError {
    #[error("set OPENTIME_REDIS_URL or OPENTIME_REDIS_CLUSTER, not both")]
    Both,
    #[error("OPENTIME_REDIS_CLUSTER: {0}")]
    Cluster(String),
    #[error("OPENTIME_REDIS_URL: {0}")]
    Url(String),
}

/// Where a Redis node listens.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct NodeAddress {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for NodeAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for NodeAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A user name and password for the data nodes; `Debug` never shows the password.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub username: Option<String>,
    pub password: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The Redis deployment opentime talks to.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum RedisTarget {
    /// One server: `redis://[user:password@]host:port[/db]`.
    Single { url: String },
    /// A master found through Sentinel, followed across failovers.
    Sentinel {
        sentinels: Vec<NodeAddress>,
        master: String,
        db: i64,
        credentials: Credentials,
    },
    /// A Redis Cluster, found from its seed nodes.
    Cluster {
        seeds: Vec<NodeAddress>,
        credentials: Credentials,
    },
}

impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl RedisTarget {
    /// The target the settings name, or `None` (the embedded store).
    pub(crate) fn from_settings(
        url: Option<&str>,
        cluster: Option<&str>,
    ) -> Result<Option<Self>, TargetError> {
        let url = url.map(str::trim).filter(|u| !u.is_empty());
        let cluster = cluster.map(str::trim).filter(|c| !c.is_empty());
        match (url, cluster) {
            (Some(_), Some(_)) => Err(TargetError::Both),
            (None, None) => Ok(None),
            (None, Some(seeds)) => parse_cluster(seeds).map(Some),
            (Some(url), None) => match url.strip_prefix("redis+sentinel://") {
                Some(rest) => parse_sentinel(rest).map(Some),
                None if url.starts_with("redis://") || url.starts_with("redis+unix://") => {
                    Ok(Some(RedisTarget::Single {
                        url: url.to_owned(),
                    }))
                }
                None => Err(TargetError::Url(
                    "must start with redis:// or redis+sentinel:// (TLS is not built in)".into(),
                )),
            },
        }
    }

    /// What it is, for the logs: never a user name or password.
    pub(crate) fn describe(&self) -> String {
        let list = |nodes: &[NodeAddress]| {
            nodes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            RedisTarget::Single { url } => {
                let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
                let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
                format!("Redis at {rest}")
            }
            RedisTarget::Sentinel {
                sentinels,
                master,
                db,
                ..
            } => format!(
                "Redis master `{master}` (db {db}) through Sentinel {}",
                list(sentinels)
            ),
            RedisTarget::Cluster { seeds, .. } => {
                format!("Redis Cluster (seed nodes {})", list(seeds))
            }
        }
    }

    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, RedisTarget::Cluster { .. })
    }
}

/// `host:port,host:port,…`; each entry may also be a `redis://[user:password@]host:port` URL
/// (the credentials of the first one are used for every node).
fn parse_cluster(text: &str) -> Result<RedisTarget, TargetError> {
    let mut seeds = Vec::new();
    let mut credentials = Credentials::default();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bare = match entry.split_once("://") {
            Some(("redis", rest)) => rest,
            Some((scheme, _)) => {
                return Err(TargetError::Cluster(format!(
                    "`{scheme}://` is not supported; give host:port or redis://host:port"
                )))
            }
            None => entry,
        };
        let bare = bare.trim_end_matches('/');
        let (userinfo, address) = match bare.rsplit_once('@') {
            Some((userinfo, address)) => (Some(userinfo), address),
            None => (None, bare),
        };
        if let (Some(userinfo), true) = (userinfo, seeds.is_empty()) {
            credentials = parse_userinfo(userinfo);
        }
        seeds.push(parse_address(address).map_err(TargetError::Cluster)?);
    }
    if seeds.is_empty() {
        return Err(TargetError::Cluster(
            "no seed node; give host:port,host:port,…".into(),
        ));
    }
    Ok(RedisTarget::Cluster { seeds, credentials })
}

/// `[user:password@]host:port,host:port/MASTER[/DB]` (after `redis+sentinel://`).
fn parse_sentinel(rest: &str) -> Result<RedisTarget, TargetError> {
    let bad = |reason: &str| {
        TargetError::Url(format!(
            "redis+sentinel://[user:password@]host:port,…/MASTER[/DB]: {reason}"
        ))
    };
    let (hosts, path) = rest
        .split_once('/')
        .ok_or_else(|| bad("the master's name is missing"))?;
    let (credentials, hosts) = match hosts.rsplit_once('@') {
        Some((userinfo, hosts)) => (parse_userinfo(userinfo), hosts),
        None => (Credentials::default(), hosts),
    };
    let sentinels = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(parse_address)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|reason| bad(&reason))?;
    if sentinels.is_empty() {
        return Err(bad("no Sentinel address"));
    }
    let mut parts = path.trim_end_matches('/').split('/');
    let master = parts.next().unwrap_or_default();
    if master.is_empty()
        || !master
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(bad("the master's name must be [A-Za-z0-9._-]+"));
    }
    let db = match parts.next() {
        Some(db) => db
            .parse::<i64>()
            .ok()
            .filter(|db| (0..=1_000_000).contains(db))
            .ok_or_else(|| bad("the database must be a number"))?,
        None => 0,
    };
    if parts.next().is_some() {
        return Err(bad("too many path segments"));
    }
    Ok(RedisTarget::Sentinel {
        sentinels,
        master: master.to_owned(),
        db,
        credentials,
    })
}

fn parse_userinfo(userinfo: &str) -> Credentials {
    let (user, password) = match userinfo.split_once(':') {
        Some((user, password)) => (user, Some(password)),
        None => (userinfo, None),
    };
    Credentials {
        username: Some(percent_decode(user)).filter(|u| !u.is_empty()),
        password: password.map(percent_decode).filter(|p| !p.is_empty()),
    }
}

/// `host:port` or `[v6]:port`.
fn parse_address(text: &str) -> Result<NodeAddress, String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, port) = rest
            .split_once("]:")
            .ok_or_else(|| format!("`{text}` is not [ADDRESS]:PORT"))?;
        (host, port)
    } else {
        text.rsplit_once(':')
            .ok_or_else(|| format!("`{text}` is not HOST:PORT"))?
    };
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("`{text}`: the port must be 1-65535"))?;
    if host.is_empty() || host.contains(['/', '@', ' ']) {
        return Err(format!("`{text}`: bad host"));
    }
    Ok(NodeAddress {
        host: host.to_owned(),
        port,
    })
}

/// `%XX` escapes in URL credentials.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        let hex = |i: usize| bytes.get(i).and_then(|b| (*b as char).to_digit(16));
        match (byte, hex(index + 1), hex(index + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                index += 3;
            }
            _ => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, port: u16) -> NodeAddress {
        NodeAddress {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn no_setting_is_the_embedded_store_and_both_is_an_error() {
        assert_eq!(RedisTarget::from_settings(None, None), Ok(None));
        assert_eq!(RedisTarget::from_settings(Some(" "), Some("")), Ok(None));
        assert_eq!(
            RedisTarget::from_settings(Some("redis://a:1"), Some("b:2")),
            Err(TargetError::Both)
        );
    }

    #[test]
    fn cluster_seeds_are_host_port_lists_or_urls() {
        let target = RedisTarget::from_settings(None, Some("10.0.0.1:7000, 10.0.0.2:7001,"))
            .unwrap()
            .unwrap();
        assert_eq!(
            target,
            RedisTarget::Cluster {
                seeds: vec![node("10.0.0.1", 7000), node("10.0.0.2", 7001)],
                credentials: Credentials::default(),
            }
        );
        assert!(target.is_cluster());
        let target =
            RedisTarget::from_settings(None, Some("redis://app:s%40cret@h1:7000,[::1]:7001"))
                .unwrap()
                .unwrap();
        let RedisTarget::Cluster { seeds, credentials } = &target else {
            panic!("cluster expected")
        };
        assert_eq!(seeds, &vec![node("h1", 7000), node("::1", 7001)]);
        assert_eq!(credentials.password.as_deref(), Some("s@cret"));
        assert_eq!(credentials.username.as_deref(), Some("app"));
        assert!(!target.describe().contains("cret"), "{}", target.describe());
        assert!(!format!("{target:?}").contains("cret"));
        for bad in ["h1", "h1:0", "h1:99999", "rediss://h1:7000", ",", ":7000"] {
            assert!(
                matches!(
                    RedisTarget::from_settings(None, Some(bad)),
                    Err(TargetError::Cluster(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn sentinel_urls_name_the_sentinels_and_the_master() {
        let target = RedisTarget::from_settings(
            Some("redis+sentinel://:pw@s1:26379,s2:26380/mymaster/2"),
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            target,
            RedisTarget::Sentinel {
                sentinels: vec![node("s1", 26379), node("s2", 26380)],
                master: "mymaster".into(),
                db: 2,
                credentials: Credentials {
                    username: None,
                    password: Some("pw".into())
                },
            }
        );
        assert_eq!(
            target.describe(),
            "Redis master `mymaster` (db 2) through Sentinel s1:26379,s2:26380"
        );
        for bad in [
            "redis+sentinel://s1:26379",
            "redis+sentinel://s1:26379/",
            "redis+sentinel:///mymaster",
            "redis+sentinel://s1/mymaster",
            "redis+sentinel://s1:26379/my master",
            "redis+sentinel://s1:26379/m/x",
            "redis+sentinel://s1:26379/m/1/2",
        ] {
            assert!(
                matches!(
                    RedisTarget::from_settings(Some(bad), None),
                    Err(TargetError::Url(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn single_urls_are_kept_and_described_without_credentials() {
        let target = RedisTarget::from_settings(Some("redis://u:secret@host:6379/0"), None)
            .unwrap()
            .unwrap();
        assert_eq!(target.describe(), "Redis at host:6379/0");
        assert!(matches!(
            RedisTarget::from_settings(Some("http://host"), None),
            Err(TargetError::Url(_))
        ));
    }
}
