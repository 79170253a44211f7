//! Checks across all profiles of a directory: names, devices and IDs used twice, routes that
//! overlap, and two profiles of one link (both sides in one directory) that cannot agree.

use std::collections::HashMap;
use std::ops::Range;

use super::diagnostic::{Diagnostic, Severity, SourceFile};
use super::tunnel::Parsed;
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
    let vti = |e: &&Entry<'_>| e.parsed.tunnel.kind == TunnelKind::Vti;
    for (i, later) in entries.iter().enumerate().filter(|(_, e)| vti(e)) {
        let b = &later.parsed.tunnel;
        let clash = entries[..i].iter().filter(vti).find(|earlier| {
            let a = &earlier.parsed.tunnel;
            a.remote == b.remote
                && (a.local == b.local
                    || a.local == LocalEndpoint::DefaultRoute
                    || b.local == LocalEndpoint::DefaultRoute)
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
    }
}

fn overlapping_routes(entries: &[Entry<'_>], out: &mut Vec<Diagnostic>) {
    for (i, later) in entries.iter().enumerate() {
        for (r, route) in later.parsed.tunnel.routes.iter().enumerate() {
            let clash = entries[..i].iter().find_map(|earlier| {
                earlier
                    .parsed
                    .tunnel
                    .routes
                    .iter()
                    .enumerate()
                    .find(|(_, other)| {
                        other.table == route.table
                            && (other.to.contains(&route.to) || route.to.contains(&other.to))
                    })
                    .map(|(k, other)| (earlier, k, other))
            });
            if let Some((earlier, k, other)) = clash {
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
}

/// Two profiles whose outer endpoints mirror each other are the two sides of one link.
fn mirrored_pairs(entries: &[Entry<'_>], out: &mut Vec<Diagnostic>) {
    for (i, b) in entries.iter().enumerate() {
        for a in &entries[..i] {
            let (ta, tb) = (&a.parsed.tunnel, &b.parsed.tunnel);
            let mirrored = matches!(ta.local, LocalEndpoint::Address(l) if l == tb.remote)
                && matches!(tb.local, LocalEndpoint::Address(l) if l == ta.remote);
            if !mirrored {
                continue;
            }
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
