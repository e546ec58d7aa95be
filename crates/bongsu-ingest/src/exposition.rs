//! Exposition parsers: the Prometheus text format 0.0.4 and OpenMetrics 1.0 (strict).

use std::collections::{HashMap, HashSet};

use bongsu_model::{Label, Labels, MetricKind, MetricMetadata, MetricsRecord, Sample, Series};

use crate::error::{Error, Result};
use crate::labels::{build_series_labels, is_valid_label_name, is_valid_metric_name};
use crate::limits::{Limits, KEY_EXPO_LINE, KEY_LABELS, KEY_SAMPLES};

/// Which exposition format a scrape answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpositionFormat {
    /// `text/plain; version=0.0.4`, and anything not OpenMetrics.
    PrometheusText,
    /// `application/openmetrics-text; version=1.0.0`: parsed strictly.
    OpenMetrics,
}

impl ExpositionFormat {
    /// The format for a scrape response's `Content-Type`.
    pub fn from_content_type(content_type: Option<&str>) -> Self {
        let media = content_type
            .and_then(|ct| ct.split(';').next())
            .map(str::trim)
            .unwrap_or("");
        if media.eq_ignore_ascii_case("application/openmetrics-text") {
            Self::OpenMetrics
        } else {
            Self::PrometheusText
        }
    }
}

/// A parsed exposition: one sample per series (label set includes `__name__`) and the
/// metadata of each family that had `# TYPE`, `# HELP` or `# UNIT`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Exposition {
    pub samples: Vec<(Labels, Sample)>,
    pub metadata: Vec<MetricMetadata>,
}

impl Exposition {
    /// The record to append to the `metrics` topic.
    pub fn into_record(self) -> MetricsRecord {
        MetricsRecord {
            series: self
                .samples
                .into_iter()
                .map(|(labels, s)| Series {
                    labels,
                    samples: vec![s],
                })
                .collect(),
            metadata: self.metadata,
        }
    }
}

/// Parses a scraped exposition. Samples without a timestamp get `default_timestamp_ms`
/// (the scrape time). Exemplars are parsed and validated, then dropped. The whole input is
/// accepted or refused.
pub fn parse_exposition(
    input: &[u8],
    format: ExpositionFormat,
    default_timestamp_ms: i64,
    limits: &Limits,
) -> Result<Exposition> {
    let text = std::str::from_utf8(input).map_err(|e| Error::Exposition {
        line: 1 + input[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count(),
        detail: "invalid UTF-8: expositions are UTF-8 text".to_owned(),
    })?;
    match format {
        ExpositionFormat::OpenMetrics => OmParser::new(default_timestamp_ms, limits).parse(text),
        ExpositionFormat::PrometheusText => parse_text(text, default_timestamp_ms, limits),
    }
}

type RawLabels<'a> = Vec<(&'a str, String)>;

/// A cursor over one line.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, b: u8, what: &str) -> std::result::Result<(), String> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(format!("expected {what} at column {}", self.pos + 1))
        }
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// Bytes up to (not including) any of `stops`, or the end.
    fn token(&mut self, stops: &[u8]) -> &'a str {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if stops.contains(&b) {
                break;
            }
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }

    fn rest(&self) -> &'a str {
        &self.s[self.pos.min(self.s.len())..]
    }

    /// Parses `{name="value",...}` starting at `{`. `lenient` allows blanks between tokens
    /// and a trailing comma (text format 0.0.4).
    fn labels(&mut self, lenient: bool, max: usize) -> std::result::Result<RawLabels<'a>, String> {
        self.expect(b'{', "'{'")?;
        let mut out: RawLabels<'a> = Vec::new();
        if lenient {
            self.skip_blanks();
        }
        if self.eat(b'}') {
            return Ok(out);
        }
        loop {
            let name = self.token(b"=\"{},} \t");
            if !is_valid_label_name(name) {
                return Err(format!("invalid label name {name:?}"));
            }
            if lenient {
                self.skip_blanks();
            }
            self.expect(b'=', "'=' after label name")?;
            if lenient {
                self.skip_blanks();
            }
            self.expect(b'"', "'\"' opening the label value")?;
            let value = self.quoted()?;
            if out.len() >= max {
                return Err(format!(
                    "more than {max} labels: drop some or raise {KEY_LABELS}"
                ));
            }
            if out.iter().any(|(n, _)| *n == name) {
                return Err(format!("duplicate label name {name:?}"));
            }
            out.push((name, value));
            if lenient {
                self.skip_blanks();
            }
            if self.eat(b'}') {
                return Ok(out);
            }
            self.expect(b',', "',' or '}' after label value")?;
            if lenient {
                self.skip_blanks();
                if self.eat(b'}') {
                    return Ok(out);
                }
            }
        }
    }

    /// Reads an escaped string up to the closing quote (consumed). `\\`, `\"` and `\n` are
    /// unescaped; any other backslash is kept as is.
    fn quoted(&mut self) -> std::result::Result<String, String> {
        let bytes = self.s.as_bytes();
        let mut out = Vec::new();
        let mut i = self.pos;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    self.pos = i + 1;
                    // Only whole UTF-8 sequences were copied from a &str.
                    return String::from_utf8(out).map_err(|_| "invalid UTF-8".to_owned());
                }
                b'\\' => match bytes.get(i + 1) {
                    Some(b'\\') => {
                        out.push(b'\\');
                        i += 2;
                    }
                    Some(b'"') => {
                        out.push(b'"');
                        i += 2;
                    }
                    Some(b'n') => {
                        out.push(b'\n');
                        i += 2;
                    }
                    _ => {
                        out.push(b'\\');
                        i += 1;
                    }
                },
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        Err("label value without closing quote".to_owned())
    }
}

fn unescape_help(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.clone().next() {
            Some('\\') => {
                chars.next();
                out.push('\\');
            }
            Some('n') => {
                chars.next();
                out.push('\n');
            }
            _ => out.push('\\'),
        }
    }
    out
}

fn check_line_len(line: &str, lineno: usize, limits: &Limits) -> Result<()> {
    if line.len() > limits.max_exposition_line_bytes {
        return Err(Error::ItemTooLarge {
            what: "exposition line length",
            actual: line.len(),
            limit: limits.max_exposition_line_bytes,
            key: KEY_EXPO_LINE,
            context: format!("line {lineno}"),
        });
    }
    Ok(())
}

fn push_sample(
    out: &mut Exposition,
    name: &str,
    labels: RawLabels<'_>,
    sample: Sample,
    lineno: usize,
    limits: &Limits,
) -> Result<()> {
    if out.samples.len() >= limits.max_samples_per_request {
        return Err(Error::TooManyItems {
            what: "samples",
            actual: out.samples.len() + 1,
            limit: limits.max_samples_per_request,
            key: KEY_SAMPLES,
        });
    }
    let mut pairs = Vec::with_capacity(labels.len() + 1);
    pairs.push(Label::new(bongsu_model::METRIC_NAME, name));
    pairs.extend(labels.into_iter().map(|(n, v)| Label::new(n, v)));
    let labels = build_series_labels(pairs, limits, || format!("line {lineno}"))?;
    out.samples.push((labels, sample));
    Ok(())
}

fn ts_seconds_to_ms(secs: f64) -> i64 {
    // `as` saturates; timestamps past ±292 million years are clamped.
    (secs * 1000.0) as i64
}

// ---------------------------------------------------------------------------------------
// Prometheus text format 0.0.4
// ---------------------------------------------------------------------------------------

fn parse_text(text: &str, default_ts: i64, limits: &Limits) -> Result<Exposition> {
    let mut out = Exposition::default();
    let mut meta: Vec<MetricMetadata> = Vec::new();
    let mut meta_index: HashMap<String, usize> = HashMap::new();
    let mut typed: HashSet<String> = HashSet::new();
    let mut helped: HashSet<String> = HashSet::new();
    for (i, line) in text.split('\n').enumerate() {
        let lineno = i + 1;
        check_line_len(line, lineno, limits)?;
        let err = |detail: String| Error::Exposition {
            line: lineno,
            detail,
        };
        let mut c = Cursor { s: line, pos: 0 };
        c.skip_blanks();
        if c.at_end() {
            continue;
        }
        if c.eat(b'#') {
            c.skip_blanks();
            let keyword = c.token(b" \t");
            if keyword != "HELP" && keyword != "TYPE" {
                continue; // a plain comment
            }
            c.skip_blanks();
            let name = c.token(b" \t");
            if !is_valid_metric_name(name) {
                return Err(err(format!(
                    "invalid metric name {name:?} in {keyword} line"
                )));
            }
            let idx = match meta_index.get(name) {
                Some(&i) => i,
                None => {
                    meta.push(MetricMetadata {
                        family: name.to_owned(),
                        ..MetricMetadata::default()
                    });
                    meta_index.insert(name.to_owned(), meta.len() - 1);
                    meta.len() - 1
                }
            };
            if keyword == "HELP" {
                if !helped.insert(name.to_owned()) {
                    return Err(err(format!("second HELP line for metric {name:?}")));
                }
                if !c.eat(b' ') {
                    c.eat(b'\t');
                }
                meta[idx].help = unescape_help(c.rest());
            } else {
                if !typed.insert(name.to_owned()) {
                    return Err(err(format!("second TYPE line for metric {name:?}")));
                }
                c.skip_blanks();
                let t = c.token(b" \t");
                c.skip_blanks();
                if !c.at_end() {
                    return Err(err("text after the type in TYPE line".to_owned()));
                }
                meta[idx].kind = match t {
                    "counter" => MetricKind::Counter,
                    "gauge" => MetricKind::Gauge,
                    "histogram" => MetricKind::Histogram,
                    "summary" => MetricKind::Summary,
                    "untyped" => MetricKind::Unknown,
                    _ => return Err(err(format!("unknown metric type {t:?}"))),
                };
            }
            continue;
        }
        let name = c.token(b"{ \t");
        if !is_valid_metric_name(name) {
            return Err(err(format!("invalid metric name {name:?}")));
        }
        c.skip_blanks();
        let labels = if c.peek() == Some(b'{') {
            c.labels(true, limits.max_labels_per_series).map_err(err)?
        } else {
            Vec::new()
        };
        c.skip_blanks();
        let v = c.token(b" \t");
        if v.is_empty() {
            return Err(err("missing sample value".to_owned()));
        }
        let value: f64 = v
            .parse()
            .map_err(|_| err(format!("invalid sample value {v:?}")))?;
        c.skip_blanks();
        let ts = if c.at_end() {
            default_ts
        } else {
            let t = c.token(b" \t");
            c.skip_blanks();
            if !c.at_end() {
                return Err(err("text after the timestamp".to_owned()));
            }
            t.parse::<i64>()
                .map_err(|_| err(format!("invalid timestamp {t:?}: use integer milliseconds")))?
        };
        push_sample(
            &mut out,
            name,
            labels,
            Sample::new(ts, value),
            lineno,
            limits,
        )?;
    }
    out.metadata = meta;
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// OpenMetrics 1.0
// ---------------------------------------------------------------------------------------

fn type_suffixes(kind: MetricKind) -> &'static [&'static str] {
    match kind {
        MetricKind::Counter => &["_total", "_created"],
        MetricKind::Summary => &["", "_count", "_sum", "_created"],
        MetricKind::Histogram => &["_count", "_sum", "_bucket", "_created"],
        MetricKind::GaugeHistogram => &["_gcount", "_gsum", "_bucket"],
        MetricKind::Info => &["_info"],
        MetricKind::Gauge | MetricKind::StateSet | MetricKind::Unknown => &[""],
    }
}

fn parse_kind(t: &str) -> Option<MetricKind> {
    Some(match t {
        "counter" => MetricKind::Counter,
        "gauge" => MetricKind::Gauge,
        "histogram" => MetricKind::Histogram,
        "gaugehistogram" => MetricKind::GaugeHistogram,
        "summary" => MetricKind::Summary,
        "info" => MetricKind::Info,
        "stateset" => MetricKind::StateSet,
        "unknown" => MetricKind::Unknown,
        _ => return None,
    })
}

fn om_number(tok: &str) -> Option<f64> {
    if tok.is_empty() || tok.contains('_') {
        return None;
    }
    tok.parse().ok()
}

fn om_timestamp(tok: &str) -> Option<f64> {
    om_number(tok).filter(|t| t.is_finite())
}

/// A finite label value for `le`/`quantile`, or an infinity spelled `+Inf`/`-Inf`.
fn canonical_bound(s: &str) -> Option<f64> {
    let v = om_number(s)?;
    if v.is_infinite() && s != "+Inf" && s != "-Inf" {
        return None;
    }
    Some(v)
}

fn is_integral(v: f64) -> bool {
    v.is_finite() && v.fract() == 0.0
}

type GroupKey = Vec<(String, String)>;

struct HistItem {
    suffix: &'static str,
    group: GroupKey,
    ts: Option<f64>,
    value: f64,
    le: f64,
}

struct Family {
    name: String,
    kind: Option<MetricKind>,
    help: Option<String>,
    unit: Option<String>,
    has_samples: bool,
    group: Option<GroupKey>,
    group_ts: Option<f64>,
    group_ts_series: HashSet<GroupKey>,
    seen_groups: HashSet<GroupKey>,
    hist: Vec<HistItem>,
}

impl Family {
    fn new(name: &str, kind: Option<MetricKind>) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            help: None,
            unit: None,
            has_samples: false,
            group: None,
            group_ts: None,
            group_ts_series: HashSet::new(),
            seen_groups: HashSet::new(),
            hist: Vec::new(),
        }
    }

    fn kind(&self) -> MetricKind {
        self.kind.unwrap_or(MetricKind::Unknown)
    }

    fn allows(&self, sample_name: &str) -> bool {
        sample_name
            .strip_prefix(self.name.as_str())
            .is_some_and(|suffix| type_suffixes(self.kind()).contains(&suffix))
    }

    fn suffix<'s>(&self, sample_name: &'s str) -> &'s str {
        sample_name.get(self.name.len()..).unwrap_or("")
    }
}

struct OmSample<'a> {
    name: &'a str,
    labels: RawLabels<'a>,
    value: f64,
    ts: Option<f64>,
    has_exemplar: bool,
}

fn parse_om_sample(line: &str, max_labels: usize) -> std::result::Result<OmSample<'_>, String> {
    let mut c = Cursor { s: line, pos: 0 };
    let name = c.token(b"{ ");
    if !is_valid_metric_name(name) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let labels = if c.peek() == Some(b'{') {
        c.labels(false, max_labels)?
    } else {
        Vec::new()
    };
    c.expect(b' ', "a space before the value")?;
    let v = c.token(b" ");
    let value = om_number(v).ok_or_else(|| format!("invalid value {v:?}"))?;
    let mut ts = None;
    let mut has_exemplar = false;
    if !c.at_end() {
        c.expect(b' ', "a space")?;
        if !c.rest().starts_with("# ") {
            let t = c.token(b" ");
            ts = Some(om_timestamp(t).ok_or_else(|| format!("invalid timestamp {t:?}"))?);
            if !c.at_end() {
                c.expect(b' ', "a space")?;
                if !c.rest().starts_with("# ") {
                    return Err(format!(
                        "unexpected text {:?} after the timestamp",
                        c.rest()
                    ));
                }
            }
        }
        if !c.at_end() {
            c.pos += 2; // "# "
            if c.peek() != Some(b'{') {
                return Err("exemplar must start with '{'".to_owned());
            }
            let elabels = c.labels(false, max_labels)?;
            c.expect(b' ', "a space before the exemplar value")?;
            let v = c.token(b" ");
            om_number(v).ok_or_else(|| format!("invalid exemplar value {v:?}"))?;
            if !c.at_end() {
                c.expect(b' ', "a space")?;
                let t = c.token(b" ");
                om_timestamp(t).ok_or_else(|| format!("invalid exemplar timestamp {t:?}"))?;
                if !c.at_end() {
                    return Err("unexpected text after the exemplar".to_owned());
                }
            }
            let len: usize = elabels
                .iter()
                .map(|(n, v)| n.chars().count() + v.chars().count())
                .sum();
            if len > 128 {
                return Err(format!(
                    "exemplar labels are {len} characters long, more than the 128 allowed"
                ));
            }
            has_exemplar = true;
        }
    }
    Ok(OmSample {
        name,
        labels,
        value,
        ts,
        has_exemplar,
    })
}

struct OmParser<'l> {
    default_ts: i64,
    limits: &'l Limits,
    out: Exposition,
    family: Option<Family>,
    seen_names: HashSet<String>,
}

impl<'l> OmParser<'l> {
    fn new(default_ts: i64, limits: &'l Limits) -> Self {
        Self {
            default_ts,
            limits,
            out: Exposition::default(),
            family: None,
            seen_names: HashSet::new(),
        }
    }

    fn parse(mut self, text: &str) -> Result<Exposition> {
        let body = text.strip_suffix('\n').unwrap_or(text);
        let mut eof = false;
        for (i, line) in body.split('\n').enumerate() {
            let lineno = i + 1;
            let err = |detail: String| Error::Exposition {
                line: lineno,
                detail,
            };
            if eof {
                return Err(err("text after # EOF".to_owned()));
            }
            check_line_len(line, lineno, self.limits)?;
            if line.is_empty() {
                return Err(err("blank line: OpenMetrics allows none".to_owned()));
            }
            if line == "# EOF" {
                eof = true;
            } else if line.starts_with('#') {
                self.metadata_line(line).map_err(err)?;
            } else {
                let s = parse_om_sample(line, self.limits.max_labels_per_series).map_err(err)?;
                self.sample(s, lineno)?;
            }
        }
        self.finish_family().map_err(|detail| Error::Exposition {
            line: body.split('\n').count(),
            detail,
        })?;
        if !eof {
            return Err(Error::Exposition {
                line: body.split('\n').count(),
                detail: "missing # EOF at the end".to_owned(),
            });
        }
        Ok(self.out)
    }

    fn metadata_line(&mut self, line: &str) -> std::result::Result<(), String> {
        let parts: Vec<&str> = line.splitn(4, ' ').collect();
        if parts.len() < 4 || parts[0] != "#" {
            return Err(format!(
                "invalid comment line {line:?}: only HELP, TYPE, UNIT and EOF are allowed"
            ));
        }
        let (keyword, name, rest) = (parts[1], parts[2], parts[3]);
        if !matches!(keyword, "HELP" | "TYPE" | "UNIT") {
            return Err(format!(
                "unknown metadata {keyword:?}: use HELP, TYPE or UNIT"
            ));
        }
        if !is_valid_metric_name(name) {
            return Err(format!("invalid metric name {name:?}"));
        }
        let same = self.family.as_ref().is_some_and(|f| f.name == name);
        if same && self.family.as_ref().is_some_and(|f| f.has_samples) {
            return Err(format!("{keyword} for {name:?} after its samples"));
        }
        if !same {
            self.finish_family()?;
            self.family = Some(Family::new(name, None));
        }
        let Some(f) = self.family.as_mut() else {
            return Err("internal: no family".to_owned());
        };
        match keyword {
            "HELP" => {
                if f.help.is_some() {
                    return Err(format!("second HELP for {name:?}"));
                }
                f.help = Some(unescape_help(rest));
            }
            "TYPE" => {
                if f.kind.is_some() {
                    return Err(format!("second TYPE for {name:?}"));
                }
                f.kind = Some(parse_kind(rest).ok_or_else(|| format!("invalid type {rest:?}"))?);
            }
            _ => {
                if f.unit.is_some() {
                    return Err(format!("second UNIT for {name:?}"));
                }
                f.unit = Some(rest.to_owned());
            }
        }
        Ok(())
    }

    fn finish_family(&mut self) -> std::result::Result<(), String> {
        let Some(f) = self.family.take() else {
            return Ok(());
        };
        let kind = f.kind();
        let mut suffixes: Vec<&str> = type_suffixes(kind).to_vec();
        if !suffixes.contains(&"") {
            suffixes.push("");
        }
        for suffix in suffixes {
            let n = format!("{}{}", f.name, suffix);
            if !self.seen_names.insert(n.clone()) {
                return Err(format!("clashing metric name {n:?}"));
            }
        }
        let unit = f.unit.clone().unwrap_or_default();
        if !unit.is_empty() {
            if !f.name.ends_with(&format!("_{unit}")) {
                return Err(format!(
                    "metric name {:?} does not end with its unit {unit:?}",
                    f.name
                ));
            }
            if matches!(kind, MetricKind::Info | MetricKind::StateSet) {
                return Err(format!("{} metrics cannot have a unit", kind.as_str()));
            }
        }
        if matches!(kind, MetricKind::Histogram | MetricKind::GaugeHistogram) {
            check_histogram(&f)?;
        }
        if f.kind.is_some() || f.help.is_some() || f.unit.is_some() {
            self.out.metadata.push(MetricMetadata {
                family: f.name,
                kind,
                help: f.help.unwrap_or_default(),
                unit,
            });
        }
        Ok(())
    }

    fn sample(&mut self, s: OmSample<'_>, lineno: usize) -> Result<()> {
        let err = |detail: String| Error::Exposition {
            line: lineno,
            detail,
        };
        if !self.family.as_ref().is_some_and(|f| f.allows(s.name)) {
            self.finish_family().map_err(err)?;
            self.family = Some(Family::new(s.name, Some(MetricKind::Unknown)));
        }
        let Some(f) = self.family.as_mut() else {
            return Err(err("internal: no family".to_owned()));
        };
        f.has_samples = true;
        let kind = f.kind();
        let suffix = f.suffix(s.name);
        let get = |n: &str| {
            s.labels
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.as_str())
        };
        let is_bucket = matches!(kind, MetricKind::Histogram | MetricKind::GaugeHistogram)
            && suffix == "_bucket";
        let is_quantile = kind == MetricKind::Summary && suffix.is_empty();
        if kind == MetricKind::StateSet && get(&f.name).is_none() {
            return Err(err(format!("stateset sample without a {:?} label", f.name)));
        }
        let mut le = f64::NAN;
        if is_bucket {
            le = get("le")
                .and_then(canonical_bound)
                .filter(|v| !v.is_nan())
                .ok_or_else(|| err("histogram bucket without a valid le label".to_owned()))?;
            if !is_integral(s.value) {
                return Err(err("bucket values must be integers".to_owned()));
            }
        }
        if matches!(suffix, "_count" | "_gcount")
            && matches!(
                kind,
                MetricKind::Histogram | MetricKind::GaugeHistogram | MetricKind::Summary
            )
            && !is_integral(s.value)
        {
            return Err(err("count values must be integers".to_owned()));
        }
        if is_quantile {
            get("quantile")
                .and_then(canonical_bound)
                .filter(|q| (0.0..=1.0).contains(q))
                .ok_or_else(|| err("summary quantile label missing or not in [0, 1]".to_owned()))?;
            if s.value < 0.0 {
                return Err(err("quantile values cannot be negative".to_owned()));
            }
        }
        // Group: the labels that identify one histogram/summary/stateset point.
        let group: GroupKey = if kind == MetricKind::Info {
            Vec::new()
        } else {
            let drop = if is_quantile {
                Some("quantile")
            } else if kind == MetricKind::StateSet {
                Some(f.name.as_str())
            } else if is_bucket {
                Some("le")
            } else {
                None
            };
            let mut g: GroupKey = s
                .labels
                .iter()
                .filter(|(k, _)| Some(*k) != drop)
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect();
            g.sort();
            g
        };
        let same_group = f.group.as_ref() == Some(&group);
        if f.group.is_some() && !same_group && f.seen_groups.contains(&group) {
            return Err(err(
                "samples of one metric point are not contiguous".to_owned()
            ));
        }
        if same_group {
            if s.ts.is_none() != f.group_ts.is_none() {
                return Err(err(
                    "mix of samples with and without timestamps in one group".to_owned(),
                ));
            }
            if let (Some(prev), Some(t)) = (f.group_ts, s.ts) {
                if prev > t && kind != MetricKind::Info {
                    return Err(err("timestamps went backwards within a group".to_owned()));
                }
            }
        } else {
            f.group_ts_series.clear();
        }
        let mut series_id: GroupKey = s
            .labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        series_id.sort();
        series_id.push((String::new(), s.name.to_owned()));
        let duplicate = s.ts == f.group_ts && f.group_ts_series.contains(&series_id);
        f.group_ts_series.insert(series_id);
        f.seen_groups.insert(group.clone());
        f.group_ts = s.ts;
        if kind == MetricKind::StateSet && s.value != 0.0 && s.value != 1.0 {
            return Err(err("stateset values must be 0 or 1".to_owned()));
        }
        if kind == MetricKind::Info && s.value != 1.0 {
            return Err(err("info values must be 1".to_owned()));
        }
        if kind != MetricKind::Unknown
            && matches!(
                suffix,
                "_total" | "_sum" | "_count" | "_bucket" | "_gcount" | "_gsum"
            )
        {
            if s.value.is_nan() {
                return Err(err(format!("{suffix} values cannot be NaN")));
            }
            if s.value < 0.0 && suffix != "_gsum" {
                return Err(err(format!("{suffix} values cannot be negative")));
            }
        }
        if s.has_exemplar {
            let ok = (is_bucket) || (kind == MetricKind::Counter && suffix == "_total");
            if !ok {
                return Err(err(
                    "exemplars are only allowed on histogram buckets and counter totals".to_owned(),
                ));
            }
        }
        if matches!(kind, MetricKind::Histogram | MetricKind::GaugeHistogram) {
            let suffix: &'static str = match suffix {
                "_bucket" => "_bucket",
                "_count" => "_count",
                "_gcount" => "_gcount",
                "_sum" => "_sum",
                "_gsum" => "_gsum",
                _ => "",
            };
            f.hist.push(HistItem {
                suffix,
                group: group.clone(),
                ts: s.ts,
                value: s.value,
                le,
            });
        }
        f.group = Some(group);
        if duplicate {
            return Ok(());
        }
        let ts = s.ts.map(ts_seconds_to_ms).unwrap_or(self.default_ts);
        push_sample(
            &mut self.out,
            s.name,
            s.labels,
            Sample::new(ts, s.value),
            lineno,
            self.limits,
        )
    }
}

fn check_histogram(f: &Family) -> std::result::Result<(), String> {
    let name = &f.name;
    let mut i = 0;
    while i < f.hist.len() {
        let first = &f.hist[i];
        let mut j = i;
        let mut count = None;
        let mut bucket: Option<f64> = None;
        let mut value = 0.0;
        let (mut neg_buckets, mut has_sum, mut has_gsum, mut neg_gsum) =
            (false, false, false, false);
        while j < f.hist.len() && f.hist[j].group == first.group && f.hist[j].ts == first.ts {
            let h = &f.hist[j];
            match h.suffix {
                "_bucket" => {
                    if h.le < 0.0 {
                        neg_buckets = true;
                    }
                    if bucket.is_some_and(|b| h.le <= b) {
                        return Err(format!("buckets of {name:?} out of order"));
                    }
                    if h.value < value {
                        return Err(format!("bucket values of {name:?} decrease"));
                    }
                    bucket = Some(h.le);
                    value = h.value;
                }
                "_count" | "_gcount" => count = Some(h.value),
                "_sum" => has_sum = true,
                "_gsum" => {
                    has_gsum = true;
                    if h.value < 0.0 {
                        neg_gsum = true;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        if bucket != Some(f64::INFINITY) {
            return Err(format!("+Inf bucket missing for {name:?}"));
        }
        if count.is_some_and(|c| c != value) {
            return Err(format!("count of {name:?} does not match its +Inf bucket"));
        }
        if has_sum && count.is_none() {
            return Err(format!("{name:?} has _sum but no _count"));
        }
        if has_gsum && count.is_none() {
            return Err(format!("{name:?} has _gsum but no _gcount"));
        }
        if !(has_sum || has_gsum) && count.is_some() {
            return Err(format!("{name:?} has a count but no sum"));
        }
        if neg_buckets && has_sum {
            return Err(format!("{name:?} cannot have _sum with negative buckets"));
        }
        if !neg_buckets && neg_gsum {
            return Err(format!(
                "{name:?} cannot have a negative sum with non-negative buckets"
            ));
        }
        i = j;
    }
    Ok(())
}
