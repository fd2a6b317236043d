//! NRI's connection multiplexer (`pkg/net/multiplex`): one unix socket carries several byte streams,
//! each frame `[u32 connection id][u32 length]` big-endian, then that many bytes. Connection 1 is the
//! plugin's ttrpc server (the runtime calls `Plugin`), connection 2 its client (the plugin calls
//! `Runtime`); 0 is reserved. A frame carries at most one ttrpc message's worth (4 MiB + 10).
//!
//! Pure: [`encode`] writes frames, [`Decoder`] reads them from bytes as they arrive.

/// Frame header length.
pub const HEADER_LEN: usize = 8;
/// Largest payload of one frame: a ttrpc header plus ttrpc's largest message.
pub const MAX_PAYLOAD: usize = crate::ttrpc::HEADER_LEN + crate::ttrpc::MAX_MESSAGE;
/// The connection on which the runtime calls the plugin.
pub const PLUGIN_CONN: u32 = 1;
/// The connection on which the plugin calls the runtime.
pub const RUNTIME_CONN: u32 = 2;

/// A frame that breaks the multiplexer's rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MuxError {
    /// Longer than any frame the runtime writes.
    #[error("multiplexer frame for connection {conn} declares {len} bytes, more than the {MAX_PAYLOAD} allowed")]
    TooLarge {
        /// Its connection.
        conn: u32,
        /// Its declared length.
        len: usize,
    },
}

/// One frame's payload, for one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The connection.
    pub conn: u32,
    /// The bytes.
    pub payload: Vec<u8>,
}

/// Appends `data` for connection `conn` to `out` as frames of at most [`MAX_PAYLOAD`] bytes.
pub fn encode(conn: u32, data: &[u8], out: &mut Vec<u8>) {
    for chunk in data.chunks(MAX_PAYLOAD) {
        out.extend_from_slice(&conn.to_be_bytes());
        // A chunk is at most MAX_PAYLOAD (about 4 MiB) long, so it fits in a u32.
        out.extend_from_slice(&u32::try_from(chunk.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(chunk);
    }
}

/// Reads frames from a byte stream, as the bytes come. Holds at most one frame's bytes.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// Adds bytes read from the socket.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, `None` until one is, or the error that ends the stream.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, MuxError> {
        let Some(header) = self.buf.get(..HEADER_LEN) else { return Ok(None) };
        let conn = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(MuxError::TooLarge { conn, len });
        }
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let payload = self.buf[HEADER_LEN..HEADER_LEN + len].to_vec();
        self.buf.drain(..HEADER_LEN + len);
        Ok(Some(Frame { conn, payload }))
    }

    /// Bytes held that do not make a frame yet.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_frame_is_its_connection_its_length_and_its_bytes() {
        let mut out = Vec::new();
        encode(RUNTIME_CONN, b"abc", &mut out);
        assert_eq!(out, [0, 0, 0, 2, 0, 0, 0, 3, b'a', b'b', b'c']);
        let mut d = Decoder::default();
        d.push(&out[..5]);
        assert_eq!(d.next_frame(), Ok(None), "half a header is not a frame");
        d.push(&out[5..]);
        assert_eq!(d.next_frame(), Ok(Some(Frame { conn: 2, payload: b"abc".to_vec() })));
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn an_oversized_frame_is_refused_before_its_bytes_arrive() {
        let mut d = Decoder::default();
        d.push(&[0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(d.next_frame(), Err(MuxError::TooLarge { conn: 1, len: 0xffff_ffff }));
    }

    #[test]
    fn long_data_is_split_into_frames_that_fit() {
        let data = vec![7u8; MAX_PAYLOAD + 5];
        let mut out = Vec::new();
        encode(PLUGIN_CONN, &data, &mut out);
        let mut d = Decoder::default();
        d.push(&out);
        let a = d.next_frame().unwrap().unwrap();
        let b = d.next_frame().unwrap().unwrap();
        assert_eq!((a.payload.len(), b.payload.len()), (MAX_PAYLOAD, 5));
    }

    proptest! {
        /// Frames survive any split of the stream into reads.
        #[test]
        fn frames_round_trip_through_any_reads(
            frames in proptest::collection::vec((0u32..4, proptest::collection::vec(any::<u8>(), 0..64)), 0..8),
            cut in 1usize..17,
        ) {
            let mut wire = Vec::new();
            for (conn, data) in &frames {
                encode(*conn, data, &mut wire);
            }
            let mut d = Decoder::default();
            let mut got = Vec::new();
            for chunk in wire.chunks(cut) {
                d.push(chunk);
                while let Some(f) = d.next_frame().unwrap() {
                    got.push((f.conn, f.payload));
                }
            }
            // Empty data writes no frame.
            let want: Vec<(u32, Vec<u8>)> = frames.iter().filter(|(_, d)| !d.is_empty()).cloned().collect();
            prop_assert_eq!(got, want);
        }

        /// Any bytes: a frame, nothing yet, or an error; never a panic.
        #[test]
        fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut d = Decoder::default();
            d.push(&bytes);
            while let Ok(Some(_)) = d.next_frame() {}
        }
    }
}
