//! The `[interface]` and `[gre]` sections: the device routevpn creates.

use super::fields::{checked, choice};
use super::reader::{IntOrStr, Section, Val};
use super::tunnel::{kind_name, Spans};
use super::values;
use crate::model::{Gre, Interface, InterfaceAddress, MssClamp, MtuSetting, RpFilter, TunnelKind};

pub(super) const INTERFACE_KEYS: &[&str] = &[
    "name",
    "addresses",
    "mtu",
    "outer_mtu",
    "mss_clamp",
    "multicast",
    "rp_filter",
    "link",
];
pub(super) const GRE_KEYS: &[&str] = &["local", "remote", "key", "ttl", "keepalive_replies"];

pub(super) fn read_gre(
    top: &Section<'_>,
    kind: Option<TunnelKind>,
    spans: &mut Spans,
) -> Option<Gre> {
    let section = top.table("gre", "[gre]".into(), GRE_KEYS);
    match kind {
        Some(TunnelKind::Gre) => {}
        Some(kind) => {
            if section.is_some() {
                top.ctx.error(
                    top.key_span("gre").unwrap_or(top.span.clone()),
                    format!(
                        "a [gre] table only applies to kind = \"gre\", not \"{}\"",
                        kind_name(kind)
                    ),
                    Some("remove it, or set kind = \"gre\"".into()),
                );
            }
            return None;
        }
        // The kind is invalid (reported already): a [gre] table is still checked.
        None if section.is_none() => return None,
        None => {}
    }
    let Some(section) = section else {
        return Some(Gre {
            local: None,
            remote: None,
            key: None,
            ttl: 255,
            keepalive_replies: false,
        });
    };
    let ctx = section.ctx;
    let local = section.string("local").and_then(|v| {
        spans.gre_local = Some(v.span.clone());
        checked(ctx, &v, values::address)
    });
    let remote = section.string("remote").and_then(|v| {
        spans.gre_remote = Some(v.span.clone());
        checked(ctx, &v, values::address)
    });
    // Presence, not validity: an invalid address has been reported already.
    if section.contains("local") != section.contains("remote") {
        ctx.error(
            section.span.clone(),
            "[gre] needs both `local` and `remote`, or neither",
            Some("without them GRE runs between the outer IKE endpoints".into()),
        );
    }
    let key = section.integer("key", 0..1 << 32).map(|v| {
        spans.gre_key = Some(v.span);
        v.value as u32
    });
    let ttl = section
        .integer("ttl", 1..256)
        .map_or(255, |v| v.value as u8);
    let keepalive_replies = section
        .boolean("keepalive_replies")
        .is_some_and(|v| v.value);
    Some(Gre {
        local,
        remote,
        key,
        ttl,
        keepalive_replies,
    })
}

pub(super) fn read_interface(
    top: &Section<'_>,
    kind: Option<TunnelKind>,
    tunnel_name: Option<&str>,
    spans: &mut Spans,
) -> Option<Interface> {
    let ctx = top.ctx;
    let section = top.table("interface", "[interface]".into(), INTERFACE_KEYS);
    if top.contains("interface") && section.is_none() {
        return None;
    }
    // Without a valid tunnel name (reported already) the rest is still checked.
    let name = match section.as_ref().filter(|s| s.contains("name")) {
        Some(s) => s.string("name").and_then(|v| {
            spans.interface_name = v.span.clone();
            checked(ctx, &v, values::interface_name).map(|()| v.value.to_string())
        }),
        None => tunnel_name.and_then(|tunnel_name| {
            let derived = format!("rv-{tunnel_name}");
            spans.interface_name = spans.name.clone();
            if derived.len() > 15 {
                ctx.error(
                    spans.name.clone(),
                    format!(
                        "the default interface name \"{derived}\" is longer than 15 characters"
                    ),
                    Some("set `name` under [interface]".into()),
                );
                return None;
            }
            Some(derived)
        }),
    };
    let Some(section) = section else {
        return Some(Interface {
            name: name?,
            addresses: vec![],
            mtu: MtuSetting::Auto,
            outer_mtu: None,
            mss_clamp: MssClamp::Auto,
            multicast: kind == Some(TunnelKind::Gre),
            rp_filter: RpFilter::Loose,
            link: None,
        });
    };
    let addresses: Option<Vec<InterfaceAddress>> = section
        .strings("addresses")
        .unwrap_or_default()
        .iter()
        .map(|v| checked(ctx, v, values::interface_address))
        .collect::<Vec<_>>() // report every bad address, not only the first
        .into_iter()
        .collect();
    let mtu = match section.integer_or_string("mtu", 68..65536) {
        None => (!section.contains("mtu")).then_some(MtuSetting::Auto),
        Some(Val {
            value: IntOrStr::Int(n),
            ..
        }) => Some(MtuSetting::Fixed(n as u32)),
        Some(Val {
            value: IntOrStr::Str("auto"),
            ..
        }) => Some(MtuSetting::Auto),
        Some(Val {
            value: IntOrStr::Str(other),
            span,
        }) => {
            ctx.error(
                span,
                format!("invalid mtu \"{other}\""),
                Some(unquote_hint(
                    "mtu",
                    other,
                    "write \"auto\" or a number of bytes, e.g. 1400",
                )),
            );
            None
        }
    };
    let outer_mtu = match section.integer("outer_mtu", 576..65536) {
        Some(v) => Some(Some(v.value as u32)),
        None => (!section.contains("outer_mtu")).then_some(None),
    };
    let mss_clamp = match section.integer_or_string("mss_clamp", 536..65496) {
        None => (!section.contains("mss_clamp")).then_some(MssClamp::Auto),
        Some(Val {
            value: IntOrStr::Int(n),
            ..
        }) => Some(MssClamp::Fixed(n as u16)),
        Some(Val {
            value: IntOrStr::Str("auto"),
            ..
        }) => Some(MssClamp::Auto),
        Some(Val {
            value: IntOrStr::Str("off"),
            ..
        }) => Some(MssClamp::Off),
        Some(Val {
            value: IntOrStr::Str(other),
            span,
        }) => {
            ctx.error(
                span,
                format!("invalid mss_clamp \"{other}\""),
                Some(unquote_hint(
                    "mss_clamp",
                    other,
                    "write \"auto\", \"off\" or a segment size, e.g. 1360",
                )),
            );
            None
        }
    };
    let multicast = section
        .boolean("multicast")
        .map_or(kind == Some(TunnelKind::Gre), |v| v.value);
    // PIM and OSPF check the reverse path of packets that arrive on the tunnel.
    let rp_default = if multicast {
        RpFilter::Off
    } else {
        RpFilter::Loose
    };
    let rp_filter = choice(
        &section,
        "rp_filter",
        &[
            ("off", RpFilter::Off),
            ("loose", RpFilter::Loose),
            ("strict", RpFilter::Strict),
        ],
        rp_default,
    );
    if multicast && rp_filter == Some(RpFilter::Strict) {
        if let Some(span) = section.key_span("rp_filter") {
            ctx.warning(
                span,
                "rp_filter = \"strict\" on a multicast link drops multicast whose source is routed elsewhere",
                Some("PIM and OSPF over tunnels usually need \"loose\" or \"off\"".into()),
            );
        }
    }
    let link = section.string("link").and_then(|v| {
        if kind.is_some_and(|k| k != TunnelKind::Xfrm) {
            ctx.error(
                section.key_span("link").unwrap_or(v.span),
                "`link` only applies to kind = \"xfrm\" interfaces",
                Some("VTI and GRE devices follow the route to the peer".into()),
            );
            return None;
        }
        checked(ctx, &v, values::interface_name).map(|()| v.value.to_string())
    });
    Some(Interface {
        name: name?,
        addresses: addresses?,
        mtu: mtu?,
        outer_mtu: outer_mtu?,
        mss_clamp: mss_clamp?,
        multicast,
        rp_filter: rp_filter?,
        link,
    })
}

/// A number written as a string (`mtu = "1400"`) only needs its quotes removed.
fn unquote_hint(key: &str, text: &str, general: &str) -> String {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        format!("write the number without quotes: {key} = {text}")
    } else {
        general.to_string()
    }
}
