//! Running a log pipeline over lines: chunk-wide line filter scans, then per-line stages.

use bongsu_model::{Label, Labels};
use memchr::memmem;
use regex_syntax::hir::{Hir, HirKind, Look};

use crate::chunk::DecodedChunk;
use crate::logql::ast::*;
use crate::logql::lexer::{parse_bytes, parse_duration};
use crate::logql::template::Fields;
use crate::tokens;

pub(crate) const ERROR_LABEL: &str = "__error__";

/// A line filter compiled for scanning.
pub(crate) enum Compiled {
    Contains(memmem::Finder<'static>),
    NotContains(memmem::Finder<'static>),
    Match {
        re: regex::bytes::Regex,
        scan: Option<regex::bytes::Regex>,
    },
    NotMatch(regex::bytes::Regex),
}

impl Compiled {
    pub(crate) fn new(f: &LineFilter) -> Self {
        let fallback = || regex::bytes::Regex::new("").unwrap_or_else(|_| unreachable!());
        match f.op {
            LineOp::Contains => {
                Self::Contains(memmem::Finder::new(f.pattern.as_bytes()).into_owned())
            }
            LineOp::NotContains => {
                Self::NotContains(memmem::Finder::new(f.pattern.as_bytes()).into_owned())
            }
            LineOp::Match => Self::Match {
                re: f.re.clone().unwrap_or_else(fallback),
                scan: f.scan_re.clone(),
            },
            LineOp::NotMatch => Self::NotMatch(f.re.clone().unwrap_or_else(fallback)),
        }
    }

    #[inline]
    pub(crate) fn matches(&self, line: &[u8]) -> bool {
        match self {
            Self::Contains(f) => f.find(line).is_some(),
            Self::NotContains(f) => f.find(line).is_none(),
            Self::Match { re, .. } => re.is_match(line),
            Self::NotMatch(re) => !re.is_match(line),
        }
    }
}

/// The token hashes a line passing filter `f` must contain whole.
pub(crate) fn required_tokens(f: &LineFilter) -> Vec<u64> {
    match f.op {
        LineOp::Contains => tokens::required_tokens(f.pattern.as_bytes(), true, true, true, true),
        LineOp::Match => {
            let hir = regex_syntax::ParserBuilder::new()
                .utf8(false)
                .build()
                .parse(&f.pattern);
            match hir {
                Ok(h) => {
                    let mut v = regex_required(&h);
                    v.sort_unstable();
                    v.dedup();
                    v
                }
                Err(_) => Vec::new(),
            }
        }
        _ => Vec::new(),
    }
}

fn regex_required(h: &Hir) -> Vec<u64> {
    match h.kind() {
        HirKind::Literal(l) => tokens::required_tokens(&l.0, true, true, true, true),
        HirKind::Capture(c) => regex_required(&c.sub),
        HirKind::Repetition(r) if r.min >= 1 => regex_required(&r.sub),
        HirKind::Concat(subs) => {
            let mut out = Vec::new();
            let mut buf: Vec<u8> = Vec::new();
            // Whether the text before `buf` may continue a word / a term.
            let (mut lw, mut lt) = (true, true);
            let flush =
                |buf: &mut Vec<u8>, lw: bool, lt: bool, rw: bool, rt: bool, out: &mut Vec<u64>| {
                    if !buf.is_empty() {
                        out.extend(tokens::required_tokens(buf, lw, rw, lt, rt));
                        buf.clear();
                    }
                };
            for s in subs {
                let s = match s.kind() {
                    HirKind::Capture(c) if matches!(c.sub.kind(), HirKind::Literal(_)) => &*c.sub,
                    _ => s,
                };
                match s.kind() {
                    HirKind::Literal(l) => buf.extend_from_slice(&l.0),
                    HirKind::Look(look) => {
                        let (word, both) = match look {
                            Look::WordAscii | Look::WordUnicode => (true, false),
                            Look::Start
                            | Look::End
                            | Look::StartLF
                            | Look::EndLF
                            | Look::StartCRLF
                            | Look::EndCRLF => (true, true),
                            _ => (false, false),
                        };
                        if buf.is_empty() {
                            lw = lw && !word;
                            lt = lt && !both;
                        } else {
                            flush(&mut buf, lw, lt, !word, !both, &mut out);
                            lw = !word;
                            lt = !both;
                        }
                    }
                    _ => {
                        flush(&mut buf, lw, lt, true, true, &mut out);
                        out.extend(regex_required(s));
                        lw = true;
                        lt = true;
                    }
                }
            }
            flush(&mut buf, lw, lt, true, true, &mut out);
            out
        }
        _ => Vec::new(),
    }
}

/// Scans lines `lo..hi` of a chunk, calling `f` with each line index passing all `filters`.
/// A positive first filter drives a scan over the whole text at once.
pub(crate) fn scan_lines(
    chunk: &DecodedChunk,
    lo: usize,
    hi: usize,
    filters: &[Compiled],
    mut f: impl FnMut(usize),
) {
    if lo >= hi {
        return;
    }
    let rest_ok = |line: &[u8], rest: &[Compiled]| rest.iter().all(|c| c.matches(line));
    match filters.first() {
        None => (lo..hi).for_each(f),
        Some(first @ (Compiled::Contains(_) | Compiled::Match { scan: Some(_), .. })) => {
            let base = chunk.starts[lo] as usize;
            let end = chunk.starts[hi] as usize;
            let text = &chunk.text()[..end];
            let mut pos = base;
            while pos < end {
                let found = match first {
                    Compiled::Contains(fi) => fi
                        .find(&text[pos..])
                        .map(|m| (pos + m, pos + m + fi.needle().len())),
                    Compiled::Match { scan: Some(re), .. } => {
                        re.find_at(text, pos).map(|m| (m.start(), m.end()))
                    }
                    _ => None,
                };
                let Some((ms, me)) = found else { break };
                let i = chunk.line_at(ms);
                let line_end = chunk.starts[i + 1] as usize - 1;
                let line = chunk.line(i);
                let ok = match first {
                    Compiled::Contains(_) => me <= line_end,
                    other => other.matches(line),
                };
                if ok && rest_ok(line, &filters[1..]) {
                    f(i);
                }
                pos = chunk.starts[i + 1] as usize;
            }
        }
        Some(_) => {
            for i in lo..hi {
                if rest_ok(chunk.line(i), filters) {
                    f(i);
                }
            }
        }
    }
}

/// The labels of a line while it moves through the pipeline.
#[derive(Debug, Clone, Default)]
pub(crate) struct LineLabels {
    pub(crate) pairs: Vec<(String, String)>,
}

impl LineLabels {
    pub(crate) fn from_stream(stream: &Labels, meta: &[Label]) -> Self {
        let mut pairs: Vec<(String, String)> = stream
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        for m in meta {
            set(&mut pairs, &m.name, m.value.clone());
        }
        Self { pairs }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn set(&mut self, name: &str, value: String) {
        set(&mut self.pairs, name, value)
    }

    pub(crate) fn remove(&mut self, name: &str) -> Option<String> {
        let i = self.pairs.iter().position(|(n, _)| n == name)?;
        Some(self.pairs.swap_remove(i).1)
    }

    pub(crate) fn into_labels(self) -> Labels {
        let v: Vec<Label> = self
            .pairs
            .into_iter()
            .map(|(name, value)| Label { name, value })
            .collect();
        // Names are unique by construction; an error cannot happen, fall back to empty.
        Labels::new(v).unwrap_or_default()
    }

    fn has_error(&self) -> bool {
        self.get(ERROR_LABEL).is_some_and(|v| !v.is_empty())
    }
}

fn set(pairs: &mut Vec<(String, String)>, name: &str, value: String) {
    match pairs.iter_mut().find(|(n, _)| n == name) {
        Some(p) => p.1 = value,
        None => pairs.push((name.to_owned(), value)),
    }
}

struct Ctx<'a> {
    labels: &'a LineLabels,
    line: &'a str,
    ts: i64,
}

impl Fields for Ctx<'_> {
    fn field(&self, name: &str) -> Option<&str> {
        self.labels.get(name)
    }
    fn line(&self) -> &str {
        self.line
    }
    fn timestamp_ns(&self) -> i64 {
        self.ts
    }
}

/// Adds an extracted label; a name taken by a stream label gets the suffix `_extracted`.
fn add_extracted(labels: &mut LineLabels, stream: &Labels, name: &str, value: String) {
    let name = sanitize(name);
    if stream.get(&name).is_some() {
        labels.set(&format!("{name}_extracted"), value);
    } else {
        labels.set(&name, value);
    }
}

fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Runs the stages after the leading line filters. Returns the (maybe rewritten) line, or `None`
/// when a stage drops it.
pub(crate) fn run_stages(
    stages: &[Stage],
    compiled: &[Option<Compiled>],
    stream: &Labels,
    ts: i64,
    line: &str,
    labels: &mut LineLabels,
) -> Option<String> {
    let mut cur: Option<String> = None;
    for (stage, comp) in stages.iter().zip(compiled) {
        let line_now: &str = cur.as_deref().unwrap_or(line);
        match stage {
            Stage::Line(_) => {
                if let Some(c) = comp {
                    if !c.matches(line_now.as_bytes()) {
                        return None;
                    }
                }
            }
            Stage::Json => json_parse(line_now, stream, labels),
            Stage::Logfmt => logfmt_parse(line_now, stream, labels),
            Stage::Pattern(parts) => {
                if let Some(caps) = pattern_match(parts, line_now) {
                    for (n, v) in caps {
                        add_extracted(labels, stream, n, v.to_owned());
                    }
                }
            }
            Stage::Regexp(re) => {
                if let Some(c) = re.captures(line_now) {
                    for name in re.capture_names().flatten() {
                        if let Some(m) = c.name(name) {
                            add_extracted(labels, stream, name, m.as_str().to_owned());
                        }
                    }
                }
            }
            Stage::Label(pred) => {
                if !eval_pred(pred, labels) {
                    return None;
                }
            }
            Stage::LineFormat(t) => {
                let mut out = String::new();
                t.render(
                    &Ctx {
                        labels,
                        line: line_now,
                        ts,
                    },
                    &mut out,
                );
                cur = Some(out);
            }
            Stage::LabelFormat(fmts) => {
                let snapshot = labels.clone();
                for (dst, f) in fmts {
                    match f {
                        LabelFmt::Rename(src) => {
                            let v = snapshot.get(src).unwrap_or("").to_owned();
                            labels.remove(src);
                            labels.set(dst, v);
                        }
                        LabelFmt::Template(t) => {
                            let mut out = String::new();
                            t.render(
                                &Ctx {
                                    labels: &snapshot,
                                    line: line_now,
                                    ts,
                                },
                                &mut out,
                            );
                            labels.set(dst, out);
                        }
                    }
                }
            }
            Stage::Drop(names) => labels.pairs.retain(|(n, _)| !names.contains(n)),
            Stage::Keep(names) => labels.pairs.retain(|(n, _)| names.contains(n)),
        }
    }
    Some(cur.unwrap_or_else(|| line.to_owned()))
}

/// Evaluates a label filter; a value that does not convert marks the line with
/// `__error__="LabelFilterErr"` and keeps it, as Loki does.
pub(crate) fn eval_pred(p: &LabelPred, labels: &mut LineLabels) -> bool {
    match p {
        LabelPred::And(a, b) => eval_pred(a, labels) && eval_pred(b, labels),
        LabelPred::Or(a, b) => eval_pred(a, labels) || eval_pred(b, labels),
        LabelPred::Str(m) => m.matches(labels.get(&m.name).unwrap_or("")),
        LabelPred::Num {
            name,
            cmp,
            value,
            kind,
        } => {
            let raw = labels.get(name).unwrap_or("");
            let v = match kind {
                NumKind::Number => raw.trim().parse::<f64>().ok(),
                NumKind::Duration => parse_duration(raw.trim()).map(|d| d as f64 / 1e9),
                NumKind::Bytes => parse_bytes(raw),
            };
            match v {
                Some(v) => cmp.apply(v, *value),
                None => {
                    if !labels.has_error() {
                        labels.set(ERROR_LABEL, "LabelFilterErr".into());
                    }
                    true
                }
            }
        }
    }
}

fn json_parse(line: &str, stream: &Labels, labels: &mut LineLabels) {
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(serde_json::Value::Object(map)) => {
            let mut prefix = String::new();
            flatten(&map, &mut prefix, stream, labels);
        }
        _ => {
            if !labels.has_error() {
                labels.set(ERROR_LABEL, "JSONParserErr".into());
            }
        }
    }
}

fn flatten(
    map: &serde_json::Map<String, serde_json::Value>,
    prefix: &mut String,
    stream: &Labels,
    labels: &mut LineLabels,
) {
    for (k, v) in map {
        let len = prefix.len();
        if !prefix.is_empty() {
            prefix.push('_');
        }
        prefix.push_str(k);
        match v {
            serde_json::Value::Object(m) => flatten(m, prefix, stream, labels),
            serde_json::Value::String(s) => add_extracted(labels, stream, prefix, s.clone()),
            serde_json::Value::Number(n) => add_extracted(labels, stream, prefix, n.to_string()),
            serde_json::Value::Bool(b) => add_extracted(labels, stream, prefix, b.to_string()),
            serde_json::Value::Null | serde_json::Value::Array(_) => {}
        }
        prefix.truncate(len);
    }
}

fn logfmt_parse(line: &str, stream: &Labels, labels: &mut LineLabels) {
    let b = line.as_bytes();
    let n = b.len();
    let mut i = 0;
    while i < n {
        while i < n && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        if i >= n {
            break;
        }
        let ks = i;
        while i < n && b[i] > b' ' && b[i] != b'=' && b[i] != b'"' {
            i += 1;
        }
        let key = &line[ks..i];
        if key.is_empty() {
            // Stray quote or '=': the line is not logfmt.
            labels.set(ERROR_LABEL, "LogfmtParserErr".into());
            return;
        }
        if i < n && b[i] == b'=' {
            i += 1;
            if i < n && b[i] == b'"' {
                i += 1;
                let mut v = String::new();
                let mut closed = false;
                let mut seg = i;
                while i < n {
                    match b[i] {
                        b'"' => {
                            v.push_str(&line[seg..i]);
                            i += 1;
                            closed = true;
                            break;
                        }
                        b'\\' if i + 1 < n => {
                            v.push_str(&line[seg..i]);
                            match b[i + 1] {
                                b'n' => v.push('\n'),
                                b't' => v.push('\t'),
                                b'"' => v.push('"'),
                                b'\\' => v.push('\\'),
                                other => {
                                    v.push('\\');
                                    v.push(other as char);
                                }
                            }
                            i += 2;
                            seg = i;
                        }
                        _ => i += 1,
                    }
                }
                if !closed {
                    labels.set(ERROR_LABEL, "LogfmtParserErr".into());
                    return;
                }
                add_extracted(labels, stream, key, v);
            } else {
                let vs = i;
                while i < n && b[i] > b' ' {
                    i += 1;
                }
                add_extracted(labels, stream, key, line[vs..i].to_owned());
            }
        } else {
            add_extracted(labels, stream, key, String::new());
        }
    }
}

/// Matches a pattern against a line, returning the named captures.
pub(crate) fn pattern_match<'a, 'p>(
    parts: &'p [PatternPart],
    line: &'a str,
) -> Option<Vec<(&'p str, &'a str)>> {
    let mut caps = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while i < parts.len() {
        match &parts[i] {
            PatternPart::Lit(l) => {
                if !line[pos..].starts_with(l.as_str()) {
                    return None;
                }
                pos += l.len();
            }
            PatternPart::Cap(name) => {
                let end = match parts.get(i + 1) {
                    Some(PatternPart::Lit(l)) => pos + line[pos..].find(l.as_str())?,
                    _ => line.len(),
                };
                if let Some(n) = name {
                    caps.push((n.as_str(), &line[pos..end]));
                }
                pos = end;
            }
        }
        i += 1;
    }
    Some(caps)
}

/// Extracts the unwrapped value of a line; `None` marks a conversion error.
pub(crate) fn unwrap_value(u: &Unwrap, labels: &LineLabels) -> Option<f64> {
    let raw = labels.get(&u.label)?.trim();
    match u.conv {
        Conv::None => raw.parse::<f64>().ok(),
        Conv::Duration => parse_duration(raw).map(|d| d as f64 / 1e9),
        Conv::Bytes => parse_bytes(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logql::parser::parse_pattern;

    #[test]
    fn logfmt() {
        let s = Labels::from_pairs([("app", "x")]).unwrap();
        let mut l = LineLabels::default();
        logfmt_parse(
            r#"level=info msg="a \"b\" c" app=y flag dur=5ms"#,
            &s,
            &mut l,
        );
        assert_eq!(l.get("level"), Some("info"));
        assert_eq!(l.get("msg"), Some("a \"b\" c"));
        assert_eq!(l.get("app_extracted"), Some("y"));
        assert_eq!(l.get("flag"), Some(""));
        assert_eq!(l.get("dur"), Some("5ms"));
        let mut l = LineLabels::default();
        logfmt_parse(r#"a="unterminated"#, &s, &mut l);
        assert_eq!(l.get(ERROR_LABEL), Some("LogfmtParserErr"));
    }

    #[test]
    fn json_flattens() {
        let s = Labels::empty();
        let mut l = LineLabels::default();
        json_parse(
            r#"{"a":{"b":1,"c":"x"},"d":true,"e":[1],"f-g":null}"#,
            &s,
            &mut l,
        );
        assert_eq!(l.get("a_b"), Some("1"));
        assert_eq!(l.get("a_c"), Some("x"));
        assert_eq!(l.get("d"), Some("true"));
        assert_eq!(l.get("e"), None);
        let mut l = LineLabels::default();
        json_parse("not json", &s, &mut l);
        assert_eq!(l.get(ERROR_LABEL), Some("JSONParserErr"));
    }

    #[test]
    fn pattern() {
        let p = parse_pattern(r#"<ip> - - [<_>] "<method> <path> <_>" <status>"#).unwrap();
        let caps =
            pattern_match(&p, r#"10.0.0.1 - - [01/Jan/2024] "GET /x HTTP/1.1" 200"#).unwrap();
        assert_eq!(
            caps,
            vec![
                ("ip", "10.0.0.1"),
                ("method", "GET"),
                ("path", "/x"),
                ("status", "200")
            ]
        );
        assert!(pattern_match(&p, "nope").is_none());
    }

    fn req(pat: &str) -> Vec<u64> {
        let f = LineFilter {
            op: LineOp::Match,
            pattern: pat.into(),
            re: None,
            scan_re: None,
        };
        required_tokens(&f)
    }

    #[test]
    fn regex_required_tokens() {
        assert_eq!(req(r"\bneedle\b"), vec![tokens::token_hash(b"needle")]);
        assert!(req("needle").is_empty());
        assert!(req(r"\bneedle").is_empty());
        assert_eq!(req(r"^needle "), vec![tokens::token_hash(b"needle")]);
        let mut want = vec![tokens::token_hash(b"42"), tokens::token_hash(b"id")];
        want.sort_unstable();
        assert_eq!(req(r"a.*\bid-42\b.*z"), want);
        assert!(
            req(r"(?i)\bneedle\b").is_empty()
                || req(r"(?i)\bneedle\b") == vec![tokens::token_hash(b"needle")]
        );
        assert!(req("foo|bar").is_empty());
    }

    #[test]
    fn scan_finds_every_matching_line() {
        let entries: Vec<_> = ["alpha one", "beta two", "alpha three\nmore", "gamma"]
            .iter()
            .enumerate()
            .map(|(i, l)| bongsu_model::LogEntry::new(i as i64, *l))
            .collect();
        let c = DecodedChunk::from_entries(&entries[..]);
        let run = |fs: Vec<Compiled>, lo, hi| {
            let mut v = Vec::new();
            scan_lines(&c, lo, hi, &fs, |i| v.push(i));
            v
        };
        let contains = |s: &str| Compiled::Contains(memmem::Finder::new(s.as_bytes()).into_owned());
        assert_eq!(run(vec![contains("alpha")], 0, 4), vec![0, 2]);
        assert_eq!(run(vec![contains("alpha")], 1, 4), vec![2]);
        assert_eq!(run(vec![contains("one\nbeta")], 0, 4), Vec::<usize>::new());
        assert_eq!(run(vec![contains("a"), contains("t")], 0, 4), vec![1, 2]);
        let m = |p: &str| Compiled::Match {
            re: regex::bytes::Regex::new(p).unwrap(),
            scan: Some(regex::bytes::Regex::new(&format!("(?m:{p})")).unwrap()),
        };
        assert_eq!(run(vec![m("^(beta|gamma)")], 0, 4), vec![1, 3]);
        assert_eq!(run(vec![m("e$")], 0, 4), vec![0, 2]);
        assert_eq!(
            run(
                vec![Compiled::NotContains(
                    memmem::Finder::new(b"alpha").into_owned()
                )],
                0,
                4
            ),
            vec![1, 3]
        );
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    fn line_tokens(line: &str) -> Vec<u64> {
        let mut v = Vec::new();
        tokens::for_each_token(line.as_bytes(), |h| v.push(h));
        v
    }

    fn filter(op: LineOp, pattern: String) -> LineFilter {
        LineFilter {
            op,
            pattern,
            re: None,
            scan_re: None,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Every token a `|=` literal requires is a token of any line containing the literal.
        #[test]
        fn literal_requirements_never_exclude_a_matching_line(
            line in "[a-cA-C0-9 .:_=/-]{0,40}", a in any::<usize>(), b in any::<usize>()
        ) {
            let (a, b) = (a % (line.len() + 1), b % (line.len() + 1));
            let lit = &line[a.min(b)..a.max(b)];
            let have = line_tokens(&line);
            for h in required_tokens(&filter(LineOp::Contains, lit.to_owned())) {
                prop_assert!(have.contains(&h), "literal {:?} of {:?}", lit, line);
            }
        }

        /// The same for a regex built from a substring, with `\b` or `^`/`$` where they hold.
        #[test]
        fn regex_requirements_never_exclude_a_matching_line(
            line in "[a-cA-C0-9 .:_=/-]{0,40}", a in any::<usize>(), b in any::<usize>()
        ) {
            let (a, b) = (a % (line.len() + 1), b % (line.len() + 1));
            let lit = &line[a.min(b)..a.max(b)];
            let mut pat = regex::escape(lit);
            let wb = |p: &str| regex::Regex::new(&format!(r"\b{p}\b")).map(|r| r.is_match(&line)).unwrap_or(false);
            if wb(&pat) {
                pat = format!(r"\b{pat}\b");
            } else if a.min(b) == 0 {
                pat = format!("^{pat}");
            }
            prop_assert!(regex::Regex::new(&pat).map(|r| r.is_match(&line)).unwrap_or(true));
            let have = line_tokens(&line);
            for h in required_tokens(&filter(LineOp::Match, pat.clone())) {
                prop_assert!(have.contains(&h), "regex {:?} of {:?}", pat, line);
            }
        }
    }
}
