//! `[[route]]` and `[[snat]]` sections.

use super::fields::checked;
use super::reader::Section;
use super::tunnel::Spans;
use super::values;
use crate::model::{Route, Snat, FAIL_CLOSED_METRIC};

pub(super) const ROUTE_KEYS: &[&str] = &["to", "src", "via", "metric", "table"];
pub(super) const SNAT_KEYS: &[&str] = &["to", "from", "source"];

pub(super) fn read_routes(top: &Section<'_>, spans: &mut Spans) -> Option<Vec<Route>> {
    let ctx = top.ctx;
    let mut routes = Vec::new();
    let mut ok = true;
    for section in top.tables("route", ROUTE_KEYS) {
        let to = section
            .required_string(
                "to",
                Some("the destination prefix, e.g. to = \"192.168.30.0/24\"".into()),
            )
            .and_then(|v| {
                spans.routes.push(v.span.clone());
                checked(ctx, &v, values::prefix).map(|net| (net, v))
            });
        let src = section
            .string("src")
            .and_then(|v| checked(ctx, &v, values::address).map(|a| (a, v)));
        spans
            .route_src
            .push(src.as_ref().map(|(_, v)| v.span.clone()));
        let via = section
            .string("via")
            .and_then(|v| checked(ctx, &v, values::address).map(|a| (a, v)));
        let metric = section.integer("metric", 0..1 << 32).and_then(|v| {
            if v.value >= u64::from(FAIL_CLOSED_METRIC) {
                ctx.error(
                    v.span,
                    format!(
                        "metric {} is not below {FAIL_CLOSED_METRIC}, the fail-closed blackhole's",
                        v.value
                    ),
                    Some("the blackhole would win over this route; use a lower metric".into()),
                );
                return None;
            }
            Some(v.value as u32)
        });
        let table = section.integer("table", 1..1 << 32).and_then(|v| {
            // 253-255 are the kernel's default, main and local tables; routes go in main by omission.
            if (253..=255).contains(&v.value) {
                ctx.error(
                    v.span,
                    format!("table {} is reserved by the kernel", v.value),
                    Some("omit `table` for the main table, or use 1-252 / 256+".into()),
                );
                return None;
            }
            Some(v.value as u32)
        });
        let Some((to, _)) = to else {
            ok = false;
            continue;
        };
        for (addr, v) in [&src, &via].into_iter().flatten() {
            if addr.is_ipv4() != to.addr().is_ipv4() {
                ctx.error(
                    v.span.clone(),
                    format!("{addr} and route destination {to} are of different address families"),
                    None,
                );
                ok = false;
            }
        }
        routes.push(Route {
            to,
            src: src.map(|(a, _)| a),
            via: via.map(|(a, _)| a),
            metric,
            table,
        });
    }
    ok.then_some(routes)
}

pub(super) fn read_snat(top: &Section<'_>, spans: &mut Spans) -> Option<Vec<Snat>> {
    let ctx = top.ctx;
    let mut rules = Vec::new();
    let mut ok = true;
    for section in top.tables("snat", SNAT_KEYS) {
        let to = section
            .required_string(
                "to",
                Some("the destination prefix to match, e.g. to = \"100.15.30.0/24\"".into()),
            )
            .and_then(|v| {
                spans.snat_to.push(v.span.clone());
                checked(ctx, &v, values::prefix)
            });
        let from = section
            .string("from")
            .and_then(|v| checked(ctx, &v, values::prefix).map(|net| (net, v)));
        let source = section
            .required_string(
                "source",
                Some("the address agreed with the partner, e.g. source = \"10.45.8.17\"".into()),
            )
            .and_then(|v| checked(ctx, &v, values::address).map(|a| (a, v)));
        let (Some(to), Some((source, source_v))) = (to, source) else {
            ok = false;
            continue;
        };
        if let Some((from, from_v)) = &from {
            if from.addr().is_ipv4() != to.addr().is_ipv4() {
                ctx.error(
                    from_v.span.clone(),
                    format!(
                        "SNAT from {from} and destination {to} are of different address families"
                    ),
                    None,
                );
                ok = false;
            }
        }
        if source.is_ipv4() != to.addr().is_ipv4() {
            ctx.error(
                source_v.span,
                format!(
                    "SNAT source {source} and destination {to} are of different address families"
                ),
                None,
            );
            ok = false;
            continue;
        }
        spans.snat_source.push(source_v.span);
        rules.push(Snat {
            to,
            from: from.map(|(net, _)| net),
            source,
        });
    }
    ok.then_some(rules)
}
