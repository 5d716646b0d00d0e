//! Palo Alto Networks PAN-OS TRAFFIC and THREAT logs: CSV after the syslog header, fields
//! in the order of Palo Alto's "Syslog Field Descriptions" (PAN-OS 8.1 to 11.x append fields
//! at the end, so the positions below hold for all of them).
//!
//! Common positions (0-based): 1 receive time, 2 serial number, 3 type, 4 subtype, 6
//! generated time, 7 source address, 8 destination address, 9 NAT source IP, 10 NAT
//! destination IP, 11 rule name, 12 source user, 13 destination user, 14 application, 15
//! virtual system, 16 source zone, 17 destination zone, 18 inbound interface, 19 outbound
//! interface, 22 session id, 24 source port, 25 destination port, 26 NAT source port, 27 NAT
//! destination port, 29 protocol, 30 action.
//!
//! TRAFFIC: 31 bytes, 32 bytes sent, 33 bytes received, 34 packets, 35 start time, 36
//! elapsed time (s), 37 category, 44 packets sent, 45 packets received, 46 session end
//! reason, 52 device name.
//!
//! THREAT: 31 URL/filename, 32 threat id (`name(id)`), 33 category, 34 severity, 35
//! direction, 59 device name.
//!
//! Times are the firewall's local time without a zone and read as UTC (as RFC 3164 syslog
//! times are). A NAT address of 0.0.0.0 means no translation. `event.action` is the log's
//! action as PAN-OS writes it (`allow`, `deny`, `drop`, `reset-both`, `alert`, ...). Other
//! log types (SYSTEM, CONFIG, ...) keep their type and subtype and get the parse-failure tag
//! `panos_unsupported_type`.

use std::net::IpAddr;

use crate::event::{elem, proto_number, Event};
use crate::time::civil_to_unix;

/// Log types PAN-OS sends over syslog.
const TYPES: &[&str] = &[
    "TRAFFIC",
    "THREAT",
    "SYSTEM",
    "CONFIG",
    "HIP-MATCH",
    "HIPMATCH",
    "GLOBALPROTECT",
    "USERID",
    "AUTH",
    "DECRYPTION",
    "TUNNEL",
    "CORRELATION",
    "GTP",
    "SCTP",
    "IPTAG",
];

/// Most fields read; the rest of a line is not split.
const MAX_FIELDS: usize = 64;

/// Splits CSV: fields separated by commas, a field in double quotes may hold commas (its
/// quotes are removed; a doubled quote inside stays doubled). Returns the number of fields.
fn split_csv<'a>(s: &'a str, out: &mut [&'a str; MAX_FIELDS]) -> usize {
    let b = s.as_bytes();
    let mut n = 0;
    let mut i = 0;
    while n < MAX_FIELDS {
        let (field, next) = if b.get(i) == Some(&b'"') {
            let mut j = i + 1;
            loop {
                match b.get(j) {
                    None => break,
                    Some(b'"') if b.get(j + 1) == Some(&b'"') => j += 2,
                    Some(b'"') => break,
                    Some(_) => j += 1,
                }
            }
            let field = s.get(i + 1..j.min(b.len())).unwrap_or("");
            // Skip the closing quote and anything up to the next comma.
            let rest = j + 1;
            let next = b
                .get(rest.min(b.len())..)
                .and_then(|t| t.iter().position(|&c| c == b','))
                .map(|p| rest + p);
            (field, next)
        } else {
            let next = b[i..].iter().position(|&c| c == b',').map(|p| i + p);
            (s.get(i..next.unwrap_or(b.len())).unwrap_or(""), next)
        };
        out[n] = field;
        n += 1;
        match next {
            Some(c) => i = c + 1,
            None => break,
        }
    }
    n
}

/// Whether a message is a PAN-OS CSV log: its fourth field is a PAN-OS log type.
pub fn detect(msg: &str) -> bool {
    let mut it = msg.splitn(5, ',');
    let first = it.next().unwrap_or("");
    let ty = it.nth(2).unwrap_or("");
    !first.is_empty() && first.len() <= 16 && TYPES.contains(&ty)
}

/// `YYYY/MM/DD hh:mm:ss` as ns since the epoch (read as UTC).
fn panos_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 19 || b[4] != b'/' || b[7] != b'/' || b[10] != b' ' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (h, mi, se) = (n(11..13)?, n(14..16)?, n(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    civil_to_unix(y, mo, d, h, mi, se).checked_mul(1_000_000_000)
}

fn addr(s: &str) -> Result<Option<IpAddr>, &'static str> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|_| "panos_bad_address")
}

fn num(s: &str) -> Option<u64> {
    s.parse().ok()
}

/// Parses a PAN-OS log into `e`.
pub fn parse<'a>(msg: &'a str, e: &mut Event<'a>) -> Result<(), &'static str> {
    e.text(elem::DATASET, "panw.panos");
    e.text(elem::OBSERVER_VENDOR, "Palo Alto Networks");
    e.text(elem::OBSERVER_PRODUCT, "PAN-OS");
    e.text(elem::OBSERVER_TYPE, "firewall");
    let mut f = [""; MAX_FIELDS];
    let n = split_csv(msg, &mut f);
    let ty = f[3];
    e.text(elem::OBSERVER_SERIAL, f[2]);
    e.text(elem::PANOS_TYPE, ty);
    e.text(elem::PANOS_SUBTYPE, f[4]);
    if let Some(t) = panos_time(f[6]).or_else(|| panos_time(f[1])) {
        e.time_ns = Some(t);
    }
    let threat = match ty {
        "TRAFFIC" => false,
        "THREAT" => true,
        _ => return Err("panos_unsupported_type"),
    };
    let need = if threat { 36 } else { 37 };
    if n < need {
        return Err("panos_short_line");
    }
    let src = addr(f[7])?;
    let dst = addr(f[8])?;
    let nat = |s: &str| -> Result<Option<IpAddr>, &'static str> {
        Ok(addr(s)?.filter(|a| !a.is_unspecified()))
    };
    e.src = src;
    e.dst = dst;
    e.nat_src = nat(f[9])?;
    e.nat_dst = nat(f[10])?;
    e.text(elem::RULE_NAME, f[11]);
    e.text(elem::SOURCE_USER, f[12]);
    e.text(elem::DESTINATION_USER, f[13]);
    e.text(elem::APPLICATION, f[14]);
    e.text(elem::INGRESS_ZONE, f[16]);
    e.text(elem::EGRESS_ZONE, f[17]);
    e.text(elem::INGRESS_INTERFACE, f[18]);
    e.text(elem::EGRESS_INTERFACE, f[19]);
    if let Some(id) = num(f[22]) {
        e.uint(elem::PANOS_SESSION_ID, id);
    }
    e.src_port = f[24].parse().ok();
    e.dst_port = f[25].parse().ok();
    // A side whose "translated" address and port are its own was not translated (PAN-OS
    // fills the NAT destination with the destination on source-NAT-only sessions).
    if e.nat_src.is_some() {
        e.nat_src_port = f[26].parse().ok();
        if e.nat_src == src && e.nat_src_port == e.src_port {
            (e.nat_src, e.nat_src_port) = (None, None);
        }
    }
    if e.nat_dst.is_some() {
        e.nat_dst_port = f[27].parse().ok();
        if e.nat_dst == dst && e.nat_dst_port == e.dst_port {
            (e.nat_dst, e.nat_dst_port) = (None, None);
        }
    }
    e.proto = proto_number(f[29]);
    e.text(elem::ACTION, f[30]);
    if threat {
        e.text(elem::PANOS_MISC, f[31]);
        // "HTTP SQL Injection Attempt(38195)"; older releases write the id alone.
        let t = f[32];
        match t.strip_suffix(')').and_then(|x| x.rsplit_once('(')) {
            Some((name, id)) => {
                e.text(elem::PANOS_THREAT_NAME, name.trim());
                if let Some(id) = num(id) {
                    e.uint(elem::PANOS_THREAT_ID, id);
                }
            }
            None => match num(t) {
                Some(id) => e.uint(elem::PANOS_THREAT_ID, id),
                None => e.text(elem::PANOS_THREAT_NAME, t),
            },
        }
        e.text(elem::PANOS_CATEGORY, f[33]);
        e.text(elem::PANOS_SEVERITY, f[34]);
        e.text(elem::PANOS_DIRECTION, f[35]);
        if n > 59 {
            e.text(elem::OBSERVER_HOSTNAME, f[59]);
        }
    } else {
        let (sent, received) = (num(f[32]), num(f[33]));
        match (sent, received) {
            (Some(s), Some(r)) => {
                e.bytes = Some(s);
                e.responder_bytes = Some(r);
            }
            _ => e.bytes = num(f[31]),
        }
        let (ps, pr) = if n > 45 {
            (num(f[44]), num(f[45]))
        } else {
            (None, None)
        };
        match (ps, pr) {
            (Some(s), Some(r)) => {
                e.packets = Some(s);
                e.responder_packets = Some(r);
            }
            _ => e.packets = num(f[34]),
        }
        if let Some(start) = panos_time(f[35]) {
            let start_ms = start / 1_000_000;
            e.start_ms = Some(start_ms);
            if let Some(el) = num(f[36]) {
                e.end_ms = Some(start_ms.saturating_add((el as i64).saturating_mul(1000)));
            }
        }
        e.text(elem::PANOS_CATEGORY, f[37]);
        if n > 46 {
            e.text(elem::REASON, f[46]);
        }
        if n > 52 {
            e.text(elem::OBSERVER_HOSTNAME, f[52]);
        }
    }
    if src.is_none() || dst.is_none() {
        return Err("panos_missing_address");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Val;

    #[test]
    fn csv_quotes_and_commas() {
        let mut f = [""; MAX_FIELDS];
        let n = split_csv("a,\"b,c\",,\"d\"\"e\",f", &mut f);
        assert_eq!(n, 5);
        assert_eq!(&f[..5], &["a", "b,c", "", "d\"\"e", "f"]);
        let n = split_csv("\"unterminated,x", &mut f);
        assert_eq!(n, 1);
        assert_eq!(f[0], "unterminated,x");
    }

    // A PAN-OS 9.1-style TRAFFIC deny written from the field list (fewer trailing fields).
    #[test]
    fn traffic_deny_with_few_fields() {
        let line = "1,2026/11/22 10:00:00,007200001056,TRAFFIC,deny,2304,2026/11/22 10:00:00,192.0.2.50,203.0.113.80,0.0.0.0,0.0.0.0,block-smb,,,not-applicable,vsys1,trust,untrust,ethernet1/3,,forward-all,2026/11/22 10:00:00,0,1,51515,445,0,0,0x0,tcp,deny,74,74,0,1,2026/11/22 09:59:59,0,any,0,900,0x0,192.168.0.0-192.168.255.255,Netherlands,0,1,0,policy-deny";
        assert!(detect(line));
        let mut e = Event::default();
        parse(line, &mut e).expect("parses");
        assert_eq!(e.get(elem::ACTION), Val::Text("deny"));
        assert_eq!(e.get(elem::RULE_NAME), Val::Text("block-smb"));
        assert_eq!(e.nat_src, None);
        assert_eq!(e.dst_port, Some(445));
        assert_eq!(e.bytes, Some(74));
        assert_eq!(e.responder_bytes, Some(0));
        assert_eq!(e.packets, Some(1));
        assert_eq!(e.responder_packets, Some(0));
        assert_eq!(e.get(elem::REASON), Val::Text("policy-deny"));
        assert_eq!(e.get(elem::EGRESS_INTERFACE), Val::None);
    }

    #[test]
    fn other_types_and_short_lines() {
        let sys = "1,2026/11/22 10:00:00,007200001056,SYSTEM,general,0,2026/11/22 10:00:00,,general,,0,0,general,informational,\"User admin logged in\",1,0x0";
        assert!(detect(sys));
        let mut e = Event::default();
        assert_eq!(parse(sys, &mut e), Err("panos_unsupported_type"));
        assert_eq!(e.get(elem::PANOS_TYPE), Val::Text("SYSTEM"));
        let mut e = Event::default();
        assert_eq!(
            parse("1,2026/11/22 10:00:00,0072,TRAFFIC,end,0", &mut e),
            Err("panos_short_line")
        );
        assert!(!detect("a,b,c"));
        assert!(!detect("hello, world, this, is, prose"));
    }
}
