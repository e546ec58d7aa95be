//! The systemd journal, read by running `journalctl --output=json --follow` (argv only,
//! never a shell) and resuming after the last returned entry's cursor.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{sync_channel, Receiver, TryRecvError};

use bongsu_model::{Label, Labels, LogEntry};

use crate::config::{JournalConfig, ReadFrom};
use crate::{Error, Result};

const CURSOR_MAGIC: &[u8; 4] = b"BSJC";
const CURSOR_VERSION: u16 = 1;
/// Lines buffered between the reader thread and `poll`; a full queue stops reading the
/// pipe, and journalctl waits.
const QUEUE: usize = 4096;

/// Follows the journal through a `journalctl` child process.
pub struct JournalReader {
    child: Child,
    rx: Receiver<String>,
    labels: Labels,
    cursor: Option<String>,
    cursor_path: PathBuf,
    max_line_bytes: usize,
    finished: bool,
}

impl std::fmt::Debug for JournalReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalReader")
            .field("pid", &self.child.id())
            .field("cursor", &self.cursor)
            .finish()
    }
}

fn level(priority: &str) -> &'static str {
    match priority {
        "0" => "emerg",
        "1" => "alert",
        "2" => "crit",
        "3" => "err",
        "4" => "warning",
        "5" => "notice",
        "6" => "info",
        "7" => "debug",
        _ => "",
    }
}

/// A journal field: a string, or (for binary data) an array of byte values.
fn field(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(a) => {
            let bytes: Option<Vec<u8>> = a
                .iter()
                .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            bytes.map(|b| String::from_utf8_lossy(&b).into_owned())
        }
        _ => None,
    }
}

/// One `journalctl -o json` line as labels, entry and cursor.
pub(crate) fn parse_journal_line(
    line: &str,
    base: &Labels,
    max_line_bytes: usize,
) -> Option<(Labels, LogEntry, String)> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let obj = v.as_object()?;
    let cursor = obj.get("__CURSOR").and_then(field)?;
    let mut message = obj.get("MESSAGE").and_then(field).unwrap_or_default();
    if message.len() > max_line_bytes {
        let mut end = max_line_bytes;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    let ts_us: i64 = obj
        .get("__REALTIME_TIMESTAMP")
        .and_then(field)
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let mut labels = base.clone();
    labels.set("source", "journal");
    if let Some(unit) = obj.get("_SYSTEMD_UNIT").and_then(field) {
        labels.set("unit", &unit);
    }
    if let Some(p) = obj.get("PRIORITY").and_then(field) {
        labels.set("level", level(&p));
    }
    let mut entry = LogEntry::new(ts_us.saturating_mul(1000), message);
    for (key, name) in [
        ("SYSLOG_IDENTIFIER", "syslog_identifier"),
        ("_PID", "pid"),
        ("_HOSTNAME", "hostname"),
    ] {
        if let Some(v) = obj.get(key).and_then(field) {
            entry.structured_metadata.push(Label::new(name, v));
        }
    }
    Some((labels, entry, cursor))
}

impl JournalReader {
    /// Starts following with `/usr/bin/journalctl` (or `/bin/journalctl`); `Ok(None)` when
    /// neither exists.
    pub fn start(config: &JournalConfig) -> Result<Option<Self>> {
        let Some(program) = ["/usr/bin/journalctl", "/bin/journalctl"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.exists())
        else {
            return Ok(None);
        };
        Self::start_with_program(program, config).map(Some)
    }

    /// Starts following with the given `journalctl` binary, resuming after the cursor saved
    /// at `config.cursor_path` if there is one.
    pub fn start_with_program(program: &Path, config: &JournalConfig) -> Result<Self> {
        let cursor = load_cursor(&config.cursor_path)?;
        let mut cmd = Command::new(program);
        cmd.args(["--output=json", "--follow", "--no-pager"]);
        match (&cursor, config.read_from) {
            (Some(c), _) => {
                cmd.arg(format!("--after-cursor={c}"));
            }
            (None, ReadFrom::Beginning) => {
                cmd.arg("--lines=all");
            }
            (None, ReadFrom::End) => {
                cmd.arg("--lines=0");
            }
        }
        for unit in &config.units {
            cmd.arg(format!("--unit={unit}"));
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| Error::Command {
                program: program.display().to_string(),
                source,
            })?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Command {
                program: program.display().to_string(),
                source: std::io::Error::other("no stdout pipe"),
            });
        };
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("bongsu-journal".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            })
            .map_err(|source| Error::Command {
                program: "journal reader thread".into(),
                source,
            })?;
        let labels =
            Labels::from_pairs(config.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        Ok(Self {
            child,
            rx,
            labels,
            cursor,
            cursor_path: config.cursor_path.clone(),
            max_line_bytes: config.max_line_bytes.max(16),
            finished: false,
        })
    }

    /// Up to `max` entries that arrived since the last call (never blocks).
    pub fn poll(&mut self, max: usize) -> Vec<(Labels, LogEntry)> {
        let mut out = Vec::new();
        while out.len() < max {
            match self.rx.try_recv() {
                Ok(line) => {
                    if let Some((l, e, c)) =
                        parse_journal_line(&line, &self.labels, self.max_line_bytes)
                    {
                        out.push((l, e));
                        self.cursor = Some(c);
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.finished = true;
                    break;
                }
            }
        }
        out
    }

    /// Whether journalctl exited and everything it wrote was returned.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// The cursor of the last entry returned by `poll`.
    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }

    /// Saves the cursor (atomically); call it once returned entries are handed on.
    pub fn checkpoint(&self) -> Result<()> {
        match &self.cursor {
            Some(c) => store_cursor(&self.cursor_path, c),
            None => Ok(()),
        }
    }
}

impl Drop for JournalReader {
    fn drop(&mut self) {
        // Our own child, by handle: stop it and reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn encode_cursor(cursor: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(14 + cursor.len());
    b.extend_from_slice(CURSOR_MAGIC);
    b.extend_from_slice(&CURSOR_VERSION.to_le_bytes());
    b.extend_from_slice(&(cursor.len() as u32).to_le_bytes());
    b.extend_from_slice(cursor.as_bytes());
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

pub(crate) fn decode_cursor(b: &[u8]) -> std::result::Result<String, String> {
    if b.len() < 14 {
        return Err(format!("{} bytes, shorter than a header", b.len()));
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return Err("crc mismatch".into());
    }
    if &body[..4] != CURSOR_MAGIC {
        return Err("bad magic".into());
    }
    let version = u16::from_le_bytes([body[4], body[5]]);
    if version != CURSOR_VERSION {
        return Err(format!("unsupported version {version}"));
    }
    let len = u32::from_le_bytes([body[6], body[7], body[8], body[9]]) as usize;
    if body.len() != 10 + len {
        return Err("length does not match".into());
    }
    String::from_utf8(body[10..].to_vec()).map_err(|_| "cursor is not utf-8".into())
}

fn load_cursor(path: &Path) -> Result<Option<String>> {
    crate::state_file::load(path, decode_cursor)
}

pub(crate) fn store_cursor(path: &Path, cursor: &str) -> Result<()> {
    crate::state_file::store(path, &encode_cursor(cursor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_journal_json() {
        let base = Labels::from_pairs([("host_group", "web")]).unwrap();
        let line = r#"{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1700000000000001","MESSAGE":"hello","PRIORITY":"3","_SYSTEMD_UNIT":"nginx.service","SYSLOG_IDENTIFIER":"nginx","_PID":"42"}"#;
        let (l, e, c) = parse_journal_line(line, &base, 1024).unwrap();
        assert_eq!(c, "s=1;i=2");
        assert_eq!(e.line, "hello");
        assert_eq!(e.timestamp_ns, 1_700_000_000_000_001_000);
        assert_eq!(l.get("unit"), Some("nginx.service"));
        assert_eq!(l.get("level"), Some("err"));
        assert_eq!(l.get("source"), Some("journal"));
        assert_eq!(l.get("host_group"), Some("web"));
        assert_eq!(e.structured_metadata.len(), 2);
        let bin = r#"{"__CURSOR":"c","MESSAGE":[104,105,255]}"#;
        let (_, e, _) = parse_journal_line(bin, &base, 1024).unwrap();
        assert_eq!(e.line, "hi\u{fffd}");
        assert!(parse_journal_line("{}", &base, 1024).is_none());
        assert!(parse_journal_line("not json", &base, 1024).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn cursor_file_round_trips(c in ".{0,100}") {
            prop_assert_eq!(decode_cursor(&encode_cursor(&c)).unwrap(), c);
        }

        #[test]
        fn arbitrary_cursor_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_cursor(&b);
        }
    }
}
