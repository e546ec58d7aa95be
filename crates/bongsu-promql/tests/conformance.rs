//! Runs the PromQL conformance corpus (`shared/promql/testdata/*.test`) against the engine.
//!
//! Prints "FILE: N of M evals pass (K skipped: reasons)" per file. Evals of the core
//! gate files must pass, except those listed in `tests/known_failures.txt`; a core eval
//! failing outside that list fails the test, and listed evals that now pass are reported.
//! Core files may skip no eval, and every file must pass at least as many evals as
//! `tests/pass_floor.txt` says. Set `BONGSU_UPDATE_KNOWN_FAILURES=1` to rewrite the
//! list and the floor from the current run.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use bongsu_model::{Labels, Sample};
use bongsu_promql::{
    parse_histogram_literal, Engine, EngineOptions, FloatHistogram, HistogramSample, MemoryStorage,
    QueryResult, Value, CUSTOM_BUCKETS_SCHEMA,
};
use promql_parser::parser::{self, Expr};

const CORE: &[&str] = &[
    "aggregators",
    "at_modifier",
    "collision",
    "functions",
    "histograms",
    "limit",
    "literals",
    "name_label_dropping",
    "operators",
    "range_queries",
    "selectors",
    "staleness",
    "subquery",
    "trig_functions",
];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/promql/testdata")
}

fn parse_duration_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    if let Ok(v) = s.parse::<f64>() {
        let ms = (v * 1000.0).round() as i64;
        return Some(if neg { -ms } else { ms });
    }
    let mut total: i64 = 0;
    let b = s.as_bytes();
    let mut i = 0;
    if b.is_empty() {
        return None;
    }
    while i < b.len() {
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if st == i {
            return None;
        }
        let n: i64 = s[st..i].parse().ok()?;
        let us = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let mult = match &s[us..i] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            _ => return None,
        };
        total += n * mult;
    }
    Some(if neg { -total } else { total })
}

fn parse_float(s: &str) -> Option<f64> {
    match s {
        "Inf" | "+Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        "stale" => Some(f64::from_bits(bongsu_model::STALE_NAN_BITS)),
        _ => s.parse::<f64>().ok(),
    }
}

/// Splits on whitespace, keeping `{{ ... }}` and `{ ... "..." }` groups whole.
fn tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0i32;
    let mut in_q = false;
    let mut esc = false;
    for ch in s.chars() {
        if in_q {
            cur.push(ch);
            if esc {
                esc = false;
            } else if ch == '\\' {
                esc = true;
            } else if ch == '"' {
                in_q = false;
            }
            continue;
        }
        match ch {
            '"' => {
                in_q = true;
                cur.push(ch);
            }
            '{' => {
                depth += 1;
                cur.push(ch);
            }
            '}' => {
                depth -= 1;
                cur.push(ch);
            }
            c if c.is_whitespace() && depth == 0 => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// One point value of a series description.
#[derive(Debug, Clone)]
enum PV {
    F(f64),
    H(FloatHistogram),
}

/// One expanded point: None is an omitted step.
type Point = Option<PV>;

/// Expands `1+2x3`, `5x2`, `_x3`, `_`, `stale`, numbers, `{{...}}` histograms and
/// `{{...}}+{{...}}x3` / `{{...}}-{{...}}x3` / `{{...}}x3` histogram series.
fn expand(tokens: &[String]) -> Result<Vec<Point>, String> {
    let mut out = Vec::new();
    for t in tokens {
        if t.starts_with("{{") {
            let end = t.find("}}").ok_or_else(|| format!("bad histogram {t:?}"))? + 2;
            let start = parse_histogram_literal(&t[..end])?;
            let rest = &t[end..];
            if rest.is_empty() {
                out.push(Some(PV::H(start)));
                continue;
            }
            let (inc, sign, times) = if let Some(n) = rest.strip_prefix('x') {
                (None, 1.0, n)
            } else {
                let sign = if rest.starts_with('+') { 1.0 } else { -1.0 };
                let r = &rest[1..];
                let e = r.find("}}").ok_or_else(|| format!("bad histogram {t:?}"))? + 2;
                let inc = parse_histogram_literal(&r[..e])?;
                let n = r[e..]
                    .strip_prefix('x')
                    .ok_or_else(|| format!("bad histogram series {t:?}"))?;
                (Some(inc), sign, n)
            };
            let n: u64 = times.parse().map_err(|_| format!("bad repeat in {t:?}"))?;
            let mut cur = start;
            out.push(Some(PV::H(cur.clone())));
            for _ in 0..n {
                if let Some(inc) = &inc {
                    let r = if sign > 0.0 {
                        cur.add(inc)
                    } else {
                        cur.sub(inc)
                    };
                    r.map_err(|_| format!("incompatible histograms in {t:?}"))?;
                }
                out.push(Some(PV::H(cur.clone())));
            }
            continue;
        }
        if t == "_" {
            out.push(None);
            continue;
        }
        if let Some(v) = parse_float(t) {
            out.push(Some(PV::F(v)));
            continue;
        }
        let Some((base, n)) = t.rsplit_once('x') else {
            return Err(format!("bad value {t:?}"));
        };
        let n: u64 = n.parse().map_err(|_| format!("bad repeat in {t:?}"))?;
        if base == "_" {
            for _ in 0..n {
                out.push(None);
            }
            continue;
        }
        // base is `a`, `a+b` or `a-b`
        let bytes = base.as_bytes();
        let mut split = None;
        for i in 1..bytes.len() {
            if (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E') {
                split = Some(i);
            }
        }
        let (start, step) = match split {
            Some(i) => (
                parse_float(&base[..i]).ok_or_else(|| format!("bad start in {t:?}"))?,
                parse_float(&base[i..]).ok_or_else(|| format!("bad step in {t:?}"))?,
            ),
            None => (
                parse_float(base).ok_or_else(|| format!("bad value in {t:?}"))?,
                0.0,
            ),
        };
        let mut v = start;
        out.push(Some(PV::F(v)));
        for _ in 0..n {
            v += step;
            out.push(Some(PV::F(v)));
        }
    }
    Ok(out)
}

fn labels_of(desc: &str) -> Result<Labels, String> {
    if desc.trim() == "{}" {
        return Ok(Labels::empty());
    }
    let e = parser::parse(desc).map_err(|e| format!("bad series {desc:?}: {e}"))?;
    let Expr::VectorSelector(vs) = e else {
        return Err(format!("bad series {desc:?}"));
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(n) = vs.name {
        pairs.push(("__name__".into(), n));
    }
    for m in vs.matchers.matchers {
        pairs.push((m.name, m.value));
    }
    Labels::from_pairs(pairs).map_err(|e| e.to_string())
}

fn ident_words(s: &str) -> HashSet<String> {
    s.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

fn almost_equal(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    let eps = 1e-6;
    let diff = (a - b).abs();
    let sum = a.abs() + b.abs();
    if a == 0.0 || b == 0.0 || sum < f64::MIN_POSITIVE {
        return diff < eps * f64::MIN_POSITIVE;
    }
    diff / sum.min(f64::MAX) < eps
}

#[derive(Default)]
struct Expect {
    fail: bool,
    fail_msg: Option<String>,
    fail_regex: Option<String>,
    warn: Option<bool>,
    warn_msg: Vec<String>,
    warn_regex: Vec<String>,
    info: Option<bool>,
    info_msg: Vec<String>,
    info_regex: Vec<String>,
    ordered: bool,
    string: Option<String>,
    range_vector: Option<(i64, i64, i64)>,
}

enum Outcome {
    Pass,
    Fail(String),
    Skip(&'static str),
}

struct Eval<'a> {
    line: usize,
    header: &'a str,
    body: Vec<&'a str>,
}

fn check_annotations(exp: &Expect, res: &QueryResult) -> Result<(), String> {
    let check = |want: Option<bool>,
                 msgs: &[String],
                 regexes: &[String],
                 got: &[String],
                 kind: &str|
     -> Result<(), String> {
        if want == Some(true) && got.is_empty() {
            return Err(format!("expected {kind} but got none"));
        }
        if want == Some(false) && !got.is_empty() {
            return Err(format!("unexpected {kind}: {got:?}"));
        }
        for m in msgs {
            if !got.iter().any(|g| g == m) {
                return Err(format!("expected {kind} {m:?}, got {got:?}"));
            }
        }
        for r in regexes {
            let re = regex::Regex::new(&format!("^(?:{r})$")).map_err(|e| e.to_string())?;
            if !got.iter().any(|g| re.is_match(g)) {
                return Err(format!("expected {kind} matching {r:?}, got {got:?}"));
            }
        }
        Ok(())
    };
    check(
        exp.warn,
        &exp.warn_msg,
        &exp.warn_regex,
        &res.warnings,
        "warnings",
    )?;
    check(
        exp.info,
        &exp.info_msg,
        &exp.info_regex,
        &res.infos,
        "infos",
    )
}

#[allow(clippy::too_many_arguments)]
fn run_eval(
    engine: &Engine,
    st: &MemoryStorage,
    ev: &Eval<'_>,
    core: bool,
    st_loaded: bool,
) -> Outcome {
    let mut words = ev.header.split_whitespace();
    let cmd = words.next().unwrap_or("");
    let mut exp = Expect::default();
    match cmd {
        "eval_fail" => exp.fail = true,
        "eval_warn" => exp.warn = Some(true),
        "eval_info" => exp.info = Some(true),
        "eval_ordered" => exp.ordered = true,
        _ => {}
    }
    let kind = words.next().unwrap_or("");
    let rest: Vec<&str> = words.collect();
    let (range, query): (Option<(i64, i64, i64)>, String) = match kind {
        "instant" => {
            // at <time> <expr>
            if rest.len() < 3 || rest[0] != "at" {
                return Outcome::Fail(format!("bad eval header {:?}", ev.header));
            }
            let Some(t) = parse_duration_ms(rest[1]) else {
                return Outcome::Fail(format!("bad time in {:?}", ev.header));
            };
            (Some((t, t, 0)), rest[2..].join(" "))
        }
        "range" => {
            // from <t0> to <t1> step <s> <expr>
            if rest.len() < 7 {
                return Outcome::Fail(format!("bad eval header {:?}", ev.header));
            }
            let (Some(a), Some(b), Some(s)) = (
                parse_duration_ms(rest[1]),
                parse_duration_ms(rest[3]),
                parse_duration_ms(rest[5]),
            ) else {
                return Outcome::Fail(format!("bad range in {:?}", ev.header));
            };
            (Some((a, b, s)), rest[6..].join(" "))
        }
        _ => return Outcome::Fail(format!("bad eval header {:?}", ev.header)),
    };
    // Use the original spacing of the query text.
    let query = match ev
        .header
        .find(query.split_whitespace().next().unwrap_or(""))
    {
        Some(_) => {
            let skip = match kind {
                "instant" => 4,
                _ => 8,
            };
            let mut idx = 0;
            let mut seen = 0;
            let hb = ev.header;
            let mut in_ws = true;
            for (i, ch) in hb.char_indices() {
                let ws = ch.is_whitespace();
                if in_ws && !ws {
                    seen += 1;
                    if seen == skip + 1 {
                        idx = i;
                        break;
                    }
                }
                in_ws = ws;
            }
            hb[idx..].trim().to_owned()
        }
        None => query,
    };
    let mut expected_lines: Vec<&str> = Vec::new();
    for l in &ev.body {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if let Some(e) = l.strip_prefix("expect ") {
            let e = e.trim();
            let (head, tail) = match e.split_once(' ') {
                Some((h, t)) => (h, t.trim()),
                None => (e, ""),
            };
            let msg = tail.strip_prefix("msg:").map(|m| m.trim().to_owned());
            let re = tail.strip_prefix("regex:").map(|m| m.trim().to_owned());
            match head {
                "fail" => {
                    exp.fail = true;
                    exp.fail_msg = msg;
                    exp.fail_regex = re;
                }
                "warn" => {
                    exp.warn = Some(true);
                    exp.warn_msg.extend(msg);
                    exp.warn_regex.extend(re);
                }
                "info" => {
                    exp.info = Some(true);
                    exp.info_msg.extend(msg);
                    exp.info_regex.extend(re);
                }
                "no_warn" => exp.warn = Some(false),
                "no_info" => exp.info = Some(false),
                "ordered" => exp.ordered = true,
                "string" => {
                    exp.string = Some(tail.trim_matches(|c| c == '"' || c == '`').to_owned());
                }
                "range" => {
                    let w: Vec<&str> = tail.split_whitespace().collect();
                    // vector from A to B step S
                    if w.len() == 7 {
                        if let (Some(a), Some(b), Some(s)) = (
                            parse_duration_ms(w[2]),
                            parse_duration_ms(w[4]),
                            parse_duration_ms(w[6]),
                        ) {
                            exp.range_vector = Some((a, b, s));
                        }
                    }
                }
                _ => return Outcome::Fail(format!("unknown expectation {l:?}")),
            }
            continue;
        }
        expected_lines.push(l);
    }
    // Skips.
    if st_loaded {
        return Outcome::Skip("experimental start timestamps (@st samples) are not stored");
    }
    let Some((start, end, step)) = range else {
        return Outcome::Fail("no range".into());
    };
    let res = if kind == "instant" {
        engine.instant_query(st, &query, start)
    } else {
        engine.range_query(st, &query, start, end, step)
    };
    let res = match res {
        Err(bongsu_promql::Error::Parse(_))
            if !core
                && (ident_words(&query).contains("anchored")
                    || ident_words(&query).contains("smoothed")) =>
        {
            return Outcome::Skip(
                "experimental anchored/smoothed range modifiers (not in the parser)",
            );
        }
        Err(bongsu_promql::Error::Parse(_)) if !core && query.starts_with("info(") => {
            return Outcome::Skip(
                "info() data-label selector matching only empty values (refused by the parser)",
            );
        }
        Err(bongsu_promql::Error::Parse(_))
            if !core && (query.contains("</") || query.contains(">/")) =>
        {
            return Outcome::Skip(
                "experimental histogram trim operators </ and >/ (not in the parser)",
            );
        }
        Err(bongsu_promql::Error::Parse(_)) if !exp.fail && !core => {
            return Outcome::Skip(
                "experimental duration expressions in ranges and offsets (not in the parser)",
            );
        }
        Err(e) => {
            if !exp.fail {
                return Outcome::Fail(format!("unexpected error: {e}"));
            }
            let msg = e.to_string();
            if let Some(m) = &exp.fail_msg {
                if !msg.contains(m.as_str()) {
                    return Outcome::Fail(format!("error {msg:?} does not contain {m:?}"));
                }
            }
            if let Some(r) = &exp.fail_regex {
                match regex::Regex::new(r) {
                    Ok(re) if re.is_match(&msg) => {}
                    _ => return Outcome::Fail(format!("error {msg:?} does not match {r:?}")),
                }
            }
            return Outcome::Pass;
        }
        Ok(r) => r,
    };
    if exp.fail {
        return Outcome::Fail("expected an error, got a result".into());
    }
    if let Err(e) = check_annotations(&exp, &res) {
        return Outcome::Fail(e);
    }
    match compare(
        &res.value,
        &expected_lines,
        &exp,
        kind == "range",
        start,
        end,
        step,
    ) {
        Ok(()) => Outcome::Pass,
        Err(e) => Outcome::Fail(e),
    }
}

fn split_series_line(l: &str) -> Result<(Option<Labels>, Vec<String>), String> {
    let toks = tokens(l);
    let Some(first) = toks.first() else {
        return Err("empty line".into());
    };
    if toks.len() == 1 || parse_float(first).is_some() && !first.contains('{') {
        // A bare scalar (or a single value list for `{}`-less lines).
        if parse_float(first).is_some() {
            return Ok((None, toks));
        }
    }
    Ok((Some(labels_of(first)?), toks[1..].to_vec()))
}

/// Compares as Prometheus's test framework does after compacting both: schema,
/// count, sum, custom bounds, zero bucket and the populated buckets.
fn hist_matches(exp: &FloatHistogram, got: &FloatHistogram) -> bool {
    let side = |a: &[(i32, f64)], b: &[(i32, f64)]| {
        let a: Vec<_> = a.iter().filter(|x| x.1 != 0.0).collect();
        let b: Vec<_> = b.iter().filter(|x| x.1 != 0.0).collect();
        a.len() == b.len()
            && a.iter()
                .zip(&b)
                .all(|(x, y)| x.0 == y.0 && almost_equal(x.1, y.1))
    };
    exp.schema == got.schema
        && almost_equal(exp.count, got.count)
        && almost_equal(exp.sum, got.sum)
        && (!exp.uses_custom_buckets() || exp.custom_values == got.custom_values)
        && exp.zero_threshold == got.zero_threshold
        && almost_equal(exp.zero_count, got.zero_count)
        && side(&exp.negative, &got.negative)
        && side(&exp.positive, &got.positive)
}

fn compare(
    got: &Value,
    lines: &[&str],
    exp: &Expect,
    is_range: bool,
    start: i64,
    end: i64,
    step: i64,
) -> Result<(), String> {
    if let Some(s) = &exp.string {
        return match got {
            Value::String { value, .. } if value == s => Ok(()),
            other => Err(format!("expected string {s:?}, got {other:?}")),
        };
    }
    let (r_start, r_step, matrix_expected) = match (is_range, exp.range_vector) {
        (true, _) => (start, step, true),
        (false, Some((a, _, s))) => (a, s, true),
        (false, None) => (start, 0, false),
    };
    let _ = end;
    type Expected = (Labels, Vec<(i64, f64)>, Vec<(i64, FloatHistogram)>);
    let mut expected: Vec<Expected> = Vec::new();
    let mut scalar: Option<f64> = None;
    for l in lines {
        let (labels, vals) = split_series_line(l)?;
        let pts = expand(&vals)?;
        match labels {
            None => {
                scalar = match pts.first() {
                    Some(Some(PV::F(v))) => Some(*v),
                    _ => None,
                };
            }
            Some(labels) => {
                let mut points = Vec::new();
                let mut hists = Vec::new();
                for (i, p) in pts.into_iter().enumerate() {
                    let t = r_start + i as i64 * r_step;
                    match p {
                        Some(PV::F(v)) => points.push((t, v)),
                        Some(PV::H(h)) => hists.push((t, h)),
                        None => {}
                    }
                }
                expected.push((labels, points, hists));
            }
        }
    }
    match got {
        Value::Scalar { value, .. } => {
            if matrix_expected {
                return Err("expected a matrix, got a scalar".into());
            }
            match scalar {
                Some(s) if almost_equal(s, *value) => Ok(()),
                _ => Err(format!("expected scalar {scalar:?}, got {value}")),
            }
        }
        Value::String { value, .. } => Err(format!("unexpected string {value:?}")),
        Value::Vector(v) => {
            if matrix_expected {
                return Err("expected a matrix, got a vector".into());
            }
            if scalar.is_some() {
                return Err(format!("expected a scalar, got vector {v:?}"));
            }
            let show = |v: &[bongsu_promql::InstantSample]| -> Vec<String> {
                v.iter()
                    .map(|s| match &s.histogram {
                        Some(h) => format!("{} {h}", s.labels),
                        None => format!("{} {}", s.labels, s.value),
                    })
                    .collect()
            };
            if v.len() != expected.len() {
                return Err(format!(
                    "expected {} samples, got {}: {:?}",
                    expected.len(),
                    v.len(),
                    show(v)
                ));
            }
            for (i, (el, ep, eh)) in expected.iter().enumerate() {
                let pos = v.iter().position(|s| &s.labels == el);
                let Some(pos) = pos else {
                    return Err(format!("missing series {el}: got {:?}", show(v)));
                };
                if exp.ordered && pos != i {
                    return Err(format!("series {el} at position {pos}, expected {i}"));
                }
                match (eh.first(), &v[pos].histogram) {
                    (Some((_, want)), Some(got)) => {
                        if !hist_matches(want, got) {
                            return Err(format!("{el}: expected {want}, got {got}"));
                        }
                    }
                    (Some((_, want)), None) => {
                        return Err(format!(
                            "{el}: expected histogram {want}, got float {}",
                            v[pos].value
                        ))
                    }
                    (None, Some(got)) => {
                        return Err(format!("{el}: expected a float, got histogram {got}"))
                    }
                    (None, None) => {
                        let want = ep.first().map(|p| p.1).unwrap_or(f64::NAN);
                        if !almost_equal(want, v[pos].value) {
                            return Err(format!("{el}: expected {want}, got {}", v[pos].value));
                        }
                    }
                }
            }
            Ok(())
        }
        Value::Matrix(m) => {
            if !matrix_expected {
                return Err("expected a vector, got a matrix".into());
            }
            let expected: Vec<_> = expected
                .into_iter()
                .filter(|e| !e.1.is_empty() || !e.2.is_empty())
                .collect();
            let show = |m: &[bongsu_promql::RangeSeries]| -> Vec<String> {
                m.iter()
                    .map(|s| {
                        let hs: Vec<String> = s
                            .histograms
                            .iter()
                            .map(|(t, h)| format!("{h}@{t}"))
                            .collect();
                        format!("{} {:?} {:?}", s.labels, s.points, hs)
                    })
                    .collect()
            };
            if m.len() != expected.len() {
                return Err(format!(
                    "expected {} series, got {}: {:?}",
                    expected.len(),
                    m.len(),
                    show(m)
                ));
            }
            for (el, ep, eh) in &expected {
                let Some(s) = m.iter().find(|s| &s.labels == el) else {
                    return Err(format!("missing series {el}: got {:?}", show(m)));
                };
                let floats_ok = s.points.len() == ep.len()
                    && s.points
                        .iter()
                        .zip(ep)
                        .all(|(a, b)| a.0 == b.0 && almost_equal(a.1, b.1));
                let hists_ok = s.histograms.len() == eh.len()
                    && s.histograms
                        .iter()
                        .zip(eh)
                        .all(|(a, b)| a.0 == b.0 && hist_matches(&b.1, &a.1));
                if !floats_ok || !hists_ok {
                    let ehs: Vec<String> = eh.iter().map(|(t, h)| format!("{h}@{t}")).collect();
                    return Err(format!(
                        "{el}: expected {ep:?} {ehs:?}, got {:?}",
                        show(std::slice::from_ref(s))
                    ));
                }
            }
            Ok(())
        }
    }
}

/// Classic histogram parts per base series and timestamp: (bucket (le, count), count, sum).
type Parts = (Vec<(f64, f64)>, Option<f64>, f64);
type Classic = BTreeMap<Labels, BTreeMap<i64, Parts>>;

/// Collects the `_bucket`/`_count`/`_sum` samples of a `load_with_nhcb` block.
fn nhcb_collect(classic: &mut Classic, labels: &Labels, floats: &[Sample]) {
    let Some(name) = labels.metric_name() else {
        return;
    };
    let (kind, base) = if let Some(b) = name.strip_suffix("_bucket") {
        (0, b)
    } else if let Some(b) = name.strip_suffix("_sum") {
        (1, b)
    } else if let Some(b) = name.strip_suffix("_count") {
        (2, b)
    } else {
        return;
    };
    let le = if kind == 0 {
        match labels.get("le").map(str::parse::<f64>) {
            Some(Ok(v)) if !v.is_nan() => Some(v),
            _ => return,
        }
    } else {
        None
    };
    let mut key = labels.clone();
    key.remove("le");
    key.set("__name__", base);
    let per_ts = classic.entry(key).or_default();
    for s in floats {
        let e = per_ts.entry(s.timestamp_ms).or_default();
        match (kind, le) {
            (0, Some(le)) => {
                if !e.0.iter().any(|b| b.0 == le) {
                    e.0.push((le, s.value));
                }
            }
            (1, _) => e.2 = s.value,
            _ => e.1 = Some(s.value),
        }
    }
}

/// Converts collected classic histograms into native histograms with custom buckets,
/// as the corpus's `load_with_nhcb` asks; inconsistent ones are left out.
fn nhcb_convert(classic: Classic) -> Vec<(Labels, Vec<HistogramSample>)> {
    let mut out = Vec::new();
    for (labels, per_ts) in classic {
        let mut samples = Vec::new();
        for (ts, (mut buckets, count, sum)) in per_ts {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            if buckets.windows(2).any(|w| w[1].1 < w[0].1) || buckets.iter().any(|b| b.1 < 0.0) {
                continue;
            }
            let count = match (count, buckets.last()) {
                (Some(c), _) => c,
                (None, Some(b)) => b.1,
                (None, None) => 0.0,
            };
            if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
                buckets.push((f64::INFINITY, count));
            }
            if buckets.last().is_some_and(|b| b.1 != count) {
                continue;
            }
            let mut h = FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count,
                sum,
                ..FloatHistogram::default()
            };
            let mut prev = 0.0;
            for (i, (le, c)) in buckets.iter().enumerate() {
                if *c - prev != 0.0 {
                    h.positive.push((i as i32, c - prev));
                }
                prev = *c;
                if *le != f64::INFINITY {
                    h.custom_values.push(*le);
                }
            }
            samples.push(HistogramSample {
                timestamp_ms: ts,
                histogram: h,
            });
        }
        if !samples.is_empty() {
            out.push((labels, samples));
        }
    }
    out
}

struct FileReport {
    pass: usize,
    total: usize,
    skipped: BTreeMap<&'static str, usize>,
    failures: Vec<(usize, String)>,
}

fn run_file(path: &Path, core: bool) -> FileReport {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let engine = Engine::new(EngineOptions::default());
    let st = MemoryStorage::new();
    let mut classic: Classic = BTreeMap::new();
    let mut st_loaded = false;
    let mut rep = FileReport {
        pass: 0,
        total: 0,
        skipped: BTreeMap::new(),
        failures: Vec::new(),
    };
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || line.starts_with(char::is_whitespace) {
            i += 1;
            continue;
        }
        let start_line = i + 1;
        let mut body = Vec::new();
        let mut j = i + 1;
        while j < lines.len()
            && !lines[j].trim().is_empty()
            && lines[j].starts_with(char::is_whitespace)
        {
            body.push(lines[j]);
            j += 1;
        }
        // Comment lines inside a block are skipped by the loop above only when indented;
        // top-level comments between header and body end the block as in the format.
        if t == "clear" {
            st.clear();
            st_loaded = false;
        } else if let Some(rest) = t.strip_prefix("load") {
            let nhcb = rest.starts_with("_with_nhcb");
            let interval = rest
                .split_whitespace()
                .last()
                .and_then(parse_duration_ms)
                .unwrap_or(0);
            for b in &body {
                let b = b.trim();
                if b.is_empty() || b.starts_with('#') {
                    continue;
                }
                let toks = tokens(b);
                let Some(first) = toks.first() else { continue };
                if first.ends_with("@st") {
                    st_loaded = true;
                    continue;
                }
                let Ok(labels) = labels_of(first) else {
                    rep.failures
                        .push((start_line, format!("bad load line {b:?}")));
                    continue;
                };
                match expand(&toks[1..]) {
                    Ok(pts) => {
                        let mut floats = Vec::new();
                        let mut hists = Vec::new();
                        for (k, p) in pts.into_iter().enumerate() {
                            let ts = k as i64 * interval;
                            match p {
                                Some(PV::F(v)) => floats.push(Sample::new(ts, v)),
                                Some(PV::H(h)) => hists.push(HistogramSample {
                                    timestamp_ms: ts,
                                    histogram: h,
                                }),
                                None => {}
                            }
                        }
                        if nhcb {
                            nhcb_collect(&mut classic, &labels, &floats);
                        }
                        st.add(labels.clone(), floats);
                        if !hists.is_empty() {
                            st.add_histograms(labels, hists);
                        }
                    }
                    Err(e) => rep.failures.push((start_line, e)),
                }
            }
            for (labels, samples) in nhcb_convert(std::mem::take(&mut classic)) {
                st.add_histograms(labels, samples);
            }
        } else if t.starts_with("eval") {
            rep.total += 1;
            let ev = Eval {
                line: start_line,
                header: t,
                body,
            };
            match run_eval(&engine, &st, &ev, core, st_loaded) {
                Outcome::Pass => rep.pass += 1,
                Outcome::Skip(r) => {
                    if std::env::var_os("BONGSU_PROMQL_VERBOSE").is_some() {
                        println!("  SKIP {}:{}: {t}: {r}", path.display(), ev.line);
                    }
                    *rep.skipped.entry(r).or_default() += 1
                }
                Outcome::Fail(e) => rep.failures.push((ev.line, format!("{t}: {e}"))),
            }
        }
        i = j;
    }
    rep
}

#[test]
fn promql_conformance_corpus() {
    let dir = corpus_dir();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "test"))
            .collect(),
        Err(e) => panic!(
            "cannot read the conformance corpus at {}: {e}; clone shared/ beside the repository",
            dir.display()
        ),
    };
    files.sort();
    let known_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/known_failures.txt");
    let known: BTreeSet<String> = std::fs::read_to_string(&known_path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let floor_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pass_floor.txt");
    let floor: BTreeMap<String, usize> = std::fs::read_to_string(&floor_path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (f, n) = l.split_once(char::is_whitespace)?;
            Some((f.to_owned(), n.trim().parse().ok()?))
        })
        .collect();
    let mut passes: BTreeMap<String, usize> = BTreeMap::new();
    let mut core_failures: BTreeSet<String> = BTreeSet::new();
    let mut regressions = Vec::new();
    let verbose = std::env::var_os("BONGSU_PROMQL_VERBOSE").is_some();
    for f in &files {
        let stem = f
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_owned();
        let core = CORE.contains(&stem.as_str());
        let rep = run_file(f, core);
        let skipped: usize = rep.skipped.values().sum();
        let reasons: Vec<String> = rep
            .skipped
            .iter()
            .map(|(r, n)| format!("{n} {r}"))
            .collect();
        println!(
            "{stem}.test: {} of {} evals pass ({} skipped{}){}",
            rep.pass,
            rep.total - skipped,
            skipped,
            if reasons.is_empty() {
                String::new()
            } else {
                format!(": {}", reasons.join("; "))
            },
            if core { " [core]" } else { "" }
        );
        let file = format!("{stem}.test");
        if core && skipped > 0 {
            regressions.push(format!("{file}: {skipped} core evals skipped"));
        }
        if let Some(&min) = floor.get(&file) {
            if rep.pass < min {
                regressions.push(format!(
                    "{file}: {} evals pass, fewer than the floor of {min} in tests/pass_floor.txt",
                    rep.pass
                ));
            }
        }
        passes.insert(file, rep.pass);
        for (line, msg) in &rep.failures {
            let id = format!("{stem}.test:{line}");
            if verbose {
                println!("  FAIL {id}: {msg}");
            }
            if core {
                core_failures.insert(id.clone());
                if !known.contains(&id) {
                    regressions.push(format!("{id}: {msg}"));
                }
            }
        }
    }
    let newly_passing: Vec<&String> = known
        .iter()
        .filter(|k| !core_failures.contains(*k))
        .collect();
    println!(
        "core known failures: {} listed, {} failing now, {} newly passing",
        known.len(),
        core_failures.len(),
        newly_passing.len()
    );
    for n in &newly_passing {
        println!("  newly passing: {n}");
    }
    if std::env::var_os("BONGSU_UPDATE_KNOWN_FAILURES").is_some() {
        let mut body = String::from(
            "# Core-gate conformance evals that do not pass yet (file:line). The conformance\n# test fails when any other core eval fails. Regenerate with\n# BONGSU_UPDATE_KNOWN_FAILURES=1 cargo test -p bongsu-promql --test conformance\n",
        );
        for f in &core_failures {
            body.push_str(f);
            body.push('\n');
        }
        if let Err(e) = std::fs::write(&known_path, body) {
            panic!("cannot write {}: {e}", known_path.display());
        }
        let mut floor_body = String::from(
            "# Fewest evals each corpus file must pass (file count); the conformance test fails\n# below. Regenerate with BONGSU_UPDATE_KNOWN_FAILURES=1.\n",
        );
        for (f, n) in &passes {
            floor_body.push_str(&format!("{f} {n}\n"));
        }
        if let Err(e) = std::fs::write(&floor_path, floor_body) {
            panic!("cannot write {}: {e}", floor_path.display());
        }
        return;
    }
    assert!(
        regressions.is_empty(),
        "{} core evals fail that are not in tests/known_failures.txt, or files pass fewer evals than their floor:\n{}",
        regressions.len(),
        regressions.join("\n")
    );
}
