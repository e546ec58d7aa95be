//! Label validation shared by every decoder.

use bongsu_model::{Label, Labels};

use crate::error::{Error, Result};
use crate::limits::{Limits, KEY_LABELS, KEY_LABEL_NAME, KEY_LABEL_VALUE};

/// `[a-zA-Z_][a-zA-Z0-9_]*`
pub(crate) fn is_valid_label_name(name: &str) -> bool {
    let b = name.as_bytes();
    match b.first() {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {}
        _ => return false,
    }
    b[1..]
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub(crate) fn is_valid_metric_name(name: &str) -> bool {
    let b = name.as_bytes();
    match b.first() {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' || *c == b':' => {}
        _ => return false,
    }
    b[1..]
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
}

/// Validates and normalizes one series' or stream's labels: checks the count and lengths,
/// checks names, sorts, and refuses duplicates (as Prometheus does). Empty values are
/// dropped (an empty value means "absent"). `context` names the item in error messages.
pub(crate) fn build_labels(
    pairs: Vec<Label>,
    limits: &Limits,
    context: impl Fn() -> String,
) -> Result<Labels> {
    check_label_pairs(
        pairs.iter().map(|l| (l.name.as_str(), l.value.as_str())),
        limits,
        &context,
    )?;
    Labels::new(pairs).map_err(|e| match e {
        bongsu_model::Error::DuplicateLabel(name) => Error::DuplicateLabel {
            name,
            context: context(),
        },
        bongsu_model::Error::EmptyLabelName => Error::InvalidLabelName {
            name: String::new(),
            context: context(),
        },
    })
}

/// Like [`build_labels`], and requires a valid `__name__`.
pub(crate) fn build_series_labels(
    pairs: Vec<Label>,
    limits: &Limits,
    context: impl Fn() -> String,
) -> Result<Labels> {
    let labels = build_labels(pairs, limits, &context)?;
    check_metric_name(labels.metric_name(), &context)?;
    Ok(labels)
}

/// The limits and name rules every label pair of a series or stream must meet: at most
/// `max_labels_per_series` pairs, bounded name and value lengths, valid names.
pub(crate) fn check_label_pairs<'a>(
    pairs: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
    limits: &Limits,
    context: &dyn Fn() -> String,
) -> Result<()> {
    if pairs.len() > limits.max_labels_per_series {
        return Err(Error::ItemTooLarge {
            what: "label count",
            actual: pairs.len(),
            limit: limits.max_labels_per_series,
            key: KEY_LABELS,
            context: context(),
        });
    }
    for (name, value) in pairs {
        if name.len() > limits.max_label_name_bytes {
            return Err(Error::ItemTooLarge {
                what: "label name length",
                actual: name.len(),
                limit: limits.max_label_name_bytes,
                key: KEY_LABEL_NAME,
                context: context(),
            });
        }
        if value.len() > limits.max_label_value_bytes {
            return Err(Error::ItemTooLarge {
                what: "label value length",
                actual: value.len(),
                limit: limits.max_label_value_bytes,
                key: KEY_LABEL_VALUE,
                context: context(),
            });
        }
        if !is_valid_label_name(name) {
            return Err(Error::InvalidLabelName {
                name: name.to_owned(),
                context: context(),
            });
        }
    }
    Ok(())
}

/// A series needs a valid `__name__`.
pub(crate) fn check_metric_name(name: Option<&str>, context: &dyn Fn() -> String) -> Result<()> {
    match name {
        None => Err(Error::MissingMetricName { context: context() }),
        Some(n) if !is_valid_metric_name(n) => Err(Error::InvalidMetricName {
            name: n.to_owned(),
            context: context(),
        }),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_valid_label_name("_a1"));
        assert!(!is_valid_label_name("1a"));
        assert!(!is_valid_label_name("a:b"));
        assert!(!is_valid_label_name(""));
        assert!(is_valid_metric_name("a:b_c"));
        assert!(!is_valid_metric_name("a-b"));
    }

    #[test]
    fn limits_and_duplicates() {
        let l = Limits {
            max_labels_per_series: 2,
            max_label_value_bytes: 3,
            ..Limits::default()
        };
        let ctx = || "series 0".to_owned();
        let e = build_labels(
            vec![
                Label::new("a", "1"),
                Label::new("b", "2"),
                Label::new("c", "3"),
            ],
            &l,
            ctx,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("ingest.max_labels_per_series"),
            "{e}"
        );
        let e = build_labels(vec![Label::new("a", "1234")], &l, ctx).unwrap_err();
        assert!(
            e.to_string().contains("ingest.max_label_value_bytes"),
            "{e}"
        );
        let e =
            build_labels(vec![Label::new("a", "1"), Label::new("a", "2")], &l, ctx).unwrap_err();
        assert!(matches!(e, Error::DuplicateLabel { .. }));
        let ok = build_labels(vec![Label::new("b", "1"), Label::new("a", "2")], &l, ctx).unwrap();
        assert_eq!(ok.to_string(), r#"{a="2", b="1"}"#);
    }
}
