//! Linux netfilter `LOG` target lines (iptables, ip6tables, nftables `log`), as kernels log
//! them: an optional prefix chosen by the rule, then `KEY=value` pairs and flag words:
//!
//! ```text
//! [WAN_IN-10-D]IN=eth0 OUT=switch0 MAC=<dst>:<src>:<type> SRC=198.18.7.21 DST=192.168.10.5
//! LEN=44 TOS=0x00 PREC=0x00 TTL=238 ID=17321 DF PROTO=TCP SPT=50123 DPT=8080 WINDOW=1024
//! RES=0x00 SYN URGP=0
//! ```
//!
//! The prefix: Ubiquiti EdgeOS (EdgeRouter, USG) writes `[RULESET-RULE-ACTION]`, RULE a
//! number or `default`, ACTION `A` (accept), `D` (drop) or `R` (reject): the ruleset becomes
//! `rule.name`, the rule `rule.id`, the action `event.action` (`allow`, `drop`, `reject`).
//! Any other prefix (`[UFW BLOCK]`, firewalld's `FINAL_REJECT:`, ...) becomes `rule.name`,
//! and a word in it that names an action (accept/allow, drop/block, deny, reject) sets
//! `event.action`. A kernel timestamp (`[ 1234.567890]`) before the prefix is skipped.
//!
//! Pairs: `IN`/`OUT` are the interfaces, `MAC` the destination MAC, source MAC and
//! EtherType, `SRC`/`DST` the addresses (IPv6 in full form), `LEN` the IP packet length
//! (the first `LEN`; UDP lines repeat it for the UDP length), `PROTO` a name or number,
//! `SPT`/`DPT` ports, `TYPE`/`CODE` the ICMP type and code, and the words `SYN ACK FIN RST PSH
//! URG ECE CWR` TCP flags. The quoted packet of an ICMP error (`[SRC=... ]`) is not read.
//! A logged line is one packet: `network.packets` 1, `network.bytes` its length.

use std::net::IpAddr;

use crate::event::{elem, proto_number, tcp_flag_bit, Event};

/// Whether a message looks like a netfilter log line.
pub fn detect(msg: &str) -> bool {
    key_at(msg, "IN=").is_some() && msg.contains(" OUT=")
}

/// Where `key` starts as a word (at the start, or after a space or `]`).
fn key_at(msg: &str, key: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = msg.get(from..)?.find(key) {
        let at = from + i;
        if at == 0 || matches!(msg.as_bytes()[at - 1], b' ' | b']' | b':') {
            return Some(at);
        }
        from = at + key.len();
    }
    None
}

/// Parses a netfilter line into `e`.
pub fn parse<'a>(msg: &'a str, e: &mut Event<'a>) -> Result<(), &'static str> {
    e.text(elem::DATASET, "netfilter");
    e.text(elem::OBSERVER_TYPE, "firewall");
    let start = key_at(msg, "IN=").ok_or("netfilter_no_fields")?;
    prefix(&msg[..start], e);
    let mut have_len = false;
    let (mut src, mut dst) = (None, None);
    let mut bad = None;
    let mut icmp_type = None;
    let mut icmp_code = None;
    let mut flags = 0u16;
    for w in msg[start..].split(' ') {
        if w.starts_with('[') {
            // The packet quoted by an ICMP error: not this packet's fields.
            break;
        }
        let Some((k, v)) = w.split_once('=') else {
            flags |= tcp_flag_bit(w);
            continue;
        };
        match k {
            "IN" => e.text(elem::INGRESS_INTERFACE, v),
            "OUT" => e.text(elem::EGRESS_INTERFACE, v),
            "MAC" => mac(v, e),
            "SRC" => match v.parse::<IpAddr>() {
                Ok(a) => src = Some(a),
                Err(_) => bad = Some("netfilter_bad_address"),
            },
            "DST" => match v.parse::<IpAddr>() {
                Ok(a) => dst = Some(a),
                Err(_) => bad = Some("netfilter_bad_address"),
            },
            "LEN" if !have_len => {
                have_len = true;
                e.bytes = v.parse().ok();
            }
            "PROTO" => match proto_number(v) {
                Some(p) => e.proto = Some(p),
                None => bad = Some("netfilter_bad_protocol"),
            },
            "SPT" => e.src_port = v.parse().ok(),
            "DPT" => e.dst_port = v.parse().ok(),
            "TYPE" => icmp_type = v.parse().ok(),
            "CODE" => icmp_code = v.parse().ok(),
            _ => {}
        }
    }
    e.packets = Some(1);
    if e.proto == Some(6) {
        e.tcp_flags = Some(flags);
    }
    if let Some(t) = icmp_type {
        e.icmp = Some((t, icmp_code.unwrap_or(0)));
    }
    e.src = src;
    e.dst = dst;
    if let Some(b) = bad {
        return Err(b);
    }
    if src.is_none() || dst.is_none() {
        return Err("netfilter_missing_address");
    }
    Ok(())
}

/// `MAC=dd:dd:dd:dd:dd:dd:ss:ss:ss:ss:ss:ss:tt:tt` (destination, source, EtherType).
fn mac(v: &str, e: &mut Event<'_>) {
    let mut b = [0u8; 14];
    let mut n = 0;
    for part in v.split(':') {
        let Some(slot) = b.get_mut(n) else {
            return;
        };
        match u8::from_str_radix(part, 16) {
            Ok(x) if part.len() == 2 => *slot = x,
            _ => return,
        }
        n += 1;
    }
    if n >= 12 {
        let mut d = [0u8; 6];
        let mut s = [0u8; 6];
        d.copy_from_slice(&b[..6]);
        s.copy_from_slice(&b[6..12]);
        e.dst_mac = Some(d);
        e.src_mac = Some(s);
    }
}

/// The text before `IN=`: kernel timestamp, then the rule's prefix.
fn prefix<'a>(p: &'a str, e: &mut Event<'a>) {
    let mut p = p.trim();
    // Kernel timestamp as dmesg prints it: `[  123.456789]`.
    if let Some(r) = p.strip_prefix('[') {
        if let Some(end) = r.find(']') {
            let inner = r[..end].trim();
            if !inner.is_empty() && inner.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
                p = r[end + 1..].trim();
            }
        }
    }
    if p.is_empty() {
        e.text(elem::OBSERVER_VENDOR, "Linux");
        e.text(elem::OBSERVER_PRODUCT, "netfilter");
        return;
    }
    if let Some(inner) = p.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        let mut parts = inner.rsplitn(3, '-');
        if let (Some(act), Some(rule), Some(set)) = (parts.next(), parts.next(), parts.next()) {
            let action = match act {
                "A" => Some("allow"),
                "D" => Some("drop"),
                "R" => Some("reject"),
                _ => None,
            };
            let rule_ok = rule == "default" || rule.bytes().all(|c| c.is_ascii_digit());
            if let (Some(action), true, false) = (action, rule_ok, set.is_empty()) {
                e.text(elem::OBSERVER_VENDOR, "Ubiquiti");
                e.text(elem::OBSERVER_PRODUCT, "EdgeOS");
                e.text(elem::RULE_NAME, set);
                e.text(elem::RULE_ID, rule);
                e.text(elem::ACTION, action);
                return;
            }
        }
    }
    e.text(elem::OBSERVER_VENDOR, "Linux");
    e.text(elem::OBSERVER_PRODUCT, "netfilter");
    let name = p
        .trim_start_matches('[')
        .trim_end_matches([']', ':'])
        .trim();
    e.text(elem::RULE_NAME, name);
    let lower = |w: &str| w.to_ascii_lowercase();
    for w in name.split(|c: char| !c.is_ascii_alphanumeric()) {
        let action = match lower(w).as_str() {
            "accept" | "accepted" | "allow" | "allowed" | "pass" => "allow",
            "drop" | "dropped" | "block" | "blocked" => "drop",
            "deny" | "denied" => "deny",
            "reject" | "rejected" => "reject",
            _ => continue,
        };
        e.text(elem::ACTION, action);
        break;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Val;

    #[test]
    fn generic_prefixes_name_the_rule_and_action() {
        let mut e = Event::default();
        let line = "[UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=203.0.113.9 DST=192.0.2.10 LEN=60 TOS=0x00 PREC=0x00 TTL=50 ID=0 DF PROTO=TCP SPT=33000 DPT=25 WINDOW=29200 RES=0x00 SYN URGP=0";
        assert!(detect(line));
        parse(line, &mut e).expect("parses");
        assert_eq!(e.get(elem::RULE_NAME), Val::Text("UFW BLOCK"));
        assert_eq!(e.get(elem::ACTION), Val::Text("drop"));
        assert_eq!(e.get(elem::OBSERVER_VENDOR), Val::Text("Linux"));
        assert_eq!(e.get(elem::EGRESS_INTERFACE), Val::None);
        assert_eq!(e.src_mac, Some([0x52, 0x54, 0, 0x65, 0x43, 0x21]));
        assert_eq!(e.dst_mac, Some([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
        assert_eq!(e.tcp_flags, Some(0x02));

        let mut e = Event::default();
        let line = "[ 8812.000151] FINAL_REJECT: IN=ens3 OUT= SRC=192.0.2.7 DST=192.0.2.1 LEN=52 PROTO=UDP SPT=5353 DPT=5353 LEN=32";
        parse(line, &mut e).expect("parses");
        assert_eq!(e.get(elem::RULE_NAME), Val::Text("FINAL_REJECT"));
        assert_eq!(e.get(elem::ACTION), Val::Text("reject"));
        assert_eq!(e.bytes, Some(52), "the IP length, not the UDP one");
        assert_eq!(e.proto, Some(17));
    }

    #[test]
    fn icmp_error_quotes_are_not_the_packet() {
        let mut e = Event::default();
        let line = "IN=eth1 OUT= SRC=192.0.2.1 DST=192.0.2.99 LEN=88 PROTO=ICMP TYPE=3 CODE=3 [SRC=192.0.2.99 DST=192.0.2.1 LEN=60 PROTO=UDP SPT=4000 DPT=53 LEN=40 ]";
        parse(line, &mut e).expect("parses");
        assert_eq!(e.src, Some("192.0.2.1".parse().expect("ip")));
        assert_eq!(e.icmp, Some((3, 3)));
        assert_eq!(e.src_port, None);
        assert_eq!(e.get(elem::ACTION), Val::None);
    }

    #[test]
    fn broken_lines_say_why() {
        let mut e = Event::default();
        assert_eq!(
            parse("IN=eth0 OUT= SRC=10.0.0.1 LEN=40 PROTO=TCP", &mut e),
            Err("netfilter_missing_address")
        );
        let mut e = Event::default();
        assert_eq!(
            parse("IN=eth0 OUT= SRC=10.0.0.300 DST=10.0.0.2 PROTO=TCP", &mut e),
            Err("netfilter_bad_address")
        );
        let mut e = Event::default();
        assert_eq!(
            parse("IN=eth0 OUT= SRC=10.0.0.3 DST=10.0.0.2 PROTO=WHAT", &mut e),
            Err("netfilter_bad_protocol")
        );
        assert!(!detect("LOGIN=root OUT=x"));
    }
}
