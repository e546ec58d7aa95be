//! The LogQL lexer.

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Ident(String),
    Str(String),
    /// A number, maybe followed by a unit (`5m`, `1h30m`, `20MB`, `0.5`).
    Num(String),
    LBrace,
    RBrace,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Eq,
    EqEq,
    Neq,
    Re,
    Nre,
    PipeEq,
    PipeRe,
    Pipe,
    Gt,
    Ge,
    Lt,
    Le,
    Eof,
}

impl Tok {
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("identifier {s:?}"),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::Num(s) => format!("number {s}"),
            Tok::Eof => "end of query".into(),
            t => format!("{:?}", t.text()),
        }
    }

    fn text(&self) -> &'static str {
        match self {
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::Comma => ",",
            Tok::Eq => "=",
            Tok::EqEq => "==",
            Tok::Neq => "!=",
            Tok::Re => "=~",
            Tok::Nre => "!~",
            Tok::PipeEq => "|=",
            Tok::PipeRe => "|~",
            Tok::Pipe => "|",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            _ => "",
        }
    }
}

/// A token with its 1-based position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spanned {
    pub(crate) tok: Tok,
    pub(crate) line: usize,
    pub(crate) col: usize,
}

pub(crate) fn lex(src: &str) -> Result<Vec<Spanned>> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line, mut col) = (0usize, 1usize, 1usize);
    let err = |line, col, msg: String| Error::Parse { line, col, msg };
    while i < chars.len() {
        let c = chars[i];
        let (tl, tc) = (line, col);
        let adv = |i: &mut usize, col: &mut usize, n: usize| {
            *i += n;
            *col += n;
        };
        if c == '\n' {
            i += 1;
            line += 1;
            col = 1;
            continue;
        }
        if c.is_whitespace() {
            adv(&mut i, &mut col, 1);
            continue;
        }
        if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        let next = chars.get(i + 1).copied();
        let two = |t: Tok| (t, 2);
        let (tok, n) = match c {
            '{' => (Tok::LBrace, 1),
            '}' => (Tok::RBrace, 1),
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            '[' => (Tok::LBracket, 1),
            ']' => (Tok::RBracket, 1),
            ',' => (Tok::Comma, 1),
            '=' if next == Some('~') => two(Tok::Re),
            '=' if next == Some('=') => two(Tok::EqEq),
            '=' => (Tok::Eq, 1),
            '!' if next == Some('=') => two(Tok::Neq),
            '!' if next == Some('~') => two(Tok::Nre),
            '|' if next == Some('=') => two(Tok::PipeEq),
            '|' if next == Some('~') => two(Tok::PipeRe),
            '|' => (Tok::Pipe, 1),
            '>' if next == Some('=') => two(Tok::Ge),
            '>' => (Tok::Gt, 1),
            '<' if next == Some('=') => two(Tok::Le),
            '<' => (Tok::Lt, 1),
            '"' => {
                let mut s = String::new();
                let mut j = i + 1;
                let mut ccol = col + 1;
                loop {
                    let Some(&ch) = chars.get(j) else {
                        return Err(err(tl, tc, "unterminated string: close it with \"".into()));
                    };
                    match ch {
                        '"' => break,
                        '\\' => {
                            let e = chars.get(j + 1).copied();
                            let v = match e {
                                Some('n') => '\n',
                                Some('t') => '\t',
                                Some('r') => '\r',
                                Some('\\') => '\\',
                                Some('"') => '"',
                                Some('\'') => '\'',
                                Some(o) => {
                                    return Err(err(
                                        line,
                                        ccol,
                                        format!(
                                        "unknown escape sequence \\{o}: write \\\\ for a backslash"
                                    ),
                                    ))
                                }
                                None => {
                                    return Err(err(
                                        tl,
                                        tc,
                                        "unterminated string: close it with \"".into(),
                                    ))
                                }
                            };
                            s.push(v);
                            j += 2;
                            ccol += 2;
                        }
                        '\n' => return Err(err(tl, tc, "newline in string: use \\n".into())),
                        ch => {
                            s.push(ch);
                            j += 1;
                            ccol += 1;
                        }
                    }
                }
                let n = j + 1 - i;
                (Tok::Str(s), n)
            }
            '`' => {
                let mut j = i + 1;
                let mut s = String::new();
                loop {
                    match chars.get(j) {
                        None => {
                            return Err(err(
                                tl,
                                tc,
                                "unterminated raw string: close it with `".into(),
                            ))
                        }
                        Some('`') => break,
                        Some(&ch) => {
                            s.push(ch);
                            j += 1;
                        }
                    }
                }
                let n = j + 1 - i;
                let newlines = s.matches('\n').count();
                out.push(Spanned {
                    tok: Tok::Str(s),
                    line: tl,
                    col: tc,
                });
                i += n;
                if newlines > 0 {
                    line += newlines;
                    col = 1;
                } else {
                    col += n;
                }
                continue;
            }
            c if c.is_ascii_digit() || (c == '.' && next.is_some_and(|d| d.is_ascii_digit())) => {
                let mut j = i;
                while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '.') {
                    j += 1;
                }
                (Tok::Num(chars[i..j].iter().collect()), j - i)
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut j = i;
                while j < chars.len()
                    && (chars[j].is_alphanumeric() || chars[j] == '_' || chars[j] == '.')
                {
                    j += 1;
                }
                (Tok::Ident(chars[i..j].iter().collect()), j - i)
            }
            '-' if next.is_some_and(|d| d.is_ascii_digit()) => {
                let mut j = i + 1;
                while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '.') {
                    j += 1;
                }
                (Tok::Num(chars[i..j].iter().collect()), j - i)
            }
            other => return Err(err(tl, tc, format!("unexpected character {other:?}"))),
        };
        out.push(Spanned {
            tok,
            line: tl,
            col: tc,
        });
        adv(&mut i, &mut col, n);
    }
    out.push(Spanned {
        tok: Tok::Eof,
        line,
        col,
    });
    Ok(out)
}

/// Parses a Go/Prometheus-style duration (`1h30m`, `500ms`, `2d`) into nanoseconds.
pub(crate) fn parse_duration(s: &str) -> Option<i64> {
    let mut total: i128 = 0;
    let b = s.as_bytes();
    let mut i = 0;
    let (neg, start) = if b.first() == Some(&b'-') {
        (true, 1)
    } else {
        (false, 0)
    };
    i += start;
    if i >= b.len() {
        return None;
    }
    while i < b.len() {
        let ns = i;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        let num: f64 = s.get(ns..i)?.parse().ok()?;
        let us = i;
        while i < b.len() && !(b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        let unit: i128 = match s.get(us..i)? {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            "w" => 604_800_000_000_000,
            "y" => 31_536_000_000_000_000,
            _ => return None,
        };
        total += (num * unit as f64) as i128;
    }
    let v = i64::try_from(total).ok()?;
    Some(if neg { -v } else { v })
}

/// Parses a humanized byte size (`20MB`, `1.5KiB`, `42`) into bytes.
pub(crate) fn parse_bytes(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(s.len());
    let num: f64 = s[..split].parse().ok()?;
    let mult: f64 = match s[split..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "pb" | "p" => 1e15,
        "kib" | "ki" => 1024.0,
        "mib" | "mi" => 1024.0 * 1024.0,
        "gib" | "gi" => 1024.0 * 1024.0 * 1024.0,
        "tib" | "ti" => 1024f64.powi(4),
        "pib" | "pi" => 1024f64.powi(5),
        _ => return None,
    };
    Some(num * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexes_a_query() {
        let t: Vec<Tok> = lex(r#"{app="a\"b"} |= `x\y` | json | d > 5s"#)
            .unwrap()
            .into_iter()
            .map(|s| s.tok)
            .collect();
        assert_eq!(
            t,
            vec![
                Tok::LBrace,
                Tok::Ident("app".into()),
                Tok::Eq,
                Tok::Str("a\"b".into()),
                Tok::RBrace,
                Tok::PipeEq,
                Tok::Str("x\\y".into()),
                Tok::Pipe,
                Tok::Ident("json".into()),
                Tok::Pipe,
                Tok::Ident("d".into()),
                Tok::Gt,
                Tok::Num("5s".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn units() {
        assert_eq!(parse_duration("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_duration("250ms"), Some(250_000_000));
        assert_eq!(parse_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_bytes("20MB"), Some(20e6));
        assert_eq!(parse_bytes("1KiB"), Some(1024.0));
        assert_eq!(parse_bytes("abc"), None);
    }

    #[test]
    fn error_positions() {
        match lex("{a=\"x\"}\n  |= \"unterminated") {
            Err(Error::Parse { line, col, .. }) => assert_eq!((line, col), (2, 6)),
            other => panic!("{other:?}"),
        }
    }
}
