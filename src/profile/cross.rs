//! Checks across all profiles of a directory: names, devices and IDs used twice, routes that
//! overlap, and two profiles of one link (both sides in one directory) that cannot agree.

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::Range;

use super::diagnostic::{Diagnostic, Severity, SourceFile};
use super::tunnel::Parsed;
use ipnet::IpNet;

use crate::model::{LocalEndpoint, TunnelKind};
use crate::proposal::{EspProposal, IkeProposal};

pub struct Entry<'a> {
    pub source: &'a SourceFile,
    pub parsed: &'a Parsed,
}

fn location(source: &SourceFile, span: &Range<usize>) -> String {
    let (line, column) = source.line_column(span.start);
    format!("{}:{line}:{column}", source.path().display())
}

fn error(
    source: &SourceFile,
    span: Range<usize>,
    message: String,
    hint: Option<String>,
) -> Diagnostic {
    source.diagnostic(Severity::Error, span, message, hint)
}

/// Reports every value that a later file (in name order) repeats.
fn unique<K: Eq + std::hash::Hash>(
    entries: &[Entry<'_>],
    key_of: impl Fn(&Entry<'_>) -> Option<(K, Range<usize>)>,
    describe: impl Fn(&K) -> String,
    hint: &str,
    out: &mut Vec<Diagnostic>,
) {
    let mut first: HashMap<K, (usize, Range<usize>)> = HashMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let Some((key, span)) = key_of(entry) else {
            continue;
        };
        match first.get(&key) {
            Some((j, first_span)) => out.push(error(
                entry.source,
                span,
                format!(
                    "{} is already used by {}",
                    describe(&key),
                    location(entries[*j].source, first_span)
                ),
                Some(hint.to_string()),
            )),
            None => {
                first.insert(key, (i, span));
            }
        }
    }
}

pub fn check(entries: &[Entry<'_>]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    unique(
        entries,
        |e| Some((e.parsed.tunnel.name.clone(), e.parsed.spans.name.clone())),
        |name| format!("tunnel name \"{name}\""),
        "each profile needs its own name (file name or `name`)",
        &mut out,
    );
    unique(
        entries,
        |e| {
            Some((
                e.parsed.tunnel.interface.name.clone(),
                e.parsed.spans.interface_name.clone(),
            ))
        },
        |name| format!("interface name \"{name}\""),
        "set a distinct `name` under [interface]",
        &mut out,
    );
    unique(
        entries,
        |e| Some((e.parsed.tunnel.mark?, e.parsed.spans.mark.clone()?)),
        |mark| format!("mark {mark:#x}"),
        "remove `mark` to let routevpn allocate one, or choose another",
        &mut out,
    );
    unique(
        entries,
        |e| Some((e.parsed.tunnel.if_id?, e.parsed.spans.if_id.clone()?)),
        |id| format!("if_id {id}"),
        "remove `if_id` to let routevpn allocate one, or choose another",
        &mut out,
    );
    unique(
        entries,
        |e| {
            Some((
                e.parsed.tunnel.gre.as_ref()?.key?,
                e.parsed.spans.gre_key.clone()?,
            ))
        },
        |key| format!("GRE key {key}"),
        "give each GRE tunnel its own key",
        &mut out,
    );
    unique(
        entries,
        |e| {
            let tunnel = &e.parsed.tunnel;
            let gre = tunnel.gre.as_ref()?;
            let local = gre.local.map(Some).unwrap_or(match tunnel.local {
                LocalEndpoint::Address(a) => Some(a),
                LocalEndpoint::DefaultRoute => None,
            });
            let remote = gre.remote.unwrap_or(tunnel.remote);
            let span = match gre.remote {
                Some(_) => e.parsed.spans.gre_remote.clone()?,
                None => e.parsed.spans.remote.clone(),
            };
            Some(((local, remote), span))
        },
        |(local, remote)| match local {
            Some(local) => format!("the GRE endpoint pair {local} -> {remote}"),
            None => format!("the GRE endpoint pair %defaultroute -> {remote}"),
        },
        "two GRE tunnels between the same endpoints would share one XFRM policy; use one tunnel",
        &mut out,
    );
    shared_vti_endpoints(entries, &mut out);
    overlapping_routes(entries, &mut out);
    mirrored_pairs(entries, &mut out);
    out
}

/// The kernel matches incoming packets to a VTI by outer addresses alone (the key is only
/// the mark), so two VTIs between the same endpoints would steal each other's traffic.
fn shared_vti_endpoints(entries: &[Entry<'_>], out: &mut Vec<Diagnostic>) {
    // Earlier VTIs by remote address, in file order: a clash needs the same remote.
    let mut by_remote: HashMap<IpAddr, Vec<&Entry<'_>>> = HashMap::new();
    for later in entries {
        let b = &later.parsed.tunnel;
        if b.kind != TunnelKind::Vti {
            continue;
        }
        let earlier_same_remote = by_remote.entry(b.remote).or_default();
        let clash = earlier_same_remote.iter().find(|earlier| {
            let a = &earlier.parsed.tunnel;
            a.local == b.local
                || a.local == LocalEndpoint::DefaultRoute
                || b.local == LocalEndpoint::DefaultRoute
        });
        if let Some(earlier) = clash {
            out.push(error(
                later.source,
                later.parsed.spans.remote.clone(),
                format!(
                    "VTI tunnel \"{}\" has the same outer endpoints as VTI tunnel \"{}\" ({})",
                    b.name,
                    earlier.parsed.tunnel.name,
                    location(earlier.source, &earlier.parsed.spans.remote)
                ),
                Some("the kernel tells VTIs apart by their endpoints only; use another local address, or kind = \"xfrm\" whose if_id separates tunnels".into()),
            ));
        }
        earlier_same_remote.push(later);
    }
}

/// `net` cut to its first `len` bits.
fn truncated(net: &IpNet, len: u8) -> Option<IpNet> {
    IpNet::new(net.addr(), len).ok().map(|n| n.trunc())
}

/// Two prefixes overlap when one contains the other. Instead of comparing every pair, each
/// earlier route is indexed under itself and under every prefix that contains it; a route
/// then overlaps an earlier one if one of its own containing prefixes is an earlier route, or
/// if it is itself a container of an earlier route. The earliest clash (file, then route
/// order) is reported, as a pairwise scan would.
fn overlapping_routes(entries: &[Entry<'_>], out: &mut Vec<Diagnostic>) {
    type Key = (Option<u32>, IpNet);
    let mut routes: HashMap<Key, (usize, usize)> = HashMap::new();
    let mut containers: HashMap<Key, (usize, usize)> = HashMap::new();
    for (i, later) in entries.iter().enumerate() {
        let tunnel = &later.parsed.tunnel;
        let mut clashes = Vec::new();
        for (r, route) in tunnel.routes.iter().enumerate() {
            let table = route.table;
            let ancestors = (0..=route.to.prefix_len()).filter_map(|len| truncated(&route.to, len));
            let clash = ancestors
                .filter_map(|net| routes.get(&(table, net)))
                .chain(containers.get(&(table, route.to.trunc())))
                .min()
                .copied();
            if let Some(clash) = clash {
                clashes.push((r, clash));
            }
        }
        // Routes of one profile are indexed after it is checked: a tunnel's own routes may
        // overlap (a /24 and its two /25 halves).
        for (r, route) in tunnel.routes.iter().enumerate() {
            routes
                .entry((route.table, route.to.trunc()))
                .or_insert((i, r));
            for len in 0..=route.to.prefix_len() {
                if let Some(net) = truncated(&route.to, len) {
                    containers.entry((route.table, net)).or_insert((i, r));
                }
            }
        }
        for (r, (j, k)) in clashes {
            let (earlier, route) = (&entries[j], &tunnel.routes[r]);
            let other = &earlier.parsed.tunnel.routes[k];
            let span = later.parsed.spans.routes.get(r).cloned().unwrap_or(0..0);
            let first = earlier.parsed.spans.routes.get(k).cloned().unwrap_or(0..0);
            out.push(error(
                later.source,
                span,
                format!(
                    "route to {} overlaps route to {} of tunnel \"{}\" ({})",
                    route.to,
                    other.to,
                    earlier.parsed.tunnel.name,
                    location(earlier.source, &first)
                ),
                Some("which tunnel a packet takes would depend on prefix length and metric; give each prefix to one tunnel".into()),
            ));
        }
    }
}

/// Two profiles whose outer endpoints mirror each other are the two sides of one link.
fn mirrored_pairs(entries: &[Entry<'_>], out: &mut Vec<Diagnostic>) {
    // Earlier profiles by (local, remote); b's other side has them swapped.
    let mut by_endpoints: HashMap<(IpAddr, IpAddr), Vec<&Entry<'_>>> = HashMap::new();
    for b in entries {
        let LocalEndpoint::Address(b_local) = b.parsed.tunnel.local else {
            continue;
        };
        let b_remote = b.parsed.tunnel.remote;
        let others = by_endpoints
            .get(&(b_remote, b_local))
            .cloned()
            .unwrap_or_default();
        by_endpoints.entry((b_local, b_remote)).or_default().push(b);
        for a in others {
            let (ta, tb) = (&a.parsed.tunnel, &b.parsed.tunnel);
            if ta.kind != tb.kind {
                out.push(error(
                    b.source,
                    b.parsed.spans.remote.clone(),
                    format!(
                        "this side is kind = \"{}\" but the other side ({}) is kind = \"{}\"",
                        kind_name(tb.kind),
                        a.source.path().display(),
                        kind_name(ta.kind)
                    ),
                    None,
                ));
                continue;
            }
            if !ta
                .ike
                .proposals
                .iter()
                .any(|p| tb.ike.proposals.iter().any(|q| ike_match(p, q)))
            {
                out.push(error(
                    b.source,
                    b.parsed.spans.ike_proposals.clone(),
                    format!(
                        "no IKE proposal in common with the other side ({}): IKE_SA_INIT would fail with NO_PROPOSAL_CHOSEN",
                        a.source.path().display()
                    ),
                    Some("list the same proposal on both sides".into()),
                ));
            }
            for (c, (ca, cb)) in ta.children.iter().zip(&tb.children).enumerate() {
                let pfs_a = ca.esp_proposals.iter().all(EspProposal::has_pfs);
                let pfs_b = cb.esp_proposals.iter().all(EspProposal::has_pfs);
                let none_a = !ca.esp_proposals.iter().any(EspProposal::has_pfs);
                let none_b = !cb.esp_proposals.iter().any(EspProposal::has_pfs);
                if (pfs_a && none_b) || (pfs_b && none_a) {
                    let (with, without) = if pfs_b {
                        ("this side", "the other side")
                    } else {
                        ("the other side", "this side")
                    };
                    out.push(error(
                        b.source,
                        b.parsed.spans.children.get(c).map_or(0..0, |s| s.esp.clone()),
                        format!(
                            "PFS group on one side only: child \"{}\" requires PFS on {with} but not on {without} ({})",
                            cb.name,
                            a.source.path().display()
                        ),
                        Some("the first CHILD SA would come up, then every rekey fail with NO_PROPOSAL_CHOSEN; use the same group on both sides".into()),
                    ));
                } else if !ca
                    .esp_proposals
                    .iter()
                    .any(|p| cb.esp_proposals.iter().any(|q| esp_match(p, q)))
                {
                    out.push(error(
                        b.source,
                        b.parsed
                            .spans
                            .children
                            .get(c)
                            .map_or(0..0, |s| s.esp.clone()),
                        format!(
                            "no ESP proposal of child \"{}\" in common with the other side ({})",
                            cb.name,
                            a.source.path().display()
                        ),
                        Some("list the same proposal on both sides".into()),
                    ));
                }
            }
        }
    }
}

fn kind_name(kind: TunnelKind) -> &'static str {
    super::tunnel::kind_name(kind)
}

fn intersects<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    a.iter().any(|x| b.contains(x))
}

fn ike_match(a: &IkeProposal, b: &IkeProposal) -> bool {
    intersects(&a.encryption, &b.encryption)
        && (a.integrity.is_empty() && b.integrity.is_empty()
            || intersects(&a.integrity, &b.integrity))
        && intersects(&a.prf, &b.prf)
        && intersects(&a.dh, &b.dh)
}

fn esp_match(a: &EspProposal, b: &EspProposal) -> bool {
    intersects(&a.encryption, &b.encryption)
        && (a.integrity.is_empty() && b.integrity.is_empty()
            || intersects(&a.integrity, &b.integrity))
        && (a.dh.is_empty() && b.dh.is_empty() || intersects(&a.dh, &b.dh))
        && intersects(&a.esn, &b.esn)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::{load_sources, Options, SourceFile};

    /// A profile with the given routes (prefix, table), distinct outer endpoints per index.
    fn profile(index: usize, routes: &[(String, Option<u32>)]) -> SourceFile {
        let mut text = format!(
            "kind = \"xfrm\"\nlocal = \"192.0.2.1\"\nremote = \"198.51.100.{index}\"\n\
             [ike]\npsk_file = \"/etc/routevpn/secrets/t.psk\"\n[interface]\nname = \"x{index}\"\n"
        );
        for (to, table) in routes {
            text.push_str(&format!("[[route]]\nto = \"{to}\"\n"));
            if let Some(table) = table {
                text.push_str(&format!("table = {table}\n"));
            }
        }
        SourceFile::new(format!("t{index:03}.toml"), text)
    }

    /// The pairwise rule the indexed check must match: for each route, the first route of
    /// an earlier profile in the same table that contains it or that it contains.
    fn naive(profiles: &[Vec<(ipnet::IpNet, Option<u32>)>]) -> Vec<String> {
        let mut out = Vec::new();
        for (i, routes) in profiles.iter().enumerate() {
            for (to, table) in routes {
                let clash = profiles[..i].iter().find_map(|earlier| {
                    earlier
                        .iter()
                        .find(|(other, t)| t == table && (other.contains(to) || to.contains(other)))
                });
                if let Some((other, _)) = clash {
                    out.push(format!("route to {to} overlaps route to {other}"));
                }
            }
        }
        out
    }

    fn prefix() -> impl Strategy<Value = ipnet::IpNet> {
        // Few distinct bits, so that containment and equality are frequent.
        prop_oneof![
            (0u8..4, 0u8..4, 6u8..=26).prop_map(|(a, b, len)| {
                ipnet::IpNet::new(format!("10.{a}.{}.0", b * 64).parse().unwrap(), len)
                    .unwrap()
                    .trunc()
            }),
            (0u16..4, 30u8..=64).prop_map(|(a, len)| {
                ipnet::IpNet::new(format!("2001:db8:{a}::").parse().unwrap(), len)
                    .unwrap()
                    .trunc()
            }),
        ]
    }

    proptest! {
        #[test]
        fn overlapping_routes_are_those_a_pairwise_scan_finds(
            // Distinct within a profile: a route listed twice is an error of its own.
            profiles in prop::collection::vec(
                prop::collection::btree_set((prefix(), prop::option::of(100u32..102)), 0..4)
                    .prop_map(|routes| routes.into_iter().collect::<Vec<_>>()),
                1..12,
            )
        ) {
            let sources = profiles
                .iter()
                .enumerate()
                .map(|(i, routes)| {
                    let routes: Vec<_> = routes.iter().map(|(n, t)| (n.to_string(), *t)).collect();
                    profile(i, &routes)
                })
                .collect();
            let loaded = load_sources(sources, Options { insecure_secrets: true }, Vec::new());
            let found: Vec<String> = loaded
                .diagnostics
                .iter()
                .filter(|d| d.message.contains(" overlaps route to "))
                .map(|d| d.message.split(" of tunnel").next().unwrap_or_default().to_string())
                .collect();
            prop_assert_eq!(found, naive(&profiles));
        }
    }
}
