//! The runtime's end of NRI, for fast tests of `tollgate-nri` without containerd: a unix socket
//! in a temp dir that accepts a plugin, takes its registration on connection 2 and calls it on
//! connection 1, as containerd's `pkg/adaptation` does, through the same mux and ttrpc framing.
//! Every wait is bounded (5 s).

use std::path::PathBuf;
use std::time::Duration;

use prost::Message as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};
use tollgate_nri::api;
use tollgate_nri::mux::{self, PLUGIN_CONN, RUNTIME_CONN};
use tollgate_nri::ttrpc::{self, TYPE_REQUEST, TYPE_RESPONSE};

const WAIT: Duration = Duration::from_secs(5);

/// A listening fake runtime.
pub struct FakeRuntime {
    listener: UnixListener,
    /// The socket a plugin connects to.
    pub socket: PathBuf,
    _dir: tempfile::TempDir,
}

/// One plugin's connection, seen from the runtime.
pub struct RuntimeConn {
    stream: UnixStream,
    frames: mux::Decoder,
    answers: ttrpc::Decoder,
    calls: ttrpc::Decoder,
    next_stream: u32,
}

impl FakeRuntime {
    /// Listens on `nri.sock` in a new temp dir.
    pub fn bind() -> FakeRuntime {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("nri.sock");
        let listener = UnixListener::bind(&socket).expect("bind the fake NRI socket");
        FakeRuntime { listener, socket, _dir: dir }
    }

    /// The next plugin that connects.
    pub async fn accept(&self) -> RuntimeConn {
        let (stream, _) =
            tokio::time::timeout(WAIT, self.listener.accept()).await.expect("a plugin connects").expect("accept");
        RuntimeConn {
            stream,
            frames: mux::Decoder::default(),
            answers: ttrpc::Decoder::default(),
            calls: ttrpc::Decoder::default(),
            next_stream: 1,
        }
    }
}

impl RuntimeConn {
    async fn read_more(&mut self) -> bool {
        let mut buf = vec![0u8; 64 << 10];
        let n = tokio::time::timeout(WAIT, self.stream.read(&mut buf)).await.expect("the plugin answers").unwrap_or(0);
        if n == 0 {
            return false;
        }
        self.frames.push(&buf[..n]);
        while let Some(f) = self.frames.next_frame().expect("the plugin's frames") {
            match f.conn {
                PLUGIN_CONN => self.answers.push(&f.payload),
                RUNTIME_CONN => self.calls.push(&f.payload),
                other => panic!("the plugin wrote on connection {other}"),
            }
        }
        true
    }

    /// Takes the plugin's `RegisterPlugin` call and accepts it (or refuses it with `refuse`).
    pub async fn registration(&mut self, refuse: Option<&str>) -> api::RegisterPluginRequest {
        loop {
            if let Some(m) = self.calls.next_message().expect("ttrpc") {
                assert_eq!(m.kind, TYPE_REQUEST);
                let req = ttrpc::Request::decode(m.body.as_slice()).expect("a ttrpc request");
                assert_eq!((req.service.as_str(), req.method.as_str()), (api::RUNTIME_SERVICE, "RegisterPlugin"));
                let status = refuse.map(|r| ttrpc::Status { code: ttrpc::code::UNKNOWN, message: r.into() });
                let body = ttrpc::Response { status, payload: api::Empty {}.encode_to_vec() }.encode_to_vec();
                self.write(RUNTIME_CONN, &ttrpc::Message { stream: m.stream, kind: TYPE_RESPONSE, flags: 0, body })
                    .await;
                return api::RegisterPluginRequest::decode(req.payload.as_slice()).expect("RegisterPluginRequest");
            }
            assert!(self.read_more().await, "the plugin closed before registering");
        }
    }

    async fn write(&mut self, conn: u32, m: &ttrpc::Message) {
        let mut out = Vec::new();
        mux::encode(conn, &ttrpc::encode(m), &mut out);
        self.write_raw(&out).await;
    }

    /// Writes bytes as they are (for malformed input).
    pub async fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write to the plugin");
    }

    /// Calls `method` of the plugin service with `payload`; its answer.
    pub async fn call(&mut self, method: &str, payload: Vec<u8>) -> ttrpc::Response {
        let stream = self.next_stream;
        self.next_stream += 2;
        let req = ttrpc::Request {
            service: api::PLUGIN_SERVICE.into(),
            method: method.into(),
            payload,
            timeout_nano: 2_000_000_000,
            metadata: Vec::new(),
        };
        self.write(PLUGIN_CONN, &ttrpc::Message { stream, kind: TYPE_REQUEST, flags: 0, body: req.encode_to_vec() })
            .await;
        loop {
            if let Some(m) = self.answers.next_message().expect("ttrpc") {
                assert_eq!((m.kind, m.stream), (TYPE_RESPONSE, stream), "an answer to this call");
                return ttrpc::Response::decode(m.body.as_slice()).expect("a ttrpc response");
            }
            assert!(self.read_more().await, "the plugin closed the connection instead of answering {method}");
        }
    }

    /// Whether the plugin closes the connection (within 5 s).
    pub async fn closed_by_plugin(&mut self) -> bool {
        let mut buf = [0u8; 1024];
        loop {
            match tokio::time::timeout(WAIT, self.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}
