//! Where generated lines go: files (one per stream), syslog over TCP (RFC 5424, RFC 6587
//! octet counting) and the Loki push API (JSON body over HTTP/1.1).

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::gen::{Line, Stream};
use crate::time::Civil;
use bongsu_ingest::logproto;

/// Writes each stream's lines to `<dir>/<stream file name>`, newline-terminated.
#[derive(Debug)]
pub struct FileSink {
    dir: PathBuf,
    files: Vec<Option<BufWriter<File>>>,
    bytes: u64,
}

impl FileSink {
    /// Creates `dir` if needed; files are created on their first line.
    pub fn new(dir: impl AsRef<Path>, streams: &[Stream]) -> Result<Self> {
        let dir = dir.as_ref().to_owned();
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(Self {
            dir,
            files: streams.iter().map(|_| None).collect(),
            bytes: 0,
        })
    }

    /// Appends one line to its stream's file.
    pub fn write(&mut self, streams: &[Stream], line: &Line) -> Result<()> {
        let Some(slot) = self.files.get_mut(line.stream) else {
            return Err(Error::Invalid(format!("no stream {}", line.stream)));
        };
        let path = || self.dir.join(&streams[line.stream].file_name);
        if slot.is_none() {
            let p = path();
            let f = File::create(&p).map_err(|source| Error::Io { path: p, source })?;
            *slot = Some(BufWriter::with_capacity(256 << 10, f));
        }
        if let Some(w) = slot {
            w.write_all(line.text.as_bytes())
                .and_then(|()| w.write_all(b"\n"))
                .map_err(|source| Error::Io {
                    path: path(),
                    source,
                })?;
        }
        self.bytes += line.text.len() as u64 + 1;
        Ok(())
    }

    /// Bytes written so far, newlines included.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Flushes every file.
    pub fn finish(mut self) -> Result<u64> {
        for w in self.files.iter_mut().flatten() {
            w.flush().map_err(|source| Error::Io {
                path: self.dir.clone(),
                source,
            })?;
        }
        Ok(self.bytes)
    }
}

/// Formats one RFC 5424 message for `line` of `stream`:
/// `<PRI>1 TIMESTAMP HOST APP PROCID - - MSG`.
pub fn rfc5424(stream: &Stream, line: &Line, out: &mut String) {
    let pri = u32::from(stream.facility) * 8 + u32::from(line.severity.min(7));
    let secs = line.ts_ns.div_euclid(1_000_000_000);
    let micros = line.ts_ns.rem_euclid(1_000_000_000) / 1_000;
    let _ = write!(out, "<{pri}>1 ");
    Civil::from_unix(secs).iso('T', out);
    let _ = write!(out, ".{micros:06}Z {} {} ", stream.host, stream.app);
    if line.pid == 0 {
        out.push('-');
    } else {
        let _ = write!(out, "{}", line.pid);
    }
    out.push_str(" - - ");
    out.push_str(line.message());
}

/// Sends lines as RFC 5424 messages over one TCP connection with octet-counted framing.
#[derive(Debug)]
pub struct SyslogSender {
    addr: String,
    conn: BufWriter<TcpStream>,
    msg: String,
    sent: u64,
}

impl SyslogSender {
    pub fn connect(addr: &str) -> Result<Self> {
        let net = |source| Error::Net {
            addr: addr.to_owned(),
            source,
        };
        let s = TcpStream::connect(addr).map_err(net)?;
        s.set_nodelay(true).map_err(net)?;
        Ok(Self {
            addr: addr.to_owned(),
            conn: BufWriter::with_capacity(256 << 10, s),
            msg: String::new(),
            sent: 0,
        })
    }

    /// Queues one line (sent when the buffer fills or on [`SyslogSender::flush`]).
    pub fn send(&mut self, stream: &Stream, line: &Line) -> Result<()> {
        self.msg.clear();
        rfc5424(stream, line, &mut self.msg);
        let addr = &self.addr;
        write!(self.conn, "{} ", self.msg.len())
            .and_then(|()| self.conn.write_all(self.msg.as_bytes()))
            .map_err(|source| Error::Net {
                addr: addr.clone(),
                source,
            })?;
        self.sent += 1;
        Ok(())
    }

    /// Messages queued or sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    pub fn flush(&mut self) -> Result<()> {
        let addr = &self.addr;
        self.conn.flush().map_err(|source| Error::Net {
            addr: addr.clone(),
            source,
        })
    }
}

/// Appends `s` to `out` as a JSON string body (without quotes).
pub(crate) fn json_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// Batches lines per stream into Loki push requests (`POST /loki/api/v1/push`, JSON body) over
/// one keep-alive HTTP/1.1 connection.
#[derive(Debug)]
pub struct LokiSender {
    addr: String,
    path: String,
    token: Option<String>,
    conn: BufReader<TcpStream>,
    /// Per stream, the JSON `values` entries of the pending batch (JSON bodies) ...
    pending: Vec<String>,
    /// ... or its entries (protobuf bodies, when `Some`).
    pending_proto: Option<Vec<Vec<logproto::EntryAdapter>>>,
    /// The snappy-compressed protobuf body.
    body_bytes: Vec<u8>,
    pending_bytes: usize,
    batch_bytes: usize,
    body: String,
    pushed: u64,
}

impl LokiSender {
    /// Connects to `addr` (`host:port`); `token` is sent as a bearer token; a push is sent once
    /// the pending lines hold `batch_bytes` bytes.
    pub fn connect(
        addr: &str,
        streams: usize,
        token: Option<String>,
        batch_bytes: usize,
    ) -> Result<Self> {
        let s = TcpStream::connect(addr).map_err(|source| Error::Net {
            addr: addr.to_owned(),
            source,
        })?;
        Ok(Self {
            addr: addr.to_owned(),
            path: "/loki/api/v1/push".to_owned(),
            token,
            conn: BufReader::new(s),
            pending: vec![String::new(); streams],
            pending_proto: None,
            body_bytes: Vec::new(),
            pending_bytes: 0,
            batch_bytes: batch_bytes.max(1),
            body: String::new(),
            pushed: 0,
        })
    }

    /// Sends protobuf bodies with snappy (`application/x-protobuf`, what Loki clients send by
    /// default) instead of JSON.
    pub fn protobuf(mut self) -> Self {
        self.pending_proto = Some(vec![Vec::new(); self.pending.len()]);
        self
    }

    /// Adds a line to the pending batch; pushes when the batch is full.
    pub fn send(&mut self, streams: &[Stream], line: &Line) -> Result<()> {
        if let Some(pending) = self.pending_proto.as_mut() {
            let Some(p) = pending.get_mut(line.stream) else {
                return Err(Error::Invalid(format!("no stream {}", line.stream)));
            };
            p.push(logproto::EntryAdapter {
                timestamp: Some(logproto::Timestamp {
                    seconds: line.ts_ns.div_euclid(1_000_000_000),
                    nanos: line.ts_ns.rem_euclid(1_000_000_000) as i32,
                }),
                line: line.text.clone(),
                structured_metadata: Vec::new(),
            });
            self.pending_bytes += line.text.len() + 16;
            if self.pending_bytes >= self.batch_bytes {
                self.flush(streams)?;
            }
            return Ok(());
        }
        let Some(p) = self.pending.get_mut(line.stream) else {
            return Err(Error::Invalid(format!("no stream {}", line.stream)));
        };
        if !p.is_empty() {
            p.push(',');
        }
        let _ = write!(p, "[\"{}\",\"", line.ts_ns);
        json_escape(&line.text, p);
        p.push_str("\"]");
        self.pending_bytes += line.text.len() + 32;
        if self.pending_bytes >= self.batch_bytes {
            self.flush(streams)?;
        }
        Ok(())
    }

    /// Lines acknowledged by the server so far (status 2xx).
    pub fn pushed_requests(&self) -> u64 {
        self.pushed
    }

    /// Pushes the pending batch and waits for the answer.
    pub fn flush(&mut self, streams: &[Stream]) -> Result<()> {
        if self.pending_bytes == 0 {
            return Ok(());
        }
        if let Some(pending) = self.pending_proto.as_mut() {
            let mut req = logproto::PushRequest::default();
            for (i, entries) in pending.iter_mut().enumerate() {
                if entries.is_empty() {
                    continue;
                }
                req.streams.push(logproto::StreamAdapter {
                    labels: streams[i].labels.to_string(),
                    entries: std::mem::take(entries),
                    hash: 0,
                });
            }
            let raw = prost::Message::encode_to_vec(&req);
            self.body_bytes = snap::raw::Encoder::new()
                .compress_vec(&raw)
                .map_err(|e| Error::Invalid(format!("snappy: {e}")))?;
            self.pending_bytes = 0;
            self.post("application/x-protobuf")?;
            self.pushed += 1;
            return Ok(());
        }
        self.body.clear();
        self.body.push_str("{\"streams\":[");
        let mut first = true;
        for (i, vals) in self.pending.iter_mut().enumerate() {
            if vals.is_empty() {
                continue;
            }
            if !first {
                self.body.push(',');
            }
            first = false;
            self.body.push_str("{\"stream\":{");
            for (j, l) in streams[i].labels.iter().enumerate() {
                if j > 0 {
                    self.body.push(',');
                }
                self.body.push('"');
                json_escape(&l.name, &mut self.body);
                self.body.push_str("\":\"");
                json_escape(&l.value, &mut self.body);
                self.body.push('"');
            }
            self.body.push_str("},\"values\":[");
            self.body.push_str(vals);
            self.body.push_str("]}");
            vals.clear();
        }
        self.body.push_str("]}");
        self.pending_bytes = 0;
        self.body_bytes.clear();
        self.body_bytes.extend_from_slice(self.body.as_bytes());
        self.post("application/json")?;
        self.pushed += 1;
        Ok(())
    }

    fn post(&mut self, content_type: &str) -> Result<()> {
        let net = |addr: &str| {
            let addr = addr.to_owned();
            move |source| Error::Net { addr, source }
        };
        let mut head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
            self.path,
            self.addr,
            self.body_bytes.len()
        );
        if let Some(t) = &self.token {
            let _ = write!(head, "Authorization: Bearer {t}\r\n");
        }
        head.push_str("\r\n");
        let s = self.conn.get_mut();
        s.write_all(head.as_bytes())
            .and_then(|()| s.write_all(&self.body_bytes))
            .map_err(net(&self.addr))?;
        let (status, body) = read_response(&mut self.conn).map_err(|e| match e {
            RespError::Io(source) => Error::Net {
                addr: self.addr.clone(),
                source,
            },
            RespError::Bad(what) => Error::BadResponse {
                addr: self.addr.clone(),
                what,
            },
        })?;
        if !(200..300).contains(&status) {
            return Err(Error::Rejected {
                addr: self.addr.clone(),
                status,
                body: String::from_utf8_lossy(&body).chars().take(300).collect(),
            });
        }
        Ok(())
    }
}

enum RespError {
    Io(std::io::Error),
    Bad(String),
}

/// Largest response body read from a push endpoint.
const MAX_RESPONSE_BODY: usize = 1 << 20;

/// Reads one HTTP/1.1 response with a `Content-Length` (or none, for 204) from `r`.
fn read_response(r: &mut impl BufRead) -> std::result::Result<(u16, Vec<u8>), RespError> {
    let mut line = String::new();
    r.read_line(&mut line).map_err(RespError::Io)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| RespError::Bad(format!("status line {:?}", line.trim_end())))?;
    let mut len = 0usize;
    loop {
        line.clear();
        let n = r.read_line(&mut line).map_err(RespError::Io)?;
        if n == 0 {
            return Err(RespError::Bad("connection closed inside headers".into()));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                len = v
                    .trim()
                    .parse()
                    .map_err(|_| RespError::Bad(format!("content-length {:?}", v.trim())))?;
            }
        }
    }
    if len > MAX_RESPONSE_BODY {
        return Err(RespError::Bad(format!("response body of {len} bytes")));
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).map_err(RespError::Io)?;
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::{Config, Generator};
    use std::io::Read;
    use std::net::TcpListener;

    /// One request a test server read: its header lines and body.
    struct Request {
        headers: Vec<String>,
        body: Vec<u8>,
    }

    /// Accepts one connection on `listener` and reads push requests until it closes, answering
    /// request `i` with `reply(i)`; returns what it read.
    fn serve_pushes(
        listener: TcpListener,
        reply: impl Fn(usize) -> String + Send + 'static,
    ) -> std::thread::JoinHandle<Vec<Request>> {
        std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s);
            let mut out = Vec::new();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap() == 0 {
                    break;
                }
                assert!(
                    line.starts_with("POST /loki/api/v1/push HTTP/1.1"),
                    "{line}"
                );
                let (mut headers, mut len) = (Vec::new(), 0);
                loop {
                    line.clear();
                    r.read_line(&mut line).unwrap();
                    if line.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = line.strip_prefix("Content-Length: ") {
                        len = v.trim().parse().unwrap();
                    }
                    headers.push(line.trim().to_owned());
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                r.get_mut().write_all(reply(out.len()).as_bytes()).unwrap();
                out.push(Request { headers, body });
            }
            out
        })
    }

    const NO_CONTENT: &str = "HTTP/1.1 204 No Content\r\n\r\n";

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn json_escape_round_trips(s in "\\PC*|[\\x00-\\x7f]{0,40}") {
            let mut out = String::from("\"");
            json_escape(&s, &mut out);
            out.push('"');
            let back: String = serde_json::from_str(&out).unwrap();
            proptest::prop_assert_eq!(back, s);
        }
    }

    #[test]
    fn files_hold_every_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut g = Generator::new(Config::default());
        let streams = g.streams().to_vec();
        let mut sink = FileSink::new(dir.path(), &streams).unwrap();
        let mut l = Line::default();
        let mut want = 0u64;
        for _ in 0..5_000 {
            g.next_line(&mut l);
            want += l.text.len() as u64 + 1;
            sink.write(&streams, &l).unwrap();
        }
        assert_eq!(sink.finish().unwrap(), want);
        let mut got = 0u64;
        let mut lines = 0usize;
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let t = std::fs::read_to_string(e.unwrap().path()).unwrap();
            got += t.len() as u64;
            lines += t.lines().count();
        }
        assert_eq!(got, want);
        assert_eq!(lines, 5_000);
    }

    #[test]
    fn syslog_frames_are_octet_counted_rfc5424() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let reader = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut all = Vec::new();
            s.read_to_end(&mut all).unwrap();
            all
        });
        let mut g = Generator::new(Config::default());
        let streams = g.streams().to_vec();
        let mut tx = SyslogSender::connect(&addr).unwrap();
        let mut l = Line::default();
        let mut msgs = Vec::new();
        for _ in 0..300 {
            g.next_line(&mut l);
            tx.send(&streams[l.stream], &l).unwrap();
            msgs.push((l.stream, l.message().to_owned()));
        }
        tx.flush().unwrap();
        drop(tx);
        let all = reader.join().unwrap();
        // Parse the octet-counted frames back.
        let mut pos = 0;
        let mut n = 0;
        while pos < all.len() {
            let sp = all[pos..].iter().position(|&b| b == b' ').unwrap();
            let len: usize = std::str::from_utf8(&all[pos..pos + sp])
                .unwrap()
                .parse()
                .unwrap();
            let frame = std::str::from_utf8(&all[pos + sp + 1..pos + sp + 1 + len]).unwrap();
            let (stream, msg) = &msgs[n];
            assert!(
                frame.starts_with('<') && frame.contains(">1 2026-11-22T00:00:"),
                "{frame}"
            );
            let s = &streams[*stream];
            assert!(
                frame.contains(&format!("Z {} {} ", s.host, s.app)),
                "{frame}"
            );
            assert!(frame.ends_with(&format!(" - - {msg}")), "{frame}");
            pos += sp + 1 + len;
            n += 1;
        }
        assert_eq!(n, 300);
    }

    #[test]
    fn loki_push_sends_json_batches_and_reports_rejections() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = serve_pushes(listener, |i| {
            if i == 2 {
                "HTTP/1.1 400 Bad Request\r\nContent-Length: 7\r\n\r\nno good".to_owned()
            } else {
                NO_CONTENT.to_owned()
            }
        });
        let mut g = Generator::new(Config::default());
        let streams = g.streams().to_vec();
        let mut tx =
            LokiSender::connect(&addr, streams.len(), Some("tok".into()), 64 << 10).unwrap();
        let mut l = Line::default();
        let mut err = None;
        let mut sent = 0;
        while err.is_none() && sent < 100_000 {
            g.next_line(&mut l);
            if let Err(e) = tx.send(&streams, &l) {
                err = Some(e);
            }
            sent += 1;
        }
        assert_eq!(tx.pushed_requests(), 2);
        assert!(
            matches!(err, Some(Error::Rejected { status: 400, .. })),
            "{err:?}"
        );
        drop(tx);
        let requests = server.join().unwrap();
        assert!(requests
            .iter()
            .all(|r| r.headers.iter().any(|h| h == "Authorization: Bearer tok")));
        let bodies: Vec<String> = requests
            .into_iter()
            .map(|r| String::from_utf8(r.body).unwrap())
            .collect();
        assert_eq!(bodies.len(), 3);
        assert!(bodies[0].starts_with("{\"streams\":[{\"stream\":{\"app\":"));
        assert!(bodies[0].contains("\"values\":[[\"17953056"));
        assert!(bodies[0].ends_with("]}]}"));
    }

    /// Protobuf bodies decode (as the server decodes them) to every line sent, in order per
    /// stream, with each stream's labels and timestamps.
    #[test]
    fn loki_push_protobuf_bodies_decode_to_the_lines_sent() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = serve_pushes(listener, |_| NO_CONTENT.to_owned());
        let mut g = Generator::new(Config::default());
        let streams = g.streams().to_vec();
        let mut tx = LokiSender::connect(&addr, streams.len(), None, 64 << 10)
            .unwrap()
            .protobuf();
        let mut l = Line::default();
        let mut want: Vec<Vec<(i64, String)>> = vec![Vec::new(); streams.len()];
        for _ in 0..3_000 {
            g.next_line(&mut l);
            tx.send(&streams, &l).unwrap();
            want[l.stream].push((l.ts_ns, l.text.clone()));
        }
        tx.flush(&streams).unwrap();
        assert!(tx.pushed_requests() > 1);
        drop(tx);
        let mut got: Vec<Vec<(i64, String)>> = vec![Vec::new(); streams.len()];
        for req in server.join().unwrap() {
            assert!(req
                .headers
                .iter()
                .any(|h| h == "Content-Type: application/x-protobuf"));
            let rec = bongsu_ingest::decode_loki_push(
                &req.body,
                Some("application/x-protobuf"),
                None,
                &bongsu_ingest::Limits::default(),
            )
            .unwrap();
            for s in rec.streams {
                let i = streams.iter().position(|x| x.labels == s.labels).unwrap();
                got[i].extend(s.entries.into_iter().map(|e| (e.timestamp_ns, e.line)));
            }
        }
        assert_eq!(got, want);
    }
}
