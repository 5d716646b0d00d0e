#![no_main]
//! Capture files: the pcap/pcapng reader, then every datagram through one decoder.
use libfuzzer_sys::fuzz_target;
use sluice_decode::pcap::PcapReader;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(mut r) = PcapReader::from_bytes(data.to_vec()) else {
        return;
    };
    let mut d = sluice_decode::Decoder::default();
    let mut out = Vec::new();
    let _ =
        r.for_each_udp(|u| common::decode_and_encode(&mut d, u.src.port(), &u.payload, &mut out));
});
