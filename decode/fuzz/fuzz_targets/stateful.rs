#![no_main]
//! Stateful: the input is a sequence of datagrams (2-byte length prefix each, 1-byte source
//! port selector) fed to one decoder, and the decoder lives across inputs so template caches,
//! held data and options tables accumulate as they would on a long-running collector.
use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use sluice_decode::{Decoder, Limits};

#[path = "common.rs"]
mod common;

thread_local! {
    static DECODER: RefCell<(Decoder, u64)> = RefCell::new((Decoder::new(Limits {
        max_scopes: 64,
        max_templates: 64,
        max_held_bytes: 64 * 1024,
        ..Limits::default()
    }), 0));
}

fuzz_target!(|data: &[u8]| {
    DECODER.with(|cell| {
        let mut guard = cell.borrow_mut();
        let (d, runs) = &mut *guard;
        *runs += 1;
        // Start over now and then so state does not only grow.
        if *runs % 10_000 == 0 {
            d.finish();
            *d = Decoder::default();
        }
        let mut out = Vec::new();
        let mut rest = data;
        while rest.len() >= 3 {
            let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
            let port = 4000 + u16::from(rest[2] & 3);
            rest = &rest[3..];
            let take = len.min(rest.len());
            common::decode_and_encode(d, port, &rest[..take], &mut out);
            rest = &rest[take..];
        }
    });
});
