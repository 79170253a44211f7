//! Rebuilding a corrupt state or allocations file from the kernel: what routevpn made is
//! recognisable there without a record (routes and rules of its protocol, its nftables
//! table, marks, if_ids and reqids in its `0x52` range, links carrying those or its routes).
//! What the kernel cannot tell (sysctl originals) is reported as lost, never guessed.

use std::collections::{BTreeMap, BTreeSet};

use super::diff::intrinsically_ours;
use super::kernel::{Kernel, Scope};
use super::objects::{LinkKind, Object, ObjectKey};
use super::state::{Corrupt, Read, State};
use super::ApplyError;
use crate::model::{Tunnel, TunnelKind};
use crate::plan::{self, alloc::PREFIX, Allocations};

#[derive(Debug, Default)]
pub struct Recovered {
    pub warnings: Vec<String>,
}

fn routevpns(value: u32) -> bool {
    value & 0xff00_0000 == PREFIX && value != PREFIX
}

/// Marks and if_ids from the tunnels' links, reqids from the policies that then match the
/// plan; values the kernel does not show are planned afresh (as on a first apply).
fn allocations_from(
    kernel: &mut dyn Kernel,
    live: &[Object],
    tunnels: &[Tunnel],
    unrecovered: &mut Vec<String>,
) -> Allocations {
    let mut found = plan::build(tunnels, &plan::Context::default()).allocations;
    let link = |name: &str| {
        live.iter().find_map(|o| match o {
            Object::Link(l) if l.name == name => Some(&l.kind),
            _ => None,
        })
    };
    for t in tunnels {
        match (t.kind, link(&t.interface.name)) {
            (TunnelKind::Vti, Some(LinkKind::Vti { ikey, .. })) if routevpns(*ikey) => {
                found.marks.insert(t.name.clone(), *ikey);
            }
            (TunnelKind::Xfrm, Some(LinkKind::Xfrm { if_id, .. })) if routevpns(*if_id) => {
                found.if_ids.insert(t.name.clone(), *if_id);
            }
            _ => {}
        }
    }
    // With the marks and if_ids known, a planned policy has the key of the live one.
    let names = tunnels.iter().map(|t| t.name.clone()).collect();
    // Only policies are read from this plan: SA state does not change them.
    let planned = match super::desired(kernel, tunnels, &names, &BTreeSet::new(), found.clone()) {
        Ok((desired, _)) => desired,
        Err(e) => {
            unrecovered.push(format!("the reqids ({e})"));
            return found;
        }
    };
    let by_value: BTreeMap<u32, String> = (found.reqids.iter())
        .map(|(name, v)| (*v, name.clone()))
        .collect();
    let mut seen: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    for wanted in &planned {
        let Object::Policy(p) = &wanted.object else {
            continue;
        };
        let key = wanted.object.key();
        let held = live.iter().find_map(|o| match o {
            Object::Policy(l) if o.key() == key && routevpns(l.template.reqid) => {
                Some(l.template.reqid)
            }
            _ => None,
        });
        if let (Some(name), Some(reqid)) = (by_value.get(&p.template.reqid), held) {
            seen.entry(name.clone()).or_default().insert(reqid);
        }
    }
    for (name, values) in seen {
        match (values.len(), values.first()) {
            (1, Some(value)) => {
                found.reqids.insert(name, *value);
            }
            _ => unrecovered.push(format!("the reqid of {name}")),
        }
    }
    found
}

/// The live objects routevpn recognises as its own.
fn owned_from(live: &[Object], allocations: &Allocations) -> BTreeSet<ObjectKey> {
    let known: BTreeSet<u32> = (allocations.marks.values())
        .chain(allocations.if_ids.values())
        .chain(allocations.reqids.values())
        .copied()
        .collect();
    let ours = |v: u32| routevpns(v) || known.contains(&v);
    let routed: BTreeSet<&str> = live
        .iter()
        .filter_map(|o| match o {
            Object::Route(r) if intrinsically_ours(o) => r.device.as_deref(),
            _ => None,
        })
        .collect();
    let mut owned: BTreeSet<ObjectKey> = BTreeSet::new();
    let mut links: BTreeSet<&str> = BTreeSet::new();
    for object in live {
        let recognised = match object {
            Object::Link(l) => {
                let keyed = match &l.kind {
                    LinkKind::Vti { ikey, okey, .. } => ours(*ikey) || ours(*okey),
                    LinkKind::Xfrm { if_id, .. } => ours(*if_id),
                    LinkKind::Gre { .. } => false,
                };
                keyed || routed.contains(l.name.as_str())
            }
            Object::Policy(p) => {
                p.mark.is_some_and(ours) || p.if_id.is_some_and(ours) || ours(p.template.reqid)
            }
            Object::Sa(sa) => ours(sa.reqid),
            other => intrinsically_ours(other),
        };
        if recognised {
            owned.insert(object.key());
            if let Object::Link(l) = object {
                links.insert(&l.name);
            }
        }
    }
    for object in live {
        if let Object::Address(a) = object {
            if links.contains(a.device.as_str()) {
                owned.insert(object.key());
            }
        }
    }
    owned
}

fn corrupt_line(corrupt: &Corrupt, rebuilt: &str) -> String {
    format!(
        "{} was corrupt ({}); kept it as {} and rebuilt {rebuilt} from the kernel",
        corrupt.path.display(),
        corrupt.why,
        corrupt.kept.display()
    )
}

/// The state and allocations to start from: as read, or rebuilt where a file was corrupt.
pub fn rebuild(
    kernel: &mut dyn Kernel,
    tunnels: &[Tunnel],
    state: Read<State>,
    allocations: Read<Allocations>,
    recovered: &mut Recovered,
) -> Result<(State, Allocations), ApplyError> {
    if let (Read::Ok(state), Read::Ok(allocations)) = (&state, &allocations) {
        return Ok((state.clone(), allocations.clone()));
    }
    let scope = Scope {
        all_links: true,
        ..Scope::default()
    };
    let live = kernel.read(&scope).map_err(|error| ApplyError::Kernel {
        error: Box::new(error),
        rollback: vec![],
    })?;
    let allocations = match allocations {
        Read::Ok(a) => a,
        Read::Corrupt(corrupt) => {
            let mut unrecovered = Vec::new();
            let a = allocations_from(kernel, &live, tunnels, &mut unrecovered);
            let mut line = corrupt_line(&corrupt, "the marks, if_ids and reqids");
            if !unrecovered.is_empty() {
                line += &format!(
                    "; could not tell {} (planned afresh)",
                    unrecovered.join(", ")
                );
            }
            recovered.warnings.push(line);
            a
        }
    };
    let state = match state {
        Read::Ok(s) => s,
        Read::Corrupt(corrupt) => {
            let owned = owned_from(&live, &allocations);
            let links: BTreeMap<&str, &str> = tunnels
                .iter()
                .map(|t| (t.interface.name.as_str(), t.name.as_str()))
                .collect();
            let enabled: BTreeSet<String> = (owned.iter())
                .filter_map(|k| match k {
                    ObjectKey::Link { name } => links.get(name.as_str()).map(|t| t.to_string()),
                    _ => None,
                })
                .collect();
            recovered.warnings.push(format!(
                "{}: {} objects recognised as routevpn's, tunnels up: {}; lost: the values \
                 sysctls had before routevpn changed them (they stay as they are now); not \
                 recognisable: a GRE link without a route of routevpn's, marks or if_ids set \
                 outside 0x52000000-0x52ffffff (remove such leftovers by hand)",
                corrupt_line(&corrupt, "it"),
                owned.len(),
                if enabled.is_empty() {
                    "none".to_string()
                } else {
                    enabled.iter().cloned().collect::<Vec<_>>().join(", ")
                }
            ));
            State {
                owned,
                sysctl_originals: BTreeMap::new(),
                enabled,
                // The daemon tells again at its next apply.
                without_sas: BTreeSet::new(),
            }
        }
    };
    Ok((state, allocations))
}
