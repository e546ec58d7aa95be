//! A recursive-descent parser for the supported LogQL subset (see `docs/logql.md`).

use regex::Regex;

use crate::error::{Error, Result};
use crate::logql::ast::*;
use crate::logql::lexer::{lex, parse_bytes, parse_duration, Spanned, Tok};
use crate::logql::template::Template;

/// Parses a query.
pub(crate) fn parse(src: &str) -> Result<Expr> {
    let mut p = Parser {
        toks: lex(src)?,
        pos: 0,
    };
    let e = p.expr()?;
    p.expect_eof()?;
    Ok(e)
}

/// Parses a stream selector alone (`{a="b"}`), as the series and label APIs take.
pub(crate) fn parse_selector(src: &str) -> Result<Vec<Matcher>> {
    let mut p = Parser {
        toks: lex(src)?,
        pos: 0,
    };
    let m = p.selector()?;
    p.expect_eof()?;
    Ok(m)
}

struct Parser {
    toks: Vec<Spanned>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].tok
    }

    fn peek_at(&self, n: usize) -> &Tok {
        let i = (self.pos + n).min(self.toks.len() - 1);
        &self.toks[i].tok
    }

    fn bump(&mut self) -> Tok {
        let t = self.toks[self.pos].tok.clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn err_at(&self, pos: usize, msg: impl Into<String>) -> Error {
        let s = &self.toks[pos.min(self.toks.len() - 1)];
        Error::Parse {
            line: s.line,
            col: s.col,
            msg: msg.into(),
        }
    }

    fn err(&self, msg: impl Into<String>) -> Error {
        self.err_at(self.pos, msg)
    }

    fn unexpected(&self, expecting: &str) -> Error {
        self.err(format!(
            "syntax error: unexpected {}, expecting {expecting}",
            self.peek().describe()
        ))
    }

    fn expect(&mut self, t: Tok, what: &str) -> Result<()> {
        if *self.peek() == t {
            self.bump();
            Ok(())
        } else {
            Err(self.unexpected(what))
        }
    }

    fn expect_eof(&self) -> Result<()> {
        if *self.peek() == Tok::Eof {
            Ok(())
        } else if matches!(self.peek(), Tok::Ident(s) if ["and", "or", "unless"].contains(&s.as_str()))
            || matches!(
                self.peek(),
                Tok::Gt | Tok::Lt | Tok::Ge | Tok::Le | Tok::EqEq | Tok::Neq
            )
        {
            Err(self.err("binary operations between queries are not supported"))
        } else {
            Err(self.unexpected("end of query"))
        }
    }

    fn ident(&mut self, what: &str) -> Result<String> {
        match self.peek().clone() {
            Tok::Ident(s) => {
                self.bump();
                Ok(s)
            }
            _ => Err(self.unexpected(what)),
        }
    }

    fn string(&mut self, what: &str) -> Result<(String, usize)> {
        let at = self.pos;
        match self.peek().clone() {
            Tok::Str(s) => {
                self.bump();
                Ok((s, at))
            }
            _ => Err(self.unexpected(what)),
        }
    }

    fn expr(&mut self) -> Result<Expr> {
        match self.peek().clone() {
            Tok::LBrace => Ok(Expr::Log(self.log_expr()?)),
            Tok::LParen => {
                self.bump();
                let e = self.expr()?;
                self.expect(Tok::RParen, "\")\"")?;
                Ok(e)
            }
            Tok::Ident(_) => Ok(Expr::Metric(self.metric()?)),
            _ => Err(self.unexpected("a stream selector or a metric query")),
        }
    }

    fn metric(&mut self) -> Result<MetricExpr> {
        if *self.peek() == Tok::LParen {
            self.bump();
            let m = self.metric()?;
            self.expect(Tok::RParen, "\")\"")?;
            return Ok(m);
        }
        let at = self.pos;
        let name = self.ident("a range or vector aggregation")?;
        if let Some(op) = RangeOp::from_name(&name) {
            self.expect(Tok::LParen, "\"(\"")?;
            let param = if op == RangeOp::QuantileOverTime {
                let v = self.number()?;
                self.expect(Tok::Comma, "\",\"")?;
                Some(v)
            } else {
                None
            };
            let (log, range_ns, unwrap, post) = self.log_range()?;
            self.expect(Tok::RParen, "\")\"")?;
            if op.needs_unwrap() && unwrap.is_none() {
                return Err(self.err_at(
                    at,
                    format!("{name} needs `| unwrap <label>` in its log query"),
                ));
            }
            if !op.needs_unwrap() && unwrap.is_some() {
                return Err(self.err_at(at, format!("{name} does not take `| unwrap`")));
            }
            let grouping = if self.at_grouping() {
                Some(self.grouping()?)
            } else {
                None
            };
            if grouping.is_some() && !op.needs_unwrap() {
                return Err(self.err_at(
                    at,
                    format!("{name} does not take by/without: wrap it in sum by (...)"),
                ));
            }
            return Ok(MetricExpr::Range {
                op,
                param,
                log,
                unwrap,
                post,
                range_ns,
                grouping,
            });
        }
        if let Some(op) = VecOp::from_name(&name) {
            let mut grouping = if self.at_grouping() {
                Some(self.grouping()?)
            } else {
                None
            };
            self.expect(Tok::LParen, "\"(\"")?;
            let param = if matches!(op, VecOp::Topk | VecOp::Bottomk) {
                let v = self.number()?;
                if v < 1.0 || v.fract() != 0.0 {
                    return Err(self.err_at(
                        self.pos - 1,
                        format!("{name} needs a positive whole number k"),
                    ));
                }
                self.expect(Tok::Comma, "\",\"")?;
                Some(v)
            } else {
                None
            };
            let inner = self.metric()?;
            self.expect(Tok::RParen, "\")\"")?;
            if self.at_grouping() {
                if grouping.is_some() {
                    return Err(self.err("grouping given twice"));
                }
                grouping = Some(self.grouping()?);
            }
            return Ok(MetricExpr::Vector {
                op,
                param,
                grouping: grouping.unwrap_or_default(),
                inner: Box::new(inner),
            });
        }
        Err(self.err_at(
            at,
            format!("unknown function {name:?}: see docs/logql.md for the supported ones"),
        ))
    }

    fn at_grouping(&self) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s == "by" || s == "without")
    }

    fn grouping(&mut self) -> Result<Grouping> {
        let kw = self.ident("by or without")?;
        self.expect(Tok::LParen, "\"(\"")?;
        let mut labels = Vec::new();
        while *self.peek() != Tok::RParen {
            labels.push(self.ident("a label name")?);
            if *self.peek() == Tok::Comma {
                self.bump();
            } else {
                break;
            }
        }
        self.expect(Tok::RParen, "\")\"")?;
        Ok(Grouping {
            without: kw == "without",
            labels,
        })
    }

    fn number(&mut self) -> Result<f64> {
        match self.peek().clone() {
            Tok::Num(s) => match s.parse::<f64>() {
                Ok(v) => {
                    self.bump();
                    Ok(v)
                }
                Err(_) => Err(self.err(format!("invalid number {s:?}"))),
            },
            _ => Err(self.unexpected("a number")),
        }
    }

    /// `selector pipeline [range] pipeline` — the range may sit after the selector or at the end.
    fn log_range(&mut self) -> Result<(LogExpr, i64, Option<Unwrap>, Vec<LabelPred>)> {
        let paren = *self.peek() == Tok::LParen;
        if paren {
            self.bump();
        }
        let matchers = self.selector()?;
        let mut range = None;
        if *self.peek() == Tok::LBracket {
            range = Some(self.range()?);
        }
        let (stages, unwrap, post) = self.pipeline(true)?;
        if paren {
            self.expect(Tok::RParen, "\")\"")?;
        }
        if *self.peek() == Tok::LBracket {
            if range.is_some() {
                return Err(self.err("range given twice"));
            }
            range = Some(self.range()?);
        }
        let Some(range_ns) = range else {
            return Err(self.unexpected("a range such as [5m]"));
        };
        Ok((LogExpr { matchers, stages }, range_ns, unwrap, post))
    }

    fn range(&mut self) -> Result<i64> {
        self.expect(Tok::LBracket, "\"[\"")?;
        let at = self.pos;
        let d = match self.bump() {
            Tok::Num(s) => parse_duration(&s).filter(|&d| d > 0),
            _ => None,
        }
        .ok_or_else(|| self.err_at(at, "invalid range: write a duration such as 5m"))?;
        self.expect(Tok::RBracket, "\"]\"")?;
        Ok(d)
    }

    fn log_expr(&mut self) -> Result<LogExpr> {
        let matchers = self.selector()?;
        let (stages, unwrap, _) = self.pipeline(false)?;
        debug_assert!(unwrap.is_none());
        Ok(LogExpr { matchers, stages })
    }

    fn selector(&mut self) -> Result<Vec<Matcher>> {
        self.expect(Tok::LBrace, "\"{\"")?;
        let mut out = Vec::new();
        while *self.peek() != Tok::RBrace {
            let name = self.ident("a label name")?;
            let op = self.match_op()?;
            let (value, at) = self.string("a quoted label value")?;
            out.push(self.matcher(name, op, value, at)?);
            if *self.peek() == Tok::Comma {
                self.bump();
            } else {
                break;
            }
        }
        self.expect(Tok::RBrace, "\"}\" or \",\"")?;
        if out.is_empty() {
            return Err(self.err_at(self.pos - 1, "stream selector needs at least one matcher"));
        }
        if out.iter().all(|m| m.matches("")) {
            return Err(self.err_at(
                self.pos - 1,
                "queries require at least one matcher that does not match the empty value",
            ));
        }
        Ok(out)
    }

    fn match_op(&mut self) -> Result<MatchOp> {
        let op = match self.peek() {
            Tok::Eq | Tok::EqEq => MatchOp::Eq,
            Tok::Neq => MatchOp::Neq,
            Tok::Re => MatchOp::Re,
            Tok::Nre => MatchOp::Nre,
            _ => return Err(self.unexpected("=, !=, =~ or !~")),
        };
        self.bump();
        Ok(op)
    }

    fn matcher(&self, name: String, op: MatchOp, value: String, at: usize) -> Result<Matcher> {
        let re = if matches!(op, MatchOp::Re | MatchOp::Nre) {
            Some(Regex::new(&format!("^(?s:{value})$")).map_err(|e| {
                self.err_at(
                    at,
                    format!("invalid regex {value:?}: {}", first_line(&e.to_string())),
                )
            })?)
        } else {
            None
        };
        Ok(Matcher {
            name,
            op,
            value,
            re,
        })
    }

    /// Stages until something that is not a stage. With `allow_unwrap`, returns the unwrap
    /// and the label filters after it.
    fn pipeline(
        &mut self,
        allow_unwrap: bool,
    ) -> Result<(Vec<Stage>, Option<Unwrap>, Vec<LabelPred>)> {
        let mut stages = Vec::new();
        let mut unwrap: Option<Unwrap> = None;
        let mut post = Vec::new();
        loop {
            let at = self.pos;
            let line_op = match self.peek() {
                Tok::PipeEq => Some(LineOp::Contains),
                Tok::Neq => Some(LineOp::NotContains),
                Tok::PipeRe => Some(LineOp::Match),
                Tok::Nre => Some(LineOp::NotMatch),
                Tok::Pipe => None,
                _ => break,
            };
            self.bump();
            if unwrap.is_some() && line_op.is_some() {
                return Err(self.err_at(at, "only label filters may follow unwrap"));
            }
            if let Some(op) = line_op {
                let (pattern, sat) = self.string("a quoted string after a line filter")?;
                let mut alts = vec![pattern];
                // `|= "a" or "b"`: any of them; `!= "a" or "b"`: none of them.
                while matches!(self.peek(), Tok::Ident(w) if w == "or")
                    && matches!(self.peek_at(1), Tok::Str(_))
                {
                    self.bump();
                    alts.push(self.string("a quoted string after or")?.0);
                }
                match op {
                    _ if alts.len() == 1 => {
                        let pattern = alts.pop().unwrap_or_default();
                        stages.push(Stage::Line(self.line_filter(op, pattern, sat)?));
                    }
                    LineOp::NotContains | LineOp::NotMatch => {
                        for pattern in alts {
                            stages.push(Stage::Line(self.line_filter(op, pattern, sat)?));
                        }
                    }
                    LineOp::Contains | LineOp::Match => {
                        let joined = alts
                            .iter()
                            .map(|a| {
                                if op == LineOp::Contains {
                                    regex::escape(a)
                                } else {
                                    format!("(?:{a})")
                                }
                            })
                            .collect::<Vec<_>>()
                            .join("|");
                        stages.push(Stage::Line(self.line_filter(LineOp::Match, joined, sat)?));
                    }
                }
                continue;
            }
            let kw = match self.peek() {
                Tok::Ident(s) => s.clone(),
                Tok::LParen => String::new(),
                _ => return Err(self.unexpected("a parser, a format stage or a label filter")),
            };
            let is_filter = matches!(
                self.peek_at(1),
                Tok::Eq
                    | Tok::EqEq
                    | Tok::Neq
                    | Tok::Re
                    | Tok::Nre
                    | Tok::Gt
                    | Tok::Ge
                    | Tok::Lt
                    | Tok::Le
            ) || kw.is_empty();
            if is_filter {
                let pred = self.label_or()?;
                if unwrap.is_some() {
                    post.push(pred);
                } else {
                    stages.push(Stage::Label(pred));
                }
                continue;
            }
            if unwrap.is_some() {
                return Err(self.err_at(at, "only label filters may follow unwrap"));
            }
            self.bump();
            let stage = match kw.as_str() {
                "json" => Stage::Json,
                "logfmt" => Stage::Logfmt,
                "pattern" => {
                    let (s, sat) = self.string("a quoted pattern")?;
                    Stage::Pattern(parse_pattern(&s).map_err(|m| self.err_at(sat, m))?)
                }
                "regexp" => {
                    let (s, sat) = self.string("a quoted regular expression")?;
                    let re = Regex::new(&s)
                        .map_err(|e| self.err_at(sat, format!("invalid regex {s:?}: {}", first_line(&e.to_string()))))?;
                    if re.capture_names().flatten().next().is_none() {
                        return Err(self.err_at(sat, "regexp needs at least one named capture (?P<name>...)"));
                    }
                    Stage::Regexp(re)
                }
                "line_format" => {
                    let (s, sat) = self.string("a quoted template")?;
                    Stage::LineFormat(Template::parse(&s).map_err(|m| self.err_at(sat, m))?)
                }
                "label_format" => {
                    let mut fmts = Vec::new();
                    loop {
                        let dst = self.ident("a label name")?;
                        self.expect(Tok::Eq, "\"=\"")?;
                        let f = match self.peek().clone() {
                            Tok::Ident(src) => {
                                self.bump();
                                LabelFmt::Rename(src)
                            }
                            Tok::Str(s) => {
                                let sat = self.pos;
                                self.bump();
                                LabelFmt::Template(Template::parse(&s).map_err(|m| self.err_at(sat, m))?)
                            }
                            _ => return Err(self.unexpected("a label name or a quoted template")),
                        };
                        fmts.push((dst, f));
                        if *self.peek() == Tok::Comma {
                            self.bump();
                        } else {
                            break;
                        }
                    }
                    Stage::LabelFormat(fmts)
                }
                "drop" | "keep" => {
                    let mut names = vec![self.ident("a label name")?];
                    while *self.peek() == Tok::Comma {
                        self.bump();
                        names.push(self.ident("a label name")?);
                    }
                    if kw == "drop" {
                        Stage::Drop(names)
                    } else {
                        Stage::Keep(names)
                    }
                }
                "unwrap" => {
                    if !allow_unwrap {
                        return Err(self.err_at(at, "unwrap is only allowed inside a range aggregation"));
                    }
                    let name = self.ident("a label name")?;
                    let (label, conv) = if *self.peek() == Tok::LParen && (name == "duration" || name == "duration_seconds" || name == "bytes") {
                        self.bump();
                        let l = self.ident("a label name")?;
                        self.expect(Tok::RParen, "\")\"")?;
                        (l, if name == "bytes" { Conv::Bytes } else { Conv::Duration })
                    } else {
                        (name, Conv::None)
                    };
                    unwrap = Some(Unwrap { label, conv });
                    continue;
                }
                other => {
                    return Err(self.err_at(
                        at + 1,
                        format!("unknown pipeline stage {other:?}: expecting json, logfmt, pattern, regexp, line_format, label_format, drop, keep, unwrap or a label filter"),
                    ))
                }
            };
            stages.push(stage);
        }
        Ok((stages, unwrap, post))
    }

    fn line_filter(&self, op: LineOp, pattern: String, at: usize) -> Result<LineFilter> {
        let (re, scan_re) = if matches!(op, LineOp::Match | LineOp::NotMatch) {
            let mk = |p: &str| {
                regex::bytes::Regex::new(p).map_err(|e| {
                    self.err_at(
                        at,
                        format!("invalid regex {pattern:?}: {}", first_line(&e.to_string())),
                    )
                })
            };
            let re = mk(&pattern)?;
            let scan =
                if op == LineOp::Match && !pattern.contains("\\A") && !pattern.contains("\\z") {
                    Some(mk(&format!("(?m:{pattern})"))?)
                } else {
                    None
                };
            (Some(re), scan)
        } else {
            (None, None)
        };
        Ok(LineFilter {
            op,
            pattern,
            re,
            scan_re,
        })
    }

    fn label_or(&mut self) -> Result<LabelPred> {
        let mut l = self.label_and()?;
        while matches!(self.peek(), Tok::Ident(s) if s == "or") {
            self.bump();
            let r = self.label_and()?;
            l = LabelPred::Or(Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn label_and(&mut self) -> Result<LabelPred> {
        let mut l = self.label_atom()?;
        loop {
            let is_and = matches!(self.peek(), Tok::Ident(s) if s == "and")
                || (*self.peek() == Tok::Comma
                    && matches!(self.peek_at(1), Tok::Ident(_) | Tok::LParen));
            if !is_and {
                break;
            }
            self.bump();
            let r = self.label_atom()?;
            l = LabelPred::And(Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn label_atom(&mut self) -> Result<LabelPred> {
        if *self.peek() == Tok::LParen {
            self.bump();
            let p = self.label_or()?;
            self.expect(Tok::RParen, "\")\"")?;
            return Ok(p);
        }
        let name = self.ident("a label name")?;
        let op_at = self.pos;
        let op = self.bump();
        match (op, self.peek().clone()) {
            (op @ (Tok::Eq | Tok::EqEq | Tok::Neq | Tok::Re | Tok::Nre), Tok::Str(v)) => {
                let at = self.pos;
                self.bump();
                let mop = match op {
                    Tok::Eq | Tok::EqEq => MatchOp::Eq,
                    Tok::Neq => MatchOp::Neq,
                    Tok::Re => MatchOp::Re,
                    _ => MatchOp::Nre,
                };
                Ok(LabelPred::Str(self.matcher(name, mop, v, at)?))
            }
            (
                op @ (Tok::Gt | Tok::Ge | Tok::Lt | Tok::Le | Tok::Eq | Tok::EqEq | Tok::Neq),
                Tok::Num(s),
            ) => {
                let at = self.pos;
                self.bump();
                let cmp = match op {
                    Tok::Gt => Cmp::Gt,
                    Tok::Ge => Cmp::Ge,
                    Tok::Lt => Cmp::Lt,
                    Tok::Le => Cmp::Le,
                    Tok::Neq => Cmp::Ne,
                    _ => Cmp::Eq,
                };
                let (value, kind) = if let Ok(v) = s.parse::<f64>() {
                    (v, NumKind::Number)
                } else if let Some(d) = parse_duration(&s) {
                    (d as f64 / 1e9, NumKind::Duration)
                } else if let Some(b) = parse_bytes(&s) {
                    (b, NumKind::Bytes)
                } else {
                    return Err(self.err_at(at, format!("invalid number, duration or size {s:?}")));
                };
                Ok(LabelPred::Num {
                    name,
                    cmp,
                    value,
                    kind,
                })
            }
            (Tok::Re | Tok::Nre, _) => Err(self.unexpected("a quoted regular expression")),
            (Tok::Gt | Tok::Ge | Tok::Lt | Tok::Le, _) => {
                Err(self.unexpected("a number, duration or size"))
            }
            (Tok::Eq | Tok::EqEq | Tok::Neq, _) => {
                Err(self.unexpected("a quoted string or a number"))
            }
            _ => Err(self.err_at(
                op_at,
                "syntax error: expecting a comparison operator in label filter",
            )),
        }
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_owned()
}

/// Parses a `pattern` expression: literals and `<name>` / `<_>` captures.
pub(crate) fn parse_pattern(s: &str) -> std::result::Result<Vec<PatternPart>, String> {
    let mut parts = Vec::new();
    let mut rest = s;
    let mut lit = String::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('<') {
            if let Some(end) = r.find('>') {
                let name = &r[..end];
                if name == "_"
                    || (!name.is_empty()
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !name.starts_with(|c: char| c.is_ascii_digit()))
                {
                    if !lit.is_empty() {
                        parts.push(PatternPart::Lit(std::mem::take(&mut lit)));
                    }
                    if matches!(parts.last(), Some(PatternPart::Cap(_))) {
                        return Err(
                            "pattern has two captures in a row: put literal text between them"
                                .into(),
                        );
                    }
                    parts.push(PatternPart::Cap((name != "_").then(|| name.to_owned())));
                    rest = &r[end + 1..];
                    continue;
                }
            }
        }
        let mut it = rest.chars();
        if let Some(c) = it.next() {
            lit.push(c);
        }
        rest = it.as_str();
    }
    if !lit.is_empty() {
        parts.push(PatternPart::Lit(lit));
    }
    if !parts.iter().any(|p| matches!(p, PatternPart::Cap(Some(_)))) {
        return Err("pattern needs at least one named capture such as <ip>".into());
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(q: &str) -> String {
        match parse(q) {
            Err(e) => e.to_string(),
            Ok(e) => panic!("parsed: {e:?}"),
        }
    }

    #[test]
    fn parses_log_and_metric_queries() {
        for q in [
            r#"{app="api"}"#,
            r#"{app="api", env!="dev", host=~"web-.*", x!~"y"} |= "err" != "debug" |~ "t[0-9]" !~ "x""#,
            r#"{app="api"} | json | status >= 500 and duration > 1.5s or size > 20MB"#,
            r#"{app="api"} | logfmt | level="error", msg=~".*time.*" | line_format "{{.msg}}" | label_format a=b, c="{{.d}}""#,
            r#"{app="api"} | pattern "<ip> - <_> <status>" | regexp "(?P<x>\\d+)" | drop a, b | keep c"#,
            r#"{app="api"} |= "a" or "b" != "c" or "d" |~ "e" or "f.*""#,
            r#"sum by (app) (count_over_time({app="api"} |= "x" [5m]))"#,
            r#"sum(rate({app="api"}[1m])) by (host)"#,
            r#"topk(3, sum by (path) (bytes_rate({app="api"}[5m])))"#,
            r#"quantile_over_time(0.99, {app="api"} | json | unwrap duration(latency) | __error__="" [5m]) by (path)"#,
            r#"avg_over_time({app="api"} | logfmt | unwrap bytes(size) [1h])"#,
        ] {
            parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        }
    }

    #[test]
    fn errors_name_the_position() {
        assert_eq!(
            err(r#"{app="api"} |= "x" | bogus"#),
            r#"parse error at line 1, col 22: unknown pipeline stage "bogus": expecting json, logfmt, pattern, regexp, line_format, label_format, drop, keep, unwrap or a label filter"#
        );
        assert_eq!(
            err(r#"{app="api""#),
            "parse error at line 1, col 11: syntax error: unexpected end of query, expecting \"}\" or \",\""
        );
        assert_eq!(
            err(r#"{app=~".*"}"#),
            "parse error at line 1, col 11: queries require at least one matcher that does not match the empty value"
        );
        assert_eq!(
            err(r#"sum_over_time({a="b"}[5m])"#),
            "parse error at line 1, col 1: sum_over_time needs `| unwrap <label>` in its log query"
        );
        assert!(err(r#"count_over_time({a="b"})"#).contains("expecting a range such as [5m]"));
        assert!(
            err(r#"{a="b"} |~ "(""#).starts_with("parse error at line 1, col 12: invalid regex")
        );
    }

    #[test]
    fn patterns() {
        let p = parse_pattern("<ip> - <_> [<ts>] \"<method> <path>\"").unwrap();
        assert_eq!(p.len(), 10);
        assert!(parse_pattern("<a><b>").is_err());
        assert!(parse_pattern("no captures").is_err());
    }
}
