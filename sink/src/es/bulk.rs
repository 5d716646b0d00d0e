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
    if let Some(items) = all_succeeded(body, sent) {
        return Ok(items);
    }
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

/// The usual answer, read without a JSON parser: exactly what Elasticsearch and OpenSearch
/// write under [`BULK_PATH`] when every item succeeded, `{"errors":false,"items":[` then
/// `sent` items `{"create":{"status":2NN}}` separated by commas, then `]}`. Anything else
/// (whitespace, another action, an error, another count) is `None`, for the parser.
fn all_succeeded(body: &[u8], sent: usize) -> Option<Vec<ItemStatus>> {
    const HEAD: &[u8] = b"{\"errors\":false,\"items\":[";
    const ITEM: &[u8] = b"{\"create\":{\"status\":";
    const TAIL: &[u8] = b"]}";
    if sent == 0 {
        return None;
    }
    // Each item is its prefix, three digits, `}}`, and a comma but for the last: with every
    // item that long, the body's length fixes their count.
    let item_len = ITEM.len() + 3 + 2;
    let expected = HEAD.len() + TAIL.len() + sent * (item_len + 1) - 1;
    if body.len() != expected || !body.starts_with(HEAD) || !body.ends_with(TAIL) {
        return None;
    }
    let items = &body[HEAD.len()..body.len() - TAIL.len()];
    let mut out = Vec::with_capacity(sent);
    for item in items.split(|&b| b == b',') {
        let digits = item.strip_prefix(ITEM)?.strip_suffix(b"}}")?;
        let &[a, b, c] = digits else { return None };
        if a != b'2' || !b.is_ascii_digit() || !c.is_ascii_digit() {
            return None;
        }
        out.push(ItemStatus {
            status: 200 + u16::from(b - b'0') * 10 + u16::from(c - b'0'),
            error: None,
        });
    }
    // Every item had the one length, so the body's length made them `sent`.
    debug_assert_eq!(out.len(), sent);
    Some(out)
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

    /// The parser-free reading of all-succeeded answers agrees with the parser, and leaves
    /// everything else to it.
    #[test]
    fn all_succeeded_answers_read_without_the_parser() {
        let answer = |items: &[&str]| {
            let items: Vec<String> = items
                .iter()
                .map(|s| format!(r#"{{"create":{{"status":{s}}}}}"#))
                .collect();
            format!(r#"{{"errors":false,"items":[{}]}}"#, items.join(","))
        };
        let ok = answer(&["201", "201", "200", "201"]);
        let fast: Vec<u16> = all_succeeded(ok.as_bytes(), 4)
            .expect("read without the parser")
            .iter()
            .map(|i| i.status)
            .collect();
        assert_eq!(fast, vec![201, 201, 200, 201]);
        let parsed: Vec<u16> = parse_reply(&mut ok.clone().into_bytes(), 4)
            .expect("parses")
            .iter()
            .map(|i| i.status)
            .collect();
        assert_eq!(parsed, fast);
        // Not for the fast reading: the parser decides.
        let others = [
            (answer(&["201", "201", "200", "201"]), 3),
            (answer(&["201", "201", "200", "201"]), 5),
            (answer(&["201", "409"]), 2),
            (answer(&["201", "429"]), 2),
            (answer(&["201", "2x1"]), 2),
            (answer(&["201", "2011"]), 2),
            (answer(&[]), 0),
            (ok.replace("false", "true"), 4),
            (ok.replace(",", ", "), 4),
            (ok.replace("create", "index"), 4),
            (ok.replace("]}", "],\"took\":3}"), 4),
        ];
        for (body, sent) in others {
            assert!(
                all_succeeded(body.as_bytes(), sent).is_none(),
                "{body} for {sent}"
            );
        }
        // Items that fail go through the parser, which finds them.
        let mut mixed = answer(&["201", "429"])
            .replace("false", "true")
            .into_bytes();
        let st: Vec<u16> = parse_reply(&mut mixed, 2)
            .expect("parses")
            .iter()
            .map(|i| i.status)
            .collect();
        assert_eq!(st, vec![201, 429]);
    }
}
