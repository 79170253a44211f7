//! Desired objects against live ones: the smallest list of changes, in an order the kernel
//! accepts, each with what undoing it takes.

use std::collections::{BTreeMap, BTreeSet};

use super::objects::{Object, ObjectKey, Owned};
use crate::plan::ROUTE_PROTOCOL;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Create(Owned),
    /// `implied` are live objects the kernel removes together with this one (a link's
    /// addresses, routes and sysctls); undoing the delete recreates them too.
    Delete {
        object: Object,
        implied: Vec<Object>,
    },
    Update {
        from: Object,
        to: Owned,
    },
}

impl Change {
    pub fn key(&self) -> ObjectKey {
        match self {
            Change::Create(o) | Change::Update { to: o, .. } => o.object.key(),
            Change::Delete { object, .. } => object.key(),
        }
    }

    /// The changes that undo this one, to run in order.
    pub fn inverse(&self) -> Vec<Change> {
        match self {
            Change::Create(o) => vec![Change::Delete {
                object: o.object.clone(),
                implied: vec![],
            }],
            Change::Delete { object, implied } => std::iter::once(object)
                .chain(implied)
                .map(|o| {
                    Change::Create(Owned {
                        tunnel: None,
                        object: o.clone(),
                    })
                })
                .collect(),
            Change::Update { from, to } => vec![Change::Update {
                from: to.object.clone(),
                to: Owned {
                    tunnel: to.tunnel.clone(),
                    object: from.clone(),
                },
            }],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub key: ObjectKey,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} already exists and was not created by routevpn; remove or rename it",
            self.key
        )
    }
}

/// Objects routevpn recognises as its own without a record: routes and rules with its
/// protocol number, and its nftables table.
pub(super) fn intrinsically_ours(object: &Object) -> bool {
    match object {
        Object::Route(r) => r.protocol == ROUTE_PROTOCOL,
        Object::Rule(r) => r.protocol == ROUTE_PROTOCOL,
        Object::Nft(_) => true,
        _ => false,
    }
}

/// The device an object lives on, if deleting that device removes it.
fn device_of(object: &Object) -> Option<&str> {
    match object {
        Object::Address(a) => Some(&a.device),
        Object::Route(r) => r.device.as_deref(),
        Object::Sysctl(s) => s.key.split('.').nth(3).filter(|_| s.key.contains(".conf.")),
        _ => None,
    }
}

/// Deleting a link also removes what lives on it; the change carries those for undoing.
fn delete(object: &Object, implied: &mut BTreeMap<&str, Vec<Object>>) -> Change {
    let on_it = match object {
        Object::Link(l) => implied.remove(l.name.as_str()),
        _ => None,
    };
    Change::Delete {
        object: object.clone(),
        implied: on_it.unwrap_or_default(),
    }
}

/// Computes the changes that turn `live` into `desired`.
///
/// `owned` is what earlier applies created; `originals` the values sysctls had before
/// routevpn first wrote them, restored when no tunnel needs them any more.
pub fn diff(
    desired: &[Owned],
    live: &[Object],
    owned: &BTreeSet<ObjectKey>,
    originals: &BTreeMap<String, String>,
) -> Result<Vec<Change>, Conflict> {
    let wanted: BTreeMap<ObjectKey, &Owned> = desired.iter().map(|o| (o.object.key(), o)).collect();
    let ours = |o: &Object| owned.contains(&o.key()) || intrinsically_ours(o);

    // Links that go away (removed, or recreated with other parameters) take their
    // dependants with them: those must neither be deleted again nor assumed present.
    let mut doomed_links = BTreeSet::new();
    for object in live {
        if let Object::Link(link) = object {
            let key = object.key();
            match wanted.get(&key) {
                Some(w) if !object.updatable_to(&w.object) => {
                    if !ours(object) {
                        return Err(Conflict { key });
                    }
                    doomed_links.insert(link.name.clone());
                }
                None if ours(object) => {
                    doomed_links.insert(link.name.clone());
                }
                _ => {}
            }
        }
    }
    let mut implied: BTreeMap<&str, Vec<Object>> = BTreeMap::new();
    let mut surviving: BTreeMap<ObjectKey, &Object> = BTreeMap::new();
    for object in live {
        match device_of(object).filter(|d| doomed_links.contains(*d)) {
            Some(device) if !matches!(object, Object::Link(_)) => {
                implied.entry(device).or_default().push(object.clone());
            }
            _ => {
                surviving.insert(object.key(), object);
            }
        }
    }

    let mut deletes = Vec::new();
    let mut creates = Vec::new();
    for (key, object) in &surviving {
        let is_ours = ours(object);
        match wanted.get(key) {
            None if is_ours => match object {
                Object::Sysctl(s) => {
                    // Restored, not deleted: only if routevpn changed it and it still shows our value.
                    if let Some(original) = originals.get(&s.key).filter(|o| **o != s.value) {
                        let mut restored = s.clone();
                        restored.value = original.clone();
                        creates.push(Change::Update {
                            from: (*object).clone(),
                            to: Owned {
                                tunnel: None,
                                object: Object::Sysctl(restored),
                            },
                        });
                    }
                }
                _ => deletes.push(delete(object, &mut implied)),
            },
            None => {}
            Some(w) if w.object == **object => {}
            Some(w) => {
                let adoptable = matches!(object, Object::Sysctl(_) | Object::Address(_));
                if !is_ours && !adoptable {
                    return Err(Conflict { key: key.clone() });
                }
                if object.updatable_to(&w.object) {
                    creates.push(Change::Update {
                        from: (*object).clone(),
                        to: (*w).clone(),
                    });
                } else {
                    deletes.push(delete(object, &mut implied));
                    creates.push(Change::Create((*w).clone()));
                }
            }
        }
    }
    for (key, w) in &wanted {
        if !surviving.contains_key(key) {
            creates.push(Change::Create((*w).clone()));
        }
    }
    let stage = |c: &Change| match c {
        Change::Create(o) | Change::Update { to: o, .. } => o.object.stage(),
        Change::Delete { object, .. } => object.stage(),
    };
    deletes.sort_by_key(|c| std::cmp::Reverse(stage(c)));
    creates.sort_by_key(stage);
    deletes.extend(creates);
    Ok(deletes)
}
