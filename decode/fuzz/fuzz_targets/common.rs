// Shared by the targets: decode one datagram with a fresh decoder and encode every record, so
// the encoder sees whatever the decoder lets through.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use sluice_decode::{Datagram, Decoder};
use sluice_sink::ecs::{encode_csv, encode_json, EncodeOptions};

pub fn decode_and_encode(d: &mut Decoder, port: u16, payload: &[u8], out: &mut Vec<u8>) {
    let dg = Datagram {
        src: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), port),
        receive_time_ns: 1_700_000_000_000_000_000,
        payload,
        tag: 0,
    };
    let _ = d.decode(&dg, |r| {
        let f = r.flow();
        out.clear();
        encode_json(out, r, &f, &EncodeOptions { annotate: true });
        encode_csv(out, r, &f, None);
    });
}
