//! Cisco ASA (and FTD, PIX) messages: `%ASA-<level>-<id>: <text>`, text per the message's
//! format in Cisco's "Cisco Secure Firewall ASA Series Syslog Messages".
//!
//! Messages read (others keep their id, level and text and get the parse-failure tag
//! `asa_unsupported_message`):
//!
//! | id | text | action |
//! |---|---|---|
//! | 106001 | `Inbound TCP connection denied from A/p to B/p flags F on interface I` | deny |
//! | 106006 | `Deny inbound UDP from A/p to B/p on interface I` | deny |
//! | 106007 | `Deny inbound UDP from A/p to B/p due to DNS {Response\|Query}` | deny |
//! | 106014 | `Deny {inbound\|outbound} icmp src I:A dst I:B (type T, code C)` | deny |
//! | 106015 | `Deny TCP (no connection) from A/p to B/p flags F on interface I` | deny |
//! | 106023 | `Deny P src I:A/p dst I:B/p [(type T, code C)] by access-group "ACL" [...]` | deny |
//! | 106100 | `access-list ACL {permitted\|denied\|est-allowed} P I/A(p) -> I/B(p) hit-cnt N ...` | allow / deny |
//! | 302013, 302015 | `Built {inbound\|outbound} {TCP\|UDP} connection N for I:A/p (MA/mp) to I:B/p (MB/mp)` | allow |
//! | 302014, 302016 | `Teardown {TCP\|UDP} connection N for I:A/p to I:B/p duration h:mm:ss bytes N [reason]` | allow |
//! | 302020, 302021 | `{Built {inbound\|outbound}\|Teardown} ICMP connection for faddr F/s gaddr G/s laddr L/s type T code C` | allow |
//! | 710003 | `{TCP\|UDP} access denied by ACL from A/p to I:B/p` | deny |
//!
//! Orientation (`source` is the initiator): the ASA names the lower-security ("foreign") side
//! first in 3020xx messages. A Built message says who initiated (`inbound`: the first side,
//! `outbound`: the second). A Teardown does not: the side with a port below 1024 facing one at
//! or above it is taken as the server; with no such difference the first side is the source.
//! For ICMP, faddr is the foreign side and laddr the local one, gaddr the local one's mapped
//! address: Built inbound and every Teardown show faddr as source, Built outbound laddr.
//!
//! Mapped addresses (in parentheses, or gaddr) become `source.nat.*` / `destination.nat.*`
//! when they differ from the real ones. The interface of the source side becomes
//! `observer.ingress.interface.name`, the other `observer.egress.interface.name`. A Teardown's
//! duration gives `event.start` (`event.end` is the message's time) and its bytes
//! `network.bytes`; its reason (`TCP FINs`, `SYN Timeout`, ...) is `event.reason`.

use std::net::IpAddr;

use crate::event::{elem, proto_number, tcp_flag_bit, Event};

/// Where `%ASA-`, `%FTD-` or `%PIX-` starts, with the product.
pub fn detect(msg: &str) -> Option<(usize, &'static str)> {
    for (tag, product) in [("%ASA-", "ASA"), ("%FTD-", "FTD"), ("%PIX-", "PIX")] {
        if let Some(i) = msg.find(tag) {
            return Some((i, product));
        }
    }
    None
}

/// One side of a connection.
#[derive(Clone, Copy, Debug, Default)]
struct End<'a> {
    iface: Option<&'a str>,
    ip: Option<IpAddr>,
    port: Option<u16>,
    mapped_ip: Option<IpAddr>,
    mapped_port: Option<u16>,
}

type R<T> = Result<T, &'static str>;

const BAD: &str = "asa_bad_message";

/// `A/p` or `A` (port optional).
fn addr_port(s: &str) -> R<(IpAddr, Option<u16>)> {
    let s = s.trim();
    match s.rsplit_once('/') {
        Some((a, p)) => Ok((
            a.parse().map_err(|_| BAD)?,
            Some(p.parse().map_err(|_| BAD)?),
        )),
        None => Ok((s.parse().map_err(|_| BAD)?, None)),
    }
}

/// `IFACE:A/p` (interface names may hold spaces, never a colon).
fn iface_addr(s: &str) -> R<End<'_>> {
    let (iface, rest) = s.trim().split_once(':').ok_or(BAD)?;
    let (ip, port) = addr_port(rest)?;
    Ok(End {
        iface: Some(iface),
        ip: Some(ip),
        port,
        ..End::default()
    })
}

/// `IFACE:A/p (MA/mp) [(user)]`: the endpoint and, if present, its mapped address.
fn iface_addr_mapped(s: &str) -> R<End<'_>> {
    let s = s.trim();
    let (head, tail) = match s.find(" (") {
        Some(i) => (&s[..i], Some(&s[i + 2..])),
        None => (s, None),
    };
    let mut end = iface_addr(head)?;
    if let Some(t) = tail {
        if let Some(inner) = t.split(')').next() {
            if let Ok((ip, port)) = addr_port(inner) {
                end.mapped_ip = Some(ip);
                end.mapped_port = port;
            }
        }
    }
    Ok(end)
}

/// `IFACE/A(p)` (106100).
fn iface_slash_addr(s: &str) -> R<End<'_>> {
    let s = s.trim();
    let (iface, rest) = s.split_once('/').ok_or(BAD)?;
    let (a, p) = match rest.split_once('(') {
        Some((a, p)) => (a, Some(p.trim_end_matches(')'))),
        None => (rest, None),
    };
    Ok(End {
        iface: Some(iface),
        ip: Some(a.parse().map_err(|_| BAD)?),
        port: match p {
            Some(p) => Some(p.parse().map_err(|_| BAD)?),
            None => None,
        },
        ..End::default()
    })
}

/// `text` after `pat`, or an error.
fn after<'a>(text: &'a str, pat: &str) -> R<&'a str> {
    text.find(pat).map(|i| &text[i + pat.len()..]).ok_or(BAD)
}

/// (before, after) around the first `pat`.
fn split<'a>(text: &'a str, pat: &str) -> R<(&'a str, &'a str)> {
    text.split_once(pat).ok_or(BAD)
}

fn tcp_flags(words: &str) -> u16 {
    words
        .split_whitespace()
        .map(tcp_flag_bit)
        .fold(0, |a, b| a | b)
}

/// Sets source and destination from the initiator and responder sides.
fn orient<'a>(e: &mut Event<'a>, src: End<'a>, dst: End<'a>) {
    e.src = src.ip;
    e.src_port = src.port;
    e.dst = dst.ip;
    e.dst_port = dst.port;
    if src.mapped_ip.is_some() && (src.mapped_ip != src.ip || src.mapped_port != src.port) {
        e.nat_src = src.mapped_ip;
        e.nat_src_port = src.mapped_port;
    }
    if dst.mapped_ip.is_some() && (dst.mapped_ip != dst.ip || dst.mapped_port != dst.port) {
        e.nat_dst = dst.mapped_ip;
        e.nat_dst_port = dst.mapped_port;
    }
    e.text_opt(elem::INGRESS_INTERFACE, src.iface);
    e.text_opt(elem::EGRESS_INTERFACE, dst.iface);
}

/// Which side of a Teardown initiated: true if the first.
fn first_initiated(a: &End<'_>, b: &End<'_>) -> bool {
    !matches!((a.port, b.port), (Some(pa), Some(pb)) if pa < 1024 && pb >= 1024)
}

/// `h:mm:ss` (hours may have more digits) in seconds.
fn duration(s: &str) -> R<i64> {
    let mut it = s.split(':');
    let (h, m, sec) = (it.next(), it.next(), it.next());
    let num = |x: Option<&str>| x.and_then(|v| v.parse::<i64>().ok()).ok_or(BAD);
    Ok(num(h)? * 3600 + num(m)? * 60 + num(sec)?)
}

/// Strips a trailing ` (user)` or `(user)`.
fn drop_user(s: &str) -> &str {
    let t = s.trim_end();
    if t.ends_with(')') {
        if let Some(i) = t.rfind('(') {
            return t[..i].trim_end();
        }
    }
    t
}

/// Parses an ASA message starting at `%ASA-` into `e`.
pub fn parse<'a>(msg: &'a str, product: &'static str, e: &mut Event<'a>) -> R<()> {
    e.text(elem::DATASET, "cisco.asa");
    e.text(elem::OBSERVER_VENDOR, "Cisco");
    e.text(elem::OBSERVER_PRODUCT, product);
    e.text(elem::OBSERVER_TYPE, "firewall");
    // %ASA-6-302014: text
    let rest = msg.get(5..).ok_or(BAD)?;
    let (level, rest) = rest.split_once('-').ok_or(BAD)?;
    let (id, text) = rest.split_once(':').ok_or(BAD)?;
    let level: u8 = level.parse().map_err(|_| BAD)?;
    if level > 7 || id.is_empty() || !id.bytes().all(|c| c.is_ascii_digit()) {
        return Err(BAD);
    }
    e.uint(elem::SEVERITY, u64::from(level));
    e.text(elem::CODE, id);
    let text = text.trim();
    match id {
        "106001" | "106015" => {
            // Inbound TCP connection denied from A/p to B/p flags F on interface I
            // Deny TCP (no connection) from A/p to B/p flags F on interface I
            let r = after(text, " from ")?;
            let (a, r) = split(r, " to ")?;
            let (b, r) = split(r, " flags ")?;
            let (flags, iface) = split(r, " on interface ")?;
            deny_from_to(e, a, b, Some(6))?;
            e.tcp_flags = Some(tcp_flags(flags));
            e.text(elem::INGRESS_INTERFACE, iface.trim());
            if id == "106015" {
                e.text(elem::REASON, "no connection");
            }
        }
        "106006" | "106007" => {
            // Deny inbound UDP from A/p to B/p {on interface I | due to DNS Query}
            let r = after(text, " from ")?;
            let (a, r) = split(r, " to ")?;
            let (b, tail) = match r.split_once(' ') {
                Some((b, t)) => (b, t),
                None => (r, ""),
            };
            deny_from_to(e, a, b, Some(17))?;
            if let Some(i) = tail.strip_prefix("on interface ") {
                e.text(elem::INGRESS_INTERFACE, i.trim().trim_end_matches('.'));
            } else if let Some(reason) = tail.strip_prefix("due to ") {
                e.text(elem::REASON, reason.trim().trim_end_matches('.'));
            }
        }
        "106014" => {
            // Deny {inbound|outbound} icmp src I:A [(user)] dst I:B [(user)] (type T, code C)
            let r = after(text, " src ")?;
            let (a, r) = split(r, " dst ")?;
            let (b, tc) = match r.find(" (type ") {
                Some(i) => (&r[..i], Some(&r[i..])),
                None => (r, None),
            };
            let a = iface_addr(drop_user(a))?;
            let b = iface_addr(drop_user(b))?;
            e.text(elem::ACTION, "deny");
            e.proto = Some(if matches!(a.ip, Some(IpAddr::V6(_))) {
                58
            } else {
                1
            });
            orient(e, a, b);
            if let Some(tc) = tc {
                e.icmp = type_code(tc);
            }
        }
        "106023" => {
            // Deny P src I:A/p [(user)] dst I:B/p [(user)] [(type T, code C)] by access-group "ACL" [h1, h2]
            let r = text.strip_prefix("Deny ").ok_or(BAD)?;
            let (proto, r) = split(r, " src ")?;
            let (a, r) = split(r, " dst ")?;
            let (b, r) = split(r, " by access-group ")?;
            let (b, tc) = match b.find("(type ").or_else(|| b.find("type ")) {
                Some(i) => (&b[..i], Some(&b[i..])),
                None => (b, None),
            };
            let a = iface_addr(drop_user(a))?;
            let b = iface_addr(drop_user(b))?;
            e.text(elem::ACTION, "deny");
            // `Deny tcp src ...`, or for other protocols `Deny protocol 47 src ...`.
            let proto = proto.trim();
            let proto = proto.strip_prefix("protocol ").unwrap_or(proto);
            e.proto = Some(proto_number(proto).ok_or(BAD)?);
            orient(e, a, b);
            if let Some(tc) = tc {
                e.icmp = type_code(tc);
            }
            if let Some(acl) = r.trim().strip_prefix('"').and_then(|x| x.split('"').next()) {
                e.text(elem::RULE_NAME, acl);
            }
        }
        "106100" => {
            // access-list ACL {permitted|denied|est-allowed} P I/A(p) [(user)] -> I/B(p) [(user)] hit-cnt N ...
            let r = text.strip_prefix("access-list ").ok_or(BAD)?;
            let (acl, r) = split(r, " ")?;
            let (verdict, r) = split(r, " ")?;
            let (proto, r) = split(r, " ")?;
            let (a, r) = split(r, " -> ")?;
            let b = r.split(" hit-cnt").next().unwrap_or(r);
            let b = b.split(" (").next().unwrap_or(b);
            let a = iface_slash_addr(a.split(" (").next().unwrap_or(a))?;
            let b = iface_slash_addr(b)?;
            e.text(elem::RULE_NAME, acl);
            e.text(
                elem::ACTION,
                match verdict {
                    "permitted" | "est-allowed" => "allow",
                    "denied" => "deny",
                    _ => return Err(BAD),
                },
            );
            e.proto = proto_number(proto);
            orient(e, a, b);
        }
        "302013" | "302015" => {
            // Built {inbound|outbound} {TCP|UDP} connection N for I:A/p (MA/mp) to I:B/p (MB/mp)
            let mut w = text.split(' ');
            let (built, dir, proto) = (w.next(), w.next(), w.next());
            if built != Some("Built") {
                return Err(BAD);
            }
            let r = after(text, " connection ")?;
            let (conn, r) = split(r, " for ")?;
            let (a, b) = split(r, " to ")?;
            let a = iface_addr_mapped(a)?;
            let b = iface_addr_mapped(b)?;
            e.text(elem::ACTION, "allow");
            e.proto = proto.and_then(proto_number);
            connection_id(e, conn);
            match dir {
                Some("inbound") => orient(e, a, b),
                Some("outbound") => orient(e, b, a),
                _ => return Err(BAD),
            }
        }
        "302014" | "302016" => {
            // Teardown {TCP|UDP} connection N for I:A/p [(user)] to I:B/p [(user)] duration h:mm:ss bytes N [reason] [(user)]
            let mut w = text.split(' ');
            let (td, proto) = (w.next(), w.next());
            if td != Some("Teardown") {
                return Err(BAD);
            }
            let r = after(text, " connection ")?;
            let (conn, r) = split(r, " for ")?;
            let (a, r) = split(r, " to ")?;
            let (b, r) = split(r, " duration ")?;
            let a = iface_addr(drop_user(a))?;
            let b = iface_addr(drop_user(b))?;
            let (dur, r) = r.split_once(' ').unwrap_or((r, ""));
            let secs = duration(dur)?;
            let r = r.strip_prefix("bytes ").ok_or(BAD)?;
            let (bytes, reason) = r.split_once(' ').unwrap_or((r, ""));
            e.bytes = Some(bytes.parse().map_err(|_| BAD)?);
            e.text(elem::ACTION, "allow");
            e.proto = proto.and_then(proto_number);
            connection_id(e, conn);
            e.text(elem::REASON, drop_user(reason));
            if let Some(t) = e.time_ns {
                let end = t.div_euclid(1_000_000);
                e.end_ms = Some(end);
                e.start_ms = Some(end - secs * 1000);
            }
            if first_initiated(&a, &b) {
                orient(e, a, b);
            } else {
                orient(e, b, a);
            }
        }
        "302020" | "302021" => {
            // {Built {inbound|outbound}|Teardown} ICMP connection for faddr F/s [(user)] gaddr G/s laddr L/s [(user)] type T code C
            let outbound =
                text.starts_with("Built outbound") || text.starts_with("Built out bound");
            if !(text.starts_with("Built") || text.starts_with("Teardown")) {
                return Err(BAD);
            }
            let proto = text
                .split(' ')
                .find(|w| w.starts_with("ICMP"))
                .unwrap_or("ICMP");
            let r = after(text, "faddr ")?;
            let (f, r) = split(r, " gaddr ")?;
            let (g, r) = split(r, " laddr ")?;
            let (l, tc) = match r.find(" type ") {
                Some(i) => (&r[..i], Some(&r[i..])),
                None => (r, None),
            };
            let (fip, _) = addr_port(drop_user(f))?;
            let (gip, _) = addr_port(g)?;
            let (lip, _) = addr_port(drop_user(l))?;
            let foreign = End {
                ip: Some(fip),
                ..End::default()
            };
            let local = End {
                ip: Some(lip),
                mapped_ip: Some(gip),
                ..End::default()
            };
            e.text(elem::ACTION, "allow");
            e.proto = Some(if proto.eq_ignore_ascii_case("ICMPv6") || fip.is_ipv6() {
                58
            } else {
                1
            });
            if outbound {
                orient(e, local, foreign);
            } else {
                orient(e, foreign, local);
            }
            if let Some(tc) = tc {
                e.icmp = type_code(tc);
            }
        }
        "710003" => {
            // {TCP|UDP} access denied by ACL from A/p to I:B/p
            let (proto, r) = split(text, " ")?;
            let r = after(r, "denied by ACL from ")?;
            let (a, b) = split(r, " to ")?;
            let (ip, port) = addr_port(a)?;
            let b = iface_addr(b)?;
            e.text(elem::ACTION, "deny");
            e.proto = proto_number(proto);
            e.src = Some(ip);
            e.src_port = port;
            e.dst = b.ip;
            e.dst_port = b.port;
            e.text_opt(elem::INGRESS_INTERFACE, b.iface);
        }
        _ => return Err("asa_unsupported_message"),
    }
    Ok(())
}

/// `from A/p to B/p` without interfaces: a denied packet.
fn deny_from_to(e: &mut Event<'_>, a: &str, b: &str, proto: Option<u8>) -> R<()> {
    let (sa, sp) = addr_port(a)?;
    let (da, dp) = addr_port(b)?;
    e.text(elem::ACTION, "deny");
    e.src = Some(sa);
    e.src_port = sp;
    e.dst = Some(da);
    e.dst_port = dp;
    e.proto = proto;
    Ok(())
}

fn connection_id(e: &mut Event<'_>, s: &str) {
    if let Ok(n) = s.trim().parse::<u64>() {
        e.uint(elem::ASA_CONNECTION_ID, n);
    }
}

/// `(type 8, code 0)` or `type 8 code 0`.
fn type_code(s: &str) -> Option<(u8, u8)> {
    let clean: String = s
        .chars()
        .map(|c| {
            if c == '(' || c == ')' || c == ',' {
                ' '
            } else {
                c
            }
        })
        .collect();
    let mut w = clean.split_whitespace();
    let mut t = None;
    let mut c = None;
    while let Some(k) = w.next() {
        match k {
            "type" => t = w.next().and_then(|v| v.parse().ok()),
            "code" => c = w.next().and_then(|v| v.parse().ok()),
            _ => {}
        }
    }
    Some((t?, c.unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Val;

    fn run(text: &str) -> (Event<'_>, R<()>) {
        let mut e = Event {
            time_ns: Some(1_795_000_000_000_000_000),
            ..Event::default()
        };
        let (i, p) = detect(text).expect("asa");
        let r = parse(&text[i..], p, &mut e);
        (e, r)
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("ip"))
    }

    // Lines written from the message formats in Cisco's ASA syslog reference.

    #[test]
    fn m106001_inbound_tcp_denied() {
        let (e, r) = run("%ASA-2-106001: Inbound TCP connection denied from 203.0.113.5/4455 to 192.0.2.10/3389 flags SYN  on interface outside");
        r.expect("parses");
        assert_eq!(e.get(elem::ACTION), Val::Text("deny"));
        assert_eq!(e.src, ip("203.0.113.5"));
        assert_eq!(e.dst_port, Some(3389));
        assert_eq!(e.tcp_flags, Some(0x02));
        assert_eq!(e.get(elem::INGRESS_INTERFACE), Val::Text("outside"));
        assert_eq!(e.get(elem::SEVERITY), Val::Uint(2));
        assert_eq!(e.get(elem::CODE), Val::Text("106001"));
    }

    #[test]
    fn m106006_and_106100() {
        let (e, r) = run("%ASA-2-106006: Deny inbound UDP from 203.0.113.7/137 to 192.0.2.20/137 on interface outside");
        r.expect("parses");
        assert_eq!(e.proto, Some(17));
        assert_eq!(e.get(elem::INGRESS_INTERFACE), Val::Text("outside"));
        let (e, r) = run("%ASA-6-106100: access-list OUTSIDE_IN denied tcp outside/203.0.113.9(40001) -> inside/192.0.2.30(22) hit-cnt 1 first hit [0x9b0b6a8e, 0x0]");
        r.expect("parses");
        assert_eq!(e.get(elem::RULE_NAME), Val::Text("OUTSIDE_IN"));
        assert_eq!(e.get(elem::ACTION), Val::Text("deny"));
        assert_eq!(e.src, ip("203.0.113.9"));
        assert_eq!(e.src_port, Some(40001));
        assert_eq!(e.dst, ip("192.0.2.30"));
        assert_eq!(e.dst_port, Some(22));
        assert_eq!(e.get(elem::EGRESS_INTERFACE), Val::Text("inside"));
        let (e, r) = run("%ASA-6-106100: access-list IN6 permitted udp inside/2001:db8::5(5353) (LOCAL\\alice) -> outside/2001:db8:1::53(53) hit-cnt 3 300-second interval [0x1, 0x2]");
        r.expect("parses");
        assert_eq!(e.get(elem::ACTION), Val::Text("allow"));
        assert_eq!(e.src, ip("2001:db8::5"));
        assert_eq!(e.dst, ip("2001:db8:1::53"));
    }

    #[test]
    fn m302013_outbound_swaps_and_maps() {
        let (e, r) = run("%ASA-6-302013: Built outbound TCP connection 2921 for outside:198.51.100.100/80 (198.51.100.100/80) to inside:172.16.11.5/58799 (203.0.113.2/58799)");
        r.expect("parses");
        assert_eq!(e.src, ip("172.16.11.5"));
        assert_eq!(e.src_port, Some(58799));
        assert_eq!(e.nat_src, ip("203.0.113.2"));
        assert_eq!(e.dst, ip("198.51.100.100"));
        assert_eq!(e.nat_dst, None, "mapped equals real");
        assert_eq!(e.get(elem::INGRESS_INTERFACE), Val::Text("inside"));
        assert_eq!(e.get(elem::ASA_CONNECTION_ID), Val::Uint(2921));
        let (e, r) = run("%ASA-6-302015: Built inbound UDP connection 7 for outside:192.0.2.1/500 (192.0.2.1/500) to NP Identity Ifc:192.0.2.2/500 (192.0.2.2/500)");
        r.expect("parses");
        assert_eq!(e.src, ip("192.0.2.1"));
        assert_eq!(e.get(elem::EGRESS_INTERFACE), Val::Text("NP Identity Ifc"));
    }

    #[test]
    fn m710003_and_unsupported() {
        let (e, r) = run(
            "%ASA-3-710003: TCP access denied by ACL from 192.0.2.44/51000 to outside:192.0.2.1/22",
        );
        r.expect("parses");
        assert_eq!(e.get(elem::ACTION), Val::Text("deny"));
        assert_eq!(e.dst_port, Some(22));
        assert_eq!(e.get(elem::INGRESS_INTERFACE), Val::Text("outside"));
        let (e, r) = run("%ASA-5-111008: User 'enable_15' executed the 'write memory' command.");
        assert_eq!(r, Err("asa_unsupported_message"));
        assert_eq!(e.get(elem::CODE), Val::Text("111008"));
        let (_, r) = run("%ASA-6-302014: Teardown TCP connection 9 for outside to inside");
        assert_eq!(r, Err(BAD));
        let (_, r) = run("%ASA-x-302014: y");
        assert_eq!(r, Err(BAD));
    }
}
