#![no_main]
//! The `--where` language and the time arguments of `dump`/`top`: any text is parsed, and an
//! expression that parses is evaluated against a few flows (it must not panic on any).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use sluice_decode::Flow;
use sluice_sink::filter::{parse_duration, parse_time_arg, Filter};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_duration(text);
    let _ = parse_time_arg(text, 1_795_000_000_000_000_000);
    let Ok(filter) = Filter::parse(text) else {
        return;
    };
    let exporter = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 2055);
    let v4 = Flow {
        src_ip: Some(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))),
        dst_ip: Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7))),
        src_port: Some(51_000),
        dst_port: Some(443),
        proto: Some(6),
        bytes: Some(1500),
        packets: Some(3),
        ..Flow::default()
    };
    let v6 = Flow {
        src_ip: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        dst_ip: Some(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))),
        proto: Some(17),
        ..Flow::default()
    };
    for f in [v4, v6, Flow::default()] {
        let _ = filter.matches(&f, exporter);
    }
});
