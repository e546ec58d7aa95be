//! Syslog over TCP: newline framing and RFC 6587 octet counting, auto-detected per frame.

/// Frames decoded from a connection: their bytes, one after another in one buffer, so a
/// receiver reuses the buffer instead of allocating per frame. [`Frames::clear`] empties it
/// and keeps the capacity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frames {
    data: Vec<u8>,
    /// Per frame: where its bytes end in `data`, and whether it was truncated.
    ends: Vec<(usize, bool)>,
}

/// One frame of [`Frames`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The frame's bytes, without the octet count or the newline (and a `\r` before it).
    pub data: &'a [u8],
    /// The frame was longer than the limit; `data` holds its first `max_frame_bytes` bytes.
    pub truncated: bool,
}

impl Frames {
    /// Number of frames.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Bytes of all frames together.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// The frames in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Frame<'_>> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&(end, truncated)| {
            let data = &self.data[start..end];
            start = end;
            Frame { data, truncated }
        })
    }

    /// Forgets every frame, keeping the buffers.
    pub fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
    }

    fn push(&mut self, data: &[u8], truncated: bool) {
        self.data.extend_from_slice(data);
        self.ends.push((self.data.len(), truncated));
    }
}

/// Counters a receiver can export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FramerStats {
    /// Frames emitted.
    pub frames: u64,
    /// Frames cut to `max_frame_bytes` (the rest of the frame was skipped).
    pub truncated: u64,
    /// Partial octet-counted frames lost when the connection closed.
    pub dropped: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between frames.
    Start,
    /// Reading the decimal length of an octet-counted frame.
    Count { value: usize, digits: u8 },
    /// Inside an octet-counted frame with this many bytes still to read.
    Octets { remaining: usize },
    /// Inside a newline-terminated frame.
    Line,
}

/// Incremental syslog frame decoder for one TCP connection.
///
/// At the start of each frame it looks at the first byte, as rsyslog and syslog-ng do: a
/// digit `1`–`9` starts an RFC 6587 octet count (`<len> <msg>`), anything else a frame ending
/// at `\n`. A digit run that is not followed by a space is taken as the start of a newline
/// frame. Empty lines between frames are skipped. Buffering never exceeds `max_frame_bytes`
/// (plus at most 9 count digits): an oversize frame is truncated, counted, and the rest of it
/// skipped.
#[derive(Debug)]
pub struct SyslogFramer {
    max_frame_bytes: usize,
    buf: Vec<u8>,
    truncated: bool,
    state: State,
    stats: FramerStats,
}

/// Longest octet count accepted (9 digits): longer digit runs start a newline frame.
const MAX_COUNT_DIGITS: u8 = 9;

impl SyslogFramer {
    /// A framer that cuts frames longer than `max_frame_bytes` (at least 1).
    pub fn new(max_frame_bytes: usize) -> Self {
        Self {
            max_frame_bytes: max_frame_bytes.max(1),
            buf: Vec::new(),
            truncated: false,
            state: State::Start,
            stats: FramerStats::default(),
        }
    }

    pub fn stats(&self) -> FramerStats {
        self.stats
    }

    /// Bytes currently buffered for an incomplete frame (never above `max_frame_bytes + 9`).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn append(&mut self, bytes: &[u8]) {
        let room = self.max_frame_bytes.saturating_sub(self.buf.len());
        if bytes.len() > room {
            self.buf.extend_from_slice(&bytes[..room]);
            self.truncated = true;
        } else {
            self.buf.extend_from_slice(bytes);
        }
    }

    fn emit(&mut self, out: &mut Frames) {
        if self.truncated {
            self.stats.truncated += 1;
        }
        self.stats.frames += 1;
        out.push(&self.buf, std::mem::replace(&mut self.truncated, false));
        self.buf.clear();
        self.state = State::Start;
    }

    /// Feeds the next chunk read from the connection; complete frames are pushed to `out`.
    pub fn push(&mut self, mut chunk: &[u8], out: &mut Frames) {
        while !chunk.is_empty() {
            match self.state {
                State::Start => {
                    let b = chunk[0];
                    match b {
                        b'\n' | b'\r' => chunk = &chunk[1..],
                        b'1'..=b'9' => {
                            self.state = State::Count {
                                value: usize::from(b - b'0'),
                                digits: 1,
                            };
                            chunk = &chunk[1..];
                        }
                        _ => self.state = State::Line,
                    }
                }
                State::Count { value, digits } => {
                    let b = chunk[0];
                    if b == b' ' {
                        chunk = &chunk[1..];
                        self.state = State::Octets { remaining: value };
                    } else if b.is_ascii_digit() && digits < MAX_COUNT_DIGITS {
                        chunk = &chunk[1..];
                        self.state = State::Count {
                            value: value * 10 + usize::from(b - b'0'),
                            digits: digits + 1,
                        };
                    } else {
                        // Not an octet count: these digits begin a newline-framed message.
                        // The first digit is 1-9, so the value prints back exactly.
                        debug_assert_eq!(value.to_string().len(), usize::from(digits));
                        self.append(value.to_string().as_bytes());
                        self.state = State::Line;
                    }
                }
                State::Octets { remaining } => {
                    let n = remaining.min(chunk.len());
                    self.append(&chunk[..n]);
                    chunk = &chunk[n..];
                    if remaining == n {
                        self.emit(out);
                    } else {
                        self.state = State::Octets {
                            remaining: remaining - n,
                        };
                    }
                }
                State::Line => match memchr::memchr(b'\n', chunk) {
                    Some(i) => {
                        self.append(&chunk[..i]);
                        chunk = &chunk[i + 1..];
                        if self.buf.last() == Some(&b'\r') && !self.truncated {
                            self.buf.pop();
                        }
                        self.emit(out);
                    }
                    None => {
                        self.append(chunk);
                        chunk = &[];
                    }
                },
            }
        }
    }

    /// The connection closed: a pending newline frame is emitted (a sender may omit the last
    /// newline); a partial octet-counted frame is dropped and counted.
    pub fn finish(&mut self, out: &mut Frames) {
        match self.state {
            State::Start => {}
            State::Line => {
                if self.buf.last() == Some(&b'\r') && !self.truncated {
                    self.buf.pop();
                }
                self.emit(out);
            }
            State::Count { value, .. } => {
                // A bare digit run at the end is a short newline frame.
                self.append(value.to_string().as_bytes());
                self.emit(out);
            }
            State::Octets { .. } => {
                self.stats.dropped += 1;
                self.buf.clear();
                self.truncated = false;
                self.state = State::Start;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames(input: &[u8], max: usize) -> Frames {
        let mut f = SyslogFramer::new(max);
        let mut out = Frames::default();
        f.push(input, &mut out);
        f.finish(&mut out);
        out
    }

    fn data(fs: &Frames) -> Vec<&[u8]> {
        fs.iter().map(|f| f.data).collect()
    }

    #[test]
    fn mixed_framing_is_detected_per_frame() {
        let input = b"9 <13>hello\n<14>line two\r\n5 <1>ab\n\n<15>last";
        let out = frames(input, 1024);
        // A newline after an octet-counted frame is skipped as an empty line.
        assert_eq!(
            data(&out),
            [&b"<13>hello"[..], b"<14>line two", b"<1>ab", b"<15>last"]
        );
    }

    #[test]
    fn digits_without_space_start_a_line() {
        let out = frames(b"2024: a year\n12345678901 x\n", 1024);
        assert_eq!(data(&out), [&b"2024: a year"[..], b"12345678901 x"]);
        let out = frames(b"12abc\n", 1024);
        assert_eq!(data(&out), [&b"12abc"[..]]);
    }

    #[test]
    fn oversize_frames_are_truncated_and_counted() {
        let mut f = SyslogFramer::new(4);
        let mut out = Frames::default();
        f.push(b"abcdefgh\n10 0123456789<1>ok\n", &mut out);
        assert_eq!(data(&out), [&b"abcd"[..], b"0123", b"<1>o"]);
        assert_eq!(
            out.iter().map(|f| f.truncated).collect::<Vec<_>>(),
            [true, true, true]
        );
        assert_eq!(f.stats().truncated, 3);
        assert_eq!(f.stats().frames, 3);
    }

    #[test]
    fn partial_octet_frame_at_close_is_dropped() {
        let mut f = SyslogFramer::new(100);
        let mut out = Frames::default();
        f.push(b"10 <1>ab", &mut out);
        f.finish(&mut out);
        assert!(out.is_empty());
        assert_eq!(f.stats().dropped, 1);
    }

    fn arb_stream() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                "<[0-9]{1,3}>[ -~]{0,30}".prop_map(|m| format!("{} {m}", m.len()).into_bytes()),
                "<[0-9]{1,3}>[ -~]{0,30}".prop_map(|m| format!("{m}\n").into_bytes()),
            ],
            0..8,
        )
        .prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn any_split_gives_the_same_frames(stream in arb_stream(), max in 8usize..64) {
            let whole = frames(&stream, max);
            for k in 0..=stream.len() {
                let mut f = SyslogFramer::new(max);
                let mut out = Frames::default();
                f.push(&stream[..k], &mut out);
                f.push(&stream[k..], &mut out);
                f.finish(&mut out);
                prop_assert_eq!(&out, &whole);
            }
            let mut f = SyslogFramer::new(max);
            let mut out = Frames::default();
            for b in &stream {
                f.push(std::slice::from_ref(b), &mut out);
            }
            f.finish(&mut out);
            prop_assert_eq!(&out, &whole);
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_stay_bounded(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16),
            max in 1usize..32,
        ) {
            let mut f = SyslogFramer::new(max);
            let mut out = Frames::default();
            for c in &chunks {
                f.push(c, &mut out);
                prop_assert!(f.buffered() <= max + 9);
            }
            f.finish(&mut out);
            for fr in out.iter() {
                prop_assert!(fr.data.len() <= max);
            }
        }
    }
}
