//! Typed readers for keys that several sections share: durations, volumes, choices.

use std::time::Duration;

use super::reader::{Context, IntOrStr, Section, Val};
use super::values::{self, Invalid};

/// Reports a value error at the value's location.
pub(super) fn checked<T, U>(
    ctx: &Context<'_>,
    v: &Val<T>,
    parse: impl FnOnce(T) -> Result<U, Invalid>,
) -> Option<U>
where
    T: Copy,
{
    parse(v.value)
        .map_err(|e| ctx.error(v.span.clone(), e.message, e.hint))
        .ok()
}

pub(super) fn duration_key(section: &Section<'_>, key: &str) -> Option<Val<Duration>> {
    if let Some(Val { value, span }) = section.integer_or_string(key, 0..10 * 365 * 86_400 + 1) {
        let parsed = match value {
            IntOrStr::Int(secs) => Ok(Duration::from_secs(secs)),
            IntOrStr::Str(text) => values::duration(text),
        };
        return match parsed {
            Ok(d) => Some(Val::new(d, span)),
            Err(e) => {
                section.ctx.error(span, e.message, e.hint);
                None
            }
        };
    }
    None
}

pub(super) fn volume_key(section: &Section<'_>, key: &str) -> Option<u64> {
    let Val { value, span } = section.integer_or_string(key, 0..u64::MAX)?;
    match value {
        IntOrStr::Int(n) => Some(n),
        IntOrStr::Str(text) => values::volume(text)
            .map_err(|e| section.ctx.error(span, e.message, e.hint))
            .ok(),
    }
}

pub(super) fn choice<T: Copy>(
    section: &Section<'_>,
    key: &str,
    options: &[(&str, T)],
    default: T,
) -> Option<T> {
    let Some(v) = section.string(key) else {
        return (!section.contains(key)).then_some(default);
    };
    match options.iter().find(|(name, _)| *name == v.value) {
        Some((_, value)) => Some(*value),
        None => {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            section.ctx.error(
                v.span,
                format!("invalid {key} \"{}\" in {}", v.value, section.name),
                Some(format!("one of: {}", names.join(", "))),
            );
            None
        }
    }
}
