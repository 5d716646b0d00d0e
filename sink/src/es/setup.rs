//! Start-up conversation with the cluster: what it is (`GET /`), the index template and the
//! retention policy. Everything here is idempotent: an object already installed with the same
//! content (recognised by the hash Sluice stores in it) is not written again, so restarts and
//! several collectors sharing a cluster do not churn templates.

use std::sync::atomic::Ordering::Relaxed;

use serde_json::{json, Value};

use super::client::{Client, Method};
use super::config::EsConfig;
use super::error::EsError;
use super::metrics::{log_limited, Counters, Flavor};

/// `GET /`: Elasticsearch or OpenSearch, and the version number.
pub(crate) fn detect(client: &Client) -> Result<(Flavor, String), EsError> {
    let mut body = client.json(Method::Get, "/", None)?;
    let v: Value = simd_json::serde::from_slice(&mut body)
        .map_err(|e| EsError::Protocol(format!("GET / is not JSON: {e}")))?;
    let version = v
        .get("version")
        .ok_or_else(|| EsError::Protocol("GET / has no version".into()))?;
    let number = version
        .get("number")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let flavor = match version.get("distribution").and_then(Value::as_str) {
        Some("opensearch") => Flavor::OpenSearch,
        _ => Flavor::Elasticsearch,
    };
    Ok((flavor, number))
}

/// FNV-1a 64 of the serialized value (serde_json maps are ordered, so this is stable).
fn hash(v: &Value) -> String {
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// `30d`, `12h`, `90m` or `45s`: the largest unit that divides the duration.
fn age(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// The template body as installed: the configured one plus what Sluice adds.
pub(crate) fn template_body(cfg: &EsConfig, flavor: Flavor) -> Option<Value> {
    let mut t = cfg.template.clone()?;
    let obj = t.as_object_mut()?;
    obj.entry("index_patterns")
        .or_insert_with(|| json!([cfg.read_pattern()]));
    if cfg.data_stream.is_some() {
        obj.entry("data_stream").or_insert_with(|| json!({}));
    }
    obj.entry("priority").or_insert(json!(200));
    if cfg.retention.is_some() && flavor == Flavor::Elasticsearch {
        let tmpl = obj.entry("template").or_insert_with(|| json!({}));
        if let Some(tmpl) = tmpl.as_object_mut() {
            let settings = tmpl.entry("settings").or_insert_with(|| json!({}));
            if let Some(s) = settings.as_object_mut() {
                let nested = s.get("index").and_then(|i| i.get("lifecycle")).is_some();
                if !nested {
                    s.entry("index.lifecycle.name")
                        .or_insert_with(|| json!(cfg.policy_name));
                }
            }
        }
    }
    obj.remove("_meta");
    let h = hash(&t);
    if let Some(obj) = t.as_object_mut() {
        obj.insert(
            "_meta".into(),
            json!({"managed_by": "sluice", "sluice_hash": h}),
        );
    }
    Some(t)
}

fn meta_hash(v: &Value) -> Option<&str> {
    v.get("_meta")?.get("sluice_hash")?.as_str()
}

/// Installs the template unless an identical one is there. `Ok(true)` if it was written.
pub(crate) fn install_template(
    client: &Client,
    cfg: &EsConfig,
    flavor: Flavor,
) -> Result<bool, EsError> {
    let Some(body) = template_body(cfg, flavor) else {
        return Ok(false);
    };
    let path = format!("/_index_template/{}", cfg.template_name);
    let want = meta_hash(&body).map(str::to_owned);
    let reply = client.request(Method::Get, &path, None)?;
    if reply.status == 200 {
        let v: Value = serde_json::from_slice(&reply.body)
            .map_err(|e| EsError::Protocol(format!("{path}: {e}")))?;
        let installed = v
            .get("index_templates")
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|t| t.get("name").and_then(Value::as_str) == Some(&cfg.template_name))
            })
            .and_then(|t| t.get("index_template"));
        if installed.and_then(meta_hash) == want.as_deref() {
            return Ok(false);
        }
    } else if reply.status != 404 {
        return Err(reply.to_error());
    }
    let bytes = serde_json::to_vec(&body).map_err(|e| EsError::Protocol(e.to_string()))?;
    client.json(Method::Put, &path, Some(&bytes))?;
    Ok(true)
}

/// Elasticsearch ILM policy: delete after `retention`; data streams also roll over daily.
fn ilm_body(cfg: &EsConfig, retention: std::time::Duration) -> Value {
    let hot_actions = if cfg.data_stream.is_some() {
        json!({"rollover": {"max_age": "1d", "max_primary_shard_size": "50gb"}})
    } else {
        json!({})
    };
    let mut policy = json!({
        "phases": {
            "hot": {"min_age": "0ms", "actions": hot_actions},
            "delete": {"min_age": age(retention), "actions": {"delete": {}}}
        }
    });
    let h = hash(&policy);
    policy["_meta"] = json!({"managed_by": "sluice", "sluice_hash": h});
    json!({ "policy": policy })
}

/// OpenSearch ISM policy: delete after `retention`, attached to new indices by its
/// `ism_template`. ISM has no `_meta`; the hash goes in the description.
fn ism_body(cfg: &EsConfig, retention: std::time::Duration) -> (Value, String) {
    let (patterns, hot_actions) = match &cfg.data_stream {
        Some(ds) => (
            json!([format!(".ds-{ds}-*")]),
            json!([{"rollover": {"min_index_age": "1d"}}]),
        ),
        None => (json!([cfg.read_pattern()]), json!([])),
    };
    let policy = json!({
        "default_state": "hot",
        "states": [
            {"name": "hot", "actions": hot_actions,
             "transitions": [{"state_name": "delete", "conditions": {"min_index_age": age(retention)}}]},
            {"name": "delete", "actions": [{"delete": {}}], "transitions": []}
        ],
        "ism_template": [{"index_patterns": patterns, "priority": 100}]
    });
    let h = hash(&policy);
    let mut p = policy;
    p["description"] = json!(format!(
        "Sluice flow retention, {} [sluice_hash {h}]",
        age(retention)
    ));
    (json!({ "policy": p }), h)
}

/// Installs the ILM (Elasticsearch) or ISM (OpenSearch) policy unless an identical one is
/// there. `Ok(true)` if it was written.
pub(crate) fn install_policy(
    client: &Client,
    cfg: &EsConfig,
    flavor: Flavor,
) -> Result<bool, EsError> {
    let Some(retention) = cfg.retention else {
        return Ok(false);
    };
    match flavor {
        Flavor::Elasticsearch => {
            let body = ilm_body(cfg, retention);
            let path = format!("/_ilm/policy/{}", cfg.policy_name);
            let reply = client.request(Method::Get, &path, None)?;
            if reply.status == 200 {
                let v: Value = serde_json::from_slice(&reply.body)
                    .map_err(|e| EsError::Protocol(format!("{path}: {e}")))?;
                let have = v
                    .get(&cfg.policy_name)
                    .and_then(|p| p.get("policy"))
                    .and_then(meta_hash);
                if have.is_some() && have == meta_hash(&body["policy"]) {
                    return Ok(false);
                }
            } else if reply.status != 404 {
                return Err(reply.to_error());
            }
            let bytes = serde_json::to_vec(&body).map_err(|e| EsError::Protocol(e.to_string()))?;
            client.json(Method::Put, &path, Some(&bytes))?;
            Ok(true)
        }
        Flavor::OpenSearch => {
            let (body, h) = ism_body(cfg, retention);
            let path = format!("/_plugins/_ism/policies/{}", cfg.policy_name);
            let reply = client.request(Method::Get, &path, None)?;
            let mut put_path = path.clone();
            if reply.status == 200 {
                let v: Value = serde_json::from_slice(&reply.body)
                    .map_err(|e| EsError::Protocol(format!("{path}: {e}")))?;
                let desc = v
                    .get("policy")
                    .and_then(|p| p.get("description"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if desc.contains(&h) {
                    return Ok(false);
                }
                // ISM updates need the current sequence number (optimistic concurrency).
                let seq = v.get("_seq_no").and_then(Value::as_i64).unwrap_or(0);
                let term = v.get("_primary_term").and_then(Value::as_i64).unwrap_or(0);
                put_path = format!("{path}?if_seq_no={seq}&if_primary_term={term}");
            } else if reply.status != 404 {
                return Err(reply.to_error());
            }
            let bytes = serde_json::to_vec(&body).map_err(|e| EsError::Protocol(e.to_string()))?;
            client.json(Method::Put, &put_path, Some(&bytes))?;
            Ok(true)
        }
    }
}

/// The whole setup. Transport errors and 5xx are returned (the caller retries); a template or
/// policy the cluster refuses (4xx, or a cluster without ILM/ISM) is logged, counted in
/// `setup_errors`, and setup goes on: shipping without them beats not shipping.
pub(crate) fn run(client: &Client, cfg: &EsConfig, counters: &Counters) -> Result<Flavor, EsError> {
    let (flavor, version) = detect(client)?;
    counters.set_flavor(flavor);
    eprintln!("sluice es: connected to {flavor:?} {version}");
    if !cfg.install_template {
        return Ok(flavor);
    }
    // The policy first: the template names it.
    type Step = fn(&Client, &EsConfig, Flavor) -> Result<bool, EsError>;
    let steps: [(&str, Step); 2] = [
        ("retention policy", install_policy),
        ("index template", install_template),
    ];
    for (what, step) in steps {
        match step(client, cfg, flavor) {
            Ok(written) => {
                if written && what == "index template" {
                    counters.template_puts.fetch_add(1, Relaxed);
                }
            }
            Err(e)
                if matches!(e, EsError::Transport(_))
                    || matches!(
                        e,
                        EsError::Http {
                            status: 500..=599,
                            ..
                        }
                    ) =>
            {
                return Err(e)
            }
            Err(e) => {
                counters.setup_errors.fetch_add(1, Relaxed);
                log_limited(
                    "setup",
                    format_args!("installing the {what} failed, going on without it: {e}"),
                );
            }
        }
    }
    Ok(flavor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_gets_patterns_policy_and_stable_hash() {
        let cfg = EsConfig {
            template: Some(
                json!({"template": {"mappings": {"properties": {"source": {"properties": {"ip": {"type": "ip"}}}}}}}),
            ),
            ..EsConfig::default()
        };
        let t = template_body(&cfg, Flavor::Elasticsearch).expect("body");
        assert_eq!(t["index_patterns"], json!(["sluice-flows-*"]));
        assert_eq!(
            t["template"]["settings"]["index.lifecycle.name"],
            json!("sluice-flows")
        );
        let again = template_body(&cfg, Flavor::Elasticsearch).expect("body");
        assert_eq!(meta_hash(&t), meta_hash(&again));
        let os = template_body(&cfg, Flavor::OpenSearch).expect("body");
        assert!(os["template"].get("settings").is_none());
        assert_ne!(meta_hash(&t), meta_hash(&os));
        assert_eq!(age(std::time::Duration::from_secs(7 * 86_400)), "7d");
        assert_eq!(age(std::time::Duration::from_secs(5400)), "90m");
    }
}
