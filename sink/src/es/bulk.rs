//! `_bulk` answers, parsed with simd-json. Elasticsearch answers HTTP 200 even when items
//! failed: `{"took":..,"errors":true,"items":[{"create":{"_index":..,"_id":..,"status":429,
//! "error":{"type":..,"reason":..}}}, ...]}`, one item per action, in request order. Each item
//! is judged on its own (`retry::classify`).

use serde::Deserialize;

use super::error::EsError;

/// The query string of our `_bulk` requests: only what we read comes back, which keeps the
/// answer to a 5000-document request small (about 20 bytes per item).
pub(crate) const BULK_PATH: &str = "/_bulk?filter_path=errors,items.*.status,items.*.error";

#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    errors: bool,
    #[serde(default)]
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    // We only send `create`; the others are accepted so that a proxy rewriting actions
    // does not make the answer unreadable.
    #[serde(alias = "index", alias = "update", alias = "delete")]
    create: ItemBody,
}

#[derive(Deserialize)]
struct ItemBody {
    status: u16,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// One item's answer.
#[derive(Debug)]
pub(crate) struct ItemStatus {
    pub status: u16,
    pub error: Option<serde_json::Value>,
}

/// The items of a 2xx `_bulk` answer; an error if the body does not have the documented
/// shape or the item count differs from the documents sent.
pub(crate) fn parse_reply(body: &mut [u8], sent: usize) -> Result<Vec<ItemStatus>, EsError> {
    let reply: Reply = simd_json::serde::from_slice(body)
        .map_err(|e| EsError::Protocol(format!("bulk answer is not the documented JSON: {e}")))?;
    if reply.items.len() != sent {
        return Err(EsError::Protocol(format!(
            "bulk answer has {} items for {sent} documents",
            reply.items.len()
        )));
    }
    let items: Vec<ItemStatus> = reply
        .items
        .into_iter()
        .map(|i| ItemStatus {
            status: i.create.status,
            error: i.create.error,
        })
        .collect();
    if !reply.errors && items.iter().any(|i| !(200..300).contains(&i.status)) {
        // `errors` false with a failed item contradicts the documented shape; the items are
        // what we act on.
        super::metrics::log_limited(
            "bulk_errors_flag",
            format_args!("bulk answer says errors=false but has failed items"),
        );
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_shape() {
        let mut body = br#"{"took":30,"errors":true,"items":[
            {"create":{"_index":"i","_id":"1","_version":1,"result":"created","_shards":{"total":2,"successful":1,"failed":0},"status":201,"_seq_no":0,"_primary_term":1}},
            {"create":{"_index":"i","_id":"2","status":409,"error":{"type":"version_conflict_engine_exception","reason":"[2]: version conflict, document already exists (current version [1])","index_uuid":"u","shard":"0","index":"i"}}},
            {"create":{"_index":"i","_id":"3","status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution"}}},
            {"create":{"_index":"i","_id":"4","status":400,"error":{"type":"document_parsing_exception","reason":"[1:12] failed to parse field [source.ip] of type [ip]"}}}
        ]}"#
        .to_vec();
        let items = parse_reply(&mut body, 4).expect("parses");
        let st: Vec<u16> = items.iter().map(|i| i.status).collect();
        assert_eq!(st, vec![201, 409, 429, 400]);
        assert!(items[0].error.is_none());
        assert_eq!(
            items[3].error.as_ref().and_then(|e| e["type"].as_str()),
            Some("document_parsing_exception")
        );
        let mut short = br#"{"errors":false,"items":[{"create":{"status":201}}]}"#.to_vec();
        assert!(parse_reply(&mut short, 2).is_err());
        let mut junk = b"<html>".to_vec();
        assert!(parse_reply(&mut junk, 1).is_err());
    }
}
