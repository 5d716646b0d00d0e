//! Community ID v1 against the spec's published test vectors (corelight/community-id-spec,
//! `baseline/README.md` tables and `baseline/baseline_deflt.json`). For ICMP the "ports" are
//! the message type and code, as in the baseline.

use std::net::IpAddr;

use sluice_enrich::community_id;

fn check(seed: u16, proto: u8, src: &str, dst: &str, ports: Option<(u16, u16)>, want: &str) {
    let s: IpAddr = src.parse().expect("src");
    let d: IpAddr = dst.parse().expect("dst");
    let got = community_id(seed, s, d, proto, ports).expect("computable");
    assert_eq!(
        got.as_str(),
        want,
        "seed {seed} proto {proto} {src} {dst} {ports:?}"
    );
    assert_eq!(got.to_string(), want);
}

/// (protocol, source, destination, ports or ICMP type/code).
type Tuple = (u8, &'static str, &'static str, Option<(u16, u16)>);

const A4: &str = "1.2.3.4";
const B4: &str = "5.6.7.8";
const A6: &str = "fe80:0001:0203:0405:0607:0809:0A0B:0C0D";
const B6: &str = "fe80:1011:1213:1415:1617:1819:1A1B:1C1D";

/// `baseline/README.md`, "Default settings" and "A custom seed=1 value".
#[test]
fn baseline_tables() {
    #[rustfmt::skip]
    let rows: &[(Tuple, &str, &str)] = &[
        ((6, A4, B4, Some((1122, 3344))), "1:wCb3OG7yAFWelaUydu0D+125CLM=", "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk="),
        ((6, B4, A4, Some((3344, 1122))), "1:wCb3OG7yAFWelaUydu0D+125CLM=", "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk="),
        ((17, A4, B4, Some((1122, 3344))), "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=", "1:OShq+iKDAMVouh/4bMxB9Sz4amw="),
        ((17, B4, A4, Some((3344, 1122))), "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=", "1:OShq+iKDAMVouh/4bMxB9Sz4amw="),
        ((132, A4, B4, Some((1122, 3344))), "1:EKt4MsxuyaE6mL+hmrEkQ9csDD8=", "1:uitchpn5MMGAQKBJh7bIr/bAr7s="),
        ((132, B4, A4, Some((3344, 1122))), "1:EKt4MsxuyaE6mL+hmrEkQ9csDD8=", "1:uitchpn5MMGAQKBJh7bIr/bAr7s="),
        ((1, A4, B4, Some((8, 0))), "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=", "1:9pr4ZGTICiuZoIh90RRYE2RyXpU="),
        ((1, B4, A4, Some((0, 0))), "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=", "1:9pr4ZGTICiuZoIh90RRYE2RyXpU="),
        ((1, A4, B4, Some((11, 0))), "1:f/YiSyWqczrTgfUCZlBUnvHRcPk=", "1:1DD7cWGC/Yg91YGsQeni8du3pIA="),
        ((58, A6, B6, Some((128, 0))), "1:0bf7hyMJUwt3fMED7z8LIfRpBeo=", "1:IO27GQzPuCtNnwFvjWALMHu5tJE="),
        ((58, B6, A6, Some((129, 0))), "1:0bf7hyMJUwt3fMED7z8LIfRpBeo=", "1:IO27GQzPuCtNnwFvjWALMHu5tJE="),
        ((58, A6, B6, Some((146, 0))), "1:fYC8+pz24E+EhANP1EZhpX0Dw10=", "1:Cv4IKJe56BNkF0MBW2YxQ3Nwc3s="),
        ((46, A4, B4, None), "1:ikv3kmf89luf73WPz1jOs49S768=", "1:/buhqeOmaRCopOZFy9HnoJd5XW8="),
        ((46, B4, A4, None), "1:ikv3kmf89luf73WPz1jOs49S768=", "1:/buhqeOmaRCopOZFy9HnoJd5XW8="),
        ((46, A6, B6, None), "1:wQ/2mwrnXP4lmJcHdGL5ePjR+e0=", "1:j6EyyfBzL4vWKHFXgUqb5Az3OxM="),
        ((46, B6, A6, None), "1:wQ/2mwrnXP4lmJcHdGL5ePjR+e0=", "1:j6EyyfBzL4vWKHFXgUqb5Az3OxM="),
    ];
    for &((proto, src, dst, ports), seed0, seed1) in rows {
        check(0, proto, src, dst, ports, seed0);
        check(1, proto, src, dst, ports, seed1);
    }
}

/// `baseline/baseline_deflt.json` (from the spec's combined pcap).
#[test]
fn baseline_json_default_seed() {
    #[rustfmt::skip]
    let rows: &[(Tuple, &str)] = &[
        ((58, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", Some((135, 136))), "1:dGHyGvjMfljg6Bppwm3bg0LO8TY="),
        ((58, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", Some((136, 135))), "1:dGHyGvjMfljg6Bppwm3bg0LO8TY="),
        ((58, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", Some((135, 136))), "1:zavyT/cezQr1fmImYCwYnMXbgck="),
        ((58, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", Some((136, 135))), "1:zavyT/cezQr1fmImYCwYnMXbgck="),
        ((58, "3ffe:501:1800:2345::2", "3ffe:507:0:1:200:86ff:fe05:80da", Some((3, 0))), "1:2ObVBgIn28oZvibYZhZMBgh7WdQ="),
        ((58, "3ffe:501:410:0:2c0:dfff:fe47:33e", "3ffe:507:0:1:200:86ff:fe05:80da", Some((1, 4))), "1:hLZd0XGWojozrvxqE0dWB1iM6R0="),
        ((58, "3ffe:507:0:1:200:86ff:fe05:80da", "3ffe:501:0:1001::2", Some((128, 129))), "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg="),
        ((58, "3ffe:501:0:1001::2", "3ffe:507:0:1:200:86ff:fe05:80da", Some((129, 128))), "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg="),
        ((58, "fe80::200:86ff:fe05:80da", "ff02::2", Some((133, 134))), "1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0="),
        ((58, "fe80::260:97ff:fe07:69ea", "ff02::1", Some((134, 133))), "1:pkvHqCL88/tg1k4cPigmZXUtL00="),
        ((1, "192.168.0.89", "192.168.0.1", Some((8, 0))), "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="),
        ((1, "192.168.0.1", "192.168.0.89", Some((0, 8))), "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="),
        ((1, "10.0.0.1", "10.0.0.2", Some((11, 0))), "1:YHxtAirCG//0OzkcVAukqKQN9xM="),
        ((6, "2001:470:e5bf:dead:4957:2174:e82c:4887", "2607:f8b0:400c:c03::1a", Some((63943, 25))), "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4="),
        ((6, "2607:f8b0:400c:c03::1a", "2001:470:e5bf:dead:4957:2174:e82c:4887", Some((25, 63943))), "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4="),
        ((132, "192.168.170.8", "192.168.170.56", Some((7, 7))), "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs="),
        ((132, "192.168.170.56", "192.168.170.8", Some((7, 7))), "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs="),
        ((6, "128.232.110.120", "66.35.250.204", Some((34855, 80))), "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
        ((6, "66.35.250.204", "128.232.110.120", Some((80, 34855))), "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
        ((17, "192.168.1.52", "8.8.8.8", Some((54585, 53))), "1:d/FP5EW3wiY1vCndhwleRRKHowQ="),
        ((17, "8.8.8.8", "192.168.1.52", Some((53, 54585))), "1:d/FP5EW3wiY1vCndhwleRRKHowQ="),
        ((46, "10.1.12.1", "10.1.12.2", None), "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw="),
        ((46, "10.1.12.2", "10.1.12.1", None), "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw="),
    ];
    for &((proto, src, dst, ports), want) in rows {
        check(0, proto, src, dst, ports, want);
    }
}

#[test]
fn both_directions_agree_and_one_way_icmp_does_not_flip() {
    let a: IpAddr = "10.0.0.1".parse().expect("ip");
    let b: IpAddr = "10.0.0.2".parse().expect("ip");
    let f = |s, d, p, ports| community_id(0, s, d, p, ports).expect("id");
    assert_eq!(f(a, b, 6, Some((1, 2))), f(b, a, 6, Some((2, 1))));
    // Same address both ends: ordered by port.
    assert_eq!(f(a, a, 17, Some((9, 5))), f(a, a, 17, Some((5, 9))));
    // Destination unreachable (type 3) is one-way: the two directions differ.
    assert_ne!(f(a, b, 1, Some((3, 1))), f(b, a, 1, Some((3, 1))));
}
