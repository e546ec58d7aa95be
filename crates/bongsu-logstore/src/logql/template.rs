//! A small subset of Go's text/template, as `line_format` and `label_format` use it.
//!
//! Supported: literal text; actions `{{ ... }}` holding a pipeline of commands separated by
//! `|`; a command is a field `.name`, a string `"x"`, an integer, `__line__`, `__timestamp__`,
//! or a function applied to arguments. Functions: `upper` (`ToUpper`), `lower` (`ToLower`),
//! `title`, `trim` (`TrimSpace`), `trimPrefix p s`, `trimSuffix x s`, `replace old new s`,
//! `trunc n s`, `default d s`, `contains sub s`, `len s`. As in Go, a piped value is the last
//! argument of the next command. Trim markers `{{-` and `-}}` are accepted.

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Field(String),
    Str(String),
    Int(i64),
    Line,
    Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Upper,
    Lower,
    Title,
    Trim,
    TrimPrefix,
    TrimSuffix,
    Replace,
    Trunc,
    Default,
    Contains,
    Len,
}

impl Func {
    fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "upper" | "ToUpper" => Self::Upper,
            "lower" | "ToLower" => Self::Lower,
            "title" | "Title" => Self::Title,
            "trim" | "TrimSpace" => Self::Trim,
            "trimPrefix" | "TrimPrefix" => Self::TrimPrefix,
            "trimSuffix" | "TrimSuffix" => Self::TrimSuffix,
            "replace" | "Replace" => Self::Replace,
            "trunc" => Self::Trunc,
            "default" => Self::Default,
            "contains" => Self::Contains,
            "len" => Self::Len,
            _ => return None,
        })
    }

    fn arity(self) -> usize {
        match self {
            Self::Upper | Self::Lower | Self::Title | Self::Trim | Self::Len => 1,
            Self::TrimPrefix | Self::TrimSuffix | Self::Trunc | Self::Default | Self::Contains => 2,
            Self::Replace => 3,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cmd {
    func: Option<Func>,
    args: Vec<Arg>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Piece {
    Text(String),
    Action(Vec<Cmd>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Template {
    pieces: Vec<Piece>,
}

/// What a template can read.
pub(crate) trait Fields {
    fn field(&self, name: &str) -> Option<&str>;
    fn line(&self) -> &str;
    fn timestamp_ns(&self) -> i64;
}

impl Template {
    pub(crate) fn parse(src: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = src;
        while let Some(open) = rest.find("{{") {
            let mut text = &rest[..open];
            let mut inner_start = open + 2;
            if rest[inner_start..].starts_with('-') {
                text = text.trim_end();
                inner_start += 1;
            }
            if !text.is_empty() {
                pieces.push(Piece::Text(text.to_owned()));
            }
            let close = rest[inner_start..]
                .find("}}")
                .ok_or_else(|| "template action is not closed: add }}".to_owned())?
                + inner_start;
            let mut inner = &rest[inner_start..close];
            let mut trim_after = false;
            if let Some(s) = inner.strip_suffix('-') {
                inner = s;
                trim_after = true;
            }
            pieces.push(Piece::Action(parse_action(inner)?));
            rest = &rest[close + 2..];
            if trim_after {
                rest = rest.trim_start();
            }
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Self { pieces })
    }

    /// Renders into `out`.
    pub(crate) fn render(&self, f: &dyn Fields, out: &mut String) {
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Action(cmds) => out.push_str(&eval_action(cmds, f)),
            }
        }
    }
}

fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '|' {
            out.push("|".into());
            i += 1;
        } else if c == '"' || c == '`' {
            let q = c;
            let mut w = String::from('"');
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated string in template".into()),
                    Some(&ch) if ch == q => {
                        i += 1;
                        break;
                    }
                    Some('\\') if q == '"' => {
                        match chars.get(i + 1) {
                            Some('n') => w.push('\n'),
                            Some('t') => w.push('\t'),
                            Some(&o) => w.push(o),
                            None => return Err("unterminated string in template".into()),
                        }
                        i += 2;
                    }
                    Some(&ch) => {
                        w.push(ch);
                        i += 1;
                    }
                }
            }
            out.push(w);
        } else {
            let st = i;
            while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '|' {
                i += 1;
            }
            out.push(chars[st..i].iter().collect());
        }
    }
    Ok(out)
}

fn parse_arg(w: &str) -> Result<Arg, String> {
    if let Some(s) = w.strip_prefix('"') {
        return Ok(Arg::Str(s.to_owned()));
    }
    if let Some(f) = w.strip_prefix('.') {
        if f.is_empty() {
            return Err("template field name missing after '.'".into());
        }
        return Ok(Arg::Field(f.to_owned()));
    }
    if w == "__line__" {
        return Ok(Arg::Line);
    }
    if w == "__timestamp__" {
        return Ok(Arg::Timestamp);
    }
    if let Ok(n) = w.parse::<i64>() {
        return Ok(Arg::Int(n));
    }
    Err(format!(
        "unsupported template argument {w:?}: use .field, a string or a number"
    ))
}

fn parse_action(inner: &str) -> Result<Vec<Cmd>, String> {
    let words = split_words(inner)?;
    let mut cmds = Vec::new();
    for part in words.split(|w| w == "|") {
        let Some(first) = part.first() else {
            return Err("empty command in template pipeline".into());
        };
        let cmd = if let Some(func) = Func::from_name(first) {
            let args = part[1..]
                .iter()
                .map(|w| parse_arg(w))
                .collect::<Result<Vec<_>, _>>()?;
            Cmd {
                func: Some(func),
                args,
            }
        } else {
            if part.len() != 1 {
                return Err(format!("unknown template function {first:?}"));
            }
            Cmd {
                func: None,
                args: vec![parse_arg(first)?],
            }
        };
        let piped = usize::from(!cmds.is_empty());
        if let Some(func) = cmd.func {
            if cmd.args.len() + piped != func.arity() {
                return Err(format!(
                    "template function {first:?} takes {} arguments",
                    func.arity()
                ));
            }
        } else if piped == 1 {
            return Err(format!("cannot pipe into {first:?}: it is not a function"));
        }
        cmds.push(cmd);
    }
    if cmds.is_empty() {
        return Err("empty template action".into());
    }
    Ok(cmds)
}

fn arg_value(a: &Arg, f: &dyn Fields) -> String {
    match a {
        Arg::Field(n) => f.field(n).unwrap_or("").to_owned(),
        Arg::Str(s) => s.clone(),
        Arg::Int(n) => n.to_string(),
        Arg::Line => f.line().to_owned(),
        Arg::Timestamp => f.timestamp_ns().to_string(),
    }
}

fn eval_action(cmds: &[Cmd], f: &dyn Fields) -> String {
    let mut prev: Option<String> = None;
    for c in cmds {
        let mut args: Vec<String> = c.args.iter().map(|a| arg_value(a, f)).collect();
        if let Some(p) = prev.take() {
            args.push(p);
        }
        let v = match c.func {
            None => args.pop().unwrap_or_default(),
            Some(func) => apply(func, &args),
        };
        prev = Some(v);
    }
    prev.unwrap_or_default()
}

fn apply(func: Func, a: &[String]) -> String {
    let arg = |i: usize| a.get(i).map(String::as_str).unwrap_or("");
    match func {
        Func::Upper => arg(0).to_uppercase(),
        Func::Lower => arg(0).to_lowercase(),
        Func::Title => {
            let mut out = String::with_capacity(arg(0).len());
            let mut start = true;
            for c in arg(0).chars() {
                if start && c.is_alphabetic() {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                start = !c.is_alphanumeric();
            }
            out
        }
        Func::Trim => arg(0).trim().to_owned(),
        Func::TrimPrefix => arg(1).strip_prefix(arg(0)).unwrap_or(arg(1)).to_owned(),
        Func::TrimSuffix => arg(1).strip_suffix(arg(0)).unwrap_or(arg(1)).to_owned(),
        Func::Replace => arg(2).replace(arg(0), arg(1)),
        Func::Trunc => {
            let n: i64 = arg(0).parse().unwrap_or(0);
            let s = arg(1);
            let count = s.chars().count() as i64;
            if n >= 0 {
                s.chars().take(n as usize).collect()
            } else {
                s.chars().skip((count + n).max(0) as usize).collect()
            }
        }
        Func::Default => {
            if arg(1).is_empty() {
                arg(0).to_owned()
            } else {
                arg(1).to_owned()
            }
        }
        Func::Contains => arg(1).contains(arg(0)).to_string(),
        Func::Len => arg(0).chars().count().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct F;
    impl Fields for F {
        fn field(&self, name: &str) -> Option<&str> {
            match name {
                "a" => Some("Hello World"),
                "e" => Some(""),
                _ => None,
            }
        }
        fn line(&self) -> &str {
            "the line"
        }
        fn timestamp_ns(&self) -> i64 {
            7
        }
    }

    fn r(t: &str) -> String {
        let mut s = String::new();
        Template::parse(t).unwrap().render(&F, &mut s);
        s
    }

    #[test]
    fn renders() {
        assert_eq!(r("x={{.a}} y"), "x=Hello World y");
        assert_eq!(r("{{ .a | upper }}"), "HELLO WORLD");
        assert_eq!(r("{{ .e | default \"none\" }}"), "none");
        assert_eq!(r("{{ replace \"o\" \"0\" .a }}"), "Hell0 W0rld");
        assert_eq!(
            r("{{ .a | trunc 5 }}|{{ __line__ }}|{{__timestamp__}}"),
            "Hello|the line|7"
        );
        assert_eq!(r("a  {{- .a -}}  b"), "aHello Worldb");
        assert_eq!(r("{{.missing}}"), "");
    }

    #[test]
    fn rejects() {
        assert!(Template::parse("{{ .a").is_err());
        assert!(Template::parse("{{ nope .a }}").is_err());
        assert!(Template::parse("{{ upper }}").is_err());
        assert!(Template::parse("{{ .a | .b }}").is_err());
    }
}
