//! Batches decoded as the receive threads decode them (`Batch::in_datagram`): records that
//! lie in the datagram share one copy of its payload and its header by address. What comes
//! out must be exactly what the decoder handed over, record by record, including records of
//! data sets that were held for their template and decoded in a later datagram (each with the
//! header of the datagram that carried it), and after the receive buffer has been reused.

use std::net::SocketAddr;

use sluice_decode::{Datagram, Decoder, Record, ScopeTables};
use sluice_ingest::batch::Batch;

const TEMPLATE_ID: u16 = 256;
/// sourceIPv4Address, destinationIPv4Address, octetDeltaCount, packetDeltaCount: 16 bytes.
const FIELDS: [(u16, u16); 4] = [(8, 4), (12, 4), (1, 4), (2, 4)];

/// A NetFlow v9 datagram: header, then an optional template flowset, then `records` data
/// records of the template (their bytes derived from `seq`).
fn v9(seq: u32, template: bool, records: u32) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&9u16.to_be_bytes());
    p.extend_from_slice(&0u16.to_be_bytes()); // count, patched below
    p.extend_from_slice(&(60_000 + seq).to_be_bytes()); // sysUptime
    p.extend_from_slice(&(1_800_000_000 + seq).to_be_bytes()); // unix secs
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&7u32.to_be_bytes()); // source id
    let mut count = 0u16;
    if template {
        p.extend_from_slice(&0u16.to_be_bytes());
        p.extend_from_slice(&(8 + 4 * FIELDS.len() as u16).to_be_bytes());
        p.extend_from_slice(&TEMPLATE_ID.to_be_bytes());
        p.extend_from_slice(&(FIELDS.len() as u16).to_be_bytes());
        for (ty, len) in FIELDS {
            p.extend_from_slice(&ty.to_be_bytes());
            p.extend_from_slice(&len.to_be_bytes());
        }
        count += 1;
    }
    if records > 0 {
        p.extend_from_slice(&TEMPLATE_ID.to_be_bytes());
        p.extend_from_slice(&(4 + 16 * records as u16).to_be_bytes());
        for i in 0..records {
            p.extend_from_slice(&[10, 0, seq as u8, i as u8]);
            p.extend_from_slice(&[192, 0, 2, (seq * 16 + i) as u8]);
            p.extend_from_slice(&(1000 * seq + i).to_be_bytes());
            p.extend_from_slice(&(seq + i).to_be_bytes());
        }
        count += records as u16;
    }
    p[2..4].copy_from_slice(&count.to_be_bytes());
    p
}

/// (sequence, export time, record bytes) of one record.
type Seen = (u32, i64, Vec<u8>);

fn datagrams() -> Vec<Vec<u8>> {
    vec![
        // Data before its template: held, then decoded while the third datagram is.
        v9(1, false, 3),
        v9(2, false, 2),
        v9(3, true, 4),
        v9(4, false, 5),
        v9(5, false, 1),
    ]
}

/// Notes what the decoder gave, and pushes it.
fn take(want: &mut Vec<Seen>, b: &mut Batch, r: &Record<'_>, t: Option<&ScopeTables>) {
    want.push((r.header.sequence, r.header.export_time_ns, r.data.to_vec()));
    b.push(r, t);
}

/// Decodes `dgs` into one batch from one receive buffer, reused and overwritten after each
/// datagram as the receiver's are; datagram `k` is pushed inside `in_datagram` when
/// `inside(k)`, directly otherwise. What the decoder gave, and what the batch gives back.
fn through_batch(dgs: &[Vec<u8>], inside: impl Fn(usize) -> bool) -> (Vec<Seen>, Vec<Seen>) {
    let src: SocketAddr = "192.0.2.1:2055".parse().expect("addr");
    let mut d = Decoder::default();
    let mut batch = Batch::new(0, 4096);
    let mut want: Vec<Seen> = Vec::new();
    let mut buf = vec![0u8; 2048];
    for (k, p) in dgs.iter().enumerate() {
        buf[..p.len()].copy_from_slice(p);
        let dg = Datagram {
            src,
            receive_time_ns: 1,
            payload: &buf[..p.len()],
            tag: 0,
        };
        if inside(k) {
            batch.in_datagram(dg.payload, |b| {
                let _ = d.decode_with_tables(&dg, |r, t| take(&mut want, b, r, t));
            });
        } else {
            let _ = d.decode_with_tables(&dg, |r, t| take(&mut want, &mut batch, r, t));
        }
        // The batch must not refer to the buffer.
        buf.fill(0xee);
    }
    let mut got: Vec<Seen> = Vec::new();
    let mut scratch = Vec::new();
    batch.for_each(&mut scratch, |r| {
        got.push((r.header.sequence, r.header.export_time_ns, r.data.to_vec()));
    });
    (want, got)
}

#[test]
fn records_come_out_as_the_decoder_gave_them_held_ones_included() {
    let (want, got) = through_batch(&datagrams(), |_| true);
    assert_eq!(want.len(), 15, "every record decoded");
    // The held records kept their own datagrams' headers: the test covers them.
    assert_eq!(want[0].0, 1);
    assert_eq!(want[3].0, 2);
    assert_eq!(want[5].0, 3);
    assert_eq!(got, want);
}

#[test]
fn pushes_outside_a_datagram_and_after_it_are_copied_alone() {
    // A direct push must not mistake its bytes (in the same buffer) for the previous
    // datagram's.
    let (want, got) = through_batch(&datagrams(), |k| k % 2 == 0);
    assert_eq!(want.len(), 15);
    assert_eq!(got, want);
}
