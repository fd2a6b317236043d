//! ttrpc's wire format (containerd/ttrpc `channel.go`, `request.proto`): each message is a 10-byte
//! header `[u32 length][u32 stream id][u8 type][u8 flags]` big-endian, then `length` bytes of
//! protobuf. A unary call is one `Request` on a new odd stream id from the client, answered by one
//! `Response` on the same id. Messages are at most 4 MiB.
//!
//! Pure: [`encode`] writes a message, [`Decoder`] reads them from one connection's bytes.

/// Message header length.
pub const HEADER_LEN: usize = 10;
/// Largest message body ttrpc sends or accepts.
pub const MAX_MESSAGE: usize = 4 << 20;
/// A request.
pub const TYPE_REQUEST: u8 = 1;
/// A response.
pub const TYPE_RESPONSE: u8 = 2;

/// gRPC status codes used here.
pub mod code {
    /// Success.
    pub const OK: i32 = 0;
    /// An error with no better code.
    pub const UNKNOWN: i32 = 2;
    /// The message could not be decoded.
    pub const INVALID_ARGUMENT: i32 = 3;
    /// Refused by policy.
    pub const PERMISSION_DENIED: i32 = 7;
    /// The method is not served (the runtime then falls back, e.g. from dedicated RPCs to `StateChange`).
    pub const UNIMPLEMENTED: i32 = 12;
}

/// A message that breaks ttrpc's rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TtrpcError {
    /// Longer than ttrpc allows.
    #[error("ttrpc message on stream {stream} declares {len} bytes, more than the {MAX_MESSAGE} allowed")]
    TooLarge {
        /// Its stream.
        stream: u32,
        /// Its declared length.
        len: usize,
    },
    /// Its protobuf body does not decode.
    #[error("ttrpc {what} on stream {stream} does not decode: {message}")]
    Malformed {
        /// `request` or `response`.
        what: &'static str,
        /// Its stream.
        stream: u32,
        /// The decoder's reason.
        message: String,
    },
}

/// One ttrpc message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its stream.
    pub stream: u32,
    /// [`TYPE_REQUEST`], [`TYPE_RESPONSE`], or another type ttrpc has (data) that NRI does not use.
    pub kind: u8,
    /// Type-specific flags (streaming; unary calls send 0).
    pub flags: u8,
    /// The protobuf body.
    pub body: Vec<u8>,
}

/// The bytes of `m`. Bodies are tollgate's own, far below [`MAX_MESSAGE`].
pub fn encode(m: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + m.body.len());
    out.extend_from_slice(&u32::try_from(m.body.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&m.stream.to_be_bytes());
    out.push(m.kind);
    out.push(m.flags);
    out.extend_from_slice(&m.body);
    out
}

/// Reads messages from one connection's bytes as they come.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// Adds bytes of this connection.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, `None` until one is, or the error that ends the connection.
    pub fn next_message(&mut self) -> Result<Option<Message>, TtrpcError> {
        let Some(h) = self.buf.get(..HEADER_LEN) else { return Ok(None) };
        let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let stream = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        let (kind, flags) = (h[8], h[9]);
        if len > MAX_MESSAGE {
            return Err(TtrpcError::TooLarge { stream, len });
        }
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let body = self.buf[HEADER_LEN..HEADER_LEN + len].to_vec();
        self.buf.drain(..HEADER_LEN + len);
        Ok(Some(Message { stream, kind, flags, body }))
    }
}

/// A call (`ttrpc.Request`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Request {
    /// `nri.pkg.api.v1alpha1.Plugin`, `….Runtime`.
    #[prost(string, tag = "1")]
    pub service: String,
    /// `Configure`, `CreateContainer`, …
    #[prost(string, tag = "2")]
    pub method: String,
    /// The method's request message.
    #[prost(bytes = "vec", tag = "3")]
    pub payload: Vec<u8>,
    /// The caller's deadline, in nanoseconds from now (0: none).
    #[prost(int64, tag = "4")]
    pub timeout_nano: i64,
    /// Call metadata.
    #[prost(message, repeated, tag = "5")]
    pub metadata: Vec<KeyValue>,
}

/// One metadata entry.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    /// Key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// An answer (`ttrpc.Response`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Response {
    /// Success or the error.
    #[prost(message, optional, tag = "1")]
    pub status: Option<Status>,
    /// The method's response message.
    #[prost(bytes = "vec", tag = "2")]
    pub payload: Vec<u8>,
}

/// `google.rpc.Status`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    /// A [`code`].
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// What went wrong, for people.
    #[prost(string, tag = "2")]
    pub message: String,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;
    use prost::Message as _;

    use super::*;

    #[test]
    fn the_header_is_length_stream_type_flags() {
        let m = Message { stream: 3, kind: TYPE_REQUEST, flags: 0, body: vec![1, 2] };
        assert_eq!(encode(&m), [0, 0, 0, 2, 0, 0, 0, 3, 1, 0, 1, 2]);
        let mut d = Decoder::default();
        d.push(&encode(&m));
        assert_eq!(d.next_message(), Ok(Some(m)));
    }

    #[test]
    fn a_message_over_4_mib_is_refused_from_its_header() {
        let mut d = Decoder::default();
        d.push(&[0, 0x40, 0, 1, 0, 0, 0, 1, 1, 0]);
        assert_eq!(d.next_message(), Err(TtrpcError::TooLarge { stream: 1, len: MAX_MESSAGE + 1 }));
    }

    /// The bytes Go's ttrpc writes for `Request{service: "s", method: "m", payload: [0x08, 0x01]}`.
    #[test]
    fn a_request_encodes_as_go_ttrpc_does() {
        let r = Request { service: "s".into(), method: "m".into(), payload: vec![8, 1], ..Request::default() };
        assert_eq!(r.encode_to_vec(), [0x0a, 1, b's', 0x12, 1, b'm', 0x1a, 2, 8, 1]);
        let status =
            Response { status: Some(Status { code: code::UNIMPLEMENTED, message: "x".into() }), payload: vec![] };
        assert_eq!(status.encode_to_vec(), [0x0a, 5, 0x08, 12, 0x12, 1, b'x']);
    }

    proptest! {
        #[test]
        fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut d = Decoder::default();
            d.push(&bytes);
            while let Ok(Some(m)) = d.next_message() {
                let _ = Request::decode(m.body.as_slice());
            }
        }
    }
}
