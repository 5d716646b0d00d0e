//! RFC 6587 framing of syslog over a stream (TCP, TLS): each frame is either octet-counted
//! (`MSG-LEN SP MSG`; a frame starting with a non-zero digit is taken to be one) or ends at
//! LF (CR LF and NUL between frames are tolerated), decided frame by frame, so a sender may
//! use either. A message longer than the maximum is cut there and flagged; the rest of it is
//! skipped. The framer keeps at most the maximum in memory whatever the input.

/// How a frame ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameNote {
    /// Complete.
    Whole,
    /// Longer than the maximum: cut there.
    TooLong,
    /// The stream ended inside an octet-counted message: what came is kept.
    Incomplete,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between frames.
    Start,
    /// Reading the digits of an octet count (also kept in `buf`, in case they turn out to
    /// start a newline-framed message).
    Count { len: usize, digits: u8 },
    /// Reading an octet-counted message.
    Octets { remaining: usize },
    /// Reading a newline-framed message.
    Line,
}

/// RFC 6587 framing of one stream, fed with whatever each read returned.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    max: usize,
    cut: bool,
    state: State,
}

impl Framer {
    /// A framer keeping at most `max` bytes of a message.
    pub fn new(max: usize) -> Framer {
        Framer {
            buf: Vec::with_capacity(max.min(1 << 16)),
            max: max.max(1),
            cut: false,
            state: State::Start,
        }
    }

    fn keep(&mut self, b: &[u8]) {
        let room = self.max.saturating_sub(self.buf.len());
        if b.len() > room {
            self.cut = true;
        }
        self.buf.extend_from_slice(&b[..b.len().min(room)]);
    }

    fn emit(&mut self, out: &mut impl FnMut(&[u8], FrameNote), note: FrameNote) {
        let note = if self.cut { FrameNote::TooLong } else { note };
        out(&self.buf, note);
        self.buf.clear();
        self.cut = false;
        self.state = State::Start;
    }

    /// Frames what arrived, calling `out` for each complete message.
    pub fn push(&mut self, mut data: &[u8], out: &mut impl FnMut(&[u8], FrameNote)) {
        while let Some(&c) = data.first() {
            match self.state {
                State::Start => {
                    if matches!(c, b'\n' | b'\r' | 0) {
                        data = &data[1..];
                    } else if c.is_ascii_digit() && c != b'0' {
                        self.state = State::Count { len: 0, digits: 0 };
                    } else {
                        self.state = State::Line;
                    }
                }
                State::Count { len, digits } => {
                    if c.is_ascii_digit() && digits < 9 {
                        self.keep(&data[..1]);
                        self.state = State::Count {
                            len: len * 10 + usize::from(c - b'0'),
                            digits: digits + 1,
                        };
                        data = &data[1..];
                    } else if c == b' ' {
                        self.buf.clear();
                        self.cut = false;
                        self.state = State::Octets { remaining: len };
                        data = &data[1..];
                    } else {
                        // Not a count: the digits begin a newline-framed message.
                        self.state = State::Line;
                    }
                }
                State::Octets { remaining } => {
                    let take = remaining.min(data.len());
                    self.keep(&data[..take]);
                    data = &data[take..];
                    if take == remaining {
                        self.emit(out, FrameNote::Whole);
                    } else {
                        self.state = State::Octets {
                            remaining: remaining - take,
                        };
                    }
                }
                State::Line => match data.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        self.keep(&data[..i]);
                        // CR LF: the CR may have come with the previous read.
                        if self.buf.last() == Some(&b'\r') {
                            self.buf.pop();
                        }
                        data = &data[i + 1..];
                        self.emit(out, FrameNote::Whole);
                    }
                    None => {
                        self.keep(data);
                        data = &[];
                    }
                },
            }
        }
    }

    /// The stream ended: what is left is a message too (a last line without LF, or the part
    /// of an octet-counted message that came).
    pub fn finish(&mut self, out: &mut impl FnMut(&[u8], FrameNote)) {
        match self.state {
            State::Start => {}
            State::Count { .. } | State::Line => {
                if !self.buf.is_empty() {
                    self.emit(out, FrameNote::Whole);
                }
            }
            State::Octets { .. } => self.emit(out, FrameNote::Incomplete),
        }
        self.state = State::Start;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(max: usize, chunks: &[&[u8]]) -> Vec<(String, FrameNote)> {
        let mut f = Framer::new(max);
        let mut out = Vec::new();
        let mut add =
            |m: &[u8], n: FrameNote| out.push((String::from_utf8_lossy(m).into_owned(), n));
        for c in chunks {
            f.push(c, &mut add);
        }
        f.finish(&mut add);
        out
    }

    fn w(s: &str) -> (String, FrameNote) {
        (s.to_string(), FrameNote::Whole)
    }

    #[test]
    fn newline_and_octet_counting_mixed_and_split_anywhere() {
        let stream: &[u8] = b"<13>one\n10 <13>two\nx3\r\n<13>three\r\n\n\x00<14>four";
        let want = vec![
            w("<13>one"),
            w("<13>two\nx3"),
            w("<13>three"),
            w("<14>four"),
        ];
        assert_eq!(frames(100, &[stream]), want);
        // Every split point of the stream gives the same frames.
        for cut in 0..stream.len() {
            assert_eq!(
                frames(100, &[&stream[..cut], &stream[cut..]]),
                want,
                "cut {cut}"
            );
        }
        // Byte by byte.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(frames(100, &bytes), want);
    }

    #[test]
    fn digits_that_are_not_a_count_start_a_line() {
        assert_eq!(
            frames(100, &[b"1,2026/11/22 x\n"]),
            vec![w("1,2026/11/22 x")]
        );
        assert_eq!(
            frames(100, &[b"12345678901234 y\n"]),
            vec![w("12345678901234 y")]
        );
    }

    #[test]
    fn long_messages_are_cut_and_counted() {
        let got = frames(4, &[b"abcdefgh\nij\n9 123456789"]);
        assert_eq!(
            got,
            vec![
                ("abcd".to_string(), FrameNote::TooLong),
                w("ij"),
                ("1234".to_string(), FrameNote::TooLong),
            ]
        );
        let got = frames(100, &[b"20 <13>short"]);
        assert_eq!(got, vec![("<13>short".to_string(), FrameNote::Incomplete)]);
    }
}
