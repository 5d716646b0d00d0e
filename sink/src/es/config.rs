//! Configuration of the Elasticsearch/OpenSearch sink. Every field's doc comment is its user
//! documentation; [`EsConfig::validate`] names the key that is wrong.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;

use super::error::EsError;
use super::gzip::GzipLibrary;

/// Credentials sent with every request. `Debug` never shows them, and no log line or error
/// message of the sink contains them.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Auth {
    /// No `Authorization` header.
    #[default]
    None,
    /// HTTP basic authentication.
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// An API key: either the `encoded` value Elasticsearch's create-API-key call returns, or
    /// `id:api_key` (encoded here).
    ApiKey(String),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Basic { .. } => f.write_str("Basic(<redacted>)"),
            Auth::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
        }
    }
}

/// Environment variable names read by [`Auth::from_env`].
pub const ENV_API_KEY: &str = "SLUICE_ES_API_KEY";
/// Basic-auth user name variable.
pub const ENV_USERNAME: &str = "SLUICE_ES_USERNAME";
/// Basic-auth password variable.
pub const ENV_PASSWORD: &str = "SLUICE_ES_PASSWORD";

impl Auth {
    /// Reads credentials from the environment: `SLUICE_ES_API_KEY`, or `SLUICE_ES_USERNAME` and
    /// `SLUICE_ES_PASSWORD`. Each may instead be given as `NAME_FILE`, the path of a file that
    /// holds the value (the container-secret convention); surrounding whitespace is trimmed.
    /// Nothing set gives [`Auth::None`].
    pub fn from_env() -> Result<Auth, EsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Auth, EsError> {
        let value = |name: &'static str| -> Result<Option<String>, EsError> {
            if let Some(v) = get(name) {
                return Ok(Some(v.trim().to_owned()));
            }
            let file_var = format!("{name}_FILE");
            match get(&file_var) {
                Some(path) => {
                    let text = std::fs::read_to_string(path.trim()).map_err(|e| {
                        EsError::config(
                            "auth",
                            format!("reading the file named by {file_var}: {e}"),
                        )
                    })?;
                    Ok(Some(text.trim().to_owned()))
                }
                None => Ok(None),
            }
        };
        if let Some(key) = value(ENV_API_KEY)? {
            return Ok(Auth::ApiKey(key));
        }
        match (value(ENV_USERNAME)?, value(ENV_PASSWORD)?) {
            (Some(user), Some(password)) => Ok(Auth::Basic { user, password }),
            (None, None) => Ok(Auth::None),
            _ => Err(EsError::config(
                "auth",
                format!("{ENV_USERNAME} and {ENV_PASSWORD} must be set together"),
            )),
        }
    }

    /// Reads credentials from a file of `key = value` lines (`#` starts a comment):
    /// `api_key = ...`, or `username = ...` and `password = ...`. The file should be readable
    /// by the collector's user only.
    pub fn from_file(path: &Path) -> Result<Auth, EsError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| EsError::config("auth", format!("reading {}: {e}", path.display())))?;
        let (mut user, mut password, mut key) = (None, None, None);
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // The value is never echoed: a misplaced password must not reach a log.
            let Some((k, v)) = line.split_once('=') else {
                return Err(EsError::config(
                    "auth",
                    format!("{} line {}: expected `key = value`", path.display(), n + 1),
                ));
            };
            let v = v.trim().trim_matches('"').to_owned();
            match k.trim() {
                "username" | "user" => user = Some(v),
                "password" => password = Some(v),
                "api_key" => key = Some(v),
                other => {
                    return Err(EsError::config(
                        "auth",
                        format!("{} line {}: unknown key `{other}`", path.display(), n + 1),
                    ))
                }
            }
        }
        match (key, user, password) {
            (Some(k), None, None) => Ok(Auth::ApiKey(k)),
            (None, Some(user), Some(password)) => Ok(Auth::Basic { user, password }),
            (None, None, None) => Ok(Auth::None),
            _ => Err(EsError::config(
                "auth",
                format!(
                    "{}: give either api_key, or username and password",
                    path.display()
                ),
            )),
        }
    }

    /// The `Authorization` header value, if any.
    pub(crate) fn header(&self) -> Option<String> {
        let b64 = base64::engine::general_purpose::STANDARD;
        match self {
            Auth::None => None,
            Auth::Basic { user, password } => Some(format!(
                "Basic {}",
                b64.encode(format!("{user}:{password}"))
            )),
            // An `id:key` pair is what the API returns unencoded; the encoded form has no ':'.
            Auth::ApiKey(k) if k.contains(':') => Some(format!("ApiKey {}", b64.encode(k))),
            Auth::ApiKey(k) => Some(format!("ApiKey {k}")),
        }
    }
}

/// The Elasticsearch/OpenSearch sink's settings.
#[derive(Clone, Debug)]
pub struct EsConfig {
    /// Cluster endpoints, `http://host:9200` or `https://...`; requests go round-robin and a
    /// failed connection moves to the next. Credentials go in `auth`, never in the URL.
    pub urls: Vec<String>,
    /// Index name pattern for daily (or hourly) indices, formatted from each document's
    /// @timestamp in UTC: `%Y`, `%m`, `%d`, `%H` and `%%` are replaced. Ignored when
    /// `data_stream` is set. Default `sluice-flows-%Y.%m.%d`.
    pub index: String,
    /// Write into this data stream instead of daily indices (Elasticsearch; OpenSearch 2.6+).
    /// The index template then declares the data stream.
    pub data_stream: Option<String>,
    /// Credentials (load them with [`Auth::from_env`] or [`Auth::from_file`]).
    pub auth: Auth,
    /// PEM file of the CA certificates that sign the cluster's certificate (instead of the
    /// Mozilla root set).
    pub ca_file: Option<PathBuf>,
    /// Verify the cluster's TLS certificate. `false` is for tests only and is logged as a
    /// warning at start.
    pub tls_verify: bool,
    /// Documents per `_bulk` request (at most).
    pub batch_docs: usize,
    /// Uncompressed NDJSON bytes per `_bulk` request (at most, unless one document is larger).
    pub batch_bytes: usize,
    /// A batch that is not full is sent after this long.
    pub flush_interval: Duration,
    /// Bulk requests in flight at once (one worker thread each).
    pub max_in_flight: usize,
    /// Sealed batches waiting in memory for a worker; beyond this they go to the disk spool.
    pub queue_batches: usize,
    /// gzip level of request bodies, 0 (no compression: no `Content-Encoding`) to 9.
    pub gzip_level: u32,
    /// Library that compresses at levels 1 and 2: ISA-L when it is installed (`Auto`).
    pub gzip_library: GzipLibrary,
    /// Time limit of one HTTP request, connection to last byte of the answer.
    pub request_timeout: Duration,
    /// First retry delay; it doubles per attempt, with jitter, up to `retry_max_delay`.
    pub retry_initial_delay: Duration,
    /// Longest delay between two attempts.
    pub retry_max_delay: Duration,
    /// How long a worker keeps resending the documents of a batch that the cluster rejected
    /// item by item with 429 or 5xx (inside an HTTP 200) before it appends them to the spool
    /// and takes the next batch. Whole-request failures (cluster unreachable, 429 or 5xx for
    /// the request) are retried without limit: they hit every batch alike, so the batch keeps
    /// its place at the head of the line and newer batches wait behind it, in memory and
    /// then in the spool, which keeps delivery in order.
    pub retry_max_time: Duration,
    /// Directory of the disk spool (created if missing); batches there survive restarts.
    pub spool_dir: PathBuf,
    /// Size limit of the spool on disk; when it is reached the oldest segment is deleted and
    /// its documents are counted as dropped.
    pub spool_max_bytes: u64,
    /// Size at which a spool segment file is closed and a new one started.
    pub spool_segment_bytes: u64,
    /// NDJSON file that receives documents Elasticsearch rejects for good (a mapping error,
    /// say): one line per document with the error and the document.
    pub dead_letter: PathBuf,
    /// Install the index template and the retention policy at start (idempotent: nothing is
    /// written when the installed ones are the same).
    pub install_template: bool,
    /// Name of the index template (`PUT _index_template/NAME`).
    pub template_name: String,
    /// Body of the index template: the generated `ops/elasticsearch` template. Sluice adds
    /// `index_patterns` (when absent), `data_stream` (with `data_stream` set), the lifecycle
    /// policy setting (Elasticsearch) and `_meta.sluice_hash`, by which an identical template
    /// is recognised and left alone. `None` installs no template.
    pub template: Option<serde_json::Value>,
    /// Delete indices older than this (ILM policy on Elasticsearch, ISM policy on
    /// OpenSearch, both named `policy_name`). `None` installs no policy.
    pub retention: Option<Duration>,
    /// Name of the lifecycle policy.
    pub policy_name: String,
}

impl Default for EsConfig {
    fn default() -> Self {
        EsConfig {
            urls: vec!["http://127.0.0.1:9200".to_owned()],
            index: "sluice-flows-%Y.%m.%d".to_owned(),
            data_stream: None,
            auth: Auth::None,
            ca_file: None,
            tls_verify: true,
            batch_docs: 5000,
            batch_bytes: 5 << 20,
            flush_interval: Duration::from_secs(1),
            max_in_flight: 4,
            queue_batches: 8,
            gzip_level: 1,
            gzip_library: GzipLibrary::Auto,
            request_timeout: Duration::from_secs(60),
            retry_initial_delay: Duration::from_millis(100),
            retry_max_delay: Duration::from_secs(10),
            retry_max_time: Duration::from_secs(30),
            spool_dir: PathBuf::from("sluice-data/es-spool"),
            spool_max_bytes: 1 << 30,
            spool_segment_bytes: 16 << 20,
            dead_letter: PathBuf::from("sluice-data/es-dead-letter.ndjson"),
            install_template: true,
            template_name: "sluice-flows".to_owned(),
            template: None,
            retention: Some(Duration::from_secs(30 * 86_400)),
            policy_name: "sluice-flows".to_owned(),
        }
    }
}

/// Characters Elasticsearch forbids in index names (besides upper case).
const BAD_INDEX_CHARS: &[char] = &['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':'];

fn check_index_name(key: &'static str, name: &str) -> Result<(), EsError> {
    if name.is_empty() || name.len() > 200 {
        return Err(EsError::config(key, "must be 1 to 200 bytes".to_owned()));
    }
    if name.starts_with(['-', '_', '+']) {
        return Err(EsError::config(
            key,
            "must not start with '-', '_' or '+'".to_owned(),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| BAD_INDEX_CHARS.contains(c) || c.is_uppercase())
    {
        return Err(EsError::config(
            key,
            format!("contains {c:?}: index names are lower case, without \\/*?\"<>| ,#:"),
        ));
    }
    Ok(())
}

impl EsConfig {
    /// Checks every value; the error names the key.
    pub fn validate(&self) -> Result<(), EsError> {
        if self.urls.is_empty() {
            return Err(EsError::config("urls", "needs at least one URL".to_owned()));
        }
        for u in &self.urls {
            let rest = u
                .strip_prefix("http://")
                .or_else(|| u.strip_prefix("https://"))
                .ok_or_else(|| {
                    EsError::config("urls", "URLs start with http:// or https://".into())
                })?;
            let authority = rest.split('/').next().unwrap_or_default();
            if authority.contains('@') {
                // Not echoing the URL: it holds a secret.
                return Err(EsError::config(
                    "urls",
                    "a URL holds credentials: put them in auth instead".to_owned(),
                ));
            }
            if authority.is_empty() {
                return Err(EsError::config("urls", format!("{u}: no host")));
            }
        }
        match &self.data_stream {
            Some(ds) => check_index_name("data_stream", ds)?,
            None => {
                let sample = super::batch::IndexNamer::new(&self.index).name_for(0);
                check_index_name("index", &sample)?;
            }
        }
        check_index_name("template_name", &self.template_name)?;
        check_index_name("policy_name", &self.policy_name)?;
        let positive = [
            ("batch_docs", self.batch_docs),
            ("batch_bytes", self.batch_bytes),
            ("max_in_flight", self.max_in_flight),
            ("queue_batches", self.queue_batches),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err(EsError::config(key, "must be at least 1".to_owned()));
            }
        }
        if self.max_in_flight > 256 {
            return Err(EsError::config("max_in_flight", "at most 256".to_owned()));
        }
        if self.gzip_level > 9 {
            return Err(EsError::config("gzip_level", "0 to 9".to_owned()));
        }
        if self.gzip_library == GzipLibrary::Isal && !super::gzip::isal_available() {
            return Err(EsError::config(
                "gzip_library",
                "\"isal\" asks for ISA-L, but libisal.so.2 cannot be loaded (Debian: apt install libisal2)".to_owned(),
            ));
        }
        if self.flush_interval.is_zero() {
            return Err(EsError::config(
                "flush_interval",
                "must be more than 0".to_owned(),
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(EsError::config(
                "request_timeout",
                "must be more than 0".to_owned(),
            ));
        }
        if self.retry_initial_delay.is_zero() || self.retry_max_delay < self.retry_initial_delay {
            return Err(EsError::config(
                "retry_initial_delay",
                "must be more than 0 and at most retry_max_delay".to_owned(),
            ));
        }
        if self.spool_segment_bytes < 4096 || self.spool_max_bytes < self.spool_segment_bytes {
            return Err(EsError::config(
                "spool_max_bytes",
                "spool_segment_bytes must be at least 4 KiB and at most spool_max_bytes".into(),
            ));
        }
        if let Some(r) = self.retention {
            if r < Duration::from_secs(60) {
                return Err(EsError::config(
                    "retention",
                    "at least one minute".to_owned(),
                ));
            }
        }
        if let Some(t) = &self.template {
            if !t.is_object() {
                return Err(EsError::config(
                    "template",
                    "must be a JSON object".to_owned(),
                ));
            }
        }
        Ok(())
    }

    /// The index (or data stream) pattern that reads cover: the data stream, or the index
    /// pattern with every `%` directive and what follows it up to the end replaced by `*`.
    pub fn read_pattern(&self) -> String {
        match &self.data_stream {
            Some(ds) => ds.clone(),
            None => match self.index.find('%') {
                Some(i) => format!("{}*", &self.index[..i]),
                None => self.index.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_from_lookup_and_debug_redacts() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let a = Auth::from_lookup(env(&[(ENV_USERNAME, "elastic"), (ENV_PASSWORD, "s3cret")]));
        let a = a.expect("basic");
        assert_eq!(
            a,
            Auth::Basic {
                user: "elastic".into(),
                password: "s3cret".into()
            }
        );
        assert!(!format!("{a:?}").contains("s3cret"));
        assert_eq!(a.header().as_deref(), Some("Basic ZWxhc3RpYzpzM2NyZXQ="));
        let k = Auth::from_lookup(env(&[(ENV_API_KEY, "id:key")])).expect("key");
        assert_eq!(k.header().as_deref(), Some("ApiKey aWQ6a2V5"));
        assert!(Auth::from_lookup(env(&[(ENV_USERNAME, "u")])).is_err());
        assert_eq!(Auth::from_lookup(env(&[])).expect("none"), Auth::None);
    }

    #[test]
    fn validate_names_the_key() {
        assert!(EsConfig::default().validate().is_ok());
        let bad = EsConfig {
            urls: vec!["http://u:p@h:9200".into()],
            ..EsConfig::default()
        };
        let e = bad.validate().expect_err("credentials in URL").to_string();
        assert!(e.contains("urls") && !e.contains("u:p"), "{e}");
        let bad = EsConfig {
            index: "Flows-%Y".into(),
            ..EsConfig::default()
        };
        assert!(bad
            .validate()
            .expect_err("upper case")
            .to_string()
            .contains("index"));
        assert_eq!(EsConfig::default().read_pattern(), "sluice-flows-*");
    }
}
