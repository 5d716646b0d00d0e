//! The `--where EXPR` filter language of `sluice dump` and `sluice top`, and the time arguments
//! (`--since`, `--until`, `--last`) that go with it.
//!
//! The language follows pcap-filter(7) and nfdump(1) where they agree. Keywords are
//! case-insensitive:
//!
//! ```text
//! expr      := and_expr { ("or" | "||") and_expr }
//! and_expr  := unary { ("and" | "&&") unary }
//! unary     := ("not" | "!") unary | "(" expr ")" | primitive
//! primitive := [dir] ("ip" | "host" | "net") ADDR     address or CIDR; no dir: either side
//!            | [dir] "port" PORTS                     no dir: either side
//!            | "proto" PROTO
//!            | PROTO_NAME                             same as `proto PROTO_NAME`
//!            | PORT_PROTO [dir] "port" PORTS          pcap's `tcp port 80`: proto and port
//!            | "exporter" ADDR                        the exporter's address, port ignored
//!            | ["in" | "out"] "if" N                  no in/out: either interface
//!            | [dir] "as" N                           no dir: either AS
//!            | ("bytes" | "packets") [CMP] COUNT      no CMP: equal
//!            | "any"                                  every record
//! dir       := "src" | "dst"
//! ADDR      := IPv4 or IPv6 address, optionally "/len"; host bits past len are ignored
//! PORTS     := N | N "-" M                             inclusive range, N <= M
//! PROTO     := PROTO_NAME | 0..=255
//! PROTO_NAME:= tcp | udp | icmp | icmp6 | icmpv6 | ipv6-icmp | gre | esp | ah | sctp
//! PORT_PROTO:= tcp | udp | sctp
//! CMP       := ">" | ">=" | "<" | "<=" | "=" | "=="
//! COUNT     := N with an optional k, m, g or t suffix (powers of 1000, as in nfdump)
//! ```
//!
//! Precedence is `not` over `and` over `or`, as in nfdump (pcap gives `and` and `or` equal
//! precedence, which surprises more people than it helps). Two terms side by side are an error
//! rather than an implicit `and`: `port 80 443` is far more likely a mistyped list than a
//! request for port 80 and something else.
//!
//! Semantics:
//! - a record that lacks a field never matches a primitive on it, so `not port 53` matches
//!   every record without ports (ICMP, GRE...) as well as those on other ports;
//! - IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what a dual-stack socket reports for an
//!   IPv4 exporter, and what some exporters put in IPv6 fields) compare as IPv4, in records,
//!   for the exporter and in the expression;
//! - `bytes` and `packets` compare the counters as exported, before any sampling scale-up.
//!
//! [`Filter::matches`] does not allocate: it runs once per record in `sluice dump`.
//!
//! Error positions ([`FilterError::pos`]) are 0-based character offsets into the text that was
//! parsed, so a caller can print a caret under the expression.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use sluice_decode::Flow;

use crate::timefmt::parse_rfc3339;

/// Deepest nesting of parentheses and `not` accepted. Parsing and matching recurse, so without
/// a bound a pasted or generated `((((...` could overflow the stack; a hundred levels is far
/// beyond any expression a person writes.
const MAX_DEPTH: usize = 100;

/// What the parser says when it wanted a term.
const TERM: &str = "a filter term (ip, net, host, port, proto, exporter, if, as, bytes, \
                    packets, src, dst, in, out, any, not, '(')";

/// A parse error: where (0-based character offset) and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterError {
    /// 0-based character offset into the parsed text.
    pub pos: usize,
    /// What was expected and what was found.
    pub msg: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at {}: {}", self.pos, self.msg)
    }
}

impl std::error::Error for FilterError {}

/// The character offset of byte offset `byte` of `src` (always a character boundary here).
fn char_pos(src: &str, byte: usize) -> usize {
    src.get(..byte).map_or(byte, |s| s.chars().count())
}

/// Builds an error at byte offset `byte` of `src`.
fn error_at(src: &str, byte: usize, msg: String) -> FilterError {
    FilterError {
        pos: char_pos(src, byte),
        msg,
    }
}

/// A parsed `--where` expression.
#[derive(Clone, Debug)]
pub struct Filter {
    root: Node,
}

impl Filter {
    /// Parses an expression (grammar in the module documentation).
    pub fn parse(expr: &str) -> Result<Filter, FilterError> {
        let mut p = Parser {
            src: expr,
            toks: lex(expr)?,
            i: 0,
        };
        let root = p.or_expr(0)?;
        let t = p.peek();
        match t.tok {
            Tok::End => Ok(Filter { root }),
            Tok::RParen => Err(p.err_at(t, "unmatched ')'".to_owned())),
            // Anything else that could start a term means two terms were put side by side.
            Tok::Word(_) | Tok::LParen | Tok::Bang => Err(p.expected(
                t,
                "'and', 'or' or the end of the expression (terms are joined with 'and' or 'or')",
            )),
            _ => Err(p.expected(t, "'and', 'or' or the end of the expression")),
        }
    }

    /// The expression tree (for translations into other query languages).
    pub(crate) fn root(&self) -> &Node {
        &self.root
    }

    /// Whether `flow`, received from `exporter`, satisfies the expression. Does not allocate.
    pub fn matches(&self, flow: &Flow, exporter: SocketAddr) -> bool {
        self.root.eval(flow, exporter.ip())
    }
}

impl FromStr for Filter {
    type Err = FilterError;

    fn from_str(s: &str) -> Result<Filter, FilterError> {
        Filter::parse(s)
    }
}

// ---------------------------------------------------------------------------------------------
// The expression tree.

/// Which end of the flow a primitive looks at. For interfaces `Src` is the input interface and
/// `Dst` the output one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Src,
    Dst,
    Either,
}

/// Applies `pred` to the field on `side`; an absent field never matches.
#[inline]
fn on_side<T: Copy>(side: Side, src: Option<T>, dst: Option<T>, pred: impl Fn(T) -> bool) -> bool {
    match side {
        Side::Src => src.is_some_and(&pred),
        Side::Dst => dst.is_some_and(&pred),
        Side::Either => src.is_some_and(&pred) || dst.is_some_and(&pred),
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it carries; anything else unchanged.
#[inline]
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// An address prefix, kept as integers so that matching is a mask and a compare. `addr` has
/// its host bits cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Net {
    V4 { addr: u32, mask: u32 },
    V6 { addr: u128, mask: u128 },
}

impl Net {
    /// The prefix of `len` bits of `ip` (`len` already checked against the family). A mapped
    /// IPv6 prefix of /96 or longer lies wholly inside `::ffff:0:0/96`, so it becomes the IPv4
    /// prefix it denotes; shorter IPv6 prefixes stay IPv6 and so never match IPv4 addresses.
    fn new(ip: IpAddr, len: u8) -> Net {
        match ip {
            IpAddr::V6(a) if len >= 96 && a.to_ipv4_mapped().is_some() => {
                Net::new(canonical(ip), len - 96)
            }
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                Net::V4 {
                    addr: u32::from(a) & mask,
                    mask,
                }
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                Net::V6 {
                    addr: u128::from(a) & mask,
                    mask,
                }
            }
        }
    }

    #[inline]
    fn contains(self, ip: IpAddr) -> bool {
        match (self, canonical(ip)) {
            (Net::V4 { addr, mask }, IpAddr::V4(a)) => u32::from(a) & mask == addr,
            (Net::V6 { addr, mask }, IpAddr::V6(a)) => u128::from(a) & mask == addr,
            _ => false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cmp {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
}

impl Cmp {
    #[inline]
    fn holds(self, a: u64, b: u64) -> bool {
        match self {
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Eq => a == b,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Counter {
    Bytes,
    Packets,
}

#[derive(Clone, Debug)]
pub(crate) enum Node {
    Any,
    Ip(Side, Net),
    Port(Side, u16, u16),
    Proto(u8),
    Exporter(Net),
    If(Side, u32),
    As(Side, u32),
    Count(Counter, Cmp, u64),
    Not(Box<Node>),
    // `and`/`or` chains are n-ary rather than nested pairs so that `a or b or c or ...` of any
    // length costs no recursion depth.
    And(Box<[Node]>),
    Or(Box<[Node]>),
}

impl Node {
    fn eval(&self, f: &Flow, exporter: IpAddr) -> bool {
        match *self {
            Node::Any => true,
            Node::Ip(side, net) => on_side(side, f.src_ip, f.dst_ip, |a| net.contains(a)),
            Node::Port(side, lo, hi) => {
                on_side(side, f.src_port, f.dst_port, |p| lo <= p && p <= hi)
            }
            Node::Proto(p) => f.proto == Some(p),
            Node::Exporter(net) => net.contains(exporter),
            Node::If(side, n) => on_side(side, f.in_if, f.out_if, |i| i == n),
            Node::As(side, n) => on_side(side, f.src_as, f.dst_as, |a| a == n),
            Node::Count(counter, cmp, n) => {
                let v = match counter {
                    Counter::Bytes => f.bytes,
                    Counter::Packets => f.packets,
                };
                v.is_some_and(|v| cmp.holds(v, n))
            }
            Node::Not(ref inner) => !inner.eval(f, exporter),
            Node::And(ref xs) => xs.iter().all(|x| x.eval(f, exporter)),
            Node::Or(ref xs) => xs.iter().any(|x| x.eval(f, exporter)),
        }
    }
}

/// IANA protocol numbers for the names the language accepts.
fn proto_by_name(name: &str) -> Option<u8> {
    const NAMES: [(&str, u8); 10] = [
        ("tcp", 6),
        ("udp", 17),
        ("icmp", 1),
        ("icmp6", 58),
        ("icmpv6", 58),
        ("ipv6-icmp", 58),
        ("gre", 47),
        ("esp", 50),
        ("ah", 51),
        ("sctp", 132),
    ];
    NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, v)| v)
}

// ---------------------------------------------------------------------------------------------
// Lexer.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok<'a> {
    Word(&'a str),
    LParen,
    RParen,
    Bang,
    AndAnd,
    OrOr,
    Cmp(Cmp),
    End,
}

#[derive(Clone, Copy, Debug)]
struct Token<'a> {
    tok: Tok<'a>,
    /// Byte offset of the token in the source.
    pos: usize,
    /// The token's source text (empty for `End`).
    text: &'a str,
}

/// Characters that end a word. `-`, `/`, `:` and `.` are not among them: they belong to port
/// ranges, CIDRs and addresses.
fn is_delim(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | '!' | '&' | '|' | '<' | '>' | '=')
}

fn lex(src: &str) -> Result<Vec<Token<'_>>, FilterError> {
    let mut toks = Vec::new();
    let mut it = src.char_indices().peekable();
    while let Some((pos, c)) = it.next() {
        if c.is_whitespace() {
            continue;
        }
        // The next character, consumed if it is `want` (for two-character operators).
        let mut second = |want: char| it.next_if(|&(_, c)| c == want).is_some();
        let (tok, len) = match c {
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            '!' => (Tok::Bang, 1),
            '&' if second('&') => (Tok::AndAnd, 2),
            '|' if second('|') => (Tok::OrOr, 2),
            '&' | '|' => {
                let msg = format!("expected '{c}{c}', found '{c}'");
                return Err(error_at(src, pos, msg));
            }
            '>' if second('=') => (Tok::Cmp(Cmp::Ge), 2),
            '>' => (Tok::Cmp(Cmp::Gt), 1),
            '<' if second('=') => (Tok::Cmp(Cmp::Le), 2),
            '<' => (Tok::Cmp(Cmp::Lt), 1),
            '=' if second('=') => (Tok::Cmp(Cmp::Eq), 2),
            '=' => (Tok::Cmp(Cmp::Eq), 1),
            _ => {
                let mut end = pos + c.len_utf8();
                while let Some((i, c)) = it.next_if(|&(_, c)| !is_delim(c)) {
                    end = i + c.len_utf8();
                }
                (Tok::Word(&src[pos..end]), end - pos)
            }
        };
        toks.push(Token {
            tok,
            pos,
            text: &src[pos..pos + len],
        });
    }
    toks.push(Token {
        tok: Tok::End,
        pos: src.len(),
        text: "",
    });
    Ok(toks)
}

// ---------------------------------------------------------------------------------------------
// Parser: recursive descent, one function per grammar rule.

struct Parser<'a> {
    src: &'a str,
    /// Ends with one `End` token, which `next` never moves past.
    toks: Vec<Token<'a>>,
    i: usize,
}

/// Case-insensitive keyword test.
fn is_kw(t: Token<'_>, kw: &str) -> bool {
    matches!(t.tok, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
}

/// Whether `s` is a non-empty run of ASCII digits (`u64::from_str` would also take a `+`).
fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Token<'a> {
        self.toks[self.i.min(self.toks.len() - 1)]
    }

    fn peek2(&self) -> Token<'a> {
        self.toks[(self.i + 1).min(self.toks.len() - 1)]
    }

    fn next(&mut self) -> Token<'a> {
        let t = self.peek();
        if t.tok != Tok::End {
            self.i += 1;
        }
        t
    }

    fn err_at(&self, t: Token<'_>, msg: String) -> FilterError {
        error_at(self.src, t.pos, msg)
    }

    fn expected(&self, t: Token<'_>, what: &str) -> FilterError {
        let found = match t.tok {
            Tok::End => "the end of the expression".to_owned(),
            _ => format!("'{}'", t.text),
        };
        self.err_at(t, format!("expected {what}, found {found}"))
    }

    fn or_expr(&mut self, depth: usize) -> Result<Node, FilterError> {
        let first = self.and_expr(depth)?;
        if !self.at_or() {
            return Ok(first);
        }
        let mut terms = vec![first];
        while self.at_or() {
            self.next();
            terms.push(self.and_expr(depth)?);
        }
        Ok(Node::Or(terms.into_boxed_slice()))
    }

    fn at_or(&self) -> bool {
        let t = self.peek();
        t.tok == Tok::OrOr || is_kw(t, "or")
    }

    fn and_expr(&mut self, depth: usize) -> Result<Node, FilterError> {
        let first = self.unary(depth)?;
        if !self.at_and() {
            return Ok(first);
        }
        let mut terms = vec![first];
        while self.at_and() {
            self.next();
            terms.push(self.unary(depth)?);
        }
        Ok(Node::And(terms.into_boxed_slice()))
    }

    fn at_and(&self) -> bool {
        let t = self.peek();
        t.tok == Tok::AndAnd || is_kw(t, "and")
    }

    fn unary(&mut self, depth: usize) -> Result<Node, FilterError> {
        let t = self.peek();
        if depth >= MAX_DEPTH {
            let msg = format!("expression nested more than {MAX_DEPTH} levels deep");
            return Err(self.err_at(t, msg));
        }
        match t.tok {
            Tok::Bang => {
                self.next();
                Ok(Node::Not(Box::new(self.unary(depth + 1)?)))
            }
            Tok::Word(_) if is_kw(t, "not") => {
                self.next();
                Ok(Node::Not(Box::new(self.unary(depth + 1)?)))
            }
            Tok::LParen => {
                self.next();
                let inner = self.or_expr(depth + 1)?;
                let close = self.next();
                if close.tok == Tok::RParen {
                    Ok(inner)
                } else {
                    let open = char_pos(self.src, t.pos);
                    let what = format!("'and', 'or' or ')' to close the '(' at {open}");
                    Err(self.expected(close, &what))
                }
            }
            Tok::Word(_) => self.primitive(),
            _ => Err(self.expected(t, TERM)),
        }
    }

    fn primitive(&mut self) -> Result<Node, FilterError> {
        let t = self.next();
        let Tok::Word(word) = t.tok else {
            return Err(self.expected(t, TERM));
        };
        let kw = word.to_ascii_lowercase();
        match kw.as_str() {
            "src" | "dst" => {
                let side = if kw == "src" { Side::Src } else { Side::Dst };
                let q = self.next();
                if is_kw(q, "ip") || is_kw(q, "host") || is_kw(q, "net") {
                    Ok(Node::Ip(side, self.net()?))
                } else if is_kw(q, "port") {
                    self.ports(side)
                } else if is_kw(q, "as") {
                    Ok(Node::As(side, self.number("an AS number")?))
                } else {
                    let what = format!("'ip', 'host', 'net', 'port' or 'as' after '{word}'");
                    Err(self.expected(q, &what))
                }
            }
            "ip" | "host" | "net" => Ok(Node::Ip(Side::Either, self.net()?)),
            "port" => self.ports(Side::Either),
            "proto" => Ok(Node::Proto(self.proto()?)),
            "exporter" => Ok(Node::Exporter(self.net()?)),
            "in" | "out" => {
                let side = if kw == "in" { Side::Src } else { Side::Dst };
                let q = self.next();
                if !is_kw(q, "if") {
                    return Err(self.expected(q, &format!("'if' after '{word}'")));
                }
                Ok(Node::If(side, self.number("an interface index")?))
            }
            "if" => Ok(Node::If(Side::Either, self.number("an interface index")?)),
            "as" => Ok(Node::As(Side::Either, self.number("an AS number")?)),
            "bytes" => self.count(Counter::Bytes),
            "packets" => self.count(Counter::Packets),
            "any" => Ok(Node::Any),
            _ => match proto_by_name(&kw) {
                Some(p) => self.proto_qualified(p),
                None => Err(self.expected(t, TERM)),
            },
        }
    }

    /// A protocol name, optionally qualifying a port primitive as in pcap (`tcp port 80`,
    /// `udp dst port 53`). Only the port-carrying protocols take a qualifier; after any other
    /// name a following `port` is two terms side by side, and reported as such.
    fn proto_qualified(&mut self, p: u8) -> Result<Node, FilterError> {
        if !matches!(p, 6 | 17 | 132) {
            return Ok(Node::Proto(p));
        }
        let next = self.peek();
        let side = if is_kw(next, "port") {
            Side::Either
        } else if is_kw(next, "src") && is_kw(self.peek2(), "port") {
            Side::Src
        } else if is_kw(next, "dst") && is_kw(self.peek2(), "port") {
            Side::Dst
        } else {
            return Ok(Node::Proto(p));
        };
        if side != Side::Either {
            self.next();
        }
        self.next();
        let ports = self.ports(side)?;
        Ok(Node::And(vec![Node::Proto(p), ports].into_boxed_slice()))
    }

    /// A 32-bit decimal number (interface indexes and AS numbers are both 32 bits wide in
    /// NetFlow v9 and IPFIX).
    fn number(&mut self, what: &str) -> Result<u32, FilterError> {
        let t = self.next();
        match t.tok {
            Tok::Word(w) if all_digits(w) => w.parse::<u32>().ok(),
            _ => None,
        }
        .ok_or_else(|| self.expected(t, &format!("{what} (0-{})", u32::MAX)))
    }

    /// `N` or `N-M`.
    fn ports(&mut self, side: Side) -> Result<Node, FilterError> {
        let t = self.next();
        const WHAT: &str = "a port number (0-65535) or range like 1024-65535";
        let Tok::Word(w) = t.tok else {
            return Err(self.expected(t, WHAT));
        };
        // Each end of the range, with its byte offset for errors.
        let (lo_s, hi_s, hi_at) = match w.split_once('-') {
            Some((a, b)) => (a, b, t.pos + a.len() + 1),
            None => (w, w, t.pos),
        };
        let port = |s: &str| all_digits(s).then(|| s.parse::<u16>().ok()).flatten();
        let Some(lo) = port(lo_s) else {
            return Err(self.expected(t, WHAT));
        };
        let Some(hi) = port(hi_s) else {
            let msg = format!("expected the end of the port range (0-65535), found '{hi_s}'");
            return Err(error_at(self.src, hi_at, msg));
        };
        if lo > hi {
            let msg = format!("port range '{w}' is empty: write the lower port first");
            return Err(self.err_at(t, msg));
        }
        Ok(Node::Port(side, lo, hi))
    }

    /// An address or CIDR.
    fn net(&mut self) -> Result<Net, FilterError> {
        let t = self.next();
        const WHAT: &str = "an IP address or CIDR like 10.0.0.0/8 or 2001:db8::/32";
        let Tok::Word(w) = t.tok else {
            return Err(self.expected(t, WHAT));
        };
        let (addr_s, len_s) = match w.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (w, None),
        };
        let Ok(ip) = addr_s.parse::<IpAddr>() else {
            return Err(self.expected(t, WHAT));
        };
        let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
        let len = match len_s {
            None => max,
            Some(l) => match all_digits(l).then(|| l.parse::<u8>().ok()).flatten() {
                Some(v) if v <= max => v,
                _ => {
                    let msg = format!("expected a prefix length (0-{max}), found '{l}'");
                    return Err(error_at(self.src, t.pos + addr_s.len() + 1, msg));
                }
            },
        };
        Ok(Net::new(ip, len))
    }

    fn proto(&mut self) -> Result<u8, FilterError> {
        let t = self.next();
        const WHAT: &str = "a protocol (tcp, udp, icmp, icmp6, gre, esp, ah, sctp or 0-255)";
        match t.tok {
            Tok::Word(w) => match proto_by_name(w) {
                Some(p) => Ok(p),
                None if all_digits(w) => w.parse::<u8>().map_err(|_| self.expected(t, WHAT)),
                None => Err(self.expected(t, WHAT)),
            },
            _ => Err(self.expected(t, WHAT)),
        }
    }

    /// `[CMP] COUNT` after `bytes` or `packets`.
    fn count(&mut self, counter: Counter) -> Result<Node, FilterError> {
        let cmp = match self.peek().tok {
            Tok::Cmp(c) => {
                self.next();
                c
            }
            _ => Cmp::Eq,
        };
        let t = self.next();
        const WHAT: &str = "a count like 1000 or 10k (suffixes k, m, g, t are powers of 1000)";
        let Tok::Word(w) = t.tok else {
            return Err(self.expected(t, WHAT));
        };
        let (digits, scale) = match w.as_bytes().last().map(u8::to_ascii_lowercase) {
            Some(b'k') => (&w[..w.len() - 1], 1_000u64),
            Some(b'm') => (&w[..w.len() - 1], 1_000_000),
            Some(b'g') => (&w[..w.len() - 1], 1_000_000_000),
            Some(b't') => (&w[..w.len() - 1], 1_000_000_000_000),
            _ => (w, 1),
        };
        let v = all_digits(digits)
            .then(|| digits.parse::<u64>().ok())
            .flatten()
            .and_then(|v| v.checked_mul(scale));
        match v {
            Some(v) => Ok(Node::Count(counter, cmp, v)),
            None => Err(self.expected(t, WHAT)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Time arguments.

const NS_PER_S: u64 = 1_000_000_000;

/// Parses a duration: one or more `NUMBER UNIT` pairs, units `s`, `m`, `h`, `d`, `w` (any
/// case), as in `--last 15m` or `1h30m`. Returns nanoseconds. A unit is required: a bare `900`
/// could mean seconds or minutes depending on which tool the user last used.
pub fn parse_duration(s: &str) -> Result<u64, FilterError> {
    let b = s.as_bytes();
    if b.is_empty() {
        return Err(FilterError {
            pos: 0,
            msg: "expected a duration like 15m, 1h30m or 2d, found nothing".to_owned(),
        });
    }
    let mut i = 0;
    let mut total = 0u64;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        // Only ASCII has been consumed, so `start` and `i` are character boundaries.
        let rest = s.get(start..).unwrap_or("");
        if i == start {
            let msg = if start == 0 && (rest.starts_with('-') || rest.starts_with('+')) {
                format!("a duration has no sign, found '{rest}'")
            } else {
                format!("expected a number, found '{rest}'")
            };
            return Err(error_at(s, start, msg));
        }
        let digits = s.get(start..i).unwrap_or("");
        let unit_s: u64 = match b.get(i).map(u8::to_ascii_lowercase) {
            Some(b's') => 1,
            Some(b'm') => 60,
            Some(b'h') => 3_600,
            Some(b'd') => 86_400,
            Some(b'w') => 7 * 86_400,
            _ => {
                let found = match s.get(i..).and_then(|r| r.chars().next()) {
                    Some(c) => format!("'{c}'"),
                    None => "the end".to_owned(),
                };
                let msg =
                    format!("expected a unit (s, m, h, d or w) after '{digits}', found {found}");
                return Err(error_at(s, i, msg));
            }
        };
        i += 1;
        total = digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(unit_s * NS_PER_S))
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| error_at(s, start, "duration too long".to_owned()))?;
    }
    Ok(total)
}

/// Years whose instants fit in i64 nanoseconds since the epoch (1677-09-21 to 2262-04-11),
/// minus the partial end years. `parse_rfc3339` multiplies without checking, so years outside
/// are refused before it is called.
const YEARS: std::ops::RangeInclusive<i64> = 1678..=2261;

/// Parses a `--since`/`--until` argument to ns since the Unix epoch:
/// - RFC 3339 (`2024-05-01T12:00:00Z`, `2024-05-01T14:00:00.5+02:00`);
/// - a date, `2024-05-01`, meaning its midnight UTC;
/// - `now`;
/// - a time before now: `-15m`, `-2h`, `-1d`, `-1h30m` or `now-15m` (units of
///   [`parse_duration`]).
pub fn parse_time_arg(s: &str, now_ns: i64) -> Result<i64, FilterError> {
    if s.eq_ignore_ascii_case("now") {
        return Ok(now_ns);
    }
    let relative = match s.get(..4) {
        Some(p) if p.eq_ignore_ascii_case("now-") => Some((&s[4..], 4)),
        _ => s.strip_prefix('-').map(|r| (r, 1)),
    };
    if let Some((rest, skip)) = relative {
        let d = parse_duration(rest).map_err(|e| FilterError {
            pos: e.pos + skip,
            msg: e.msg,
        })?;
        return i64::try_from(d)
            .ok()
            .and_then(|d| now_ns.checked_sub(d))
            .ok_or_else(|| FilterError {
                pos: skip,
                msg: "relative time reaches too far back".to_owned(),
            });
    }
    // Only a `YYYY-` start is taken for a date, so that a bare number is not called a year.
    let year = s
        .get(..5)
        .and_then(|y| y.strip_suffix('-'))
        .filter(|y| all_digits(y))
        .and_then(|y| y.parse::<i64>().ok());
    if let Some(y) = year {
        if !YEARS.contains(&y) {
            let msg = format!(
                "year {y} is out of range ({}-{})",
                YEARS.start(),
                YEARS.end()
            );
            return Err(FilterError { pos: 0, msg });
        }
        if let Some(t) = parse_rfc3339(s) {
            return Ok(t);
        }
        if s.len() == 10 {
            if let Some(t) = parse_rfc3339(&format!("{s}T00:00:00Z")) {
                return Ok(t);
            }
        }
        // The commonest slip: a timestamp without its zone, which would be ambiguous.
        if s.len() >= 19 && parse_rfc3339(&format!("{s}Z")).is_some() {
            let msg = "expected a time zone: Z for UTC or an offset like +02:00, found the end"
                .to_owned();
            return Err(error_at(s, s.len(), msg));
        }
    }
    Err(FilterError {
        pos: 0,
        msg: format!(
            "expected a time: RFC 3339 like 2024-05-01T12:00:00Z, a date like 2024-05-01, \
             'now' or a relative time like -15m, found '{s}'"
        ),
    })
}
