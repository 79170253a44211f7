//! Stable allocation of XFRM marks, if_ids and reqids.
//!
//! Each object's preferred value is a hash of its name inside a range recognisable as
//! routevpn's (`0x52xxxxxx`, "R"). Values held by the previous apply are pinned first, explicit
//! values from profiles are reserved, and only then do new objects take their preferred slot,
//! probing upwards on a collision. So adding or removing a tunnel never renumbers another.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The first byte of every allocated value.
pub const PREFIX: u32 = 0x5200_0000;
const SLOTS: u32 = 0x0100_0000;

/// Values handed out by earlier applies, by object name. Stored between runs by the dataplane.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocations {
    #[serde(default)]
    pub marks: BTreeMap<String, u32>,
    #[serde(default)]
    pub if_ids: BTreeMap<String, u32>,
    #[serde(default)]
    pub reqids: BTreeMap<String, u32>,
}

/// FNV-1a: small, stable across releases and platforms (unlike std's SipHash keys).
fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

fn preferred(name: &str) -> u32 {
    // Slot 0 is skipped so no value ends in six zero nibbles, which reads like "unset".
    let slot = fnv1a(name) % (SLOTS - 1) + 1;
    PREFIX | slot
}

/// Allocates one namespace of values (marks, if_ids or reqids).
///
/// `wanted` lists every object with its explicit value, if any. The result holds a value for
/// each, in the same order.
pub fn allocate(wanted: &[(String, Option<u32>)], previous: &BTreeMap<String, u32>) -> Vec<u32> {
    let mut taken: BTreeSet<u32> = wanted.iter().filter_map(|(_, v)| *v).collect();
    let mut result: BTreeMap<&str, u32> = BTreeMap::new();
    for (name, explicit) in wanted {
        if let Some(v) = explicit {
            result.insert(name, *v);
        }
    }
    // Pinned values keep their number unless an explicit value now claims it.
    for (name, _) in wanted.iter().filter(|(_, v)| v.is_none()) {
        if let Some(&old) = previous.get(name) {
            if taken.insert(old) {
                result.insert(name, old);
            }
        }
    }
    let mut fresh: Vec<&str> = wanted
        .iter()
        .filter(|(name, _)| !result.contains_key(name.as_str()))
        .map(|(name, _)| name.as_str())
        .collect();
    fresh.sort_unstable();
    for name in fresh {
        let mut value = preferred(name);
        while taken.contains(&value) {
            value = PREFIX | ((value - PREFIX) % (SLOTS - 1) + 1);
        }
        taken.insert(value);
        result.insert(name, value);
    }
    wanted
        .iter()
        .map(|(name, _)| result[name.as_str()])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<(String, Option<u32>)> {
        list.iter().map(|n| (n.to_string(), None)).collect()
    }

    fn as_map(wanted: &[(String, Option<u32>)], values: &[u32]) -> BTreeMap<String, u32> {
        wanted
            .iter()
            .map(|(n, _)| n.clone())
            .zip(values.iter().copied())
            .collect()
    }

    #[test]
    fn values_are_stable_and_in_range() {
        let wanted = names(&["bank", "telecom", "dc"]);
        let a = allocate(&wanted, &BTreeMap::new());
        let b = allocate(&wanted, &BTreeMap::new());
        assert_eq!(a, b);
        assert!(a.iter().all(|v| v & 0xff00_0000 == PREFIX && *v != PREFIX));
        assert_eq!(a.iter().collect::<BTreeSet<_>>().len(), 3);
    }

    #[test]
    fn adding_or_removing_never_renumbers_others() {
        let before = names(&["a", "b", "c"]);
        let first = allocate(&before, &BTreeMap::new());
        let pinned = as_map(&before, &first);

        let after = names(&["a", "b", "c", "new"]);
        let second = allocate(&after, &pinned);
        assert_eq!(&second[..3], &first[..]);

        let fewer = names(&["a", "c"]);
        let third = allocate(&fewer, &pinned);
        assert_eq!(third, vec![first[0], first[2]]);
    }

    #[test]
    fn collisions_probe_to_a_free_value() {
        // Pin "b" onto "a"'s preferred value: "a" must move, "b" must not.
        let wanted = names(&["a", "b"]);
        let mut previous = BTreeMap::new();
        previous.insert("b".to_string(), preferred("a"));
        let values = allocate(&wanted, &previous);
        assert_eq!(values[1], preferred("a"));
        assert_ne!(values[0], values[1]);
    }

    #[test]
    fn explicit_values_win_over_pins() {
        let wanted = vec![("a".to_string(), Some(42)), ("b".to_string(), None)];
        let mut previous = BTreeMap::new();
        previous.insert("b".to_string(), 42);
        let values = allocate(&wanted, &previous);
        assert_eq!(values[0], 42);
        assert_ne!(values[1], 42);
    }

    #[test]
    fn fnv_matches_reference_values() {
        // FNV-1a 32-bit reference values for "" and "a".
        assert_eq!(fnv1a(""), 0x811c_9dc5);
        assert_eq!(fnv1a("a"), 0xe40c_292c);
    }
}
