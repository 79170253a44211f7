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
    policies_shadowing_backups(entries, &mut out);
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

/// Routes of two profiles in one table may share a prefix with different metrics (primary
/// and backup: the lower metric wins, the other takes over when it is withdrawn). Two with
/// the same metric would be one kernel route. A prefix strictly inside another's is refused:
/// it wins by length whatever the metrics, and its fail-closed blackhole would shadow the
/// wider route even while it is withdrawn.
///
/// Instead of comparing every pair, each earlier route is indexed under itself and under
/// every prefix that strictly contains it; the earliest clash (file, then route order) is
/// reported, as a pairwise scan would.
fn overlapping_routes(entries: &[Entry<'_>], out: &mut Vec<Diagnostic>) {
    type Key = (Option<u32>, IpNet);
    let mut routes: HashMap<Key, (usize, usize)> = HashMap::new();
    let mut same_metric: HashMap<(Key, u32), (usize, usize)> = HashMap::new();
    let mut containers: HashMap<Key, (usize, usize)> = HashMap::new();
    for (i, later) in entries.iter().enumerate() {
        let tunnel = &later.parsed.tunnel;
        let mut clashes = Vec::new();
        for (r, route) in tunnel.routes.iter().enumerate() {
            let (table, to) = (route.table, route.to.trunc());
            let ancestors = (0..to.prefix_len()).filter_map(|len| truncated(&to, len));
            let nested = ancestors
                .filter_map(|net| routes.get(&(table, net)))
                .chain(containers.get(&(table, to)))
                .min()
                .map(|&clash| (clash, false));
            let equal = (same_metric.get(&((table, to), route.kernel_metric())))
                .map(|&clash| (clash, true));
            if let Some(clash) = nested.into_iter().chain(equal).min() {
                clashes.push((r, clash));
            }
        }
        // Routes of one profile are indexed after it is checked: a tunnel's own routes may
        // overlap (a /24 and its two /25 halves).
        for (r, route) in tunnel.routes.iter().enumerate() {
            let key = (route.table, route.to.trunc());
            routes.entry(key).or_insert((i, r));
            (same_metric.entry((key, route.kernel_metric()))).or_insert((i, r));
            for len in 0..route.to.prefix_len() {
                if let Some(net) = truncated(&route.to, len) {
                    containers.entry((route.table, net)).or_insert((i, r));
                }
            }
        }
        for (r, ((j, k), equal)) in clashes {
            let (earlier, route) = (&entries[j], &tunnel.routes[r]);
            let other = &earlier.parsed.tunnel.routes[k];
            let span = later.parsed.spans.routes.get(r).cloned().unwrap_or(0..0);
            let first = earlier.parsed.spans.routes.get(k).cloned().unwrap_or(0..0);
            let at = location(earlier.source, &first);
            let name = &earlier.parsed.tunnel.name;
            let (message, hint) = if equal {
                (
                    format!(
                        "route to {} has metric {}, as the route to {} of tunnel \"{name}\" ({at})",
                        route.to,
                        route.kernel_metric(),
                        other.to
                    ),
                    "one prefix may go through two tunnels as primary and backup: give the backup a higher `metric`",
                )
            } else {
                (
                    format!(
                        "route to {} overlaps route to {} of tunnel \"{name}\" ({at})",
                        route.to, other.to
                    ),
                    "the longer prefix wins whatever the metrics, and its fail-closed blackhole would shadow the other; give each prefix to one tunnel, or the same prefix to both with different metrics",
                )
            };
            out.push(error(later.source, span, message, Some(hint.into())));
        }
    }
}

/// A GRE tunnel's policy-based child installs XFRM policies without mark or if_id: they
/// match a packet whatever route it took. One whose `remote_ts` meets a prefix that two
/// tunnels route as primary and backup would take that traffic from the backup too (and
/// drop it while its own SAs are gone), so the backup could never take over.
fn policies_shadowing_backups(entries: &[Entry<'_>], out: &mut Vec<Diagnostic>) {
    let mut carriers: HashMap<(Option<u32>, IpNet), Vec<usize>> = HashMap::new();
    for (i, entry) in entries.iter().enumerate() {
        for route in &entry.parsed.tunnel.routes {
            let tunnels = carriers.entry((route.table, route.to.trunc())).or_default();
            if !tunnels.contains(&i) {
                tunnels.push(i);
            }
        }
    }
    let mut shared: Vec<(IpNet, &Vec<usize>)> = (carriers.iter())
        .filter(|(_, tunnels)| tunnels.len() > 1)
        .map(|((_, net), tunnels)| (*net, tunnels))
        .collect();
    if shared.is_empty() {
        return;
    }
    shared.sort();
    for entry in entries {
        let tunnel = &entry.parsed.tunnel;
        for child in super::policy_children(tunnel) {
            let index = tunnel.children.iter().position(|c| std::ptr::eq(c, child));
            let span = (index.and_then(|c| entry.parsed.spans.children.get(c)))
                .map_or(0..0, |s| s.remote_ts.clone());
            let selectors = child.remote_ts.iter().filter_map(|ts| ts.net);
            let met = selectors.flat_map(|ts| shared.iter().map(move |s| (ts, s)));
            let Some((ts, (net, tunnels))) = met
                .into_iter()
                .find(|(ts, (net, _))| ts.contains(net) || net.contains(ts))
            else {
                continue;
            };
            let names: Vec<String> = (tunnels.iter())
                .map(|&t| format!("\"{}\"", entries[t].parsed.tunnel.name))
                .collect();
            out.push(error(
                entry.source,
                span,
                format!(
                    "child \"{}\" selects {ts} by XFRM policy, which meets {net}, routed by both tunnels {} (a primary and its backup)",
                    child.name,
                    names.join(" and ")
                ),
                Some("its policy matches whatever route a packet takes, so the backup could never take over; narrow remote_ts, or route the prefix through one tunnel".into()),
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
    use crate::model::FAIL_CLOSED_METRIC;

    /// A route: prefix, table, metric.
    type R = (ipnet::IpNet, Option<u32>, Option<u32>);

    /// A profile with the given routes, distinct outer endpoints per index.
    fn profile(index: usize, routes: &[R]) -> SourceFile {
        let mut text = format!(
            "kind = \"xfrm\"\nlocal = \"192.0.2.1\"\nremote = \"198.51.100.{index}\"\n\
             [ike]\npsk_file = \"/etc/routevpn/secrets/t.psk\"\n[interface]\nname = \"x{index}\"\n"
        );
        for (to, table, metric) in routes {
            text.push_str(&format!("[[route]]\nto = \"{to}\"\n"));
            if let Some(table) = table {
                text.push_str(&format!("table = {table}\n"));
            }
            if let Some(metric) = metric {
                text.push_str(&format!("metric = {metric}\n"));
            }
        }
        SourceFile::new(format!("t{index:03}.toml"), text)
    }

    /// The pairwise rule the indexed check must match: for each route, the first route of
    /// an earlier profile in the same table that strictly contains it or that it strictly
    /// contains, or that has its prefix and metric.
    fn naive(profiles: &[Vec<R>]) -> Vec<String> {
        let metric = |m: &Option<u32>, net: &ipnet::IpNet| match m.unwrap_or(0) {
            1024 if net.addr().is_ipv6() => 0,
            m => m,
        };
        let mut out = Vec::new();
        for (i, routes) in profiles.iter().enumerate() {
            for (to, table, m) in routes {
                let clash = profiles[..i].iter().find_map(|earlier| {
                    earlier.iter().find(|(other, t, n)| {
                        t == table
                            && (other == to && metric(n, other) == metric(m, to)
                                || other != to && (other.contains(to) || to.contains(other)))
                    })
                });
                match clash {
                    Some((other, _, _)) if other == to => out.push(format!(
                        "route to {to} has metric {}, as the route to {other}",
                        metric(m, to)
                    )),
                    Some((other, _, _)) => {
                        out.push(format!("route to {to} overlaps route to {other}"))
                    }
                    None => {}
                }
            }
        }
        out
    }

    fn load(profiles: &[Vec<R>]) -> super::super::Loaded {
        let sources = (profiles.iter().enumerate())
            .map(|(i, routes)| profile(i, routes))
            .collect();
        load_sources(
            sources,
            Options {
                insecure_secrets: true,
            },
            Vec::new(),
        )
    }

    fn net(s: &str) -> ipnet::IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn one_prefix_may_go_through_two_tunnels_with_different_metrics() {
        let route = |metric| vec![(net("10.70.0.0/16"), None, metric)];
        let loaded = load(&[route(Some(100)), route(Some(200)), route(None)]);
        assert!(loaded.errors().next().is_none(), "{:?}", loaded.diagnostics);
        // IPv6's metric 0 is the kernel's 1024: the same route.
        let v6 = |metric| vec![(net("2001:db8:70::/48"), None, metric)];
        let loaded = load(&[v6(None), v6(Some(1024))]);
        let errors: Vec<_> = loaded.errors().map(|d| d.located_message()).collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
    }

    #[test]
    fn the_same_prefix_and_metric_in_two_profiles_names_both_files() {
        let route = |metric| vec![(net("10.70.0.0/16"), None, metric)];
        let loaded = load(&[route(Some(100)), route(Some(100))]);
        let errors: Vec<_> = loaded.errors().collect();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].file.to_str(), Some("t001.toml"));
        assert_eq!(
            errors[0].located_message(),
            "9:6: route to 10.70.0.0/16 has metric 100, as the route to 10.70.0.0/16 of tunnel \"t000\" (t000.toml:9:6)"
        );
    }

    #[test]
    fn a_backup_with_a_shorter_prefix_is_refused_whatever_the_metrics() {
        // The /24's blackhole would keep taking the traffic the /16 backup should get.
        let loaded = load(&[
            vec![(net("10.70.1.0/24"), None, Some(100))],
            vec![(net("10.70.0.0/16"), None, Some(200))],
        ]);
        let errors: Vec<_> = loaded.errors().map(|d| d.located_message()).collect();
        assert_eq!(
            errors,
            ["9:6: route to 10.70.0.0/16 overlaps route to 10.70.1.0/24 of tunnel \"t000\" (t000.toml:9:6)"]
        );
    }

    #[test]
    fn a_metric_behind_the_fail_closed_blackhole_is_refused() {
        let loaded = load(&[vec![(net("10.70.0.0/16"), None, Some(FAIL_CLOSED_METRIC))]]);
        let errors: Vec<_> = loaded.errors().map(|d| d.located_message()).collect();
        assert_eq!(
            errors,
            ["10:10: metric 4294967040 is not below 4294967040, the fail-closed blackhole's"]
        );
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
                prop::collection::btree_map(
                    (prefix(), prop::option::of(100u32..102)),
                    prop::option::of(prop::sample::select(vec![0u32, 100, 1024])),
                    0..4,
                )
                .prop_map(|routes| {
                    routes.into_iter().map(|((n, t), m)| (n, t, m)).collect::<Vec<_>>()
                }),
                1..12,
            )
        ) {
            let loaded = load(&profiles);
            let found: Vec<String> = loaded
                .diagnostics
                .iter()
                .filter(|d| d.message.contains(" overlaps route to ") || d.message.contains(", as the route to "))
                .map(|d| d.message.split(" of tunnel").next().unwrap_or_default().to_string())
                .collect();
            prop_assert_eq!(found, naive(&profiles));
        }
    }
}
