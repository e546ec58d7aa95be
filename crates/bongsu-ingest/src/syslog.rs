//! Syslog messages: RFC 5424 and RFC 3164 (BSD), parsed tolerantly.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use bongsu_model::{Label, Labels, LogEntry, LogStream, LogsRecord};

use crate::limits::Limits;

/// One syslog message as a log stream's labels and entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogRecord {
    /// `source="syslog"` plus `host`, `app`, `facility`, `severity`, `level` when known; a line
    /// that does not parse gets `unparsed="true"` and `syslog_parse_error="<reason>"`.
    pub labels: Labels,
    /// The original line (lossy UTF-8, without the trailing newline and the BOM before MSG),
    /// at the message's timestamp or at `now` when it has none; `procid`, `msgid` and
    /// structured data (`<SD-ID>.<PARAM-NAME>`) are structured metadata.
    pub entry: LogEntry,
}

/// Groups parsed messages into one `logs` record: one stream per distinct label set, entries
/// in arrival order.
pub fn syslog_batch(records: impl IntoIterator<Item = SyslogRecord>) -> LogsRecord {
    let mut index: HashMap<Labels, usize, BuildHasherDefault<FxHasher>> = HashMap::default();
    let mut streams: Vec<LogStream> = Vec::new();
    for r in records {
        match index.get(&r.labels) {
            Some(&i) => streams[i].entries.push(r.entry),
            None => {
                index.insert(r.labels.clone(), streams.len());
                streams.push(LogStream {
                    labels: r.labels,
                    entries: vec![r.entry],
                });
            }
        }
    }
    LogsRecord { streams }
}

/// A fast non-cryptographic hasher for grouping a batch by label set (the keys come from one
/// batch of messages and the map lives only while the batch is grouped).
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// The `level` label for a syslog severity (0–7).
fn level(severity: u8) -> &'static str {
    match severity {
        0..=2 => "critical",
        3 => "error",
        4 => "warn",
        5 | 6 => "info",
        _ => "debug",
    }
}

/// The facility name for a facility number (0–23).
pub fn facility_name(facility: u8) -> Option<&'static str> {
    FACILITIES.get(usize::from(facility)).copied()
}

/// The severity name for a severity number (0–7).
pub fn severity_name(severity: u8) -> Option<&'static str> {
    SEVERITIES.get(usize::from(severity)).copied()
}

struct Parsed<'a, 'm> {
    facility: Option<u8>,
    severity: Option<u8>,
    timestamp_ns: Option<i64>,
    host: Option<Cow<'a, str>>,
    app: Option<Cow<'a, str>>,
    metadata: &'m mut Vec<SyslogMeta<'a>>,
    error: Option<&'static str>,
}

/// A structured metadata pair (name, value) of a parsed message, borrowing from the message
/// where it can.
pub type SyslogMeta<'a> = (Cow<'a, str>, Cow<'a, str>);

/// The stream of a syslog message, before it becomes a label set: what its labels are made
/// of, borrowing host and app from the message. Cheap to hash and compare, so receivers group
/// messages by it and build each distinct stream's [`Labels`] once
/// ([`SyslogStream::labels`]) instead of once per message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SyslogStream<'a> {
    facility: Option<u8>,
    severity: Option<u8>,
    error: Option<&'static str>,
    host: Option<Cow<'a, str>>,
    app: Option<Cow<'a, str>>,
}

impl SyslogStream<'_> {
    /// Calls `f` with each label's name and value, in name order (the order of [`Labels`]).
    pub fn for_each_label(&self, mut f: impl FnMut(&str, &str)) {
        if let Some(a) = &self.app {
            f("app", a);
        }
        if let Some(fac) = self.facility {
            f("facility", facility_name(fac).unwrap_or("unknown"));
        }
        if let Some(h) = &self.host {
            f("host", h);
        }
        if let Some(sev) = self.severity {
            f("level", level(sev));
            f("severity", severity_name(sev).unwrap_or("unknown"));
        }
        f("source", "syslog");
        if let Some(e) = self.error {
            f("syslog_parse_error", e);
            f("unparsed", "true");
        }
    }

    /// The stream's label set: `source="syslog"` plus `host`, `app`, `facility`, `severity`,
    /// `level` when known; `unparsed="true"` and `syslog_parse_error` for a message that did
    /// not parse.
    pub fn labels(&self) -> Labels {
        let mut labels = Vec::with_capacity(6);
        self.for_each_label(|n, v| labels.push(Label::new(n, v)));
        // Names are fixed and distinct; values are bounded by the parser.
        Labels::new(labels).unwrap_or_default()
    }

    /// Whether the message did not parse (its labels hold `unparsed="true"`).
    pub fn is_unparsed(&self) -> bool {
        self.error.is_some()
    }

    /// The same stream owning its host and app.
    pub fn into_owned(self) -> SyslogStream<'static> {
        SyslogStream {
            facility: self.facility,
            severity: self.severity,
            error: self.error,
            host: self.host.map(|h| Cow::Owned(h.into_owned())),
            app: self.app.map(|a| Cow::Owned(a.into_owned())),
        }
    }
}

/// One syslog message as its stream (borrowing from the message bytes) and its entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogMessage<'a> {
    pub stream: SyslogStream<'a>,
    /// As in [`SyslogRecord::entry`].
    pub entry: LogEntry,
}

/// Parses one syslog message (one frame or UDP datagram). Never fails: a message that does
/// not parse still yields a record, labelled `unparsed="true"`. `now_ns` stamps messages
/// without a timestamp and supplies the year of RFC 3164 timestamps (taken as UTC).
/// Lines longer than `limits.max_line_bytes` are cut at a character boundary.
pub fn parse_syslog(msg: &[u8], now_ns: i64, limits: &Limits) -> SyslogRecord {
    let m = parse_syslog_message(msg, now_ns, limits);
    SyslogRecord {
        labels: m.stream.labels(),
        entry: m.entry,
    }
}

/// [`parse_syslog`] without building the label set: the stream borrows host and app from
/// `msg`. Receivers group messages by [`SyslogMessage::stream`] and build each distinct
/// stream's labels once.
pub fn parse_syslog_message<'a>(msg: &'a [u8], now_ns: i64, limits: &Limits) -> SyslogMessage<'a> {
    let mut metadata = Vec::new();
    let m = parse_syslog_ref(msg, now_ns, limits, &mut metadata);
    SyslogMessage {
        stream: m.stream,
        entry: LogEntry {
            timestamp_ns: m.timestamp_ns,
            line: m.line.into_owned(),
            structured_metadata: metadata
                .into_iter()
                .map(|(n, v)| Label::new(n, v))
                .collect(),
        },
    }
}

/// One syslog message borrowing its stream, line and metadata from the message bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogMessageRef<'a> {
    pub stream: SyslogStream<'a>,
    /// As in [`SyslogRecord::entry`].
    pub timestamp_ns: i64,
    /// As in [`SyslogRecord::entry`]; borrowed unless it had to change (invalid UTF-8, a BOM).
    pub line: Cow<'a, str>,
}

/// [`parse_syslog_message`] without copying: the line and the structured metadata borrow from
/// `msg` where they can, and the metadata pairs are appended to `metadata` (nothing is
/// appended for a message that does not parse). Receivers write the parts straight into
/// their batches instead of allocating an entry per message.
pub fn parse_syslog_ref<'a>(
    msg: &'a [u8],
    now_ns: i64,
    limits: &Limits,
    metadata: &mut Vec<SyslogMeta<'a>>,
) -> SyslogMessageRef<'a> {
    let metadata_start = metadata.len();
    let mut msg = msg;
    while let Some((&last, rest)) = msg.split_last() {
        if last == b'\n' || last == b'\r' || last == 0 {
            msg = rest;
        } else {
            break;
        }
    }
    let mut p = Parsed {
        facility: None,
        severity: None,
        timestamp_ns: None,
        host: None,
        app: None,
        metadata,
        error: None,
    };
    let mut bom_at = None;
    match parse_pri(msg) {
        None => p.error = Some("missing or invalid PRI"),
        Some((pri, rest)) => {
            p.facility = Some(pri >> 3);
            p.severity = Some(pri & 7);
            let body_offset = msg.len() - rest.len();
            if rest.len() >= 2 && rest[0] == b'1' && rest[1] == b' ' {
                match parse_5424(&rest[2..], &mut p) {
                    Ok(Some(bom)) => bom_at = Some(body_offset + 2 + bom),
                    Ok(None) => {}
                    Err(e) => p.error = Some(e),
                }
            } else {
                parse_3164(rest, now_ns, &mut p);
            }
        }
    }
    let line = message_line(msg, bom_at, limits.max_line_bytes);
    let parsed = p.error.is_none();
    if !parsed {
        p.metadata.truncate(metadata_start);
    }
    let stream = SyslogStream {
        facility: p.facility,
        severity: p.severity,
        error: p.error,
        host: p.host.filter(|h| parsed && valid_label_value(h, limits)),
        app: p.app.filter(|a| parsed && valid_label_value(a, limits)),
    };
    SyslogMessageRef {
        stream,
        timestamp_ns: p.timestamp_ns.unwrap_or(now_ns),
        line,
    }
}

/// The entry's line: `msg` without the BOM at `bom_at`, as lossy UTF-8, cut to at most
/// `max_bytes` at a character boundary. Valid UTF-8 without a BOM (the common case) is
/// borrowed.
fn message_line(msg: &[u8], bom_at: Option<usize>, max_bytes: usize) -> Cow<'_, str> {
    let Some(at) = bom_at else {
        return match std::str::from_utf8(msg) {
            Ok(s) => Cow::Borrowed(cut_at_char_boundary(s, max_bytes)),
            Err(_) => Cow::Owned(lossy_cut(msg, max_bytes)),
        };
    };
    let mut v = Vec::with_capacity(msg.len() - 3);
    v.extend_from_slice(&msg[..at]);
    v.extend_from_slice(&msg[at + 3..]);
    Cow::Owned(lossy_cut(&v, max_bytes))
}

/// `bytes` as lossy UTF-8, cut to at most `max_bytes` at a character boundary.
fn lossy_cut(bytes: &[u8], max_bytes: usize) -> String {
    let mut line = String::from_utf8_lossy(bytes).into_owned();
    let cut = cut_at_char_boundary(&line, max_bytes).len();
    line.truncate(cut);
    line
}

/// The longest prefix of `s` of at most `max_bytes` that ends on a character boundary.
fn cut_at_char_boundary(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut cut = max_bytes;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

fn valid_label_value(v: &str, limits: &Limits) -> bool {
    !v.is_empty() && v.len() <= limits.max_label_value_bytes
}

/// `<PRI>` with 1–3 digits and a value up to 191.
fn parse_pri(msg: &[u8]) -> Option<(u8, &[u8])> {
    let rest = msg.strip_prefix(b"<")?;
    let end = rest.iter().take(4).position(|&b| b == b'>')?;
    if end == 0 || end > 3 || !rest[..end].iter().all(u8::is_ascii_digit) {
        return None;
    }
    if end > 1 && rest[0] == b'0' {
        return None;
    }
    let v = rest[..end]
        .iter()
        .fold(0u16, |v, &d| v * 10 + u16::from(d - b'0'));
    if v > 191 {
        return None;
    }
    Some((v as u8, &rest[end + 1..]))
}

fn next_field<'a>(s: &mut &'a [u8]) -> Option<&'a [u8]> {
    if s.is_empty() {
        return None;
    }
    let end = memchr::memchr(b' ', s).unwrap_or(s.len());
    let field = &s[..end];
    *s = s.get(end + 1..).unwrap_or(&[]);
    Some(field)
}

fn nil_or_str(field: &[u8]) -> Option<Cow<'_, str>> {
    if field == b"-" || field.is_empty() {
        None
    } else {
        Some(String::from_utf8_lossy(field))
    }
}

/// RFC 5424 after `<PRI>1 `. Returns the offset (in `s`) of a BOM starting MSG, if any.
fn parse_5424<'a>(s: &'a [u8], p: &mut Parsed<'a, '_>) -> Result<Option<usize>, &'static str> {
    let start_len = s.len();
    let mut rest = s;
    let ts = next_field(&mut rest).ok_or("missing timestamp")?;
    if ts != b"-" {
        let ts = std::str::from_utf8(ts).map_err(|_| "invalid timestamp")?;
        p.timestamp_ns = Some(parse_rfc3339(ts).ok_or("invalid timestamp")?);
    }
    let host = next_field(&mut rest).ok_or("missing hostname")?;
    let app = next_field(&mut rest).ok_or("missing app-name")?;
    let procid = next_field(&mut rest).ok_or("missing procid")?;
    let msgid = next_field(&mut rest).ok_or("missing msgid")?;
    for f in [host, app, procid, msgid] {
        if f.is_empty() || !f.iter().all(|b| (33..=126).contains(b)) {
            return Err("invalid header field");
        }
    }
    p.host = nil_or_str(host);
    p.app = nil_or_str(app);
    if let Some(v) = nil_or_str(procid) {
        p.metadata.push((Cow::Borrowed("procid"), v));
    }
    if let Some(v) = nil_or_str(msgid) {
        p.metadata.push((Cow::Borrowed("msgid"), v));
    }
    // STRUCTURED-DATA
    if rest.first() == Some(&b'-') {
        rest = &rest[1..];
    } else if rest.first() == Some(&b'[') {
        while rest.first() == Some(&b'[') {
            rest = parse_sd_element(&rest[1..], p.metadata)?;
        }
    } else {
        return Err("missing structured data");
    }
    match rest.first() {
        None => return Ok(None),
        Some(b' ') => rest = &rest[1..],
        Some(_) => return Err("invalid structured data"),
    }
    if rest.starts_with(b"\xEF\xBB\xBF") {
        return Ok(Some(start_len - rest.len()));
    }
    Ok(None)
}

fn sd_name(s: &[u8]) -> usize {
    s.iter()
        .position(|&b| !(33..=126).contains(&b) || matches!(b, b'=' | b']' | b'"' | b' '))
        .unwrap_or(s.len())
}

/// Parses one `SD-ID *(SP PARAM-NAME="value")]` after its `[`; returns the rest.
fn parse_sd_element<'a>(
    s: &'a [u8],
    out: &mut Vec<SyslogMeta<'a>>,
) -> Result<&'a [u8], &'static str> {
    let n = sd_name(s);
    if n == 0 || n > 32 {
        return Err("invalid SD-ID");
    }
    let id = String::from_utf8_lossy(&s[..n]);
    let mut rest = &s[n..];
    loop {
        match rest.first() {
            Some(b']') => return Ok(&rest[1..]),
            Some(b' ') => rest = &rest[1..],
            _ => return Err("invalid structured data"),
        }
        let n = sd_name(rest);
        if n == 0 || n > 32 {
            return Err("invalid SD-PARAM name");
        }
        let name = format!("{id}.{}", String::from_utf8_lossy(&rest[..n]));
        rest = &rest[n..];
        if !rest.starts_with(b"=\"") {
            return Err("invalid SD-PARAM");
        }
        rest = &rest[2..];
        let (value, len) = sd_value(rest)?;
        rest = &rest[len + 1..];
        out.push((Cow::Owned(name), value));
    }
}

/// An SD-PARAM value after its opening quote: the value (escapes `\\"`, `\\\\`, `\\]` undone;
/// borrowed when it has none) and the offset of its closing quote.
fn sd_value(s: &[u8]) -> Result<(Cow<'_, str>, usize), &'static str> {
    let mut owned: Option<Vec<u8>> = None;
    let mut i = 0;
    loop {
        match s.get(i) {
            None => return Err("unterminated SD-PARAM value"),
            Some(b'"') => break,
            Some(b'\\') if matches!(s.get(i + 1), Some(b'"' | b'\\' | b']')) => {
                owned.get_or_insert_with(|| s[..i].to_vec()).push(s[i + 1]);
                i += 2;
            }
            Some(&b) => {
                if let Some(v) = &mut owned {
                    v.push(b);
                }
                i += 1;
            }
        }
    }
    let value = match owned {
        None => String::from_utf8_lossy(&s[..i]),
        Some(v) => Cow::Owned(String::from_utf8_lossy(&v).into_owned()),
    };
    Ok((value, i))
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// RFC 3164 after `<PRI>`: `Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG`, tolerating a missing
/// hostname, an RFC 3339 timestamp in place of the BSD one, and no timestamp at all.
fn parse_3164<'a>(s: &'a [u8], now_ns: i64, p: &mut Parsed<'a, '_>) {
    let mut rest = s;
    if let Some(ts) = parse_bsd_timestamp(rest, now_ns) {
        p.timestamp_ns = Some(ts);
        rest = rest.get(16..).unwrap_or(&[]);
    } else {
        let mut probe = rest;
        if let Some(tok) = next_field(&mut probe) {
            if let Some(ts) = std::str::from_utf8(tok).ok().and_then(parse_rfc3339) {
                p.timestamp_ns = Some(ts);
                rest = probe;
            } else {
                // No timestamp: the whole remainder is the message (RFC 3164 §4.3.3).
                return;
            }
        }
    }
    // HOSTNAME, unless the next token already looks like a TAG.
    let mut probe = rest;
    let Some(first) = next_field(&mut probe) else {
        return;
    };
    let looks_like_tag = first.ends_with(b":") || first.contains(&b'[');
    if !looks_like_tag {
        p.host = nil_or_str(first);
        rest = probe;
    }
    // TAG: up to '[', ':' or ' '.
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'[' | b':' | b' '))
        .unwrap_or(rest.len());
    if end == 0 || end > 48 {
        return;
    }
    let tag = &rest[..end];
    let after = &rest[end..];
    let mut pid = None;
    let after = if let Some(inner) = after.strip_prefix(b"[") {
        match memchr::memchr(b']', inner) {
            Some(close) => {
                pid = Some(&inner[..close]);
                &inner[close + 1..]
            }
            None => return,
        }
    } else {
        after
    };
    if !after.starts_with(b":") {
        // Without the colon this is not a tag; leave the line as message only.
        return;
    }
    p.app = nil_or_str(tag);
    if let Some(pid) = pid.and_then(nil_or_str) {
        p.metadata.push((Cow::Borrowed("procid"), pid));
    }
}

/// `Mmm dd hh:mm:ss ` (day space-padded), with the year chosen nearest to `now_ns`.
fn parse_bsd_timestamp(s: &[u8], now_ns: i64) -> Option<i64> {
    if s.len() < 16
        || s[3] != b' '
        || s[6] != b' '
        || s[9] != b':'
        || s[12] != b':'
        || s[15] != b' '
    {
        return None;
    }
    let month = MONTHS.iter().position(|m| &s[..3] == *m)? as u32 + 1;
    let day = match (s[4], s[5]) {
        (b' ', d) if d.is_ascii_digit() => u32::from(d - b'0'),
        (a, b) if a.is_ascii_digit() && b.is_ascii_digit() => {
            u32::from(a - b'0') * 10 + u32::from(b - b'0')
        }
        _ => return None,
    };
    let two = |i: usize| -> Option<u32> {
        let (a, b) = (s[i], s[i + 1]);
        (a.is_ascii_digit() && b.is_ascii_digit())
            .then(|| u32::from(a - b'0') * 10 + u32::from(b - b'0'))
    };
    let (h, m, sec) = (two(7)?, two(10)?, two(13)?);
    if day == 0 || day > 31 || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let now_s = now_ns.div_euclid(1_000_000_000);
    let (year, _, _) = civil_from_days(now_s.div_euclid(86_400));
    let candidates = [year - 1, year, year + 1]
        .map(|y| unix_seconds(y, month, day, h, m, sec).map(|t| (t, (t - now_s).abs())));
    let (best, _) = candidates
        .into_iter()
        .flatten()
        .min_by_key(|&(_, dist)| dist)?;
    best.checked_mul(1_000_000_000)
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn unix_seconds(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<i64> {
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) {
        return None;
    }
    Some(
        days_from_civil(y, mo, d) * 86_400
            + i64::from(h) * 3600
            + i64::from(mi) * 60
            + i64::from(s),
    )
}

/// RFC 3339 / RFC 5424 timestamp: `YYYY-MM-DDThh:mm:ss[.frac](Z|±hh:mm)` to Unix ns.
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let t = b.get(r)?;
        if !t.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(t.iter().fold(0u32, |v, &d| v * 10 + u32::from(d - b'0')))
    };
    let (y, mo, d, h, mi, sec) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = &b[start..i];
        if frac.is_empty() || frac.len() > 9 {
            return None;
        }
        let digits = frac.iter().fold(0i64, |v, &d| v * 10 + i64::from(d - b'0'));
        nanos = digits * 10i64.pow(9 - frac.len() as u32);
    }
    let offset: i64 = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = i64::from(num(i + 1..i + 3)?);
            let om = i64::from(num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let secs = unix_seconds(i64::from(y), mo, d, h, mi, sec)? - offset;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ref_parse_borrows_and_appends_metadata() {
        let limits = Limits::default();
        let msg = br#"<13>1 2024-01-02T03:04:05Z h a 42 ID7 [x@1 k="v\"q" p="plain"] hello"#;
        let mut md: Vec<SyslogMeta<'_>> = vec![("keep".into(), "me".into())];
        let m = parse_syslog_ref(msg, 0, &limits, &mut md);
        assert!(matches!(m.line, Cow::Borrowed(_)));
        assert_eq!(m.line.as_bytes(), &msg[..]);
        let pairs: Vec<(&str, &str)> = md.iter().map(|(n, v)| (&**n, &**v)).collect();
        assert_eq!(
            pairs,
            [
                ("keep", "me"),
                ("procid", "42"),
                ("msgid", "ID7"),
                ("x@1.k", "v\"q"),
                ("x@1.p", "plain")
            ]
        );
        assert!(matches!(md[3].1, Cow::Owned(_)));
        assert!(matches!(md[4].1, Cow::Borrowed(_)));
        // A message that does not parse appends nothing, even after a good header.
        let bad = br#"<13>1 2024-01-02T03:04:05Z h a 42 ID7 [x@1 k="v" oops"#;
        let m = parse_syslog_ref(bad, 0, &limits, &mut md);
        assert!(m.stream.is_unparsed());
        assert_eq!(md.len(), 5);
        // A BOM before MSG is removed, so that line is owned.
        let bom = b"<13>1 - h a - - - \xEF\xBB\xBFhi";
        let m = parse_syslog_ref(bom, 0, &limits, &mut md);
        assert_eq!(m.line, "<13>1 - h a - - - hi");
    }

    const NOW: i64 = 1_700_000_000_000_000_000; // 2023-11-14T22:13:20Z

    fn parse(s: &str) -> SyslogRecord {
        parse_syslog(s.as_bytes(), NOW, &Limits::default())
    }

    #[test]
    fn streams_are_equal_exactly_when_their_labels_are() {
        let msgs = [
            "<165>1 2003-10-11T22:14:15.003Z web-01 sshd 12 - - a",
            "<165>1 2003-10-11T22:14:16.003Z web-01 sshd 13 ID - b",
            "<165>1 2003-10-11T22:14:15.003Z web-02 sshd 12 - - a",
            "<166>1 2003-10-11T22:14:15.003Z web-01 sshd 12 - - a",
            "<165>Oct 11 22:14:15 web-01 sshd[12]: a",
            "<165>Oct 11 22:14:15 web-01 cron: a",
            "no pri at all",
            "<999> bad pri",
            "<13>1 garbage",
        ];
        let parsed: Vec<SyslogMessage<'_>> = msgs
            .iter()
            .map(|m| parse_syslog_message(m.as_bytes(), NOW, &Limits::default()))
            .collect();
        for a in &parsed {
            let mut names = Vec::new();
            a.stream.for_each_label(|n, _| names.push(n.to_owned()));
            let labels = a.stream.labels();
            let sorted: Vec<String> = labels.iter().map(|l| l.name.clone()).collect();
            assert_eq!(names, sorted, "for_each_label goes in label order");
            assert_eq!(a.stream.is_unparsed(), labels.get("unparsed").is_some());
            assert_eq!(a.stream.clone().into_owned(), a.stream);
            for b in &parsed {
                assert_eq!(a.stream == b.stream, labels == b.stream.labels());
            }
        }
        assert_eq!(parsed[0].stream, parsed[1].stream);
        assert_eq!(parsed[4].stream, parsed[0].stream);
        assert_eq!(
            parsed[0].stream.labels().to_string(),
            r#"{app="sshd", facility="local4", host="web-01", level="info", severity="notice", source="syslog"}"#
        );
    }

    #[test]
    fn rfc5424_full() {
        let line = "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Appli\\\"cation\" eventID=\"1011\"][x@1 a=\"b\\]\"] \u{feff}An application event log entry...\n";
        let r = parse(line);
        assert_eq!(
            r.labels.to_string(),
            r#"{app="evntslog", facility="local4", host="mymachine.example.com", level="info", severity="notice", source="syslog"}"#
        );
        assert_eq!(r.entry.timestamp_ns, 1_065_910_455_003_000_000);
        assert!(!r.entry.line.contains('\u{feff}'));
        assert!(r
            .entry
            .line
            .ends_with("\"] An application event log entry..."));
        let md: Vec<(String, String)> = r
            .entry
            .structured_metadata
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        assert_eq!(
            md,
            [
                ("msgid", "ID47"),
                ("exampleSDID@32473.iut", "3"),
                ("exampleSDID@32473.eventSource", "Appli\"cation"),
                ("exampleSDID@32473.eventID", "1011"),
                ("x@1.a", "b]"),
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
    }

    #[test]
    fn rfc5424_nil_fields_and_offsets() {
        let r = parse("<34>1 2003-08-24T05:14:15.000003-07:00 - - 8710 - - %% It's time");
        assert_eq!(r.entry.timestamp_ns, 1_061_727_255_000_003_000);
        assert_eq!(r.labels.get("host"), None);
        assert_eq!(r.labels.get("facility"), Some("auth"));
        assert_eq!(r.labels.get("severity"), Some("crit"));
        assert_eq!(r.labels.get("level"), Some("critical"));
        assert_eq!(
            r.entry.structured_metadata,
            vec![Label::new("procid", "8710")]
        );
        let r = parse("<13>1 - host app - - -");
        assert_eq!(r.entry.timestamp_ns, NOW);
        assert_eq!(r.labels.get("app"), Some("app"));
    }

    #[test]
    fn rfc3164_with_year_from_now() {
        let r = parse(
            "<34>Oct 11 22:14:15 mymachine su[123]: 'su root' failed for lonvick on /dev/pts/8",
        );
        assert_eq!(r.labels.get("host"), Some("mymachine"));
        assert_eq!(r.labels.get("app"), Some("su"));
        assert_eq!(
            r.entry.structured_metadata,
            vec![Label::new("procid", "123")]
        );
        // 2023-10-11T22:14:15Z
        assert_eq!(r.entry.timestamp_ns, 1_697_062_455_000_000_000);
        // A December message received on January 1st belongs to the previous year.
        let jan1 = 1_704_067_200_000_000_000; // 2024-01-01T00:00:00Z
        let r = parse_syslog(b"<13>Dec 31 23:59:50 h app: x", jan1, &Limits::default());
        assert_eq!(r.entry.timestamp_ns, jan1 - 10_000_000_000);
        // Day padded with a space; no hostname.
        let r = parse("<13>Nov  4 01:02:03 myapp: hello");
        assert_eq!(r.labels.get("app"), Some("myapp"));
        assert_eq!(r.labels.get("host"), None);
        assert_eq!(r.labels.get("unparsed"), None);
    }

    #[test]
    fn rfc3164_with_rfc3339_timestamp() {
        let r = parse("<14>2024-01-02T03:04:05.5+00:00 web1 nginx: GET /");
        assert_eq!(r.entry.timestamp_ns, 1_704_164_645_500_000_000);
        assert_eq!(r.labels.get("host"), Some("web1"));
        assert_eq!(r.labels.get("app"), Some("nginx"));
    }

    #[test]
    fn unparsable_lines_are_kept_and_labelled() {
        let r = parse("hello world");
        assert_eq!(r.labels.get("unparsed"), Some("true"));
        assert_eq!(
            r.labels.get("syslog_parse_error"),
            Some("missing or invalid PRI")
        );
        assert_eq!(r.labels.get("source"), Some("syslog"));
        assert_eq!(r.entry.line, "hello world");
        assert_eq!(r.entry.timestamp_ns, NOW);
        let r = parse("<13>1 2003-13-45T00:00:00Z h a - - - m");
        assert_eq!(
            r.labels.get("syslog_parse_error"),
            Some("invalid timestamp")
        );
        assert_eq!(r.labels.get("facility"), Some("user"));
        assert_eq!(parse("<192>x").labels.get("unparsed"), Some("true"));
        assert_eq!(parse("<013>x").labels.get("unparsed"), Some("true"));
    }

    #[test]
    fn long_lines_are_cut_on_a_char_boundary() {
        let limits = Limits {
            max_line_bytes: 10,
            ..Limits::default()
        };
        let r = parse_syslog("<13>ééééééé".as_bytes(), NOW, &limits);
        assert_eq!(r.entry.line, "<13>ééé");
    }

    #[test]
    fn batches_group_by_stream() {
        let lines = [
            "<13>Nov  4 01:02:03 h1 a: one",
            "<13>Nov  4 01:02:04 h2 a: two",
            "<13>Nov  4 01:02:05 h1 a: three",
            "garbage",
        ];
        let rec = syslog_batch(lines.iter().map(|l| parse(l)));
        assert_eq!(rec.streams.len(), 3);
        assert_eq!(rec.streams[0].entries.len(), 2);
        assert!(rec.streams[0].entries[1].line.ends_with("three"));
        assert_eq!(rec.entry_count(), 4);
    }

    #[test]
    fn civil_round_trip() {
        for days in [-800_000i64, -1, 0, 1, 59, 365, 10_957, 19_000, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), now in any::<i64>()) {
            let r = parse_syslog(&bytes, now, &Limits::default());
            prop_assert_eq!(r.labels.get("source"), Some("syslog"));
        }

        /// The one-copy line builder gives what lossy conversion and then cutting gives.
        #[test]
        fn message_line_matches_lossy_then_cut(bytes in proptest::collection::vec(any::<u8>(), 0..60), max in 1usize..70, bom in any::<bool>()) {
            let mut msg = bytes.clone();
            let bom_at = (bom && !msg.is_empty()).then(|| {
                let at = msg.len() / 2;
                msg.splice(at..at, *b"\xEF\xBB\xBF");
                at
            });
            let mut expected = String::from_utf8_lossy(&bytes).into_owned();
            let mut cut = max.min(expected.len());
            while !expected.is_char_boundary(cut) {
                cut -= 1;
            }
            expected.truncate(cut);
            prop_assert_eq!(message_line(&msg, bom_at, max), expected);
        }

        #[test]
        fn header_like_garbage_never_panics(s in "<[0-9]{1,3}>(1 )?[ -~\\[\\]\"=]{0,80}", now in any::<i64>()) {
            let _ = parse_syslog(s.as_bytes(), now, &Limits::default());
        }
    }
}
