//! Cutting messages out of a TCP byte stream (RFC 3261 §18.3, RFC 5626 §3.5.1).
//!
//! A stream may carry several messages in one read or half of one. Each message is
//! framed strictly by its Content-Length, which is mandatory on streams. CRLF
//! keepalives between messages are recognised: a double CRLF is a ping that must be
//! answered with a single CRLF pong. A stream that breaks framing cannot be
//! resynchronised and must be closed; the error says why.
//!
//! Bytes fed a few at a time cost linear work in all: the search for the end of
//! the header section resumes where it stopped, and a header section is read once,
//! not again for every piece of its body.

use bytes::{Buf, Bytes, BytesMut};

use super::parse::{MAX_MESSAGE_SIZE, WireError, content_length, find_head_end, lex_head};

/// What the framer produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One complete message (header section and exactly Content-Length body bytes).
    Message(Bytes),
    /// A CRLFCRLF keepalive ping; answer with [`PONG`].
    Ping,
}

/// The keepalive answer to a [`Frame::Ping`].
pub const PONG: &[u8] = b"\r\n";

/// Accumulates stream bytes and yields whole messages.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: BytesMut,
    /// How much of `buf` is known to hold no end of the header section.
    scanned: usize,
    /// The size of the message at the front once its header section was read.
    total: Option<usize>,
}

impl StreamFramer {
    /// An empty framer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes held that do not yet form a message.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The bytes held (after an error: the start of the offending message, from
    /// which a 513 can be answered).
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    fn split(&mut self, len: usize) -> Bytes {
        self.scanned = 0;
        self.total = None;
        self.buf.split_to(len).freeze()
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed, or an error
    /// after which the connection must be closed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, WireError> {
        if let Some(total) = self.total {
            return Ok((self.buf.len() >= total).then(|| Frame::Message(self.split(total))));
        }
        if self.buf.starts_with(b"\r\n\r\n") {
            self.buf.advance(4);
            self.scanned = 0;
            return Ok(Some(Frame::Ping));
        }
        // Lone CRLFs (pongs, or padding before a message) are skipped.
        let crlf = self
            .buf
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        if crlf > 0 && crlf < self.buf.len() {
            self.buf.advance(crlf);
            self.scanned = self.scanned.saturating_sub(crlf);
        } else if crlf > 0 {
            // Only CRLFs so far: wait to see whether a ping completes.
            if crlf >= 4 {
                self.buf.clear();
                self.scanned = 0;
                return Ok(Some(Frame::Ping));
            }
            return Ok(None);
        }
        // The end-of-headers pattern is at most three bytes long: resume the search
        // two bytes before where the last one gave up.
        let from = self.scanned.saturating_sub(2);
        let Some((head_end, body_start)) = find_head_end(&self.buf[from..]) else {
            self.scanned = self.buf.len();
            if self.buf.len() > MAX_MESSAGE_SIZE {
                return Err(WireError::TooLarge {
                    size: self.buf.len(),
                });
            }
            return Ok(None);
        };
        let (head_end, body_start) = (head_end + from, body_start + from);
        let head = std::str::from_utf8(&self.buf[..head_end]).map_err(|_| WireError::NotUtf8)?;
        let (_, headers) = lex_head(head);
        let length = content_length(&headers)?.ok_or(WireError::MissingContentLength)?;
        let total = body_start + length;
        if total > MAX_MESSAGE_SIZE {
            return Err(WireError::TooLarge { size: total });
        }
        self.total = Some(total);
        if self.buf.len() < total {
            return Ok(None);
        }
        Ok(Some(Frame::Message(self.split(total))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] =
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: 4\r\n\r\nbody";

    #[test]
    fn splits_two_messages_in_one_read_and_joins_halves() {
        let mut f = StreamFramer::new();
        let mut two = MSG.to_vec();
        two.extend_from_slice(MSG);
        f.push(&two[..10]);
        assert_eq!(f.next_frame().unwrap(), None);
        f.push(&two[10..]);
        assert_eq!(
            f.next_frame().unwrap(),
            Some(Frame::Message(Bytes::from_static(MSG)))
        );
        assert_eq!(
            f.next_frame().unwrap(),
            Some(Frame::Message(Bytes::from_static(MSG)))
        );
        assert_eq!(f.next_frame().unwrap(), None);
        assert_eq!(f.pending(), 0);
    }

    #[test]
    fn keepalive_ping_and_pong() {
        let mut f = StreamFramer::new();
        f.push(b"\r\n\r\n");
        assert_eq!(f.next_frame().unwrap(), Some(Frame::Ping));
        f.push(b"\r\n");
        assert_eq!(f.next_frame().unwrap(), None);
        f.push(MSG);
        assert!(matches!(f.next_frame().unwrap(), Some(Frame::Message(_))));
    }

    #[test]
    fn drip_fed_bytes_make_the_same_frames() {
        let mut f = StreamFramer::new();
        let mut stream = b"\r\n".to_vec();
        stream.extend_from_slice(MSG);
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend_from_slice(MSG);
        let mut frames = Vec::new();
        for b in &stream {
            f.push(std::slice::from_ref(b));
            while let Some(frame) = f.next_frame().unwrap() {
                frames.push(frame);
            }
        }
        assert_eq!(
            frames,
            vec![
                Frame::Message(Bytes::from_static(MSG)),
                Frame::Ping,
                Frame::Message(Bytes::from_static(MSG)),
            ]
        );
        // A header section ending with bare LFs split across pushes is found too.
        let mut g = StreamFramer::new();
        for part in [&b"OPTIONS sip:a@b SIP/2.0\nl: 0\n"[..], b"\n"] {
            g.push(part);
        }
        assert!(matches!(g.next_frame().unwrap(), Some(Frame::Message(_))));
    }

    #[test]
    fn drip_feeding_a_large_message_is_linear() {
        // 60 KiB of headers, one byte at a time: quadratic work would take minutes.
        let mut msg = b"OPTIONS sip:a@b SIP/2.0\r\n".to_vec();
        while msg.len() < 60 * 1024 {
            msg.extend_from_slice(b"X-Padding: 0123456789abcdef0123456789abcdef\r\n");
        }
        msg.extend_from_slice(b"Content-Length: 2000\r\n\r\n");
        msg.extend(std::iter::repeat_n(b'x', 2000));
        let started = std::time::Instant::now();
        let mut f = StreamFramer::new();
        let mut frames = 0;
        for b in &msg {
            f.push(std::slice::from_ref(b));
            if f.next_frame().unwrap().is_some() {
                frames += 1;
            }
        }
        assert_eq!(frames, 1);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn framing_faults_close_the_stream() {
        let mut f = StreamFramer::new();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n");
        assert_eq!(f.next_frame(), Err(WireError::MissingContentLength));
        let mut g = StreamFramer::new();
        g.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n");
        assert_eq!(g.next_frame(), Err(WireError::BadContentLength));
        let mut h = StreamFramer::new();
        h.push(&vec![b'a'; MAX_MESSAGE_SIZE + 1]);
        assert!(matches!(h.next_frame(), Err(WireError::TooLarge { .. })));
    }
}
