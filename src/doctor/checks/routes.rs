//! Where traffic to each routed prefix really goes: the device must exist and be up, and
//! the kernel's lookup (policy rules in priority order, then longest prefix, then metric)
//! must pick routevpn's route, with no more specific route elsewhere stealing part of it.
//! Rules with a source selector are ignored: which source sends is not known here.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::apply::objects::{Route, RouteType, MAIN_TABLE};
use crate::doctor::{Facts, Finding, Severity};
use crate::plan::{RouteKind, RoutePlan, TunnelPlan, ROUTE_PROTOCOL};

const CHECK: &str = "routes";
const LOCAL_TABLE: u32 = 255;
const DEFAULT_TABLE: u32 = 253;

/// Tables in the order the kernel consults them for `to` (the default rules if the dump
/// held none).
fn tables(facts: &Facts, to: IpAddr) -> Vec<(u32, Option<u32>)> {
    let mut rules: Vec<_> = facts
        .rules
        .iter()
        .filter(|r| r.ipv6 == to.is_ipv6() && r.from.is_none())
        .filter(|r| r.to.is_none_or(|net| net.contains(&to)))
        .map(|r| (r.priority, Some(r.table)))
        .collect();
    if rules.is_empty() {
        rules = vec![
            (0, Some(LOCAL_TABLE)),
            (32766, Some(MAIN_TABLE)),
            (32767, Some(DEFAULT_TABLE)),
        ];
    }
    rules.sort();
    rules
        .into_iter()
        .map(|(p, t)| (t.unwrap_or(MAIN_TABLE), Some(p)))
        .collect()
}

/// The route the kernel picks for `to`, and the priority of the rule that led to it.
pub fn lookup(facts: &Facts, to: IpAddr) -> Option<(&Route, Option<u32>)> {
    for (table, priority) in tables(facts, to) {
        let best = facts
            .routes
            .iter()
            .filter(|r| r.table == table && r.to.contains(&to))
            .min_by_key(|r| (std::cmp::Reverse(r.to.prefix_len()), r.metric));
        if let Some(route) = best {
            return Some((route, priority));
        }
    }
    None
}

fn describe(route: &Route) -> String {
    let target = match (route.route_type, &route.device) {
        (RouteType::Blackhole, _) => "blackhole".to_string(),
        (_, Some(d)) => format!("dev {d}"),
        (_, None) => "no device".to_string(),
    };
    format!(
        "{} {target} (table {}, metric {})",
        route.to, route.table, route.metric
    )
}

fn is_planned(route: &Route, planned: &RoutePlan) -> bool {
    route.to == planned.to
        && route.device == planned.device
        && route.table == planned.table.unwrap_or(MAIN_TABLE)
}

/// A route of routevpn's to the same prefix with a lower metric: the primary of a backup
/// that stands by (both healthy).
fn is_primary_of(route: &Route, planned: &RoutePlan) -> bool {
    route.route_type == RouteType::Unicast
        && route.protocol == ROUTE_PROTOCOL
        && route.to == planned.to
        && route.table == planned.table.unwrap_or(MAIN_TABLE)
        && route.metric < planned.metric
}

fn network(net: &IpNet) -> IpAddr {
    net.network()
}

pub fn check(facts: &Facts, tunnel: &TunnelPlan) -> Vec<Finding> {
    let device = &tunnel.link.name;
    let mut out = Vec::new();
    match facts.links.get(device) {
        None => {
            out.push(Finding::new(
                CHECK,
                Severity::Error,
                tunnel,
                format!("the tunnel device {device} does not exist"),
                format!("routevpn up {}", tunnel.name),
            ));
            return out;
        }
        // Down as planned: its routes are withdrawn too, nothing else to check.
        Some(link) if !link.up && !tunnel.link.up => {
            out.push(Finding::new(
                CHECK,
                Severity::Info,
                tunnel,
                format!(
                    "the tunnel device {device} is down and its routes withdrawn: it has no CHILD SA (on_sa_loss = \"withdraw\")"
                ),
                format!("both return with a CHILD SA; see routevpn status {}", tunnel.name),
            ));
            return out;
        }
        Some(link) if !link.up || link.operstate == "down" => out.push(Finding::new(
            CHECK,
            Severity::Error,
            tunnel,
            format!(
                "the tunnel device {device} is down (operstate {})",
                link.operstate
            ),
            format!("routevpn up {}", tunnel.name),
        )),
        Some(_) => {}
    }
    let unicast = tunnel
        .routes
        .iter()
        .filter(|r| r.kind == RouteKind::Unicast);
    for planned in unicast {
        let to = network(&planned.to);
        match lookup(facts, to) {
            Some((route, _)) if is_planned(route, planned) || is_primary_of(route, planned) => {}
            Some((route, rule)) => {
                let via_rule = match rule {
                    Some(p) if route.table != MAIN_TABLE => {
                        format!(", chosen by the policy rule at priority {p}")
                    }
                    _ => String::new(),
                };
                out.push(Finding::new(
                    CHECK,
                    Severity::Error,
                    tunnel,
                    format!(
                        "traffic to {} takes the route {}{via_rule}, not {device}",
                        planned.to,
                        describe(route)
                    ),
                    "remove or narrow that route (or rule), or give the tunnel's route precedence; then routevpn apply",
                ));
            }
            None => out.push(Finding::new(
                CHECK,
                Severity::Error,
                tunnel,
                format!("no route for {} exists", planned.to),
                "routevpn apply",
            )),
        }
        // Part of the prefix may be routed elsewhere by a more specific route.
        let table = planned.table.unwrap_or(MAIN_TABLE);
        for route in facts.routes.iter().filter(|r| {
            r.table == table
                && r.to.prefix_len() > planned.to.prefix_len()
                && planned.to.contains(&r.to)
                && r.device.as_ref() != Some(device)
        }) {
            let finding = Finding::new(
                CHECK,
                Severity::Error,
                tunnel,
                format!(
                    "the more specific route {} takes part of {} away from {device}",
                    describe(route),
                    planned.to
                ),
                "remove that route if the tunnel should carry this traffic",
            );
            if !out
                .iter()
                .any(|f| f.message.contains(&route.to.to_string()))
            {
                out.push(finding);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;
    use crate::apply::objects::Rule;

    fn route(to: &str, device: &str, table: u32) -> Route {
        Route {
            table,
            to: to.parse().unwrap(),
            metric: 0,
            route_type: RouteType::Unicast,
            device: Some(device.into()),
            via: None,
            src: None,
            protocol: 4,
        }
    }

    #[test]
    fn a_more_specific_route_elsewhere_is_named() {
        let tunnel = fixture::vti();
        let mut facts = fixture::healthy(&tunnel);
        facts
            .routes
            .push(route("192.168.255.0/25", "eth0", MAIN_TABLE));
        let findings = check(&facts, &tunnel);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(
            findings[0].message.contains("192.168.255.0/25 dev eth0"),
            "{findings:?}"
        );
    }

    #[test]
    fn a_policy_rule_that_wins_is_named() {
        let tunnel = fixture::vti();
        let mut facts = fixture::healthy(&tunnel);
        facts.routes.push(route("0.0.0.0/0", "eth1", 100));
        let rule = |priority, table| Rule {
            ipv6: false,
            priority,
            from: None,
            to: None,
            table,
            protocol: 0,
        };
        facts.rules = vec![rule(0, LOCAL_TABLE), rule(50, 100), rule(32766, MAIN_TABLE)];
        let findings = check(&facts, &tunnel);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(findings[0].message.contains("priority 50"), "{findings:?}");
    }

    #[test]
    fn a_backup_behind_its_primary_is_healthy_and_a_withdrawn_tunnel_is_explained() {
        let backup = fixture::tunnel("cloud-backup");
        let mut facts = fixture::healthy(&backup);
        assert!(check(&facts, &backup).is_empty());
        // The primary's route (lower metric, routevpn's) takes the prefix: as it should.
        let mut primary = route("10.70.0.0/16", "vti-cloud-1", MAIN_TABLE);
        (primary.metric, primary.protocol) = (100, ROUTE_PROTOCOL);
        facts.routes.push(primary.clone());
        assert!(check(&facts, &backup).is_empty());
        // A foreign route there is still a finding.
        primary.protocol = 4;
        *facts.routes.last_mut().unwrap() = primary;
        assert_eq!(check(&facts, &backup).len(), 1);

        // Planned down for lack of SAs: said as such, not as a fault to fix with `up`.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
        let tunnels = crate::profile::load(&[dir], Default::default())
            .tunnels
            .unwrap();
        let context = crate::plan::Context {
            without_sas: ["cloud-backup".to_string()].into(),
            ..Default::default()
        };
        let plan = crate::plan::build(&tunnels, &context);
        let withdrawn = plan
            .tunnels
            .iter()
            .find(|t| t.name == "cloud-backup")
            .unwrap();
        let mut facts = fixture::healthy(withdrawn);
        facts.links.get_mut("vti-cloud-2").unwrap().up = false;
        let findings = check(&facts, withdrawn);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].severity, Severity::Info);
        assert!(findings[0].message.contains("no CHILD SA"), "{findings:?}");
        // Down although planned up: an error, as before.
        let backup = fixture::tunnel("cloud-backup");
        let mut facts = fixture::healthy(&backup);
        facts.links.get_mut("vti-cloud-2").unwrap().up = false;
        assert_eq!(check(&facts, &backup)[0].severity, Severity::Error);
    }

    #[test]
    fn a_missing_or_down_device_is_named() {
        let tunnel = fixture::vti();
        let mut facts = fixture::healthy(&tunnel);
        facts.links.get_mut("vti-telecom").unwrap().up = false;
        assert!(check(&facts, &tunnel)[0].message.contains("is down"));
        facts.links.remove("vti-telecom");
        assert!(check(&facts, &tunnel)[0].message.contains("does not exist"));
    }
}
