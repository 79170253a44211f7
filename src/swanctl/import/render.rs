//! The profile an import writes, as TOML text: comments first (what import chose), then
//! the keys in the order of the profile reference.

use std::fmt::Write;
use std::time::Duration;

/// One table's `key = value` lines; values are already TOML.
#[derive(Debug, Default)]
pub struct Table(Vec<(String, String)>);

impl Table {
    pub fn string(&mut self, key: &str, value: &str) {
        self.0.push((key.into(), quoted(value)));
    }

    pub fn strings<S: AsRef<str>>(&mut self, key: &str, values: &[S]) {
        let items: Vec<String> = values.iter().map(|v| quoted(v.as_ref())).collect();
        self.0.push((key.into(), format!("[{}]", items.join(", "))));
    }

    pub fn raw(&mut self, key: &str, value: impl Into<String>) {
        self.0.push((key.into(), value.into()));
    }

    pub fn duration(&mut self, key: &str, value: Duration) {
        self.string(key, &duration_text(value));
    }

    /// `{ key = value, … }`, for a table written inline.
    pub fn inline(&self) -> String {
        let pairs: Vec<String> = self.0.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        format!("{{ {} }}", pairs.join(", "))
    }

    /// Puts the keys in `order` first, in that order (the others keep theirs, after).
    fn ordered(&self, order: &[&str]) -> Table {
        let rank = |k: &str| order.iter().position(|o| *o == k).unwrap_or(order.len());
        let mut pairs = self.0.clone();
        pairs.sort_by_key(|(k, _)| rank(k));
        Table(pairs)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn write(&self, out: &mut String) {
        for (key, value) in &self.0 {
            let _ = writeln!(out, "{key} = {value}");
        }
    }
}

/// A TOML basic string: quotes, backslashes and control characters escaped.
pub fn quoted(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// The largest unit that writes `d` exactly: `4h`, `90s`, `1d`.
pub fn duration_text(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => "0s".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[derive(Debug, Default)]
pub struct Profile {
    pub comments: Vec<String>,
    pub top: Table,
    pub ike: Table,
    pub children: Vec<Table>,
    pub interface: Table,
    pub gre: Table,
    pub routes: Vec<Table>,
}

impl Profile {
    pub fn text(&self) -> String {
        let mut out = String::new();
        for comment in &self.comments {
            for line in comment.lines() {
                let _ = writeln!(out, "# {line}");
            }
        }
        self.top.ordered(crate::profile::TOP_KEYS).write(&mut out);
        let mut table = |name: &str, t: &Table| {
            out.push('\n');
            let _ = writeln!(out, "{name}");
            t.write(&mut out);
        };
        table("[ike]", &self.ike);
        for child in &self.children {
            table("[[child]]", child);
        }
        if !self.gre.is_empty() {
            table("[gre]", &self.gre);
        }
        table("[interface]", &self.interface);
        for route in &self.routes {
            table("[[route]]", route);
        }
        out
    }
}
