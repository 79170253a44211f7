//! swanctl.conf's scalar values: durations, volumes, booleans, marks and actions.

use std::time::Duration;

/// `3600`, `90s`, `15m`, `8h`, `1d` (seconds when no unit).
pub fn duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("invalid duration \"{text}\"")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .map(Duration::from_secs)
        .ok_or_else(|| format!("invalid duration \"{text}\""))
}

/// `1000`, `500k`, `4M`, `1G` (powers of 1024), as bytes or packets.
pub fn volume(text: &str) -> Result<u64, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let scale: u64 = match unit {
        "" => 1,
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        "g" | "G" => 1 << 30,
        _ => return Err(format!("invalid volume \"{text}\"")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("invalid volume \"{text}\""))
}

/// strongSwan's booleans.
pub fn boolean(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "yes" | "true" | "enabled" | "1" => Ok(true),
        "no" | "false" | "disabled" | "0" => Ok(false),
        _ => Err(format!("\"{text}\" is not yes or no")),
    }
}

/// A mark or if_id: `None` for `%unique` (routevpn allocates one), else the number,
/// decimal or `0x` hex, with at most a full `/0xffffffff` mask.
pub fn mark(text: &str) -> Result<Option<u32>, String> {
    let (value, mask) = match text.split_once('/') {
        Some((v, m)) => (v, Some(m)),
        None => (text, None),
    };
    if let Some(mask) = mask {
        if number(mask) != Some(u32::MAX) {
            return Err(format!(
                "mask in \"{text}\": routevpn matches the whole mark"
            ));
        }
    }
    if value == "%unique" {
        return Ok(None);
    }
    match number(value) {
        Some(0) | None => Err(format!(
            "\"{text}\" is no usable mark (a non-zero number or %unique)"
        )),
        Some(n) => Ok(Some(n)),
    }
}

fn number(text: &str) -> Option<u32> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// swanctl's action names (with their older aliases) as routevpn's `start` / `trap` /
/// `none`.
pub fn action(text: &str) -> Result<&'static str, String> {
    match text {
        "start" | "restart" => Ok("start"),
        "trap" | "route" | "hold" => Ok("trap"),
        "none" | "clear" => Ok("none"),
        _ => Err(format!("\"{text}\" is not none, trap or start")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_as_strongswan_reads_them() {
        assert_eq!(duration("3600"), Ok(Duration::from_secs(3600)));
        assert_eq!(duration("8h"), Ok(Duration::from_secs(8 * 3600)));
        assert!(duration("8x").is_err() && duration("").is_err());
        assert!(duration("99999999999999999999d").is_err());
        assert_eq!(volume("4M"), Ok(4 << 20));
        assert_eq!(mark("0x2a/0xffffffff"), Ok(Some(42)));
        assert_eq!(mark("%unique"), Ok(None));
        assert!(mark("42/0xff").is_err() && mark("0").is_err());
        assert_eq!(action("restart"), Ok("start"));
        assert_eq!(action("clear"), Ok("none"));
    }
}
