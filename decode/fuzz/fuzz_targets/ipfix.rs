#![no_main]
//! One datagram, forced to version 10, through a fresh decoder and the encoder.
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let mut p = Vec::with_capacity(data.len() + 2);
    p.extend_from_slice(&10u16.to_be_bytes());
    p.extend_from_slice(data.get(2..).unwrap_or(&[]));
    let mut d = sluice_decode::Decoder::default();
    let mut out = Vec::new();
    common::decode_and_encode(&mut d, 2055, &p, &mut out);
});
