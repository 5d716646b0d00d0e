#![no_main]
//! One datagram, forced to sFlow version 5, through a decoder that has already seen it once
//! (so sequence tracking runs on the second pass), and every record through the encoder.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use sluice_decode::sflow::SflowDecoder;
use sluice_decode::Datagram;
use sluice_sink::ecs::{encode_csv, encode_json, EncodeOptions};

fuzz_target!(|data: &[u8]| {
    let mut p = Vec::with_capacity(data.len() + 4);
    p.extend_from_slice(&5u32.to_be_bytes());
    p.extend_from_slice(data.get(4..).unwrap_or(&[]));
    let dg = Datagram {
        src: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 6343),
        receive_time_ns: 1_700_000_000_000_000_000,
        payload: &p,
        tag: 0,
    };
    let mut d = SflowDecoder::default();
    d.set_counter_records(true);
    let mut out = Vec::new();
    let mut counters = 0u64;
    for _ in 0..2 {
        let _ = d.decode(
            &dg,
            |r| {
                assert_eq!(r.template.fixed_len, Some(r.data.len()));
                let f = r.flow();
                out.clear();
                encode_json(&mut out, r, &f, &EncodeOptions { annotate: true });
                encode_csv(&mut out, r, &f, None);
            },
            |c| {
                counters = counters
                    .wrapping_add(u64::from(c.sequence))
                    .wrapping_add(c.interface.map_or(0, |i| i.in_octets));
            },
        );
    }
    std::hint::black_box((counters, d.agents().count()));
});
