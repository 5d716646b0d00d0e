//! Syslog headers: RFC 5424 and RFC 3164 (with the variants firewalls send).
//!
//! RFC 5424: `<PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP
//! STRUCTURED-DATA [SP MSG]`, `-` for a missing value.
//!
//! RFC 3164 is a description of practice more than a format. What is accepted after an
//! optional `<PRI>`:
//! - a timestamp: `Mmm dd hh:mm:ss` (day space-padded or not), Cisco's `Mmm dd yyyy
//!   hh:mm:ss` (ASA `logging timestamp`), either with a fraction, a leading `*` or `.`, a
//!   trailing ` UTC`/` GMT` and a trailing `:`; or an RFC 3339 timestamp (rsyslog's high
//!   precision format). Without a zone the time is read as UTC, and without a year it is the
//!   receive time's year, or the year before when that would put it more than a day in the
//!   future (a December line read in January);
//! - then a hostname, unless the next word is already the tag or the message (a word that
//!   starts with `%`, as Cisco's messages do, or that contains a `,`, as PAN-OS's CSV does);
//! - then a tag `app[pid]:`, whose name becomes the app name.
//!
//! Nothing here fails: what does not look like a header is message.

use crate::time::{civil_to_unix, parse_rfc3339, year_of};

/// What the header said. Text borrows from the line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header<'a> {
    /// PRI (facility * 8 + severity), 0..=191.
    pub pri: Option<u8>,
    /// RFC 5424 VERSION (1); `None` for RFC 3164.
    pub version: Option<u8>,
    /// The header's time, ns since the Unix epoch.
    pub time_ns: Option<i64>,
    pub hostname: Option<&'a str>,
    pub appname: Option<&'a str>,
    pub procid: Option<&'a str>,
    pub msgid: Option<&'a str>,
    /// The message after the header.
    pub msg: &'a str,
}

/// Parses a header. `now_ns` resolves the year of RFC 3164 timestamps.
pub fn parse(line: &str, now_ns: i64) -> Header<'_> {
    let mut h = Header {
        msg: line,
        ..Header::default()
    };
    let mut rest = line;
    if let Some((pri, after)) = pri(rest) {
        h.pri = Some(pri);
        rest = after;
    }
    if let Some(after) = rfc5424(rest, &mut h) {
        h.msg = after;
        return h;
    }
    rfc3164(rest, now_ns, &mut h);
    h
}

fn pri(s: &str) -> Option<(u8, &str)> {
    let b = s.as_bytes();
    if b.first() != Some(&b'<') {
        return None;
    }
    let end = b.iter().take(5).position(|&c| c == b'>')?;
    let digits = s.get(1..end)?;
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let v: u16 = digits.parse().ok()?;
    if v > 191 {
        return None;
    }
    Some((v as u8, &s[end + 1..]))
}

/// Splits off the next space-delimited word (one space).
fn word(s: &str) -> Option<(&str, &str)> {
    if s.is_empty() {
        return None;
    }
    Some(match s.find(' ') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    })
}

fn nil(w: &str) -> Option<&str> {
    (w != "-" && !w.is_empty()).then_some(w)
}

/// RFC 5424 after the PRI; returns the message, or `None` if this is not RFC 5424.
fn rfc5424<'a>(s: &'a str, h: &mut Header<'a>) -> Option<&'a str> {
    let (ver, rest) = word(s)?;
    if ver.is_empty() || ver.len() > 2 || !ver.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let version: u8 = ver.parse().ok().filter(|&v| v >= 1)?;
    let (ts, rest) = word(rest)?;
    let time = if ts == "-" {
        None
    } else {
        Some(parse_rfc3339(ts)?)
    };
    let (host, rest) = word(rest)?;
    let (app, rest) = word(rest)?;
    let (proc_, rest) = word(rest)?;
    let (msgid, rest) = word(rest)?;
    let msg = structured_data(rest)?;
    h.version = Some(version);
    h.time_ns = time;
    h.hostname = nil(host);
    h.appname = nil(app);
    h.procid = nil(proc_);
    h.msgid = nil(msgid);
    // MSG may start with a UTF-8 byte order mark (RFC 5424 §6.4).
    Some(msg.strip_prefix('\u{feff}').unwrap_or(msg))
}

/// Skips STRUCTURED-DATA (`-` or `[id param="value" ...]...`, values may hold `\]` and
/// `\"`); returns what follows it (the message, without its leading space).
fn structured_data(s: &str) -> Option<&str> {
    if s == "-" {
        return Some("");
    }
    if let Some(r) = s.strip_prefix("- ") {
        return Some(r);
    }
    let b = s.as_bytes();
    if b.first() != Some(&b'[') {
        return None;
    }
    let mut i = 0;
    while b.get(i) == Some(&b'[') {
        let mut quoted = false;
        i += 1;
        loop {
            match b.get(i)? {
                b'\\' if quoted => i += 2,
                b'"' => {
                    quoted = !quoted;
                    i += 1;
                }
                b']' if !quoted => {
                    i += 1;
                    break;
                }
                _ => i += 1,
            }
        }
    }
    let rest = s.get(i..)?;
    Some(rest.strip_prefix(' ').unwrap_or(rest))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn digits(s: &str, n: std::ops::RangeInclusive<usize>) -> Option<(i64, &str)> {
    let len = s.bytes().take_while(u8::is_ascii_digit).count();
    if !n.contains(&len) {
        return None;
    }
    Some((s[..len].parse().ok()?, &s[len..]))
}

/// `hh:mm:ss[.frac]`; returns (seconds of the day, ns fraction, rest).
fn clock(s: &str) -> Option<(i64, i64, &str)> {
    let (h, r) = digits(s, 2..=2)?;
    let r = r.strip_prefix(':')?;
    let (m, r) = digits(r, 2..=2)?;
    let r = r.strip_prefix(':')?;
    let (sec, mut r) = digits(r, 2..=2)?;
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let mut frac = 0;
    if let Some(f) = r.strip_prefix('.') {
        let n = f.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        for (k, c) in f.bytes().take(n.min(9)).enumerate() {
            frac += i64::from(c - b'0') * 10i64.pow(8 - k as u32);
        }
        r = &f[n..];
    }
    Some((h * 3600 + m * 60 + sec, frac, r))
}

/// A BSD timestamp at the start of `s`: (ns, rest).
fn bsd_time(s: &str, now_ns: i64) -> Option<(i64, &str)> {
    let s = s.strip_prefix(['*', '.']).unwrap_or(s);
    let mon = s.get(..3)?;
    let month = MONTHS.iter().position(|m| *m == mon)? as i64 + 1;
    let r = s.get(3..)?.strip_prefix(' ')?;
    let r = r.strip_prefix(' ').unwrap_or(r);
    let (day, r) = digits(r, 1..=2)?;
    if !(1..=31).contains(&day) {
        return None;
    }
    let r = r.strip_prefix(' ')?;
    let (year, r) = match digits(r, 4..=4) {
        Some((y, after)) if after.starts_with(' ') => (Some(y), &after[1..]),
        _ => (None, r),
    };
    let (sod, frac, mut r) = clock(r)?;
    for zone in [" UTC", " GMT", " Z"] {
        if let Some(after) = r.strip_prefix(zone) {
            r = after;
            break;
        }
    }
    let r = r.strip_prefix(':').unwrap_or(r);
    let at = |y: i64| civil_to_unix(y, month, day, 0, 0, 0) + sod;
    let secs = match year {
        Some(y) => at(y),
        None => {
            let y = year_of(now_ns);
            let t = at(y);
            if t > now_ns.div_euclid(1_000_000_000) + 86_400 {
                at(y - 1)
            } else {
                t
            }
        }
    };
    Some((secs.checked_mul(1_000_000_000)?.checked_add(frac)?, r))
}

/// A tag: `name:` or `name[pid]:`, name of letters, digits and `_./-`. Returns (name, pid).
fn tag(w: &str) -> Option<(&str, Option<&str>)> {
    let body = w.strip_suffix(':')?;
    let (name, pid) = match body.find('[') {
        Some(i) => {
            let pid = body[i + 1..].strip_suffix(']')?;
            (&body[..i], Some(pid))
        }
        None => (body, None),
    };
    let ok = !name.is_empty()
        && name.len() <= 48
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'/' | b'-'));
    ok.then_some((name, pid.filter(|p| !p.is_empty())))
}

/// A word that starts the message rather than being a hostname.
fn starts_message(w: &str) -> bool {
    w.starts_with('%') || w.contains(',') || w.contains('=') || w.starts_with('[')
}

fn rfc3164<'a>(s: &'a str, now_ns: i64, h: &mut Header<'a>) {
    let s = s.trim_start_matches(' ');
    let mut rest = s;
    let mut timed = false;
    if let Some((t, r)) = bsd_time(s, now_ns) {
        h.time_ns = Some(t);
        rest = r;
        timed = true;
    } else if let Some((w, r)) = word(s) {
        let w = w.strip_suffix(':').unwrap_or(w);
        if let Some(t) = parse_rfc3339(w) {
            h.time_ns = Some(t);
            rest = r;
            timed = true;
        }
    }
    rest = rest.trim_start_matches(' ');
    // Hostname, when a timestamp was there (without one, the first word is not taken for a
    // host: too many senders start right with the message).
    if timed {
        if let Some((w, r)) = word(rest) {
            if tag(w).is_none() && !starts_message(w) && w != ":" {
                h.hostname = Some(w);
                rest = r.trim_start_matches(' ');
            }
        }
    }
    if let Some((w, r)) = word(rest) {
        if w == ":" {
            rest = r;
        } else if !w.starts_with('%') {
            if let Some((name, pid)) = tag(w) {
                h.appname = Some(name);
                h.procid = pid;
                rest = r;
            }
        }
    }
    h.msg = rest.trim_start_matches(' ');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-23T12:00:00Z.
    const NOW: i64 = 1_795_435_200 * 1_000_000_000;

    fn t(s: &str) -> i64 {
        parse_rfc3339(s).expect("time")
    }

    #[test]
    fn bsd_with_host_and_tag() {
        let h = parse("<4>Nov 22 09:15:01 er-x kernel: [WAN_IN-10-D]IN=eth0", NOW);
        assert_eq!(h.pri, Some(4));
        assert_eq!(h.version, None);
        assert_eq!(h.time_ns, Some(t("2026-11-22T09:15:01Z")));
        assert_eq!(h.hostname, Some("er-x"));
        assert_eq!(h.appname, Some("kernel"));
        assert_eq!(h.msg, "[WAN_IN-10-D]IN=eth0");
    }

    #[test]
    fn bsd_space_padded_day_and_pid() {
        let h = parse("<86>Dec  3 01:02:03 host sshd[4242]: Accepted key", NOW);
        // December is in the future in November: the year before.
        assert_eq!(h.time_ns, Some(t("2025-12-03T01:02:03Z")));
        assert_eq!(h.appname, Some("sshd"));
        assert_eq!(h.procid, Some("4242"));
        assert_eq!(h.msg, "Accepted key");
    }

    #[test]
    fn cisco_year_and_colon_without_host() {
        let h = parse(
            "<166>Nov 22 2026 09:20:01: %ASA-6-302014: Teardown TCP connection",
            NOW,
        );
        assert_eq!(h.pri, Some(166));
        assert_eq!(h.time_ns, Some(t("2026-11-22T09:20:01Z")));
        assert_eq!(h.hostname, None);
        assert_eq!(h.msg, "%ASA-6-302014: Teardown TCP connection");
        let h = parse("<166>Nov 22 2026 09:20:01 asa01 : %ASA-6-106100: x", NOW);
        assert_eq!(h.hostname, Some("asa01"));
        assert_eq!(h.msg, "%ASA-6-106100: x");
        let h = parse("<187>*Nov 22 09:20:01.250 UTC: %SYS-5-CONFIG_I: x", NOW);
        assert_eq!(h.time_ns, Some(t("2026-11-22T09:20:01.25Z")));
        assert_eq!(h.msg, "%SYS-5-CONFIG_I: x");
    }

    #[test]
    fn panos_csv_after_host() {
        let h = parse(
            "<14>Nov 22 09:30:00 fw01 1,2026/11/22 09:30:00,0018,TRAFFIC",
            NOW,
        );
        assert_eq!(h.hostname, Some("fw01"));
        assert_eq!(h.appname, None);
        assert_eq!(h.msg, "1,2026/11/22 09:30:00,0018,TRAFFIC");
    }

    #[test]
    fn rfc5424_full_and_nil() {
        let h = parse(
            "<165>1 2026-11-22T09:15:01.003+01:00 mymachine.example.com evntslog 77 ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"App\\]x\"][b@32473 c=\"d\"] \u{feff}An application event",
            NOW,
        );
        assert_eq!(h.pri, Some(165));
        assert_eq!(h.version, Some(1));
        assert_eq!(h.time_ns, Some(t("2026-11-22T08:15:01.003Z")));
        assert_eq!(h.hostname, Some("mymachine.example.com"));
        assert_eq!(h.appname, Some("evntslog"));
        assert_eq!(h.procid, Some("77"));
        assert_eq!(h.msgid, Some("ID47"));
        assert_eq!(h.msg, "An application event");
        let h = parse("<34>1 - - - - - -", NOW);
        assert_eq!(h.version, Some(1));
        assert_eq!(h.time_ns, None);
        assert_eq!(h.hostname, None);
        assert_eq!(h.msg, "");
        let h = parse("<34>1 - host app - - - kernel: msg", NOW);
        assert_eq!(h.hostname, Some("host"));
        assert_eq!(h.msg, "kernel: msg");
    }

    #[test]
    fn no_header_is_all_message() {
        let h = parse("just some text", NOW);
        assert_eq!(h.pri, None);
        assert_eq!(h.time_ns, None);
        assert_eq!(h.msg, "just some text");
        let h = parse("<999>x", NOW);
        assert_eq!(h.pri, None);
        assert_eq!(h.msg, "<999>x");
        let h = parse("<13>kernel: IN=eth0", NOW);
        assert_eq!(h.appname, Some("kernel"));
        assert_eq!(h.msg, "IN=eth0");
        let h = parse("<13>2026-11-22T09:15:01Z host app: text", NOW);
        assert_eq!(h.time_ns, Some(t("2026-11-22T09:15:01Z")));
        assert_eq!(h.hostname, Some("host"));
        assert_eq!(h.appname, Some("app"));
        assert_eq!(h.msg, "text");
    }
}
