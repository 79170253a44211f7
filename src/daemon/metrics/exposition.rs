//! Writer of the Prometheus text exposition format (version 0.0.4): a HELP and a TYPE line
//! per family, then its samples, label values and help texts escaped as the format wants.

use std::fmt::Write as _;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// The media type of what [`Exposition`] writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// Starts a metric family; its samples follow.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.name());
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{label}=\"{}\"", escape_label_value(value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", format_value(value));
    }

    pub fn into_text(self) -> String {
        self.text
    }
}

fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Go's float syntax as Prometheus reads it: `+Inf`, `-Inf`, `NaN`, integers without a
/// fraction.
pub fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values_and_help_and_spells_special_values() {
        let mut e = Exposition::default();
        e.family("routevpn_x", Kind::Gauge, "a \\ b\nc");
        e.sample("routevpn_x", &[("tunnel", "a\"b\\c\nd"), ("k", "v")], 1.5);
        e.sample("routevpn_x", &[], f64::INFINITY);
        assert_eq!(
            e.into_text(),
            "# HELP routevpn_x a \\\\ b\\nc\n# TYPE routevpn_x gauge\n\
             routevpn_x{tunnel=\"a\\\"b\\\\c\\nd\",k=\"v\"} 1.5\nroutevpn_x +Inf\n"
        );
        assert_eq!(
            [
                format_value(f64::NAN),
                format_value(3.0),
                format_value(1e21)
            ],
            ["NaN", "3", "1000000000000000000000"]
        );
    }
}
