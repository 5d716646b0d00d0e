//! The decoder around the parsers: headers, times, sequence numbers, vendor dispatch.

use std::net::SocketAddr;

use super::*;
use crate::event::SLUICE_PEN;

const NOW: i64 = 1_795_435_200 * 1_000_000_000;

fn sender() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 9], 40514))
}

fn field(r: &Record<'_>, id: u16) -> String {
    let i = r.template.event_field(SLUICE_PEN, id).expect("field");
    String::from_utf8_lossy(r.field(i)).into_owned()
}

#[test]
fn header_times_sequence_and_sender() {
    let mut d = SyslogDecoder::new();
    let mut seen = Vec::new();
    for m in [
        &b"<166>Nov 22 2026 09:20:01: %ASA-6-106015: Deny TCP (no connection) from 192.0.2.1/443 to 192.0.2.2/5000 flags RST ACK  on interface outside"[..],
        b"%ASA-4-106023: Deny tcp src outside:192.0.2.3/1 dst inside:192.0.2.4/2 by access-group \"X\" [0x0, 0x0]\n",
        b"<190>1 2026-11-22T09:20:03Z fw01 - - - - 1,2026/11/22 09:20:03,0001,THREAT,url,1,2026/11/22 09:20:03,192.0.2.5,198.51.100.5,0.0.0.0,0.0.0.0,r,,,web-browsing,vsys1,a,b,e1,e2,f,t,9,1,1000,80,0,0,0x0,tcp,block-url,\"example.com/x\",(9999),shopping,informational,client-to-server\r\n",
    ] {
        d.decode(m, sender(), NOW, |r| {
            seen.push((
                r.header.sequence,
                r.header.export_time_ns,
                r.header.receive_time_ns,
                r.header.exporter,
                field(r, elem::DATASET),
                field(r, elem::ACTION),
                field(r, elem::PARSE_FAILURE),
            ));
        });
    }
    let t = |s| crate::time::parse_rfc3339(s).expect("time");
    let ds = |s: &str| s.to_string();
    assert_eq!(
        seen,
        vec![
            (
                1,
                t("2026-11-22T09:20:01Z"),
                NOW,
                sender(),
                ds("cisco.asa"),
                ds("deny"),
                ds("")
            ),
            // No header: the receive time stands in.
            (2, NOW, NOW, sender(), ds("cisco.asa"), ds("deny"), ds("")),
            (
                3,
                t("2026-11-22T09:20:03Z"),
                NOW,
                sender(),
                ds("panw.panos"),
                ds("block-url"),
                ds("")
            ),
        ]
    );
    let st = d.stats();
    assert_eq!(st.messages[&Vendor::Asa], 2);
    assert_eq!(st.messages[&Vendor::Panos], 1);
    assert_eq!(st.failure_total(), 0);
}

#[test]
fn threat_without_name_keeps_the_id() {
    let line = "1,2026/11/22 09:20:03,0001,THREAT,url,1,2026/11/22 09:20:03,192.0.2.5,198.51.100.5,0.0.0.0,0.0.0.0,r,,,web-browsing,vsys1,a,b,e1,e2,f,t,9,1,1000,80,0,0,0x0,tcp,block-url,\"example.com/x\",(9999),shopping,informational,client-to-server";
    let mut e = Event::default();
    let (v, f) = parse_line(line, NOW, &mut e);
    assert_eq!((v, f), (Vendor::Panos, None));
    assert_eq!(e.get_uint(elem::PANOS_THREAT_ID), Some(9999));
    assert_eq!(e.get_text(elem::PANOS_THREAT_NAME), None);
    assert_eq!(e.get_text(elem::PANOS_MISC), Some("example.com/x"));
}
