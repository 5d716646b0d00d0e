//! Differential-test support for `sluice decode`.
//!
//! Three decoders are reduced to the same shape, `BTreeMap<frame, Vec<NormRecord>>`
//! (1-based pcap frame number -> flow records of that datagram, in wire order):
//! * `sluice_doc` — Sluice's JSON documents (`sluice decode --annotate`),
//! * `tshark`     — Wireshark's dissector (`tshark -T json`),
//! * `nfparser`   — the `netflow_parser` crate fed by the independent reader in `pcap`.
//!
//! `norm` holds the canonical keys and the IE -> key table shared by all three;
//! [`compare`] lists the differences between two of them.
//!
//! # tshark 4.0.17 vs netflow_parser 1.0.6 on the shared captures (measured)
//!
//! All 73 NetFlow/IPFIX captures (every `.pcap` outside `sflow/`, `invalid/` included):
//! tshark 3602 flow records (+1519 options-data records, excluded), netflow_parser 3541
//! (+1520 options). (The README's per-file "records per tshark" = flow + options-data.)
//! In 69 files the two agree exactly: same records per frame, same value on every
//! canonical key. Expected divergences, per file:
//!
//! * `netflow5/invalid/netflow5_invalid01.pcap`, `netflow5_invalid02.pcap` — tshark 30
//!   records each, netflow_parser 0 (error "V5 parse error ... TooLarge"). The header count
//!   is bogus (55582 / 163); tshark ignores it and dissects every 48-byte record the
//!   datagram holds, netflow_parser rejects count > 30. logstash also emits 0: a strict
//!   decoder should agree with netflow_parser, not with tshark.
//! * `netflow9/invalid/netflow9_invalid01.pcap` — tshark 0 records, netflow_parser 2 (+1
//!   options). The header count is 2 but the datagram holds 6 sets (2 templates, options
//!   template, options data, data 2048, data 1024). tshark 4.0 dissects at most `count` v9
//!   sets, so it stops after the two template sets; netflow_parser ignores the count and
//!   decodes everything. logstash expects 0 events; a decoder that does not trust the v9
//!   count (RFC 3954 makes it a record count, useless for framing) gets netflow_parser's 2.
//! * `ipfix/ixia.pcap` — tshark 3 records (1 in frame 1, 2 in frame 2), netflow_parser 0.
//!   The Ixia templates have variable-length fields and some records carry zero-length
//!   values (empty strings); netflow_parser 1.0.6 rejects a variable-length length of 0,
//!   drops that record and the rest of its set, and reports no error (`nfparser.rs` turns
//!   such an empty data set into an entry in `errors`). tshark is right here.
//! * `netflow9/cisco_aci.pcap` — same 3 records on both sides; netflow_parser also reports
//!   an error for frame 1, whose 64 trailing zero bytes it tries to parse as another export
//!   packet. Not a record difference.
//!
//! Agreements worth knowing (both oracles behave alike, Sluice should too):
//! * Data that cannot be decoded is dropped by both: the data set that precedes its own
//!   template in the same datagram (`juniper_mx960_junos19.4_...`, 1 set) and the 6 sets
//!   of `ipt_netflow_reduced_size_encoding.pcap` whose template was never captured. A
//!   decoder that holds data until the template arrives would emit more records there
//!   (in the MX960 file only, as its template does arrive).
//! * RFC 5103 reverse elements (`softflowd_ipfix_biflow.pcap`): tshark shows them under
//!   the forward field names (arrays with `--no-duplicate-keys`); resolved through the
//!   template, only the forward elements are compared and both agree.
//! * Cisco IOS XR SRv6/MPLS templates 340/341/344/345 list IE 4, 6, 7, 11 (and 27/28, or
//!   8/12 together with 27/28) twice, for the inner and the outer header. Both oracles keep
//!   every occurrence, so e.g. `src_port=0,1024`, `proto=4,17`,
//!   `src_addr=192.0.41.144,fcba:be00:3001::1`. A Sluice document that keeps one value per
//!   element name (Filebeat-style, last wins) will differ on those records.
//! * 2-byte tcpControlBits (Cisco IOS XR, akvorado MPLS): equal on these files; note that
//!   netflow_parser keeps only the 9 flag bits, so set header-length bits would differ.
//! * IE 85/86 (octetTotalCount/packetTotalCount: Barracuda, Cisco ASA NSEL) are compared as
//!   `bytes_total`/`packets_total`, never as `bytes`/`packets`.
//! * Zero-length template fields (`zero_length_fields_tpl_data.pcap`) and IPFIX over IPv6
//!   transport: no difference.
//! * v9 templates are cached per source ID by tshark but not by netflow_parser (one parser
//!   per exporter address); no shared capture makes that matter (the two-source-ID file
//!   `..._f2rd_pretag_sampling_reload_...` agrees).
//! * `-d udp.port==P,cflow` was needed for 9990, 9991, 9992, 8096 and 2100.
//!
//! Per file (tshark flow records / netflow_parser flow records, options-data records in
//! brackets where non-zero, equal on both sides unless marked):
//!
//! | capture | tshark | netflow_parser |
//! |---|---|---|
//! | generated/fprobe_v5 | 30 | 30 |
//! | generated/nfdump_nfreplay_v5 | 34 | 34 |
//! | generated/nfdump_nfreplay_v9 | 54 | 54 |
//! | generated/pmacctd_nfprobe_ipfix | 46 | 46 |
//! | generated/pmacctd_nfprobe_v5 | 30 | 30 |
//! | generated/pmacctd_nfprobe_v5_uptime_wrap | 30 | 30 |
//! | generated/pmacctd_nfprobe_v9 | 46 | 46 |
//! | generated/pmacctd_nfprobe_v9_sampling | 36 [1] | 36 [1] |
//! | generated/softflowd_ipfix | 46 [1] | 46 [1] |
//! | generated/softflowd_ipfix_biflow | 25 [1] | 25 [1] |
//! | generated/softflowd_v5 | 30 | 30 |
//! | generated/softflowd_v9 | 46 [1] | 46 [1] |
//! | generated/softflowd_v9_uptime_wrap | 46 [1] | 46 [1] |
//! | ipfix/akvorado_ipfix_ethernet_over_mpls_cw | 10 | 10 |
//! | ipfix/akvorado_ipfix_mpls | 2 [1] | 2 [1] |
//! | ipfix/barracuda_extended_uniflow | 2 | 2 |
//! | ipfix/barracuda_firewall | 8 | 8 |
//! | ipfix/cisco_iosxr_..._bgp_cisco_srv6_traffic-00 | 43 [10] | 43 [10] |
//! | ipfix/cisco_iosxr_..._bgp_ipv6_cisco_mpls_traffic-00 | 74 [39] | 74 [39] |
//! | ipfix/cisco_iosxr_..._bgp_ipv6_cisco_srv6_lcomms_traffic-00 | 75 [39] | 75 [39] |
//! | ipfix/cisco_iosxr_..._bmp_cisco_srv6_multiple_sources_traffic-00 | 657 [338] | 657 [338] |
//! | ipfix/cisco_iosxr_..._bmp_cisco_srv6_multiple_sources_traffic-01 | 109 [338] | 109 [338] |
//! | ipfix/cisco_iosxr_..._bmp_ipv6_cisco_mpls_multiple_sources_traffic-00 | 748 [351] | 748 [351] |
//! | ipfix/cisco_iosxr_..._bmp_ipv6_cisco_mpls_multiple_sources_traffic-01 | 716 [351] | 716 [351] |
//! | ipfix/cisco_iosxr_..._ipfixv10_cisco_traffic-00 | 12 | 12 |
//! | ipfix/cisco_iosxr_..._ipv6_cisco_sampling_option_traffic-00 | 3 [1] | 3 [1] |
//! | ipfix/cisco_iosxr_..._nfv9_ipv6_ipv4_mix_sources_traffic-01 | 13 | 13 |
//! | ipfix/ixia | 3 | **0** |
//! | ipfix/juniper_cpid_forwarding_exception | 1 | 1 |
//! | ipfix/juniper_inline_monitoring_datalink_rfc7133 | 1 | 1 |
//! | ipfix/juniper_mx240_junos15.1 | 0 [1] | 0 [1] |
//! | ipfix/juniper_srv6_datalink | 1 | 1 |
//! | ipfix/mikrotik_routeros_6.39.2 | 46 | 46 |
//! | ipfix/openbsd_pflow | 26 | 26 |
//! | ipfix/softflowd_ipfix | 12 [1] | 12 [1] |
//! | netflow5/akvorado_nfv5_udp9990 | 29 | 29 |
//! | netflow5/invalid/netflow5_invalid01 | 30 | **0** |
//! | netflow5/invalid/netflow5_invalid02 | 30 | **0** |
//! | netflow5/juniper_mx80_v5 | 29 | 29 |
//! | netflow5/mikrotik_routeros_v5 | 30 | 30 |
//! | netflow5/softflowd_v5 | 30 | 30 |
//! | netflow9/akvorado_v9_multiple_sampling_rates | 12 [2] | 12 [2] |
//! | netflow9/akvorado_v9_nat | 9 | 9 |
//! | netflow9/akvorado_v9_options_template_data | 4 [4] | 4 [4] |
//! | netflow9/akvorado_v9_sampling_rate_in_data_udp8096 | 6 | 6 |
//! | netflow9/cisco_1941k9_r15.1 | 29 | 29 |
//! | netflow9/cisco_aci | 3 | 3 |
//! | netflow9/cisco_asa_1 | 14 | 14 |
//! | netflow9/cisco_asa_2 | 19 | 19 |
//! | netflow9/cisco_asr1001x | 25 | 25 |
//! | netflow9/cisco_asr9k_more_templates | 0 | 0 |
//! | netflow9/cisco_asr9k_opttpl256_data256 | 0 [19] | 0 [19] |
//! | netflow9/cisco_asr9k_tpl260_data260 | 21 | 21 |
//! | netflow9/cisco_iosxr_..._nfv9_ipv6_ipv4_mix_sources_traffic-00 | 11 | 11 |
//! | netflow9/cisco_iosxr_..._nfv9_cisco_cust_primitives_traffic-00 | 51 | 51 |
//! | netflow9/cisco_iosxr_..._nfv9_cisco_f2rd_pretag_sampling_reload_traffic-00 | 35 | 35 |
//! | netflow9/cisco_nbar_opttpl260 | 0 [15] | 0 [15] |
//! | netflow9/cisco_nbar_tpl262_data262 | 5 | 5 |
//! | netflow9/cisco_wlc | 19 | 19 |
//! | netflow9/cisco_wlc_8510_r8.2_tpl | 0 | 0 |
//! | netflow9/field_layer2segmentid | 1 | 1 |
//! | netflow9/invalid/netflow9_invalid01 | 0 | **2 [1]** |
//! | netflow9/ipt_netflow_reduced_size_encoding | 12 | 12 |
//! | netflow9/juniper_mx960_junos19.4_data_and_templates_in_one_packet | 10 [1] | 10 [1] |
//! | netflow9/juniper_srx_options_tpl_0_scope_len | 0 [1] | 0 [1] |
//! | netflow9/macaddr_tpl_data | 29 [1] | 29 [1] |
//! | netflow9/nprobe_and_softflowd_two_exporters | 8 [1] | 8 [1] |
//! | netflow9/nprobe_dpi_l7 | 1 | 1 |
//! | netflow9/pmacct_nfprobe_v9_icmp_udp2100 | 4 | 4 |
//! | netflow9/softflowd_v9_valid01 | 7 | 7 |
//! | netflow9/ubiquiti_edgerouter_mpls | 16 | 16 |
//! | netflow9/unknown_ie150_ie151 | 2 | 2 |
//! | netflow9/zero_length_fields_tpl_data | 10 | 10 |

#![allow(dead_code)]

pub mod collector;
pub mod ipfix;
pub mod nfparser;
pub mod norm;
pub mod pcap;
pub mod sluice_doc;
pub mod tshark;

use norm::NormRecord;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Human-readable differences between two decodings of one capture.
///
/// Per frame: first the record count; if the counts agree, each record is compared
/// with the record at the same position on the other side (keys present on both sides
/// with different values, then keys present on one side only); if they differ, the
/// records found on only one side are listed instead (multiset difference), since
/// positions no longer line up. Frames missing on one side count as zero records.
/// `what` prefixes every line, e.g. `"softflowd_v9.pcap sluice vs tshark"`.
pub fn compare(
    ours: &BTreeMap<u64, Vec<NormRecord>>,
    theirs: &BTreeMap<u64, Vec<NormRecord>>,
    what: &str,
) -> Vec<String> {
    let mut diffs = Vec::new();
    let frames: BTreeSet<u64> = ours.keys().chain(theirs.keys()).copied().collect();
    let empty = Vec::new();
    for frame in frames {
        let a = ours.get(&frame).unwrap_or(&empty);
        let b = theirs.get(&frame).unwrap_or(&empty);
        if a.len() != b.len() {
            diffs.push(format!(
                "{what}: frame {frame}: {} record(s) in ours, {} in theirs",
                a.len(),
                b.len()
            ));
            let mut rest_b: Vec<&NormRecord> = b.iter().collect();
            let mut only_a = Vec::new();
            for r in a {
                match rest_b.iter().position(|x| *x == r) {
                    Some(i) => {
                        rest_b.remove(i);
                    }
                    None => only_a.push(r),
                }
            }
            for r in only_a {
                diffs.push(format!("{what}: frame {frame}: only in ours: {r}"));
            }
            for r in rest_b {
                diffs.push(format!("{what}: frame {frame}: only in theirs: {r}"));
            }
            continue;
        }
        for (i, (ra, rb)) in a.iter().zip(b).enumerate() {
            let n = i + 1;
            for (k, va) in &ra.0 {
                if let Some(vb) = rb.0.get(k) {
                    if va != vb {
                        diffs.push(format!(
                            "{what}: frame {frame} record {n}: {k}: ours={va} theirs={vb}"
                        ));
                    }
                }
            }
            for (k, va) in &ra.0 {
                if !rb.0.contains_key(k) {
                    diffs.push(format!(
                        "{what}: frame {frame} record {n}: {k} only in ours ({va})"
                    ));
                }
            }
            for (k, vb) in &rb.0 {
                if !ra.0.contains_key(k) {
                    diffs.push(format!(
                        "{what}: frame {frame} record {n}: {k} only in theirs ({vb})"
                    ));
                }
            }
        }
    }
    diffs
}

/// Total number of records in a decoding.
pub fn record_count(m: &BTreeMap<u64, Vec<NormRecord>>) -> usize {
    m.values().map(Vec::len).sum()
}

/// The shared capture directory: `$SLUICE_CAPTURES_DIR` if set, else
/// `../shared/captures` beside the checkout.
pub fn captures_dir() -> PathBuf {
    match std::env::var_os("SLUICE_CAPTURES_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/captures"),
    }
}

/// Every NetFlow/IPFIX `.pcap` under `dir` (recursively, sorted), leaving out sFlow
/// captures (`sflow/` and `*sflow*` files) and exporter input traffic (`input/`).
pub fn flow_captures(dir: &Path) -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_lowercase();
            if p.is_dir() {
                if name != "sflow" && name != "input" {
                    walk(&p, out);
                }
            } else if name.ends_with(".pcap") && !name.contains("sflow") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}
