//! HTTP/1.1 to the cluster: one ureq agent (keep-alive pool, rustls), endpoints round-robin,
//! the `Authorization` header, gzip request bodies. Transport only: whether to retry is
//! decided by the callers (`retry.rs`, `sink.rs`).

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use ureq::tls::{Certificate, RootCerts, TlsConfig};

use super::config::EsConfig;
use super::error::EsError;

/// Answers larger than this are refused (a search page of 1000 large documents fits).
const MAX_ANSWER_BYTES: u64 = 512 << 20;

/// An HTTP answer, any status.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The answer as an [`EsError::Http`], with `error.type: error.reason` when the body has
    /// Elasticsearch's error shape.
    pub fn to_error(&self) -> EsError {
        let reason = serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| {
                let e = v.get("error")?;
                if let Some(s) = e.as_str() {
                    return Some(s.to_owned());
                }
                let t = e.get("type").and_then(|t| t.as_str()).unwrap_or("error");
                let r = e.get("reason").and_then(|r| r.as_str()).unwrap_or("");
                Some(format!("{t}: {r}"))
            })
            .unwrap_or_else(|| {
                let n = self.body.len().min(200);
                String::from_utf8_lossy(&self.body[..n]).into_owned()
            });
        EsError::Http {
            status: self.status,
            reason,
        }
    }
}

/// HTTP methods the sink uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Post,
    Put,
    Delete,
}

/// A request body.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Body<'a> {
    pub bytes: &'a [u8],
    pub content_type: &'static str,
    /// Already gzip-compressed: send `Content-Encoding: gzip`.
    pub gzipped: bool,
}

impl<'a> Body<'a> {
    pub fn json(bytes: &'a [u8]) -> Body<'a> {
        Body {
            bytes,
            content_type: "application/json",
            gzipped: false,
        }
    }
}

/// The cluster connection.
#[derive(Debug)]
pub(crate) struct Client {
    agent: ureq::Agent,
    urls: Vec<String>,
    next: AtomicUsize,
    auth_header: Option<String>,
}

impl Client {
    pub fn new(cfg: &EsConfig) -> Result<Client, EsError> {
        let mut tls = TlsConfig::builder();
        if let Some(path) = &cfg.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| EsError::config("ca_file", format!("{}: {e}", path.display())))?;
            let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<_, _>>()
                .map_err(|e| EsError::config("ca_file", format!("{}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(EsError::config(
                    "ca_file",
                    format!("{}: no PEM certificate in it", path.display()),
                ));
            }
            tls = tls.root_certs(RootCerts::new_with_certs(&certs));
        }
        if !cfg.tls_verify {
            eprintln!(
                "sluice es: WARNING: tls_verify is false: the cluster's certificate is not \
                 checked, anyone on the path can read the flows and the credentials"
            );
            tls = tls.disable_verification(true);
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls.build())
            .timeout_global(Some(cfg.request_timeout))
            .timeout_connect(Some(cfg.request_timeout.min(Duration::from_secs(10))))
            .max_idle_connections(cfg.max_in_flight.saturating_mul(2).max(4))
            .max_idle_connections_per_host(cfg.max_in_flight.saturating_mul(2).max(4))
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .max_redirects(0)
            .build();
        Ok(Client {
            agent: config.new_agent(),
            urls: cfg
                .urls
                .iter()
                .map(|u| u.trim_end_matches('/').to_owned())
                .collect(),
            next: AtomicUsize::new(0),
            auth_header: cfg.auth.header(),
        })
    }

    /// One request to the next endpoint. `path` starts with `/` and may carry a query.
    /// Any status is an `Ok`; only a missing answer is an error ([`EsError::Transport`]).
    pub fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Body<'_>>,
    ) -> Result<Reply, EsError> {
        let i = self.next.fetch_add(1, Relaxed) % self.urls.len();
        let url = format!("{}{}", self.urls[i], path);
        let result = match (method, body) {
            (Method::Get, _) => self.with_auth_get(self.agent.get(&url)).call(),
            (Method::Delete, None) => self.with_auth_get(self.agent.delete(&url)).call(),
            (Method::Delete, Some(b)) => {
                // DELETE with a body (Elasticsearch's close-PIT) needs the builder that takes one.
                let req = self.agent.delete(&url).force_send_body();
                let req = match &self.auth_header {
                    Some(h) => req.header("Authorization", h),
                    None => req,
                };
                req.header("Content-Type", b.content_type).send(b.bytes)
            }
            (Method::Post | Method::Put, b) => {
                let req = if method == Method::Post {
                    self.agent.post(&url)
                } else {
                    self.agent.put(&url)
                };
                let mut req = match &self.auth_header {
                    Some(h) => req.header("Authorization", h),
                    None => req,
                };
                match b {
                    Some(b) => {
                        req = req.header("Content-Type", b.content_type);
                        if b.gzipped {
                            req = req.header("Content-Encoding", "gzip");
                        }
                        req.send(b.bytes)
                    }
                    None => req.send_empty(),
                }
            }
        };
        // ureq's messages name the host and the error, never our headers.
        let mut resp = result.map_err(|e| EsError::Transport(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_vec()
            .map_err(|e| EsError::Transport(format!("reading the answer: {e}")))?;
        Ok(Reply { status, body })
    }

    fn with_auth_get(
        &self,
        req: ureq::RequestBuilder<ureq::typestate::WithoutBody>,
    ) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        match &self.auth_header {
            Some(h) => req.header("Authorization", h),
            None => req,
        }
    }

    /// A JSON request whose answer must be 2xx; the answer body.
    pub fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Vec<u8>, EsError> {
        let reply = self.request(method, path, body.map(Body::json))?;
        if reply.is_success() {
            Ok(reply.body)
        } else {
            Err(reply.to_error())
        }
    }
}
