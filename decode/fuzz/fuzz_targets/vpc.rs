#![no_main]
//! A VPC Flow Logs file: every line through one decoder (so header lines switch its format
//! for the lines after them), every record through the encoder.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use sluice_decode::vpc::VpcDecoder;
use sluice_sink::ecs::{encode_csv, encode_json, EncodeOptions};

fuzz_target!(|data: &[u8]| {
    let src = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
    let mut d = VpcDecoder::new();
    let mut out = Vec::new();
    let mut records = 0u64;
    for line in data.split(|&c| c == b'\n') {
        d.line(line, src, 1_795_435_200_000_000_000, |r| {
            let f = r.flow();
            out.clear();
            encode_json(&mut out, r, &f, &EncodeOptions::default());
            encode_csv(&mut out, r, &f, None);
            records += 1;
        });
    }
    assert_eq!(d.stats().records, records);
});
