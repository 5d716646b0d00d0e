//! The `--where` filter language and the time arguments: tables of expressions against
//! hand-built flows, precedence, error positions and messages, a randomized comparison with an
//! independent evaluator written here, a check that matching does not allocate, and time and
//! duration parsing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use sluice_decode::Flow;
use sluice_sink::filter::{parse_duration, parse_time_arg, Filter, FilterError};

// ---------------------------------------------------------------------------------------------
// An allocator that counts allocations per thread, so that `matches_does_not_allocate` sees
// only its own thread's allocations while the other tests run in parallel.

struct CountingAlloc;

thread_local! {
    // `const` initialisation: the counter itself must not allocate.
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn count_alloc() {
    // `try_with`: the thread-local is gone while a thread is being torn down.
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_alloc();
        // SAFETY: forwarded unchanged; our caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_alloc();
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_alloc();
        // SAFETY: `ptr` came from `System` through this allocator with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

// ---------------------------------------------------------------------------------------------
// Fixtures.

fn v4(a: u8, b: u8, c: u8, d: u8) -> Option<IpAddr> {
    Some(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().expect("test address"))
}

/// A TCP flow with every field the filter looks at.
fn tcp_flow() -> Flow {
    Flow {
        src_ip: v4(10, 1, 2, 3),
        dst_ip: v4(192, 0, 2, 80),
        src_port: Some(51000),
        dst_port: Some(443),
        proto: Some(6),
        bytes: Some(1500),
        packets: Some(3),
        in_if: Some(2),
        out_if: Some(7),
        src_as: Some(64500),
        dst_as: Some(15169),
        ..Flow::default()
    }
}

fn exporter() -> SocketAddr {
    "192.0.2.9:2055".parse().expect("test address")
}

fn filter(expr: &str) -> Filter {
    Filter::parse(expr).unwrap_or_else(|e| panic!("{expr:?} does not parse: {e}"))
}

fn check(flow: &Flow, exporter: SocketAddr, cases: &[(&str, bool)]) {
    for &(expr, want) in cases {
        assert_eq!(
            filter(expr).matches(flow, exporter),
            want,
            "{expr:?} on {flow:?} from {exporter}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Tables.

#[test]
fn primitives_on_a_tcp_flow() {
    check(
        &tcp_flow(),
        exporter(),
        &[
            ("src ip 10.1.2.3", true),
            ("dst ip 10.1.2.3", false),
            ("ip 10.1.2.3", true),
            ("ip 192.0.2.80", true),
            ("host 192.0.2.80", true),
            ("src host 192.0.2.80", false),
            ("src net 10.0.0.0/8", true),
            ("src net 10.1.2.0/24", true),
            ("src net 10.1.3.0/24", false),
            ("dst net 192.0.2.0/24", true),
            ("net 0.0.0.0/0", true),
            ("ip 10.1.2.3/32", true),
            // Host bits past the prefix are ignored.
            ("src net 10.9.9.9/8", true),
            ("ip 2001:db8::/32", false),
            ("ip ::/0", false),
            // A mapped address in the expression compares as IPv4.
            ("src ip ::ffff:10.1.2.3", true),
            ("src net ::ffff:10.0.0.0/104", true),
            ("src port 51000", true),
            ("dst port 443", true),
            ("src port 443", false),
            ("port 443", true),
            ("port 51000", true),
            ("port 80", false),
            ("port 400-500", true),
            ("dst port 444-500", false),
            ("src port 50000-51000", true),
            ("port 0-65535", true),
            ("proto tcp", true),
            ("proto 6", true),
            ("proto udp", false),
            ("proto 17", false),
            ("tcp", true),
            ("udp", false),
            ("tcp port 443", true),
            ("tcp dst port 443", true),
            ("tcp src port 443", false),
            ("udp port 443", false),
            ("exporter 192.0.2.9", true),
            ("exporter 192.0.2.0/24", true),
            ("exporter 192.0.2.10", false),
            ("exporter ::ffff:192.0.2.9", true),
            ("in if 2", true),
            ("out if 2", false),
            ("out if 7", true),
            ("if 7", true),
            ("if 3", false),
            ("src as 64500", true),
            ("dst as 64500", false),
            ("as 15169", true),
            ("as 1", false),
            ("bytes > 1000", true),
            ("bytes >= 1500", true),
            ("bytes > 1500", false),
            ("bytes < 1500", false),
            ("bytes <= 1500", true),
            ("bytes = 1500", true),
            ("bytes == 1500", true),
            ("bytes 1500", true),
            ("bytes>1k", true),
            ("bytes > 1M", false),
            ("packets > 2", true),
            ("packets < 3", false),
            ("any", true),
            ("not any", false),
        ],
    );
}

#[test]
fn keywords_are_case_insensitive() {
    check(
        &tcp_flow(),
        exporter(),
        &[
            ("SRC IP 10.1.2.3", true),
            ("Dst Port 443 AND Proto TCP", true),
            ("NOT port 443 OR In If 2", true),
            ("bytes > 1K", true),
            ("TCP PORT 443", true),
        ],
    );
}

#[test]
fn absent_fields_never_match() {
    let empty = Flow::default();
    check(
        &empty,
        exporter(),
        &[
            ("port 53", false),
            ("not port 53", true),
            ("src port 0-65535", false),
            ("ip 0.0.0.0/0", false),
            ("not ip 0.0.0.0/0", true),
            ("proto 0", false),
            ("if 0", false),
            ("as 0", false),
            ("bytes >= 0", false),
            ("packets = 0", false),
            // The exporter is always known.
            ("exporter 192.0.2.9", true),
        ],
    );
    // An ICMP flow: addresses, no ports.
    let icmp = Flow {
        src_ip: v4(10, 0, 0, 1),
        dst_ip: v4(10, 0, 0, 2),
        proto: Some(1),
        ..Flow::default()
    };
    check(
        &icmp,
        exporter(),
        &[
            ("not port 53", true),
            ("icmp and not port 53", true),
            ("port 0", false),
            ("net 10.0.0.0/8 and not tcp", true),
        ],
    );
}

#[test]
fn ipv6_and_mapped_addresses() {
    let v6 = Flow {
        src_ip: ip("2001:db8:1::5"),
        dst_ip: ip("2001:db8:ffff::1"),
        proto: Some(58),
        ..Flow::default()
    };
    let v6_exporter: SocketAddr = "[2001:db8::9]:4739".parse().expect("test address");
    check(
        &v6,
        v6_exporter,
        &[
            ("src ip 2001:db8:1::5", true),
            ("src ip 2001:DB8:1::5", true),
            ("src net 2001:db8:1::/48", true),
            ("dst net 2001:db8:1::/48", false),
            ("net 2001:db8::/32", true),
            ("ip ::/0", true),
            ("ip 0.0.0.0/0", false),
            ("proto icmp6", true),
            ("proto ipv6-icmp", true),
            ("icmpv6", true),
            ("proto 58", true),
            ("exporter 2001:db8::/64", true),
            ("exporter 192.0.2.9", false),
        ],
    );

    // An IPv4 flow carried in IPv6 fields as mapped addresses, from an IPv4 exporter seen
    // through a dual-stack socket.
    let mapped = Flow {
        src_ip: ip("::ffff:10.1.2.3"),
        dst_ip: ip("::ffff:192.0.2.80"),
        ..Flow::default()
    };
    let mapped_exporter: SocketAddr = "[::ffff:192.0.2.9]:2055".parse().expect("test address");
    check(
        &mapped,
        mapped_exporter,
        &[
            ("src ip 10.1.2.3", true),
            ("src net 10.0.0.0/8", true),
            ("dst ip 192.0.2.80", true),
            ("ip ::ffff:10.1.2.3", true),
            ("net ::ffff:0:0/96", true),
            ("net 0.0.0.0/0", true),
            // IPv6 prefixes shorter than the mapped range's /96 are IPv6 only.
            ("net ::/0", false),
            ("net ::/80", false),
            ("exporter 192.0.2.9", true),
            ("exporter 192.0.2.0/24", true),
        ],
    );
}

#[test]
fn precedence_not_and_or() {
    let f = tcp_flow(); // ports 51000 -> 443
    check(
        &f,
        exporter(),
        &[
            // and binds tighter than or: port 443 or (port 1 and port 2).
            ("port 443 or port 1 and port 2", true),
            ("port 1 and port 2 or port 443", true),
            ("(port 443 or port 1) and port 2", false),
            ("port 1 and (port 2 or port 443)", false),
            // not binds tighter than and: (not port 1) and port 443.
            ("not port 1 and port 443", true),
            ("not port 443 and port 443", false),
            ("not (port 443 and port 1)", true),
            ("not port 443 or port 443", true),
            ("!port 443 || port 443", true),
            ("! ! port 443", true),
            ("not not not port 443", false),
            ("!port 1 && port 2", false),
            ("not port 1 and port 2", false),
            ("port 443 && !(port 1 || port 2)", true),
            ("((port 443))", true),
            ("(port 1 or port 2) or (port 3 or port 443)", true),
            ("port 1 or port 2 or port 3 or port 443", true),
            ("port 443 and port 51000 and proto tcp and not udp", true),
            ("bytes>1000&&packets<4", true),
            ("(bytes>1000)&&!(packets<4)", false),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Errors.

#[test]
fn errors_name_position_and_expectation() {
    let term = "a filter term (ip, net, host, port, proto, exporter, if, as, bytes, packets, \
                src, dst, in, out, any, not, '(')";
    let cases: &[(&str, usize, String)] = &[
        (
            "",
            0,
            format!("expected {term}, found the end of the expression"),
        ),
        (
            "   ",
            3,
            format!("expected {term}, found the end of the expression"),
        ),
        ("foo", 0, format!("expected {term}, found 'foo'")),
        (
            "not src port x",
            13,
            "expected a port number (0-65535) or range like 1024-65535, found 'x'".into(),
        ),
        (
            "port",
            4,
            "expected a port number (0-65535) or range like 1024-65535, found the end of the \
             expression"
                .into(),
        ),
        (
            "port 70000",
            5,
            "expected a port number (0-65535) or range like 1024-65535, found '70000'".into(),
        ),
        (
            "port +80",
            5,
            "expected a port number (0-65535) or range like 1024-65535, found '+80'".into(),
        ),
        (
            "port 80-x",
            8,
            "expected the end of the port range (0-65535), found 'x'".into(),
        ),
        (
            "port 90-80",
            5,
            "port range '90-80' is empty: write the lower port first".into(),
        ),
        (
            "port 80 443",
            8,
            "expected 'and', 'or' or the end of the expression (terms are joined with 'and' or \
             'or'), found '443'"
                .into(),
        ),
        (
            "src ip 10.0.0.1 dst ip 10.0.0.2",
            16,
            "expected 'and', 'or' or the end of the expression (terms are joined with 'and' or \
             'or'), found 'dst'"
                .into(),
        ),
        (
            "port 80 (port 53)",
            8,
            "expected 'and', 'or' or the end of the expression (terms are joined with 'and' or \
             'or'), found '('"
                .into(),
        ),
        ("port 80)", 7, "unmatched ')'".into()),
        (
            "(port 80",
            8,
            "expected 'and', 'or' or ')' to close the '(' at 0, found the end of the expression"
                .into(),
        ),
        (
            "port 80 and (port 53 udp)",
            21,
            "expected 'and', 'or' or ')' to close the '(' at 12, found 'udp'".into(),
        ),
        ("()", 1, format!("expected {term}, found ')'")),
        (
            "port 80 and",
            11,
            format!("expected {term}, found the end of the expression"),
        ),
        (
            "port 80 or or port 53",
            11,
            format!("expected {term}, found 'or'"),
        ),
        (
            "not",
            3,
            format!("expected {term}, found the end of the expression"),
        ),
        ("port 80 & port 53", 8, "expected '&&', found '&'".into()),
        ("port 80 | port 53", 8, "expected '||', found '|'".into()),
        (
            "ip 10.0.0.256",
            3,
            "expected an IP address or CIDR like 10.0.0.0/8 or 2001:db8::/32, found \
             '10.0.0.256'"
                .into(),
        ),
        (
            "ip 10.0.0.0/33",
            12,
            "expected a prefix length (0-32), found '33'".into(),
        ),
        (
            "net 2001:db8::/129",
            15,
            "expected a prefix length (0-128), found '129'".into(),
        ),
        (
            "net 10.0.0.0/",
            13,
            "expected a prefix length (0-32), found ''".into(),
        ),
        (
            "src foo 1",
            4,
            "expected 'ip', 'host', 'net', 'port' or 'as' after 'src', found 'foo'".into(),
        ),
        ("in 3", 3, "expected 'if' after 'in', found '3'".into()),
        (
            "out if eth0",
            7,
            "expected an interface index (0-4294967295), found 'eth0'".into(),
        ),
        (
            "as 4294967296",
            3,
            "expected an AS number (0-4294967295), found '4294967296'".into(),
        ),
        (
            "proto foo",
            6,
            "expected a protocol (tcp, udp, icmp, icmp6, gre, esp, ah, sctp or 0-255), found \
             'foo'"
                .into(),
        ),
        (
            "proto 256",
            6,
            "expected a protocol (tcp, udp, icmp, icmp6, gre, esp, ah, sctp or 0-255), found \
             '256'"
                .into(),
        ),
        (
            "bytes >",
            7,
            "expected a count like 1000 or 10k (suffixes k, m, g, t are powers of 1000), found \
             the end of the expression"
                .into(),
        ),
        (
            "bytes > 10x",
            8,
            "expected a count like 1000 or 10k (suffixes k, m, g, t are powers of 1000), found \
             '10x'"
                .into(),
        ),
        (
            "bytes > 99999999999t",
            8,
            "expected a count like 1000 or 10k (suffixes k, m, g, t are powers of 1000), found \
             '99999999999t'"
                .into(),
        ),
        (
            "packets >> 1",
            9,
            "expected a count like 1000 or 10k (suffixes k, m, g, t are powers of 1000), found \
             '>'"
            .into(),
        ),
        // pcap's proto qualifier is for protocols with ports only.
        (
            "icmp port 1",
            5,
            "expected 'and', 'or' or the end of the expression (terms are joined with 'and' or \
             'or'), found 'port'"
                .into(),
        ),
        // Positions count characters, not bytes.
        ("port 80 and é", 12, format!("expected {term}, found 'é'")),
        ("é port", 0, format!("expected {term}, found 'é'")),
    ];
    for (expr, pos, msg) in cases {
        let err = Filter::parse(expr).expect_err(expr);
        assert_eq!(
            err,
            FilterError {
                pos: *pos,
                msg: msg.clone()
            },
            "{expr:?}"
        );
        assert_eq!(err.to_string(), format!("at {pos}: {msg}"));
    }
}

#[test]
fn nesting_is_bounded() {
    let deep = |n: usize| format!("{}port 80{}", "(".repeat(n), ")".repeat(n));
    assert!(Filter::parse(&deep(50)).is_ok());
    let err = Filter::parse(&deep(100_000)).expect_err("too deep");
    assert_eq!(err.pos, 100);
    assert_eq!(err.msg, "expression nested more than 100 levels deep");
    let err = Filter::parse(&"!".repeat(100_000)).expect_err("too deep");
    assert_eq!(err.pos, 100);
    // Long flat chains are not nesting.
    let chain = vec!["port 80"; 100_000].join(" or ");
    assert!(!filter(&chain).matches(&tcp_flow(), exporter()));
}

// ---------------------------------------------------------------------------------------------
// Randomized comparison with an independent evaluator.

/// xorshift64* (Vigna): enough randomness for test generation, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

#[derive(Clone, Copy, Debug)]
enum Dir {
    Src,
    Dst,
    Either,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
}

#[derive(Clone, Debug)]
enum Prim {
    Ip(Dir, IpAddr, u8),
    Port(Dir, u16, u16),
    Proto(u8),
    /// pcap's `tcp [src|dst] port N`.
    ProtoPort(u8, Dir, u16, u16),
    Exporter(IpAddr, u8),
    If(Dir, u32),
    As(Dir, u32),
    Bytes(Op, u64),
    Packets(Op, u64),
    Any,
}

#[derive(Clone, Debug)]
enum Expr {
    Prim(Prim),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

const ADDRS: &[&str] = &[
    "10.0.0.1",
    "10.0.0.200",
    "10.1.2.3",
    "192.0.2.80",
    "192.0.2.9",
    "0.0.0.0",
    "2001:db8::1",
    "2001:db8:1::5",
    "fe80::1",
    "::",
    "::ffff:10.1.2.3",
    "::ffff:192.0.2.9",
];
const PORTS: &[u16] = &[0, 53, 80, 443, 1024, 8080, 51000, 65535];
const PROTOS: &[u8] = &[1, 6, 17, 47, 50, 51, 58, 132, 0, 255];
const ASES: &[u32] = &[0, 64500, 15169, 4_294_967_295];
const COUNTS: &[u64] = &[0, 1, 999, 1000, 1001, 1500, 1_000_000, 3_000_000_000];

fn addr(s: &str) -> IpAddr {
    s.parse().expect("pool address")
}

/// A pool address, sometimes with its last byte changed so that prefixes shorter than the
/// full length have near misses.
fn random_addr(rng: &mut Rng) -> IpAddr {
    match addr(rng.pick(ADDRS)) {
        IpAddr::V4(a) if rng.chance(3) => {
            let mut o = a.octets();
            o[3] = rng.next() as u8;
            IpAddr::V4(Ipv4Addr::from(o))
        }
        IpAddr::V6(a) if rng.chance(3) => {
            let mut o = a.octets();
            o[15] = rng.next() as u8;
            IpAddr::V6(Ipv6Addr::from(o))
        }
        a => a,
    }
}

fn random_len(rng: &mut Rng, a: IpAddr) -> u8 {
    match a {
        IpAddr::V4(_) => rng.pick(&[0, 8, 16, 24, 25, 31, 32]),
        IpAddr::V6(_) => rng.pick(&[0, 16, 32, 48, 64, 80, 95, 96, 104, 112, 120, 127, 128]),
    }
}

fn random_dir(rng: &mut Rng) -> Dir {
    rng.pick(&[Dir::Src, Dir::Dst, Dir::Either])
}

fn random_ports(rng: &mut Rng) -> (u16, u16) {
    let a = if rng.chance(4) {
        rng.next() as u16
    } else {
        rng.pick(PORTS)
    };
    if rng.chance(3) {
        let b = rng.pick(PORTS);
        (a.min(b), a.max(b))
    } else {
        (a, a)
    }
}

fn random_prim(rng: &mut Rng) -> Prim {
    let op = |rng: &mut Rng| rng.pick(&[Op::Gt, Op::Ge, Op::Lt, Op::Le, Op::Eq]);
    match rng.below(11) {
        0 | 1 => {
            let a = random_addr(rng);
            Prim::Ip(random_dir(rng), a, random_len(rng, a))
        }
        2 | 3 => {
            let (lo, hi) = random_ports(rng);
            Prim::Port(random_dir(rng), lo, hi)
        }
        4 => Prim::Proto(rng.pick(PROTOS)),
        5 => {
            let (lo, hi) = random_ports(rng);
            Prim::ProtoPort(rng.pick(&[6, 17, 132]), random_dir(rng), lo, hi)
        }
        6 => {
            let a = random_addr(rng);
            Prim::Exporter(a, random_len(rng, a))
        }
        7 => Prim::If(random_dir(rng), rng.below(6) as u32),
        8 => Prim::As(random_dir(rng), rng.pick(ASES)),
        9 if rng.chance(2) => Prim::Bytes(op(rng), rng.pick(COUNTS)),
        9 => Prim::Packets(op(rng), rng.pick(COUNTS)),
        _ => Prim::Any,
    }
}

fn random_expr(rng: &mut Rng, depth: usize) -> Expr {
    if depth == 0 || rng.chance(3) {
        return Expr::Prim(random_prim(rng));
    }
    match rng.below(3) {
        0 => Expr::Not(Box::new(random_expr(rng, depth - 1))),
        1 => Expr::And(
            Box::new(random_expr(rng, depth - 1)),
            Box::new(random_expr(rng, depth - 1)),
        ),
        _ => Expr::Or(
            Box::new(random_expr(rng, depth - 1)),
            Box::new(random_expr(rng, depth - 1)),
        ),
    }
}

fn random_flow(rng: &mut Rng) -> Flow {
    // Each field is absent one time in six.
    fn some<T>(rng: &mut Rng, v: T) -> Option<T> {
        (!rng.chance(6)).then_some(v)
    }
    let src_ip = random_addr(rng);
    let dst_ip = random_addr(rng);
    let (sp, dp) = (random_ports(rng).0, random_ports(rng).1);
    let proto = rng.pick(PROTOS);
    let (in_if, out_if) = (rng.below(6) as u32, rng.below(6) as u32);
    let (src_as, dst_as) = (rng.pick(ASES), rng.pick(ASES));
    let bytes = if rng.chance(3) {
        rng.next() >> rng.below(64)
    } else {
        rng.pick(COUNTS)
    };
    let packets = rng.pick(COUNTS);
    Flow {
        src_ip: some(rng, src_ip),
        dst_ip: some(rng, dst_ip),
        src_port: some(rng, sp),
        dst_port: some(rng, dp),
        proto: some(rng, proto),
        bytes: some(rng, bytes),
        packets: some(rng, packets),
        in_if: some(rng, in_if),
        out_if: some(rng, out_if),
        src_as: some(rng, src_as),
        dst_as: some(rng, dst_as),
        ..Flow::default()
    }
}

// The reference evaluator: straightforward, and sharing no code with the filter module. It
// works on octets and bits rather than masked integers.

/// The IPv4 address inside `::ffff:a.b.c.d`, by looking at the octets.
fn unmap(a: IpAddr) -> IpAddr {
    if let IpAddr::V6(v6) = a {
        let o = v6.octets();
        if o[..10].iter().all(|&b| b == 0) && o[10] == 0xff && o[11] == 0xff {
            return IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
        }
    }
    a
}

fn octets(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn bit(o: &[u8], i: usize) -> bool {
    o[i / 8] & (0x80 >> (i % 8)) != 0
}

/// Whether `a` is in `net/len`, mapped addresses taken as IPv4 on both sides.
fn in_net(a: IpAddr, net: IpAddr, len: u8) -> bool {
    let (net, len) = match (net, unmap(net)) {
        (IpAddr::V6(_), IpAddr::V4(v4)) if len >= 96 => (IpAddr::V4(v4), len - 96),
        _ => (net, len),
    };
    let a = unmap(a);
    if a.is_ipv4() != net.is_ipv4() {
        return false;
    }
    let (x, y) = (octets(a), octets(net));
    (0..usize::from(len)).all(|i| bit(&x, i) == bit(&y, i))
}

fn side<T: Copy>(d: Dir, src: Option<T>, dst: Option<T>, f: impl Fn(T) -> bool) -> bool {
    let s = match src {
        Some(v) => f(v),
        None => false,
    };
    let t = match dst {
        Some(v) => f(v),
        None => false,
    };
    match d {
        Dir::Src => s,
        Dir::Dst => t,
        Dir::Either => s || t,
    }
}

fn compare(op: Op, v: Option<u64>, n: u64) -> bool {
    match v {
        None => false,
        Some(v) => match op {
            Op::Gt => v > n,
            Op::Ge => v >= n,
            Op::Lt => v < n,
            Op::Le => v <= n,
            Op::Eq => v == n,
        },
    }
}

fn reference(e: &Expr, f: &Flow, exporter: SocketAddr) -> bool {
    match e {
        Expr::Not(x) => !reference(x, f, exporter),
        Expr::And(a, b) => reference(a, f, exporter) && reference(b, f, exporter),
        Expr::Or(a, b) => reference(a, f, exporter) || reference(b, f, exporter),
        Expr::Prim(p) => match *p {
            Prim::Ip(d, net, len) => side(d, f.src_ip, f.dst_ip, |a| in_net(a, net, len)),
            Prim::Port(d, lo, hi) => side(d, f.src_port, f.dst_port, |p| (lo..=hi).contains(&p)),
            Prim::Proto(p) => f.proto == Some(p),
            Prim::ProtoPort(p, d, lo, hi) => {
                f.proto == Some(p) && side(d, f.src_port, f.dst_port, |x| (lo..=hi).contains(&x))
            }
            Prim::Exporter(net, len) => in_net(exporter.ip(), net, len),
            Prim::If(d, n) => side(d, f.in_if, f.out_if, |i| i == n),
            Prim::As(d, n) => side(d, f.src_as, f.dst_as, |a| a == n),
            Prim::Bytes(op, n) => compare(op, f.bytes, n),
            Prim::Packets(op, n) => compare(op, f.packets, n),
            Prim::Any => true,
        },
    }
}

// Rendering a tree as text, with random spellings, case, spacing and redundant parentheses.

/// Random capitalisation of a keyword.
fn kw(rng: &mut Rng, k: &str) -> String {
    match rng.below(4) {
        0 => k.to_uppercase(),
        1 => {
            let mut c = k.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        }
        _ => k.to_owned(),
    }
}

fn dir_words(rng: &mut Rng, d: Dir, out: &mut Vec<String>) {
    match d {
        Dir::Src => out.push(kw(rng, "src")),
        Dir::Dst => out.push(kw(rng, "dst")),
        Dir::Either => {}
    }
}

fn ports_word(lo: u16, hi: u16) -> String {
    if lo == hi {
        lo.to_string()
    } else {
        format!("{lo}-{hi}")
    }
}

fn net_word(rng: &mut Rng, a: IpAddr, len: u8) -> String {
    let full = if a.is_ipv4() { 32 } else { 128 };
    if len == full && rng.chance(2) {
        a.to_string()
    } else {
        format!("{a}/{len}")
    }
}

fn count_word(rng: &mut Rng, n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) && rng.chance(2) {
        format!("{}{}", n / 1_000_000, rng.pick(&["m", "M"]))
    } else if n >= 1000 && n.is_multiple_of(1000) && rng.chance(2) {
        format!("{}{}", n / 1000, rng.pick(&["k", "K"]))
    } else {
        n.to_string()
    }
}

fn proto_word(rng: &mut Rng, p: u8) -> String {
    let names: &[&str] = match p {
        6 => &["tcp"],
        17 => &["udp"],
        1 => &["icmp"],
        58 => &["icmp6", "icmpv6", "ipv6-icmp"],
        47 => &["gre"],
        50 => &["esp"],
        51 => &["ah"],
        132 => &["sctp"],
        _ => &[],
    };
    if names.is_empty() || rng.chance(3) {
        p.to_string()
    } else {
        let n = rng.pick(names);
        kw(rng, n)
    }
}

fn render_prim(rng: &mut Rng, p: &Prim, out: &mut Vec<String>) {
    match *p {
        Prim::Ip(d, a, len) => {
            dir_words(rng, d, out);
            let k = rng.pick(&["ip", "host", "net"]);
            out.push(kw(rng, k));
            out.push(net_word(rng, a, len));
        }
        Prim::Port(d, lo, hi) => {
            dir_words(rng, d, out);
            out.push(kw(rng, "port"));
            out.push(ports_word(lo, hi));
        }
        Prim::Proto(p) => {
            let w = proto_word(rng, p);
            // A protocol name may stand alone; a number needs `proto`.
            if w.as_bytes()[0].is_ascii_digit() || rng.chance(2) {
                out.push(kw(rng, "proto"));
            }
            out.push(w);
        }
        Prim::ProtoPort(p, d, lo, hi) => {
            let name = match p {
                6 => "tcp",
                17 => "udp",
                _ => "sctp",
            };
            out.push(kw(rng, name));
            dir_words(rng, d, out);
            out.push(kw(rng, "port"));
            out.push(ports_word(lo, hi));
        }
        Prim::Exporter(a, len) => {
            out.push(kw(rng, "exporter"));
            out.push(net_word(rng, a, len));
        }
        Prim::If(d, n) => {
            match d {
                Dir::Src => out.push(kw(rng, "in")),
                Dir::Dst => out.push(kw(rng, "out")),
                Dir::Either => {}
            }
            out.push(kw(rng, "if"));
            out.push(n.to_string());
        }
        Prim::As(d, n) => {
            dir_words(rng, d, out);
            out.push(kw(rng, "as"));
            out.push(n.to_string());
        }
        Prim::Bytes(op, n) | Prim::Packets(op, n) => {
            let name = if matches!(p, Prim::Bytes(..)) {
                "bytes"
            } else {
                "packets"
            };
            out.push(kw(rng, name));
            let sym = match op {
                Op::Gt => ">",
                Op::Ge => ">=",
                Op::Lt => "<",
                Op::Le => "<=",
                Op::Eq => rng.pick(&["=", "==", ""]),
            };
            if !sym.is_empty() {
                out.push(sym.to_owned());
            }
            out.push(count_word(rng, n));
        }
        Prim::Any => out.push(kw(rng, "any")),
    }
}

/// Binding strength: what a context requires of its operand before parentheses are needed.
fn strength(e: &Expr) -> u8 {
    match e {
        Expr::Or(..) => 1,
        Expr::And(..) => 2,
        Expr::Not(_) | Expr::Prim(_) => 3,
    }
}

/// Renders `e` as tokens, parenthesised when it binds looser than `need` (and at random).
fn render(rng: &mut Rng, e: &Expr, need: u8, out: &mut Vec<String>) {
    let parens = strength(e) < need || rng.chance(8);
    if parens {
        out.push("(".into());
    }
    match e {
        Expr::Prim(p) => render_prim(rng, p, out),
        Expr::Not(x) => {
            let w = rng.pick(&["not", "!"]);
            out.push(kw(rng, w));
            render(rng, x, 3, out);
        }
        Expr::And(a, b) => {
            render(rng, a, 2, out);
            let w = rng.pick(&["and", "&&"]);
            out.push(kw(rng, w));
            render(rng, b, 2, out);
        }
        Expr::Or(a, b) => {
            render(rng, a, 1, out);
            let w = rng.pick(&["or", "||"]);
            out.push(kw(rng, w));
            render(rng, b, 1, out);
        }
    }
    if parens {
        out.push(")".into());
    }
}

/// Joins tokens: two words need whitespace between them, symbols may touch anything.
fn join(rng: &mut Rng, toks: &[String]) -> String {
    let wordy = |t: &str| {
        t.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".:/-".contains(c))
    };
    let mut s = String::new();
    for (i, t) in toks.iter().enumerate() {
        if i > 0 {
            let must = wordy(&toks[i - 1]) && wordy(t);
            let sep = if must || rng.chance(2) {
                rng.pick(&[" ", " ", "  ", "\t"])
            } else {
                ""
            };
            s.push_str(sep);
        }
        s.push_str(t);
    }
    s
}

#[test]
fn random_expressions_agree_with_reference_evaluator() {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let flows: Vec<(Flow, SocketAddr)> = (0..1000)
        .map(|_| {
            let exp = SocketAddr::new(random_addr(&mut rng), rng.next() as u16);
            (random_flow(&mut rng), exp)
        })
        .collect();
    let (mut trues, mut falses, mut mixed) = (0usize, 0usize, 0usize);
    for n in 0..3000 {
        let e = random_expr(&mut rng, 1 + n % 5);
        let mut toks = Vec::new();
        render(&mut rng, &e, 1, &mut toks);
        let text = join(&mut rng, &toks);
        let f = Filter::parse(&text)
            .unwrap_or_else(|err| panic!("expression {n} {text:?} does not parse: {err}"));
        let (mut t, mut fl) = (0, 0);
        for (flow, exp) in &flows {
            let want = reference(&e, flow, *exp);
            assert_eq!(
                f.matches(flow, *exp),
                want,
                "expression {n} {text:?} ({e:?}) on {flow:?} from {exp}"
            );
            if want {
                t += 1
            } else {
                fl += 1
            }
        }
        trues += t;
        falses += fl;
        mixed += usize::from(t > 0 && fl > 0);
    }
    // The generators must give both outcomes often, or the comparison proves little.
    assert!(trues > 300_000 && falses > 300_000, "{trues} {falses}");
    assert!(mixed > 1500, "only {mixed} expressions split the flows");
}

#[test]
fn random_garbage_never_panics() {
    // Fragments of valid and invalid syntax, glued at random: every result must be a parse or
    // an error whose position lies within the input.
    const BITS: &[&str] = &[
        "src",
        "dst",
        "ip",
        "port",
        "proto",
        "tcp",
        "not",
        "!",
        "and",
        "&&",
        "or",
        "||",
        "(",
        ")",
        "&",
        "|",
        ">",
        ">=",
        "=",
        "80",
        "80-",
        "-",
        "10.0.0.0/8",
        "::1/",
        "/",
        "bytes",
        "in",
        "if",
        "as",
        "exporter",
        "é",
        " ",
        "",
    ];
    let mut rng = Rng(42);
    for _ in 0..20_000 {
        let n = rng.below(8);
        let text: String = (0..n)
            .map(|_| format!("{}{}", rng.pick(BITS), rng.pick(&[" ", "", "  "])))
            .collect();
        if let Err(e) = Filter::parse(&text) {
            assert!(e.pos <= text.chars().count(), "{text:?}: {e}");
            assert!(!e.msg.is_empty());
        }
    }
}

#[test]
fn matches_does_not_allocate() {
    let f = filter(
        "(src net 10.0.0.0/8 or dst net 2001:db8::/32) and not port 53 and (tcp port 443 or \
         bytes > 1k || exporter ::ffff:192.0.2.0/120) and !(in if 3 or as 64500)",
    );
    let mut rng = Rng(7);
    let flows: Vec<(Flow, SocketAddr)> = (0..1000)
        .map(|_| {
            let exp = SocketAddr::new(random_addr(&mut rng), 2055);
            (random_flow(&mut rng), exp)
        })
        .collect();
    let before = allocs();
    let mut hits = 0usize;
    for (flow, exp) in &flows {
        hits += usize::from(f.matches(flow, *exp));
    }
    let after = allocs();
    assert_eq!(after - before, 0, "matches allocated");
    assert!(hits > 0 && hits < flows.len(), "{hits}");
}

// ---------------------------------------------------------------------------------------------
// Time arguments.

const NOW: i64 = 1_714_564_800_000_000_000; // 2024-05-01T12:00:00Z
const S: i64 = 1_000_000_000;

#[test]
fn durations() {
    let s = 1_000_000_000u64;
    for (text, want) in [
        ("30s", 30 * s),
        ("15m", 900 * s),
        ("2h", 7200 * s),
        ("1d", 86_400 * s),
        ("1w", 604_800 * s),
        ("1h30m", 5400 * s),
        ("1d2h3m4s", (86_400 + 7200 + 180 + 4) * s),
        ("90s", 90 * s),
        ("0s", 0),
        ("1H", 3600 * s),
        ("015m", 900 * s),
    ] {
        assert_eq!(parse_duration(text), Ok(want), "{text}");
    }
    for (text, pos, msg) in [
        (
            "",
            0,
            "expected a duration like 15m, 1h30m or 2d, found nothing",
        ),
        (
            "15",
            2,
            "expected a unit (s, m, h, d or w) after '15', found the end",
        ),
        (
            "15x",
            2,
            "expected a unit (s, m, h, d or w) after '15', found 'x'",
        ),
        (
            "1h30",
            4,
            "expected a unit (s, m, h, d or w) after '30', found the end",
        ),
        ("1h 30m", 2, "expected a number, found ' 30m'"),
        ("h", 0, "expected a number, found 'h'"),
        ("-5m", 0, "a duration has no sign, found '-5m'"),
        ("+5m", 0, "a duration has no sign, found '+5m'"),
        ("5mé", 2, "expected a number, found 'é'"),
        (
            "5é",
            1,
            "expected a unit (s, m, h, d or w) after '5', found 'é'",
        ),
        ("99999999999999999999s", 0, "duration too long"),
        ("1h9999999999w", 2, "duration too long"),
    ] {
        assert_eq!(
            parse_duration(text),
            Err(FilterError {
                pos,
                msg: msg.to_owned()
            }),
            "{text:?}"
        );
    }
}

#[test]
fn time_arguments() {
    for (text, want) in [
        ("now", NOW),
        ("NOW", NOW),
        ("-30s", NOW - 30 * S),
        ("-15m", NOW - 900 * S),
        ("-2h", NOW - 7200 * S),
        ("-1d", NOW - 86_400 * S),
        ("-1h30m", NOW - 5400 * S),
        ("now-15m", NOW - 900 * S),
        ("Now-1w", NOW - 604_800 * S),
        ("2024-05-01T12:00:00Z", NOW),
        ("2024-05-01T11:45:00Z", NOW - 900 * S),
        ("2024-05-01T14:00:00+02:00", NOW),
        ("2024-05-01T12:00:00.5Z", NOW + S / 2),
        ("2024-05-01 12:00:00Z", NOW),
        ("2024-05-01", NOW - 12 * 3600 * S),
        ("1970-01-01T00:00:00Z", 0),
    ] {
        assert_eq!(parse_time_arg(text, NOW), Ok(want), "{text}");
    }
    let what = "expected a time: RFC 3339 like 2024-05-01T12:00:00Z, a date like 2024-05-01, \
                'now' or a relative time like -15m, found";
    for (text, pos, msg) in [
        ("", 0, format!("{what} ''")),
        ("yesterday", 0, format!("{what} 'yesterday'")),
        ("1714564800", 0, format!("{what} '1714564800'")),
        ("+15m", 0, format!("{what} '+15m'")),
        (
            "2024-13-01T00:00:00Z",
            0,
            format!("{what} '2024-13-01T00:00:00Z'"),
        ),
        ("2024-05-01T12:00", 0, format!("{what} '2024-05-01T12:00'")),
        (
            "2024-05-01T12:00:00",
            19,
            "expected a time zone: Z for UTC or an offset like +02:00, found the end".to_owned(),
        ),
        (
            "3000-01-01T00:00:00Z",
            0,
            "year 3000 is out of range (1678-2261)".to_owned(),
        ),
        (
            "-",
            1,
            "expected a duration like 15m, 1h30m or 2d, found nothing".to_owned(),
        ),
        (
            "-15",
            3,
            "expected a unit (s, m, h, d or w) after '15', found the end".to_owned(),
        ),
        (
            "now-15x",
            6,
            "expected a unit (s, m, h, d or w) after '15', found 'x'".to_owned(),
        ),
        (
            "--15m",
            1,
            "a duration has no sign, found '-15m'".to_owned(),
        ),
        ("-99999999999999999999s", 1, "duration too long".to_owned()),
        // Fits a u64 of ns but not i64: 20 000 weeks is 383 years.
        (
            "-20000w",
            1,
            "relative time reaches too far back".to_owned(),
        ),
    ] {
        assert_eq!(
            parse_time_arg(text, NOW),
            Err(FilterError { pos, msg }),
            "{text:?}"
        );
    }
    // Far back but representable.
    assert_eq!(parse_time_arg("-2000w", NOW), Ok(NOW - 2000 * 604_800 * S));
}
