//! A gzip writer for `_bulk` bodies: greedy LZ77 over the whole body in memory (one hash
//! probe per position, 4-byte minimum match, the 32 KiB window of deflate) and deflate's
//! fixed Huffman codes, in one final block. The same kind of parse as zlib's level 1
//! ("quick"), without its sliding window: the body is already in memory, so positions index
//! it directly and nothing is copied into a window or slid. The output is a standard gzip
//! member (RFC 1952) that any inflater reads.

/// Bits of the hash of the next 4 bytes (a table of `1 << HASH_BITS` positions).
const HASH_BITS: u32 = 15;
/// Deflate's window: the farthest a match may reach back.
const MAX_DIST: usize = 32_768;
const MIN_MATCH: usize = 4;
/// Bytes hashed to find a candidate (4..=8).
const HASH_BYTES: u32 = 6;
const MAX_MATCH: usize = 258;

/// Fixed-code (reversed, for LSB-first output) and bit count of literal/length symbols
/// 0..=287 (RFC 1951, 3.2.6).
const fn fixed_lit_codes() -> [(u16, u8); 288] {
    let mut t = [(0u16, 0u8); 288];
    let mut s = 0;
    while s < 288 {
        let (code, len) = if s < 144 {
            (0x30 + s, 8)
        } else if s < 256 {
            (0x190 + s - 144, 9)
        } else if s < 280 {
            (s - 256, 7)
        } else {
            (0xc0 + s - 280, 8)
        };
        t[s] = (reverse(code as u32, len) as u16, len as u8);
        s += 1;
    }
    t
}

const fn reverse(code: u32, len: u32) -> u32 {
    code.reverse_bits() >> (32 - len)
}

/// Every match length 3..=258 as one bit string: its symbol's code, then its extra bits.
const fn length_codes() -> [(u32, u8); 259] {
    let lit = fixed_lit_codes();
    let mut t = [(0u32, 0u8); 259];
    let mut len = 3;
    while len <= MAX_MATCH {
        let l = len - 3;
        let (sym, extra, value) = if l < 8 {
            (257 + l, 0, 0)
        } else if len == MAX_MATCH {
            (285, 0, 0)
        } else {
            let log = 31 - (l as u32).leading_zeros() as usize;
            (
                257 + 4 * (log - 1) + ((l >> (log - 2)) & 3),
                log - 2,
                l & ((1 << (log - 2)) - 1),
            )
        };
        let (code, n) = lit[sym];
        t[len] = (code as u32 | ((value as u32) << n), n + extra as u8);
        len += 1;
    }
    t
}

static LIT: [(u16, u8); 288] = fixed_lit_codes();
static LEN: [(u32, u8); 259] = length_codes();

/// A distance 1..=32768 as one bit string: its 5-bit code, then its extra bits.
fn dist_code(dist: usize) -> (u32, u32) {
    let d = (dist - 1) as u32;
    if d < 4 {
        return (reverse(d, 5), 5);
    }
    let log = 31 - d.leading_zeros();
    let sym = 2 * log + ((d >> (log - 1)) & 1);
    let extra = log - 1;
    (reverse(sym, 5) | ((d & ((1 << extra) - 1)) << 5), 5 + extra)
}

/// LSB-first bit output into a buffer sized for the worst case.
struct Bits<'a> {
    out: &'a mut [u8],
    pos: usize,
    acc: u64,
    n: u32,
}

impl Bits<'_> {
    /// Appends the `n` (at most 32) low bits of `bits`.
    #[inline(always)]
    fn put(&mut self, bits: u32, n: u32) {
        self.acc |= u64::from(bits) << self.n;
        self.n += n;
        if self.n >= 32 {
            if let Some(w) = self.out.get_mut(self.pos..self.pos + 4) {
                w.copy_from_slice(&(self.acc as u32).to_le_bytes());
            }
            self.pos += 4;
            self.acc >>= 32;
            self.n -= 32;
        }
    }

    /// Pads to a byte boundary, writes what is left; the bytes written.
    fn finish(self) -> usize {
        let bytes = self.n.div_ceil(8) as usize;
        if let Some(w) = self.out.get_mut(self.pos..self.pos + bytes) {
            w.copy_from_slice(&self.acc.to_le_bytes()[..bytes]);
        }
        self.pos + bytes
    }
}

/// How far `a` and `b` agree, up to `max` bytes (both at least `max` long).
#[inline(always)]
fn common_len(a: &[u8], b: &[u8], max: usize) -> usize {
    let mut l = MIN_MATCH;
    while l + 8 <= max {
        let x = u64::from_le_bytes(a[l..l + 8].try_into().unwrap_or([0; 8]))
            ^ u64::from_le_bytes(b[l..l + 8].try_into().unwrap_or([0; 8]));
        if x != 0 {
            return l + (x.trailing_zeros() / 8) as usize;
        }
        l += 8;
    }
    while l < max && a[l] == b[l] {
        l += 1;
    }
    l
}

fn read8(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]))
}

fn read4(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The gzip writer; keeps its hash table between bodies.
#[derive(Debug)]
pub struct FastGzip {
    table: Vec<u32>,
}

impl Default for FastGzip {
    fn default() -> FastGzip {
        FastGzip::new()
    }
}

impl FastGzip {
    pub fn new() -> FastGzip {
        FastGzip {
            table: vec![0; 1 << HASH_BITS],
        }
    }

    /// Compresses `input` into `out` (cleared first) as one gzip member. Inputs of 2 GiB
    /// and more are left to flate2 (positions are 32-bit here).
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.clear();
        if input.len() >= 1 << 31 {
            use std::io::Write as _;
            let mut enc =
                flate2::write::GzEncoder::new(std::mem::take(out), flate2::Compression::fast());
            // Writing to a Vec cannot fail.
            let _ = enc.write_all(input);
            *out = enc.finish().unwrap_or_default();
            return;
        }
        out.reserve(input.len() + input.len() / 8 + 64);
        // Header: magic, deflate, no flags, no time, no extra flags, OS unknown.
        out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
        let mut crc = flate2::Crc::new();
        crc.update(input);
        self.table.fill(0);
        let table = &mut self.table[..];
        let head = out.len();
        // Fixed codes take at most 9 bits per byte (one 32-bit word of slack).
        out.resize(head + input.len() + input.len() / 8 + 16, 0);
        let mut bits = Bits {
            out: &mut out[head..],
            pos: 0,
            acc: 0,
            n: 0,
        };
        // BFINAL, then BTYPE 01 (fixed codes).
        bits.put(0b011, 3);
        let n = input.len();
        let mut i = 0;
        // The last match's distance: documents repeat their keys at the distance of the
        // previous document, so a match often continues after a differing value.
        let mut rep = usize::MAX;
        while i + 8 <= n {
            let v8 = read8(input, i);
            let v = v8 as u32;
            let (cand, dist) = if rep <= i && read4(input, i - rep) == v {
                (i - rep, rep)
            } else {
                let h = ((v8 << (64 - 8 * HASH_BYTES)).wrapping_mul(0x9e37_79b1_85eb_ca87)
                    >> (64 - HASH_BITS)) as usize;
                let cand = table[h] as usize;
                table[h] = i as u32;
                (cand, i.wrapping_sub(cand))
            };
            if dist.wrapping_sub(1) < MAX_DIST && read4(input, cand) == v {
                let len = common_len(&input[cand..], &input[i..], MAX_MATCH.min(n - i));
                let (lc, ln) = LEN[len];
                let (dc, dn) = dist_code(dist);
                bits.put(lc, u32::from(ln));
                bits.put(dc, dn);
                rep = dist;
                i += len;
            } else {
                let (c, l) = LIT[usize::from(input[i])];
                bits.put(u32::from(c), u32::from(l));
                i += 1;
            }
        }
        for &b in &input[i..] {
            let (c, l) = LIT[usize::from(b)];
            bits.put(u32::from(c), u32::from(l));
        }
        // End of block.
        let (c, l) = LIT[256];
        bits.put(u32::from(c), u32::from(l));
        let written = bits.finish();
        out.truncate(head + written);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out.extend_from_slice(&(input.len() as u32).to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut out)
            .expect("a gzip stream flate2 reads");
        out
    }

    fn round_trip(input: &[u8]) -> usize {
        let mut gz = Vec::new();
        FastGzip::new().compress(input, &mut gz);
        assert_eq!(gunzip(&gz), input, "{} bytes", input.len());
        gz.len()
    }

    #[test]
    fn codes_match_the_rfc() {
        // Length 3 is symbol 257 (7-bit code 0000001), 258 is 285 (8-bit 11000101).
        assert_eq!(LEN[3], (reverse(1, 7), 7));
        assert_eq!(LEN[258], (reverse(0xc5, 8), 8));
        // Length 11: symbol 265 (0001001), extra bit 0; 12: extra bit 1.
        assert_eq!(LEN[11], (reverse(9, 7), 8));
        assert_eq!(LEN[12], (reverse(9, 7) | 1 << 7, 8));
        // Length 257: symbol 284 (11000100), 5 extra bits 30.
        assert_eq!(LEN[257], (reverse(0xc4, 8) | 30 << 8, 13));
        assert_eq!(dist_code(1), (0, 5));
        // Distance 5: code 4, one extra bit 0; 32768: code 29, 13 extra bits all ones.
        assert_eq!(dist_code(5), (reverse(4, 5), 6));
        assert_eq!(dist_code(32_768), (reverse(29, 5) | 0x1fff << 5, 18));
        assert_eq!(LIT[0], (reverse(0x30, 8) as u16, 8));
        assert_eq!(LIT[255], (reverse(0x1ff, 9) as u16, 9));
    }

    #[test]
    fn edges_round_trip() {
        round_trip(b"");
        round_trip(b"a");
        round_trip(b"abc");
        round_trip(b"abcd");
        round_trip(b"abcdabcd");
        round_trip(&[0u8; 100_000]);
        round_trip(&[255u8; 259]);
        // Matches at the far end of the window and just past it.
        let mut v: Vec<u8> = (0..MAX_DIST + 100)
            .map(|i| (i * 7919 % 251) as u8)
            .collect();
        v.extend_from_within(..300);
        let mut w = vec![1u8; 20];
        w.extend((0..MAX_DIST - 4).map(|i| (i % 250) as u8 + 2));
        w.extend_from_within(..20);
        round_trip(&v);
        round_trip(&w);
    }

    #[test]
    fn random_inputs_round_trip() {
        // xorshift: random bytes, and random runs drawn from a small alphabet and copied
        // from earlier, so that every length and distance code turns up.
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for case in 0..200 {
            let n = (next() % 70_000) as usize;
            let mut v = Vec::with_capacity(n);
            while v.len() < n {
                let r = next();
                match r % 4 {
                    0 => v.push((r >> 8) as u8),
                    1 => v.push(b"ab{\":,}"[(r >> 8) as usize % 7]),
                    _ if !v.is_empty() => {
                        let from = (r >> 8) as usize % v.len();
                        let len = ((r >> 40) as usize % 300).min(v.len() - from);
                        v.extend_from_within(from..from + len);
                    }
                    _ => {}
                }
            }
            v.truncate(n);
            let gz = round_trip(&v);
            if case % 50 == 0 {
                assert!(gz <= v.len() + v.len() / 8 + 64);
            }
        }
    }
}
