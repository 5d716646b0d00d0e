#![no_main]
//! A byte stream as a syslog TCP connection carries it: framed (octet counting or newlines,
//! with a small maximum so cutting runs too), in pieces whose sizes the input's first byte
//! picks, each message through the syslog decoder (header, vendor parsers) and every record
//! through the encoder. The same bytes also go in whole as one UDP datagram would.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use sluice_decode::syslog::framing::Framer;
use sluice_decode::syslog::SyslogDecoder;
use sluice_sink::ecs::{encode_csv, encode_json, EncodeOptions};

fuzz_target!(|data: &[u8]| {
    let src = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 514);
    let now = 1_795_435_200_000_000_000;
    let mut d = SyslogDecoder::new();
    let mut out = Vec::new();
    let mut records = 0u64;
    let mut encode = |r: &sluice_decode::Record<'_>| {
        let f = r.flow();
        out.clear();
        encode_json(&mut out, r, &f, &EncodeOptions::default());
        encode_csv(&mut out, r, &f, None);
        records += 1;
    };
    d.decode(data, src, now, &mut encode);
    let piece = usize::from(data.first().copied().unwrap_or(7) % 61) + 1;
    let mut framer = Framer::new(512);
    let mut frames = 0u64;
    for chunk in data.chunks(piece) {
        framer.push(chunk, &mut |m, _| {
            assert!(m.len() <= 512);
            frames += 1;
            d.decode(m, src, now, &mut encode);
        });
    }
    framer.finish(&mut |m, _| {
        assert!(m.len() <= 512);
        frames += 1;
        d.decode(m, src, now, &mut encode);
    });
    let st = d.stats();
    // Every message is a record or counted as empty.
    assert_eq!(st.total() + st.empty, 1 + frames);
    assert_eq!(st.total(), records);
});
