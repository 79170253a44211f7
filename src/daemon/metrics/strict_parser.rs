//! A strict reader of the Prometheus text format for the tests: every line is a HELP, a
//! TYPE or a sample of the family last declared; names, label names, escapes and values
//! are checked, as are duplicate series, `_total` counters and cumulative histograms.

use std::collections::BTreeSet;

#[derive(Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Labels,
    pub value: f64,
}

#[derive(Debug)]
pub struct Family {
    pub name: String,
    pub kind: String,
    pub help: String,
    pub samples: Vec<Sample>,
}

/// The value of the sample `name` with exactly these labels, in any family.
pub fn value(families: &[Family], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    families.iter().find_map(|f| f.value(name, labels))
}

impl Family {
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        (self.samples.iter())
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(k2, v2)| k2 == k && v2 == v))
            })
            .map(|s| s.value)
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ if text
            .chars()
            .all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) =>
        {
            text.parse().map_err(|_| format!("bad value {text:?}"))
        }
        _ => Err(format!("bad value {text:?}")),
    }
}

/// `{a="x",b="y"}` at the start of `text`; returns the labels and the rest.
type Labels = Vec<(String, String)>;

fn parse_labels(text: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    let mut rest = text.strip_prefix('{').ok_or("expected {")?;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !is_label_name(name) || labels.iter().any(|(n, _)| n == name) {
            return Err(format!("bad or repeated label name {name:?}"));
        }
        let mut chars = rest[eq + 1..].char_indices();
        if chars.next().map(|(_, c)| c) != Some('"') {
            return Err("label value not quoted".into());
        }
        let mut value = String::new();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break eq + 1 + i + 1,
                Some((_, '\\')) => match chars.next().map(|(_, c)| c) {
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    Some('n') => value.push('\n'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((_, '\n')) => return Err("raw newline in a label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((name.to_owned(), value));
        rest = &rest[end..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

fn family_of(sample: &str, family: &Family) -> bool {
    match family.kind.as_str() {
        "histogram" => ["_bucket", "_sum", "_count"]
            .iter()
            .any(|s| sample.strip_suffix(s) == Some(&family.name)),
        _ => sample == family.name,
    }
}

pub fn parse(text: &str) -> Result<Vec<Family>, String> {
    if !text.ends_with('\n') {
        return Err("the exposition must end with a newline".into());
    }
    let mut families: Vec<Family> = Vec::new();
    let mut help: Option<(String, String)> = None;
    let mut series = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest
                .split_once(' ')
                .ok_or_else(|| at("HELP without text".into()))?;
            if !is_metric_name(name) || families.iter().any(|f| f.name == name) {
                return Err(at("bad or repeated family".into()));
            }
            help = Some((name.to_owned(), text.to_owned()));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| at("TYPE without type".into()))?;
            let Some((help_name, help_text)) = help.take().filter(|(h, _)| h == name) else {
                return Err(at("TYPE without its HELP just before".into()));
            };
            if !["counter", "gauge", "histogram"].contains(&kind) {
                return Err(at(format!("type {kind}")));
            }
            if kind == "counter" && !name.ends_with("_total") {
                return Err(at("a counter's name must end in _total".into()));
            }
            families.push(Family {
                name: help_name,
                kind: kind.to_owned(),
                help: help_text,
                samples: Vec::new(),
            });
        } else if line.starts_with('#') || line.is_empty() {
            return Err(at("unexpected comment or blank line".into()));
        } else {
            let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
            let name = &line[..name_end];
            let (labels, rest) = if line[name_end..].starts_with('{') {
                parse_labels(&line[name_end..]).map_err(at)?
            } else {
                (Vec::new(), &line[name_end..])
            };
            let value = rest
                .strip_prefix(' ')
                .ok_or_else(|| at("no space before the value".into()))?;
            let value = parse_value(value).map_err(at)?;
            let family = (families.last_mut())
                .filter(|f| family_of(name, f))
                .ok_or_else(|| at("sample outside its family".into()))?;
            let mut key = labels.clone();
            key.sort();
            if !series.insert((name.to_owned(), key)) {
                return Err(at("duplicate series".into()));
            }
            family.samples.push(Sample {
                name: name.to_owned(),
                labels,
                value,
            });
        }
    }
    for f in families.iter().filter(|f| f.kind == "histogram") {
        check_histogram(f)?;
    }
    Ok(families)
}

/// Buckets ascending by `le`, counts non-decreasing, `+Inf` equal to `_count`.
fn check_histogram(f: &Family) -> Result<(), String> {
    let buckets: Vec<(f64, f64)> = (f.samples.iter())
        .filter(|s| s.name.ends_with("_bucket"))
        .map(|s| {
            let le = s
                .labels
                .iter()
                .find(|(k, _)| k == "le")
                .ok_or("bucket without le")?;
            Ok((parse_value(&le.1)?, s.value))
        })
        .collect::<Result<_, String>>()?;
    let ordered = buckets
        .windows(2)
        .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1);
    let count = f
        .samples
        .iter()
        .find(|s| s.name.ends_with("_count"))
        .map(|s| s.value);
    if !ordered
        || buckets.last().map(|b| b.0) != Some(f64::INFINITY)
        || buckets.last().map(|b| b.1) != count
    {
        return Err(format!(
            "{}: buckets not cumulative up to +Inf = _count",
            f.name
        ));
    }
    Ok(())
}

#[test]
fn refuses_what_the_format_does_not_allow() {
    let ok = "# HELP a_total h\n# TYPE a_total counter\na_total{x=\"1\"} 2\n";
    assert!(parse(ok).is_ok());
    for bad in [
        "# TYPE a_total counter\na_total 1\n",
        "# HELP a h\n# TYPE a counter\na 1\n",
        "# HELP a_total h\n# TYPE a_total counter\na_total{x=\"1\"} 2\na_total{x=\"1\"} 3\n",
        "# HELP a h\n# TYPE a gauge\na{x=\"\\t\"} 1\n",
        "# HELP a h\n# TYPE a gauge\na{x=\"1\"} one\n",
        "# HELP a h\n# TYPE a gauge\nb 1\n",
        "# HELP a h\n# TYPE a gauge\na 1",
        "# HELP a h\n# TYPE a histogram\na_bucket{le=\"1\"} 2\na_bucket{le=\"+Inf\"} 1\na_count 1\n",
    ] {
        assert!(parse(bad).is_err(), "{bad:?}");
    }
}
