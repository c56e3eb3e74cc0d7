//! The control protocol between `rvsctl` and `rvs-vswitchd`, one module for both ends.
//!
//! Transport: a Unix stream socket (`RUNDIR/rvs.sock`, mode 0600). Framing: a 4-byte
//! big-endian length, then that many bytes of JSON. A frame over [`MAX_FRAME`] is a
//! protocol error: the daemon answers with an error and closes the connection; it never
//! exits because of what a client sent. Every request gets exactly one response; a
//! connection may carry several requests in sequence.
//!
//! The model is OVSDB's: the client reads a [`Request::Snapshot`] of the database, runs
//! its commands against a copy, and sends the difference as [`Request::Commit`] with the
//! generation it started from. The daemon applies it only if nothing committed in
//! between (else [`Response::Conflict`], and the client retries on a fresh snapshot), so
//! concurrent clients are serialized without lost updates. `appctl`-style queries
//! (fdb/show, …) are [`Request::Appctl`].

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::RowOp;

/// Largest frame either side accepts.
pub const MAX_FRAME: usize = 64 << 20;

/// File name of the control socket inside the run directory.
pub const SOCKET_NAME: &str = "rvs.sock";

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// The whole database, status columns included.
    Snapshot,
    /// Apply `ops` if the database is still at `base_generation`. The daemon answers
    /// only after it has opened the devices and handed the workers their new
    /// configuration (which they take between batches), whatever `wait` says: `wait`
    /// is false for ovs-vsctl's `--no-wait` and is carried, not acted on.
    Commit { base_generation: u64, ops: Vec<RowOp>, wait: bool },
    /// An ovs-appctl-style command.
    Appctl { command: String, args: Vec<String> },
}

/// What the daemon answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    /// `db` is [`crate::Db::to_json`] with status columns.
    Snapshot { db: Json },
    /// Committed as `generation`; `db` is the database after the commit (status
    /// columns included, e.g. the `error` of interfaces that failed to come up).
    Committed { generation: u64, db: Json },
    /// Someone else committed first; the database is now at `generation`.
    Conflict { generation: u64 },
    /// The output of an appctl command; `ok` false means "server returned an error"
    /// (ovs-appctl exits 2) and `output` is the error text.
    Appctl { ok: bool, output: String },
    /// The request was refused (malformed, or the transaction violates the schema).
    Error { message: String },
}

/// Protocol-level failures.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("frame of {0} bytes is larger than the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("connection closed by peer")]
    Closed,
}

/// Encodes a message as one frame.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, ProtoError> {
    let body = serde_json::to_vec(msg).map_err(|e| ProtoError::Malformed(e.to_string()))?;
    if body.len() > MAX_FRAME {
        return Err(ProtoError::TooLarge(body.len()));
    }
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Checks a frame header and returns the body length.
pub fn frame_len(hdr: [u8; 4]) -> Result<usize, ProtoError> {
    let n = u32::from_be_bytes(hdr) as usize;
    if n > MAX_FRAME {
        return Err(ProtoError::TooLarge(n));
    }
    Ok(n)
}

/// Decodes a frame body.
pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ProtoError> {
    serde_json::from_slice(body).map_err(|e| ProtoError::Malformed(e.to_string()))
}

/// Reads one frame from a blocking stream.
pub fn read_frame<R: Read>(r: &mut R) -> Result<Vec<u8>, ProtoError> {
    let mut hdr = [0u8; 4];
    match r.read_exact(&mut hdr) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(ProtoError::Closed),
        r => r?,
    }
    let mut body = vec![0u8; frame_len(hdr)?];
    r.read_exact(&mut body)?;
    Ok(body)
}

/// Splits a byte stream into frames, whatever sizes its reads come in: several
/// frames in one read, a header split across reads, a body arriving a byte at a time.
/// No I/O: the owner reads, [`push`](FrameReader::push)es what it read, and takes whole
/// frames with [`next_frame`](FrameReader::next_frame). It holds at most one frame plus
/// what arrived after it, and refuses a header announcing more than its limit before
/// any of that body is kept. After an error it stays failed (the stream is out of step).
#[derive(Debug)]
pub struct FrameReader {
    buf: Vec<u8>,
    limit: usize,
    failed: Option<usize>,
}

impl FrameReader {
    /// A reader refusing frames longer than `limit` (at most [`MAX_FRAME`]).
    pub fn new(limit: usize) -> FrameReader {
        FrameReader { buf: Vec::new(), limit: limit.min(MAX_FRAME), failed: None }
    }

    /// Bytes held: a partial frame, or whole ones not taken yet.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The body length of the first frame held, once its header is complete.
    pub fn pending_len(&self) -> Option<usize> {
        let hdr: [u8; 4] = self.buf.get(..4)?.try_into().ok()?;
        Some(u32::from_be_bytes(hdr) as usize)
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// The next whole frame's body, `None` while it is incomplete, or the error that
    /// ends the stream: a header over the limit ([`ProtoError::TooLarge`]).
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, ProtoError> {
        if let Some(n) = self.failed {
            return Err(ProtoError::TooLarge(n));
        }
        let Some(len) = self.pending_len() else { return Ok(None) };
        if len > self.limit {
            self.failed = Some(len);
            self.buf = Vec::new();
            return Err(ProtoError::TooLarge(len));
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let rest = self.buf.split_off(4 + len);
        let mut body = std::mem::replace(&mut self.buf, rest);
        body.drain(..4);
        Ok(Some(body))
    }
}

/// A blocking client connection (what rvsctl uses).
pub struct Client {
    stream: UnixStream,
}

impl Client {
    /// Connects to the daemon's socket. `timeout` bounds every later read and write.
    pub fn connect(path: &Path, timeout: Duration) -> io::Result<Client> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Client { stream })
    }

    /// Sends a request and waits for its response.
    pub fn call(&mut self, req: &Request) -> Result<Response, ProtoError> {
        self.stream.write_all(&encode(req)?)?;
        let body = read_frame(&mut self.stream)?;
        decode(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let req = Request::Appctl { command: "fdb/show".into(), args: vec!["br0".into()] };
        let f = encode(&req).unwrap();
        let body = read_frame(&mut &f[..]).unwrap();
        assert_eq!(decode::<Request>(&body).unwrap(), req);
    }

    #[test]
    fn bad_frames() {
        assert!(matches!(frame_len([0xff, 0xff, 0xff, 0xff]), Err(ProtoError::TooLarge(_))));
        assert!(matches!(decode::<Request>(b"{\"type\":\"nope\"}"), Err(ProtoError::Malformed(_))));
        assert!(matches!(read_frame(&mut &[0u8, 0][..]), Err(ProtoError::Closed)));
    }

    #[test]
    fn frame_reader_takes_frames_in_any_pieces() {
        let a = encode(&Request::Snapshot).unwrap();
        let b = encode(&Request::Appctl { command: "version".into(), args: vec![] }).unwrap();
        let stream: Vec<u8> = [a.clone(), b.clone()].concat();
        for piece in 1..=stream.len() {
            let mut r = FrameReader::new(1024);
            let mut got = Vec::new();
            for chunk in stream.chunks(piece) {
                r.push(chunk);
                while let Some(f) = r.next_frame().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got, vec![a[4..].to_vec(), b[4..].to_vec()], "pieces of {piece}");
            assert_eq!(r.buffered(), 0);
        }
    }

    #[test]
    fn frame_reader_refuses_a_long_header_before_its_body() {
        let mut r = FrameReader::new(16);
        r.push(&[0, 0, 0, 17, b'{']);
        assert_eq!(r.pending_len(), Some(17));
        assert!(matches!(r.next_frame(), Err(ProtoError::TooLarge(17))));
        r.push(&[0; 64]);
        assert_eq!(r.buffered(), 0, "nothing kept after the error");
        assert!(matches!(r.next_frame(), Err(ProtoError::TooLarge(17))));
    }
}
