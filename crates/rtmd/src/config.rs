//! Configuration: a TOML file for production, or a development project when there is none.
//!
//! ```toml
//! data_dir = "/var/lib/rtmd"
//! store = "embedded"                 # or "redis://127.0.0.1:6379/0"
//! log_format = "text"                # or "json": one JSON object per line on stderr
//!
//! [listen]
//! server_api = "0.0.0.0:13315"       # the RTM server API (business servers)
//! gate = "0.0.0.0:13321"             # the client gate (end users' apps)
//! admin = "127.0.0.1:13380"          # /metrics and /healthz; "" turns it off
//! web = true                         # HTTP/JSON and WebSocket on both ports, beside FPNN
//!
//! [listen.gate_tls]                  # TLS on the gate (wss://, https://, FPNN over TLS);
//! cert = "/etc/rtmd/cert.pem"        # plain clients are still served on the same port.
//! key = "/etc/rtmd/key.pem"          # [listen.server_api_tls] likewise
//!
//! [limits]
//! max_frame = 8388608
//! max_connections = 100000
//! idle_timeout = "60s"
//! auth_timeout = "5s"
//! client_ping_interval = "20s"
//! replay_capacity = 16777216        # requests remembered against replays (~12.2 B each)
//! kickout_grace = "1s"               # a kicked connection is left to the client to close this long
//! read_buffer = 16384                # input held per connection
//! frame_memory = 67108864            # per port, for frames longer than read_buffer
//! outbound_budget = 65536            # queued for one client: pushes fail past it
//! outbound_high_water = 32768        # queued for one client: reading stops past it
//! max_in_flight = 1024               # quests of one connection at once; then 20011
//! max_in_flight_total = 16384        # quests of all a port's connections at once; then 20011
//! write_stall_timeout = "30s"        # a client that takes no bytes this long is closed
//!
//! [encryption.server_api]            # optional, per port: FPNN encryption (ECDH + AES-CFB)
//! curve = "secp256r1"                # secp256r1, secp256k1, secp224r1 or secp192r1
//! private_key = "/etc/rtmd/server-secp256r1-private.key"   # written by `rtm keygen`
//! policy = "require"                 # or "allow": plain connections may call methods too
//!
//! [encryption.gate]                  # the same for the client gate
//! curve = "secp256k1"
//! private_key = "/etc/rtmd/gate-secp256k1-private.key"
//! policy = "allow"
//!
//! [redis]                            # only with store = "redis://..." (cluster mode)
//! key_prefix = "rtm"                 # every key and channel starts with it
//! session_ttl = "15s"                # a dead node's sessions leave the registry by then
//! command_timeout = "2s"             # every Redis command fails after this
//!
//! [[projects]]
//! pid = 11000001
//! secrets = ["current-secret", "previous-secret"]   # several during a rotation
//! token_ttl = "24h"
//! multi_login = true
//! sign_window = "300s"
//! legacy_sign = false
//! max_devices = 32
//! removetoken_kicks = false
//! replay = "request"                 # or "sign" (any reuse of a sign refused), or "off"
//! ```
//!
//! Durations are written `"1500ms"`, `"300s"`, `"5m"`, `"24h"`, `"7d"`, or as a number of
//! seconds. Unknown keys are refused, so a typo does not silently fall back to a default.

pub use crate::fingerprint::ReplayMode;
use serde::{Deserialize, Deserializer};
use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The pid of the development project (run without a configuration file).
pub const DEV_PID: i32 = 11000001;

/// The default of `limits.kickout_grace`: over three times the 300 ms that the 2018 Java
/// client was measured to need, so that it also covers a retransmission of the push at
/// Linux's minimum retransmission timeout (200 ms) and a client that reads late.
pub const DEFAULT_KICKOUT_GRACE: Duration = Duration::from_secs(1);

/// The longest `limits.kickout_grace` accepted: a kicked connection that the client does
/// not close is held this long at most.
pub const MAX_KICKOUT_GRACE: Duration = Duration::from_secs(60);

/// Why the configuration was refused. The message names the field and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("invalid configuration file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the key and position.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: {field}: {message}")]
    Invalid {
        /// The field, e.g. `projects[0].secrets`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The development project's secret could not be created or read.
    #[error("cannot set up the development project in {path}: {source}")]
    DevSecret {
        /// The secret file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the embedded store (and the development project's secret) live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// `"embedded"` (default) or a Redis URL (`redis://host:port/db`).
    #[serde(default = "default_store")]
    pub store: String,
    /// Listening addresses.
    #[serde(default)]
    pub listen: Listen,
    /// Limits and timeouts.
    #[serde(default)]
    pub limits: Limits,
    /// Settings of the Redis store (cluster mode).
    #[serde(default)]
    pub redis: RedisSettings,
    /// FPNN encryption of the server API and gate ports.
    #[serde(default)]
    pub encryption: EncryptionSettings,
    /// The projects served.
    #[serde(default)]
    pub projects: Vec<Project>,
    /// How the log lines on stderr are written: `"text"` (default) or `"json"`.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Whether the TOML had a `[redis]` section (for [`Config::warnings`]).
    #[serde(skip)]
    redis_section: bool,
}

/// How `rtmd` writes its log lines (`log_format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines; coloured only when stderr is a terminal and `NO_COLOR` is unset.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, message and fields).
    Json,
}

/// Secrets shorter than this draw a warning at start ([`Config::warnings`]).
pub const MIN_SECRET_LEN: usize = 16;

/// Listening addresses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Listen {
    /// The RTM server API. Default `127.0.0.1:13315`.
    pub server_api: String,
    /// The client gate. Default `127.0.0.1:13321`.
    pub gate: String,
    /// The admin HTTP port (`/metrics`, `/healthz`); empty turns it off.
    /// Default `127.0.0.1:13380`.
    pub admin: String,
    /// Serve HTTP/JSON calls (`POST|GET /service/<method>`) and WebSocket connections on
    /// the server API and gate ports, beside binary FPNN. Default on.
    pub web: bool,
    /// TLS on the server API port. Default off.
    pub server_api_tls: Option<TlsFiles>,
    /// TLS on the gate port. Default off.
    pub gate_tls: Option<TlsFiles>,
}

/// The certificate and key of a TLS listener, PEM files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key: PathBuf,
}

impl Default for Listen {
    fn default() -> Self {
        Listen {
            server_api: "127.0.0.1:13315".into(),
            gate: "127.0.0.1:13321".into(),
            admin: "127.0.0.1:13380".into(),
            web: true,
            server_api_tls: None,
            gate_tls: None,
        }
    }
}

/// Limits and timeouts of both ports.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// The largest frame accepted, in bytes. Default 8 MiB.
    pub max_frame: usize,
    /// Connections per port. Default 100 000.
    pub max_connections: usize,
    /// Close a connection silent this long. Default 60 s.
    #[serde(deserialize_with = "duration")]
    pub idle_timeout: Duration,
    /// Close a gate connection that has not sent a successful `auth` by then. Default 5 s.
    #[serde(deserialize_with = "duration")]
    pub auth_timeout: Duration,
    /// The gate pushes `ping` to logged-in clients this often (the official clients treat a
    /// silent gate as lost). Default 20 s.
    #[serde(deserialize_with = "duration")]
    pub client_ping_interval: Duration,
    /// How long graceful shutdown waits for in-flight calls. Default 10 s.
    #[serde(deserialize_with = "duration")]
    pub shutdown_grace: Duration,
    /// How many server API requests the replay window of the embedded store remembers at
    /// once, exactly (about 12.2 bytes each, allocated at start and resident as the table
    /// is written: 195 MiB at the default). A request is kept until its `ts` leaves the
    /// project's `sign_window`, rounded up to a whole second (at most `sign_window + 2 s`
    /// for a client whose clock is right, `2 × sign_window + 2 s` for one whose clock runs
    /// the whole window ahead), so this bounds the sustained rate of signed calls to
    /// `replay_capacity / (sign_window + 2 s)`: with the defaults (16 Mi requests, 300 s),
    /// about 55,500 calls a second; beyond that, calls fail (200999, "replay window full",
    /// logged as a warning) until entries expire. Size it for the node's peak rate.
    /// Default 16777216, at most 4294967295. (In cluster mode the window lives in Redis,
    /// with no such cap; projects with `replay = "off"` use none of it.)
    pub replay_capacity: usize,
    /// After the gate pushes `kickout` to a connection, its session is over at once, but
    /// the connection is left to the client to close for this long; then the gate closes
    /// it. The official clients close it themselves on `kickout`, and the 2018 Java reader
    /// drops a frame that arrives in the same read as the server's FIN, so the close must
    /// not follow the push at once. Default 1 s (see the README's configuration reference
    /// for why); 0 closes right after the push.
    #[serde(deserialize_with = "duration")]
    pub kickout_grace: Duration,
    /// Input bytes each connection holds; a frame up to this size needs nothing more.
    /// Default 16 KiB.
    pub read_buffer: usize,
    /// Memory each port shares among its connections for frames longer than `read_buffer`;
    /// a connection whose frame does not fit stops reading until it does. Default 64 MiB.
    pub frame_memory: usize,
    /// Bytes queued for one client past which pushes to it (`kickout`, `ping`) fail.
    /// Default 64 KiB.
    pub outbound_budget: usize,
    /// Bytes queued for one client past which the port stops reading that connection until
    /// the client takes them. Default 32 KiB.
    pub outbound_high_water: usize,
    /// Quests of one connection handled at once; beyond, a two-way quest is answered 20011.
    /// Default 1024.
    pub max_in_flight: usize,
    /// Quests of all the connections of a port handled at once; beyond, 20011. Default
    /// 16384.
    pub max_in_flight_total: usize,
    /// Close a connection whose client takes no bytes for this long while some wait for
    /// it. Default 30 s.
    #[serde(deserialize_with = "duration")]
    pub write_stall_timeout: Duration,
}

impl Limits {
    /// The worst-case memory of one port's connections, in bytes (the README's formula):
    /// `max_connections × (read_buffer + max(outbound_budget, outbound_high_water) + 6 KiB)`,
    /// plus `frame_memory`, plus `max_in_flight_total × 3 KiB` (a waiting handler with its
    /// quest and answer; this service's are under 1 KiB).
    pub fn worst_case_memory(&self) -> u128 {
        const FIXED_PER_CONNECTION: u128 = 6 * 1024;
        const PER_QUEST: u128 = 3 * 1024;
        let per_connection = self.read_buffer as u128
            + self.outbound_budget.max(self.outbound_high_water) as u128
            + FIXED_PER_CONNECTION;
        self.max_connections as u128 * per_connection
            + self.frame_memory as u128
            + self.max_in_flight_total as u128 * PER_QUEST
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame: fpnn::DEFAULT_MAX_FRAME,
            max_connections: 100_000,
            idle_timeout: Duration::from_secs(60),
            auth_timeout: Duration::from_secs(5),
            client_ping_interval: Duration::from_secs(20),
            shutdown_grace: Duration::from_secs(10),
            replay_capacity: crate::store::DEFAULT_REPLAY_CAPACITY,
            kickout_grace: DEFAULT_KICKOUT_GRACE,
            read_buffer: fpnn::proto::DEFAULT_READ_BUFFER,
            frame_memory: fpnn::proto::DEFAULT_FRAME_MEMORY,
            outbound_budget: fpnn::proto::DEFAULT_OUTBOUND_BUDGET,
            outbound_high_water: fpnn::proto::DEFAULT_OUTBOUND_HIGH_WATER,
            max_in_flight: fpnn::proto::DEFAULT_MAX_IN_FLIGHT,
            max_in_flight_total: fpnn::server::DEFAULT_MAX_IN_FLIGHT_TOTAL,
            write_stall_timeout: fpnn::proto::DEFAULT_WRITE_STALL_TIMEOUT,
        }
    }
}

/// FPNN encryption (the `*key` exchange: ECDH, then AES-CFB) of the two FPNN ports; each
/// is plain when its table is absent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncryptionSettings {
    /// The server API port.
    pub server_api: Option<PortEncryption>,
    /// The client gate port.
    pub gate: Option<PortEncryption>,
}

/// The encryption of one port: its static key and whether plain connections are served.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortEncryption {
    /// The key's curve: `secp256r1`, `secp256k1`, `secp224r1` or `secp192r1`.
    pub curve: String,
    /// The raw private key file (`NAME-CURVE-private.key` as `rtm keygen` and the official
    /// eccKeyMaker write it); a relative path is relative to the working directory.
    pub private_key: PathBuf,
    /// `"require"`: a plain connection that calls a method is closed without an answer
    /// (`*ping` stays open), as the C++ framework's `forceEncrypt.userMethods`. `"allow"`
    /// (default): encrypted and plain connections are both served.
    #[serde(default = "default_policy")]
    pub policy: String,
}

fn default_policy() -> String {
    "allow".into()
}

impl PortEncryption {
    /// Reads the key file and checks the curve and the policy; `field` names the table in
    /// errors (`encryption.gate`).
    pub fn load(&self, field: &str) -> Result<fpnn::server::ServerEncryption, ConfigError> {
        let curve: fpnn::encryption::Curve = self
            .curve
            .parse()
            .map_err(|e| invalid(format!("{field}.curve"), format!("{e}")))?;
        let policy: fpnn::server::EncryptionPolicy = self
            .policy
            .parse()
            .map_err(|e: String| invalid(format!("{field}.policy"), e))?;
        let key =
            fpnn::encryption::PrivateKey::from_file(curve, &self.private_key).map_err(|e| {
                invalid(
                    format!("{field}.private_key"),
                    format!("{}: {e}", self.private_key.display()),
                )
            })?;
        Ok(fpnn::server::ServerEncryption::new(key).policy(policy))
    }
}

impl EncryptionSettings {
    /// Each port's encryption, loaded: `(server_api, gate)`.
    #[allow(clippy::type_complexity)]
    pub fn load(
        &self,
    ) -> Result<
        (
            Option<fpnn::server::ServerEncryption>,
            Option<fpnn::server::ServerEncryption>,
        ),
        ConfigError,
    > {
        let server_api = self
            .server_api
            .as_ref()
            .map(|e| e.load("encryption.server_api"))
            .transpose()?;
        let gate = self
            .gate
            .as_ref()
            .map(|e| e.load("encryption.gate"))
            .transpose()?;
        Ok((server_api, gate))
    }
}

/// Settings of the Redis store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSettings {
    /// Prefix of every key (several deployments can share one Redis). Default `rtm`.
    pub key_prefix: String,
    /// How long a node that stops refreshing its sessions keeps them in the registry.
    /// Default 15 s.
    #[serde(deserialize_with = "duration")]
    pub session_ttl: Duration,
    /// How long a Redis command may take before the call fails. Default 2 s.
    #[serde(deserialize_with = "duration")]
    pub command_timeout: Duration,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            key_prefix: "rtm".into(),
            session_ttl: Duration::from_secs(15),
            command_timeout: Duration::from_secs(2),
        }
    }
}

/// One project: its id, secrets and policies.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// The project id.
    pub pid: i32,
    /// The server API secrets; a quest signed with any of them is accepted (rotation).
    pub secrets: Vec<String>,
    /// Lifetime of login tokens. Default 24 h.
    #[serde(default = "default_token_ttl", deserialize_with = "duration")]
    pub token_ttl: Duration,
    /// Several logins per user (default); when off, a new login kicks the older ones.
    #[serde(default = "yes")]
    pub multi_login: bool,
    /// Accepted distance between a quest's `ts` and the server clock. Default 300 s, at
    /// most 1 h (the replay window remembers a request for up to twice this).
    #[serde(default = "default_sign_window", deserialize_with = "duration")]
    pub sign_window: Duration,
    /// Accept the pre-2020 signature without `ts`. Default off.
    #[serde(default)]
    pub legacy_sign: bool,
    /// Devices kept per user; the oldest is dropped beyond. Default 32.
    #[serde(default = "default_max_devices")]
    pub max_devices: usize,
    /// `removetoken` also closes the user's live sessions. Default off.
    #[serde(default)]
    pub removetoken_kicks: bool,
    /// What the replay window keys on: `"request"` (default: an exact resend is refused,
    /// distinct requests sharing a sign are answered), `"sign"` (any reuse of a sign is
    /// refused; for SDKs with unique salts) or `"off"`. See [`crate::fingerprint`].
    #[serde(default)]
    pub replay: ReplayMode,
}

impl Project {
    /// A project with the default policies.
    pub fn new(pid: i32, secret: impl Into<String>) -> Project {
        Project {
            pid,
            secrets: vec![secret.into()],
            token_ttl: default_token_ttl(),
            multi_login: true,
            sign_window: default_sign_window(),
            legacy_sign: false,
            max_devices: default_max_devices(),
            removetoken_kicks: false,
            replay: ReplayMode::default(),
        }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("rtmd-data")
}
fn default_store() -> String {
    "embedded".into()
}
fn default_token_ttl() -> Duration {
    Duration::from_secs(24 * 3600)
}
/// The longest `sign_window`: the replay window remembers a request for at most
/// [`crate::store::MAX_REPLAY_TTL`], twice this plus a second.
pub const MAX_SIGN_WINDOW: Duration = Duration::from_secs(3600);

fn default_sign_window() -> Duration {
    Duration::from_secs(300)
}
fn default_max_devices() -> usize {
    32
}
fn yes() -> bool {
    true
}

/// Where the state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// The embedded database in `data_dir`.
    Embedded,
    /// Redis at this URL.
    Redis(String),
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            message: e.to_string(),
        })?;
        // It parsed as a Config, so it parses as a table.
        config.redis_section = toml::from_str::<toml::Table>(text)
            .map(|t| t.contains_key("redis"))
            .unwrap_or(false);
        config.validate()?;
        Ok(config)
    }

    /// Settings that are accepted but ignored or weak, one sentence each, for the log at
    /// start: a `[redis]` section with the embedded store, and secrets shorter than
    /// [`MIN_SECRET_LEN`] characters (they are accepted, for tests and migrations, but a
    /// short secret can be guessed offline from one signed call).
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.redis_section && self.store_kind() == StoreKind::Embedded {
            warnings.push(
                "the [redis] section is ignored: store is \"embedded\" (set store = \"redis://...\" for cluster mode)"
                    .to_owned(),
            );
        }
        for (i, p) in self.projects.iter().enumerate() {
            for (j, secret) in p.secrets.iter().enumerate() {
                let len = secret.chars().count();
                if len < MIN_SECRET_LEN {
                    warnings.push(format!(
                        "projects[{i}].secrets[{j}] (project {}) is {len} characters long: use at least {MIN_SECRET_LEN} random ones",
                        p.pid
                    ));
                }
            }
        }
        warnings
    }

    /// The development configuration: defaults, and one project [`DEV_PID`] whose secret is
    /// created once in `data_dir/dev-project.secret` and reused afterwards.
    pub fn development(data_dir: &Path) -> Result<Config, ConfigError> {
        let secret = dev_secret(data_dir)?;
        let config = Config {
            data_dir: data_dir.to_owned(),
            store: default_store(),
            listen: Listen::default(),
            limits: Limits::default(),
            redis: RedisSettings::default(),
            encryption: EncryptionSettings::default(),
            projects: vec![Project::new(DEV_PID, secret)],
            log_format: LogFormat::default(),
            redis_section: false,
        };
        config.validate()?;
        Ok(config)
    }

    /// The store this configuration selects.
    pub fn store_kind(&self) -> StoreKind {
        if self.store == "embedded" {
            StoreKind::Embedded
        } else {
            StoreKind::Redis(self.store.clone())
        }
    }

    /// Checks ranges and consistency, naming the first field that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.store == "embedded"
            || self.store.starts_with("redis://")
            || self.store.starts_with("rediss://"))
        {
            return Err(invalid(
                "store",
                format!(
                    "'{}' is neither \"embedded\" nor a redis:// URL",
                    self.store
                ),
            ));
        }
        for (field, addr) in [
            ("listen.server_api", &self.listen.server_api),
            ("listen.gate", &self.listen.gate),
        ] {
            parse_addr(field, addr)?;
        }
        if !self.listen.admin.is_empty() {
            parse_addr("listen.admin", &self.listen.admin)?;
        }
        for (field, tls) in [
            ("listen.server_api_tls", &self.listen.server_api_tls),
            ("listen.gate_tls", &self.listen.gate_tls),
        ] {
            if let Some(tls) = tls {
                if tls.cert.as_os_str().is_empty() || tls.key.as_os_str().is_empty() {
                    return Err(invalid(field, "needs both cert and key"));
                }
            }
        }
        let limits = &self.limits;
        if limits.max_frame < 64 {
            return Err(invalid("limits.max_frame", "must be at least 64 bytes"));
        }
        if limits.max_connections == 0 {
            return Err(invalid("limits.max_connections", "must be at least 1"));
        }
        if limits.replay_capacity == 0 {
            return Err(invalid("limits.replay_capacity", "must be at least 1"));
        }
        if limits.replay_capacity > crate::store::MAX_REPLAY_CAPACITY {
            return Err(invalid(
                "limits.replay_capacity",
                format!("must be at most {}", crate::store::MAX_REPLAY_CAPACITY),
            ));
        }
        for (field, value, least) in [
            ("limits.read_buffer", limits.read_buffer, 64),
            ("limits.outbound_budget", limits.outbound_budget, 64),
            ("limits.outbound_high_water", limits.outbound_high_water, 64),
            ("limits.max_in_flight", limits.max_in_flight, 1),
            ("limits.max_in_flight_total", limits.max_in_flight_total, 1),
        ] {
            if value < least {
                return Err(invalid(field, format!("must be at least {least}")));
            }
        }
        for (field, value) in [
            ("limits.idle_timeout", limits.idle_timeout),
            ("limits.auth_timeout", limits.auth_timeout),
            ("limits.client_ping_interval", limits.client_ping_interval),
            ("limits.write_stall_timeout", limits.write_stall_timeout),
            ("redis.session_ttl", self.redis.session_ttl),
            ("redis.command_timeout", self.redis.command_timeout),
        ] {
            if value.is_zero() {
                return Err(invalid(field, "must be longer than zero"));
            }
        }
        if limits.kickout_grace > MAX_KICKOUT_GRACE {
            return Err(invalid(
                "limits.kickout_grace",
                format!(
                    "{:?} is longer than {MAX_KICKOUT_GRACE:?}: a kicked connection would be held that long",
                    limits.kickout_grace
                ),
            ));
        }
        if limits.client_ping_interval >= limits.idle_timeout {
            return Err(invalid(
                "limits.client_ping_interval",
                format!(
                    "{:?} must be shorter than limits.idle_timeout ({:?}), or idle logged-in clients are closed",
                    limits.client_ping_interval, limits.idle_timeout
                ),
            ));
        }
        // A refresh every session_ttl / 3 that may take a command_timeout must land before
        // the entries it refreshes expire.
        if self.redis.session_ttl.as_secs_f64() < 1.5 * self.redis.command_timeout.as_secs_f64() {
            return Err(invalid(
                "redis.session_ttl",
                format!(
                    "{:?} is too short for redis.command_timeout {:?}: it must be at least 1.5 times as long",
                    self.redis.session_ttl, self.redis.command_timeout
                ),
            ));
        }
        if self.redis.key_prefix.is_empty() || self.redis.key_prefix.contains(['{', '}']) {
            return Err(invalid(
                "redis.key_prefix",
                "must be non-empty and contain no braces",
            ));
        }
        self.encryption.load()?;
        if self.projects.is_empty() {
            return Err(invalid(
                "projects",
                "at least one [[projects]] entry is needed",
            ));
        }
        let mut pids = HashSet::new();
        for (i, p) in self.projects.iter().enumerate() {
            let at = |field: &str| format!("projects[{i}].{field}");
            if p.pid <= 0 {
                return Err(invalid(
                    at("pid"),
                    format!("{} is not a positive project id", p.pid),
                ));
            }
            if !pids.insert(p.pid) {
                return Err(invalid(
                    at("pid"),
                    format!("project {} is configured twice", p.pid),
                ));
            }
            if p.secrets.is_empty() {
                return Err(invalid(at("secrets"), "at least one secret is needed"));
            }
            if let Some(j) = p.secrets.iter().position(|s| s.trim().is_empty()) {
                return Err(invalid(
                    format!("projects[{i}].secrets[{j}]"),
                    "must not be empty",
                ));
            }
            if p.token_ttl.is_zero() {
                return Err(invalid(at("token_ttl"), "must be longer than zero"));
            }
            if p.sign_window.is_zero() {
                return Err(invalid(at("sign_window"), "must be longer than zero"));
            }
            if p.sign_window > MAX_SIGN_WINDOW {
                return Err(invalid(
                    at("sign_window"),
                    "must be at most 1h (a request is remembered against replays for up to twice the window)",
                ));
            }
            if p.max_devices == 0 {
                return Err(invalid(at("max_devices"), "must be at least 1"));
            }
        }
        Ok(())
    }
}

/// Checks a listening address: `ip:port` (`[v6]:port`), or `host:port` with a host name that
/// is resolved when the port is opened (`localhost:13315`).
fn parse_addr(field: &str, addr: &str) -> Result<(), ConfigError> {
    if addr.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let bad = || {
        invalid(
            field,
            format!("'{addr}' is not an ip:port or host:port address"),
        )
    };
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
        });
    if host_ok && port.parse::<u16>().is_ok() {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Creates (once) or reads the development project's secret.
fn dev_secret(data_dir: &Path) -> Result<String, ConfigError> {
    let path = data_dir.join("dev-project.secret");
    let io_err = |source| ConfigError::DevSecret {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    std::fs::create_dir_all(data_dir).map_err(io_err)?;
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| io_err(std::io::Error::other(e.to_string())))?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    // Readable by its owner only (0600 on Unix): it signs server API calls.
    let mut file = {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(&path).map_err(io_err)?
    };
    std::io::Write::write_all(&mut file, format!("{secret}\n").as_bytes()).map_err(io_err)?;
    Ok(secret)
}

/// Reads a duration: `"1500ms"`, `"30s"`, `"5m"`, `"24h"`, `"7d"`, or a number of seconds.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Seconds(s) => Ok(Duration::from_secs(s)),
        Raw::Text(text) => parse_duration(&text).map_err(serde::de::Error::custom),
    }
}

/// Parses `"1500ms"`, `"30s"`, `"5m"`, `"24h"`, `"7d"` (or a bare number of seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration like \"300s\", \"5m\" or \"24h\""))?;
    let millis = match unit.trim() {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        other => {
            return Err(format!(
                "'{text}': unknown unit '{other}' (use ms, s, m, h or d)"
            ))
        }
    };
    millis
        .map(Duration::from_millis)
        .ok_or_else(|| format!("'{text}' is too long"))
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreKind::Embedded => f.write_str("embedded"),
            StoreKind::Redis(url) => f.write_str(&redact_url(url)),
        }
    }
}

/// A URL with its password replaced, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
        data_dir = "/tmp/x"
        store = "redis://:pw@127.0.0.1:6379/2"
        [listen]
        server_api = "0.0.0.0:1"
        gate = "0.0.0.0:2"
        admin = ""
        web = false
        [listen.gate_tls]
        cert = "/etc/rtmd/cert.pem"
        key = "/etc/rtmd/key.pem"
        [limits]
        idle_timeout = "90s"
        auth_timeout = 3
        kickout_grace = "250ms"
        [[projects]]
        pid = 5
        secrets = ["a", "b"]
        token_ttl = "1h"
        multi_login = false
        [[projects]]
        pid = 6
        secrets = ["c"]
        replay = "sign"
    "#;

    #[test]
    fn a_full_file_parses() {
        let c = Config::from_toml(FULL).unwrap();
        assert_eq!(
            c.store_kind(),
            StoreKind::Redis("redis://:pw@127.0.0.1:6379/2".into())
        );
        assert_eq!(c.store_kind().to_string(), "redis://:***@127.0.0.1:6379/2");
        assert_eq!(c.limits.idle_timeout, Duration::from_secs(90));
        assert_eq!(c.limits.auth_timeout, Duration::from_secs(3));
        assert_eq!(c.projects[0].token_ttl, Duration::from_secs(3600));
        assert!(!c.projects[0].multi_login);
        assert!(c.projects[1].multi_login);
        assert_eq!(c.projects[1].max_devices, 32);
        assert_eq!(c.listen.admin, "");
        assert_eq!(c.limits.kickout_grace, Duration::from_millis(250));
        assert_eq!(c.projects[0].replay, ReplayMode::Request);
        assert_eq!(c.projects[1].replay, ReplayMode::Sign);
        let d = Config::from_toml("[[projects]]\npid = 1\nsecrets = [\"a\"]\nreplay = \"off\"\n")
            .unwrap();
        assert_eq!(d.limits.kickout_grace, DEFAULT_KICKOUT_GRACE);
        assert_eq!(d.projects[0].replay, ReplayMode::Off);
        assert!(!c.listen.web && d.listen.web);
        let tls = c.listen.gate_tls.as_ref().unwrap();
        assert_eq!(tls.cert, Path::new("/etc/rtmd/cert.pem"));
        assert_eq!(tls.key, Path::new("/etc/rtmd/key.pem"));
        assert!(c.listen.server_api_tls.is_none() && d.listen.gate_tls.is_none());
        let e = refused(
            "[listen.gate_tls]\ncert = \"a.pem\"\n[[projects]]\npid = 1\nsecrets = [\"a\"]\n",
        );
        assert!(e.contains("key"), "{e}");
        let e = refused("[listen.gate_tls]\ncert = \"\"\nkey = \"k\"\n[[projects]]\npid = 1\nsecrets = [\"a\"]\n");
        assert!(e.contains("listen.gate_tls"), "{e}");
    }

    fn refused(text: &str) -> String {
        Config::from_toml(text).unwrap_err().to_string()
    }

    #[test]
    fn bad_values_name_their_field() {
        let e = refused("[[projects]]\npid = 1\nsecrets = []\n");
        assert!(e.contains("projects[0].secrets"), "{e}");
        let e = refused(
            "[[projects]]\npid = 1\nsecrets = [\"a\"]\n[[projects]]\npid = 1\nsecrets = [\"b\"]\n",
        );
        assert!(e.contains("projects[1].pid"), "{e}");
        let e = refused("[[projects]]\npid = -3\nsecrets = [\"a\"]\n");
        assert!(e.contains("projects[0].pid"), "{e}");
        let e = refused("[[projects]]\npid = 1\nsecrets = [\"a\"]\ntoken_ttl = \"5 fortnights\"\n");
        assert!(e.contains("token_ttl") && e.contains("unknown unit"), "{e}");
        let e = refused("store = \"postgres://x\"\n[[projects]]\npid = 1\nsecrets = [\"a\"]\n");
        assert!(e.contains("store"), "{e}");
        let e = refused("[listen]\ngate = \"nowhere\"\n[[projects]]\npid = 1\nsecrets = [\"a\"]\n");
        assert!(e.contains("listen.gate"), "{e}");
        let e = refused("");
        assert!(e.contains("projects"), "{e}");
        let e = refused(
            "[redis]\nsession_ttl = \"2s\"\ncommand_timeout = \"2s\"\n[[projects]]\npid = 1\nsecrets = [\"a\"]\n",
        );
        assert!(e.contains("redis.session_ttl"), "{e}");
        let e =
            refused("[limits]\nkickout_grace = \"2m\"\n[[projects]]\npid = 1\nsecrets = [\"a\"]\n");
        assert!(e.contains("limits.kickout_grace"), "{e}");
        let e = refused("[[projects]]\npid = 1\nsecrets = [\"a\"]\nreplay = \"salt\"\n");
        assert!(e.contains("replay") && e.contains("request"), "{e}");
    }

    #[test]
    fn connection_limits_parse_and_give_the_worst_case() {
        let c = Config::from_toml(
            "[limits]\nread_buffer = 8192\nframe_memory = 1048576\noutbound_budget = 4096\n\
             outbound_high_water = 2048\nmax_in_flight = 8\nmax_in_flight_total = 100\n\
             write_stall_timeout = \"5s\"\nmax_connections = 10\n\
             [[projects]]\npid = 1\nsecrets = [\"a\"]\n",
        )
        .unwrap();
        let l = &c.limits;
        assert_eq!(
            (l.read_buffer, l.outbound_budget, l.max_in_flight),
            (8192, 4096, 8)
        );
        assert_eq!(l.write_stall_timeout, Duration::from_secs(5));
        // 10 × (8 KiB + 4 KiB + 6 KiB) + 1 MiB + 100 × 3 KiB.
        assert_eq!(
            l.worst_case_memory(),
            10 * (8192 + 4096 + 6144) + 1048576 + 100 * 3072
        );
        // The defaults: about 8.3 GiB a port, as the README says.
        let gib = Limits::default().worst_case_memory() as f64 / (1u64 << 30) as f64;
        assert!((8.2..8.4).contains(&gib), "{gib}");
        let e = refused("[limits]\nmax_in_flight = 0\n[[projects]]\npid = 1\nsecrets = [\"a\"]\n");
        assert!(e.contains("limits.max_in_flight"), "{e}");
        let e = refused(
            "[limits]\nwrite_stall_timeout = 0\n[[projects]]\npid = 1\nsecrets = [\"a\"]\n",
        );
        assert!(e.contains("limits.write_stall_timeout"), "{e}");
    }

    #[test]
    fn typos_are_refused() {
        let e = refused("[[projects]]\npid = 1\nsecrets = [\"a\"]\nmulti_logn = false\n");
        assert!(e.contains("multi_logn"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn the_development_secret_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let a = Config::development(dir.path()).unwrap();
        let b = Config::development(dir.path()).unwrap();
        assert_eq!(a.projects[0].pid, DEV_PID);
        assert_eq!(a.projects[0].secrets, b.projects[0].secrets);
        assert_eq!(a.projects[0].secrets[0].len(), 32);
    }

    #[test]
    fn the_replay_window_and_the_sign_window_are_bounded() {
        let project = "[[projects]]\npid = 1\nsecrets = [\"a\"]\n";
        let e = refused(&format!("[limits]\nreplay_capacity = 0\n{project}"));
        assert!(e.contains("replay_capacity"), "{e}");
        let e = refused(&format!(
            "[limits]\nreplay_capacity = 4294967296\n{project}"
        ));
        assert!(e.contains("at most 4294967295"), "{e}");
        let c = Config::from_toml(&format!("[limits]\nreplay_capacity = 100\n{project}")).unwrap();
        c.validate().unwrap();
        assert_eq!(c.limits.replay_capacity, 100);
        let e = refused(&format!("{project}sign_window = \"61m\"\n"));
        assert!(e.contains("sign_window") && e.contains("1h"), "{e}");
        let c = Config::from_toml(&format!("{project}sign_window = \"1h\"\n")).unwrap();
        c.validate().unwrap();
        // The longest window's replay ttl is one the window takes.
        assert_eq!(
            MAX_SIGN_WINDOW * 2 + Duration::from_secs(1),
            crate::store::MAX_REPLAY_TTL
        );
    }

    #[test]
    fn warnings_name_ignored_and_weak_settings() {
        let long = "[[projects]]\npid = 1\nsecrets = [\"0123456789abcdef\"]\n";
        let c = Config::from_toml(long).unwrap();
        assert_eq!(c.warnings(), Vec::<String>::new());
        let c = Config::from_toml(&format!("[redis]\nkey_prefix = \"x\"\n{long}")).unwrap();
        let w = c.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("[redis] section is ignored"), "{w:?}");
        let c = Config::from_toml(&format!(
            "store = \"redis://127.0.0.1/0\"\n[redis]\nkey_prefix = \"x\"\n{long}"
        ))
        .unwrap();
        assert_eq!(
            c.warnings(),
            Vec::<String>::new(),
            "used with a Redis store"
        );
        let c =
            Config::from_toml("[[projects]]\npid = 7\nsecrets = [\"0123456789abcdef\", \"a\"]\n")
                .unwrap();
        let w = c.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("projects[0].secrets[1]")
                && w[0].contains("project 7")
                && w[0].contains("1 characters"),
            "{w:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            Config::development(dir.path()).unwrap().warnings(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn log_format_is_text_or_json() {
        let project = "[[projects]]\npid = 1\nsecrets = [\"a\"]\n";
        assert_eq!(
            Config::from_toml(project).unwrap().log_format,
            LogFormat::Text
        );
        let c = Config::from_toml(&format!("log_format = \"json\"\n{project}")).unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
        let e = refused(&format!("log_format = \"xml\"\n{project}"));
        assert!(e.contains("xml"), "{e}");
    }

    #[test]
    fn addresses_may_name_a_host() {
        for ok in [
            "127.0.0.1:13315",
            "[::1]:0",
            "localhost:13315",
            "rtm-1.internal:80",
            "0.0.0.0:0",
        ] {
            parse_addr("f", ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "localhost",
            ":80",
            "localhost:",
            "localhost:99999",
            "a b:80",
            "-x:80",
            "a..b:1",
            "nowhere",
        ] {
            let e = parse_addr("listen.gate", bad).unwrap_err().to_string();
            assert!(
                e.contains("listen.gate") && e.contains("host:port"),
                "{bad}: {e}"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn the_development_secret_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        Config::development(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join("dev-project.secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }

    proptest::proptest! {
        #[test]
        fn addresses_never_panic_and_ip_ports_pass(text in ".{0,80}", port in 0u16..) {
            let _ = parse_addr("f", &text);
            let v4 = format!("10.1.2.3:{port}");
            let host = format!("node-1.example:{port}");
            proptest::prop_assert!(parse_addr("f", &v4).is_ok());
            proptest::prop_assert!(parse_addr("f", &host).is_ok());
        }
    }
}
