//! `[[child]]` sections: traffic selectors, ESP proposals, mode and lifetimes.

use std::net::IpAddr;
use std::time::Duration;

use super::fields::{checked, choice, duration_key, volume_key};
use super::ike::proposals;
use super::reader::Section;
use super::tunnel::{kind_name, ChildSpans, Spans};
use super::values;
use crate::model::{
    Child, Gre, Mode, TrafficSelector, TunnelKind, MAX_REPLAY_WINDOW, REPLAY_WINDOW,
};
use crate::proposal::{self, EspProposal};

pub(super) const CHILD_KEYS: &[&str] = &[
    "name",
    "local_ts",
    "remote_ts",
    "esp_proposals",
    "mode",
    "rekey_time",
    "life_time",
    "rand_time",
    "rekey_bytes",
    "life_bytes",
    "rekey_packets",
    "life_packets",
    "replay_window",
];

pub(super) fn read_children(
    top: &Section<'_>,
    kind: Option<TunnelKind>,
    tunnel_name: Option<&str>,
    gre: Option<&Gre>,
    allow_legacy: bool,
    spans: &mut Spans,
) -> Option<Vec<Child>> {
    let sections = top.tables("child", CHILD_KEYS);
    if sections.is_empty() && top.contains("child") {
        // A wrong type was reported by `tables`; an empty array `child = []` was not.
        if top.is_empty_array("child") {
            top.ctx.error(
                top.key_span("child").unwrap_or(top.span.clone()),
                format!("`child` in {} is empty", top.name),
                Some("add a [[child]] table, or remove the key to use the default child".into()),
            );
        }
        return None;
    }
    let gre_between_outer = gre.is_some_and(|g| g.local.is_none());
    let default_mode = if gre_between_outer {
        Mode::Transport
    } else {
        Mode::Tunnel
    };
    if sections.is_empty() {
        let whole = top.span.clone();
        spans.children.push(ChildSpans {
            name: whole.clone(),
            local_ts: whole.clone(),
            remote_ts: whole.clone(),
            esp: whole,
        });
        return Some(vec![default_child(tunnel_name?, kind?, gre, default_mode)]);
    }
    // Without a valid kind or tunnel name (both reported already) the children are still
    // checked, so that one pass reports everything, and then dropped.
    let base_name = tunnel_name.unwrap_or("tunnel");
    let mut children = Vec::with_capacity(sections.len());
    let mut ok = kind.is_some() && tunnel_name.is_some();
    for (i, section) in sections.iter().enumerate() {
        let fallback_name = if i == 0 {
            base_name.to_string()
        } else {
            format!("{base_name}-{}", i + 1)
        };
        match read_child(
            section,
            kind,
            gre,
            default_mode,
            fallback_name,
            allow_legacy,
            spans,
        ) {
            Some(child) => children.push(child),
            None => ok = false,
        }
    }
    ok.then_some(children)
}

pub(super) fn default_child(name: &str, kind: TunnelKind, gre: Option<&Gre>, mode: Mode) -> Child {
    let (local_ts, remote_ts) = default_selectors(kind, gre);
    let esp_proposals = proposal::DEFAULT_ESP
        .iter()
        .filter_map(|p| proposal::parse_esp(p, false).ok())
        .collect();
    let rekey = crate::model::CHILD_REKEY_TIME;
    Child {
        name: name.to_string(),
        local_ts,
        remote_ts,
        esp_proposals,
        mode,
        rekey_time: rekey,
        life_time: rekey + rekey / 10,
        rand_time: rekey / 10,
        rekey_bytes: 0,
        life_bytes: 0,
        rekey_packets: 0,
        life_packets: 0,
        replay_window: REPLAY_WINDOW,
    }
}

/// Route-based tunnels protect everything routed into them; GRE protects only GRE itself.
pub(super) fn default_selectors(
    kind: TunnelKind,
    gre: Option<&Gre>,
) -> (Vec<TrafficSelector>, Vec<TrafficSelector>) {
    let any = |net: &str| TrafficSelector {
        net: Some(net.parse().expect("literal prefix")),
        protocol: None,
        ports: None,
    };
    let gre_ts = |addr: Option<IpAddr>| TrafficSelector {
        net: addr.map(ipnet::IpNet::from),
        protocol: Some(47),
        ports: None,
    };
    match (kind, gre) {
        (TunnelKind::Gre, Some(g)) => (vec![gre_ts(g.local)], vec![gre_ts(g.remote)]),
        _ => (
            vec![any("0.0.0.0/0"), any("::/0")],
            vec![any("0.0.0.0/0"), any("::/0")],
        ),
    }
}

pub(super) fn selectors(
    section: &Section<'_>,
    key: &str,
    default: Vec<TrafficSelector>,
) -> Option<Vec<TrafficSelector>> {
    let Some(list) = section.strings(key) else {
        return (!section.contains(key)).then_some(default);
    };
    if list.is_empty() {
        section.ctx.error(
            section.key_span(key).unwrap_or(section.span.clone()),
            format!("`{key}` in {} is empty", section.name),
            Some("list at least one selector, e.g. \"10.0.0.0/24\"".into()),
        );
        return None;
    }
    list.iter()
        .map(|v| checked(section.ctx, v, values::traffic_selector))
        .collect::<Vec<_>>()
        .into_iter()
        .collect()
}

/// Reads one `[[child]]`; `kind` is `None` when the tunnel's kind is invalid (the child is then
/// checked but its kind-dependent defaults are meaningless).
pub(super) fn read_child(
    section: &Section<'_>,
    kind: Option<TunnelKind>,
    gre: Option<&Gre>,
    default_mode: Mode,
    fallback_name: String,
    allow_legacy: bool,
    spans: &mut Spans,
) -> Option<Child> {
    let ctx = section.ctx;
    let template_kind = kind.unwrap_or(TunnelKind::Vti);
    let template = default_child(&fallback_name, template_kind, gre, default_mode);
    let at = |key: &str| section.value_span(key).unwrap_or(section.span.clone());
    let mut child_spans = ChildSpans {
        name: at("name"),
        local_ts: at("local_ts"),
        remote_ts: at("remote_ts"),
        esp: section.span.clone(),
    };
    let name = match section.string("name") {
        Some(v) => checked(ctx, &v, values::object_name).map(|()| v.value.to_string()),
        None => Some(fallback_name),
    };
    let local_ts = selectors(section, "local_ts", template.local_ts.clone());
    let remote_ts = selectors(section, "remote_ts", template.remote_ts.clone());
    let esp: Option<Vec<EspProposal>> = proposals(
        section,
        "esp_proposals",
        "ESP",
        proposal::DEFAULT_ESP,
        allow_legacy,
        proposal::parse_esp,
    )
    .map(|(p, span)| {
        child_spans.esp = span;
        p
    });
    spans.children.push(child_spans);
    let mode = choice(
        section,
        "mode",
        &[("tunnel", Mode::Tunnel), ("transport", Mode::Transport)],
        default_mode,
    );
    if let (Some(Mode::Transport), Some(kind)) = (mode, kind.filter(|k| *k != TunnelKind::Gre)) {
        ctx.error(
            section.key_span("mode").unwrap_or(section.span.clone()),
            format!(
                "kind = \"{}\" carries tunnel-mode SAs; transport mode cannot work",
                kind_name(kind)
            ),
            Some(
                "remove `mode`, or use kind = \"gre\" for GRE protected by transport-mode ESP"
                    .into(),
            ),
        );
    }
    let rekey_time = duration_key(section, "rekey_time");
    let life_time = duration_key(section, "life_time");
    let rand_time = duration_key(section, "rand_time");
    let rekey = rekey_time.as_ref().map_or(template.rekey_time, |v| v.value);
    let life = life_time.as_ref().map_or(rekey + rekey / 10, |v| v.value);
    let rand = rand_time
        .as_ref()
        .map_or(life.saturating_sub(rekey), |v| v.value);
    if let Some(v) = life_time.as_ref().filter(|v| v.value <= rekey) {
        ctx.error(
            v.span.clone(),
            format!(
                "life_time {}s must be longer than rekey_time {}s",
                v.value.as_secs(),
                rekey.as_secs()
            ),
            Some("the SA is rekeyed at rekey_time and deleted at life_time".into()),
        );
    }
    if let Some(v) = rekey_time
        .as_ref()
        .filter(|v| v.value < Duration::from_secs(60))
    {
        ctx.error(
            v.span.clone(),
            format!("CHILD rekey_time {}s is too short", v.value.as_secs()),
            Some("at least 60s; partners usually agree on 1h or 8h".into()),
        );
    }
    if let Some(v) = rand_time.as_ref().filter(|v| v.value >= rekey) {
        ctx.error(
            v.span.clone(),
            format!(
                "rand_time {}s must be shorter than rekey_time {}s",
                v.value.as_secs(),
                rekey.as_secs()
            ),
            None,
        );
    }
    let rekey_bytes = volume_key(section, "rekey_bytes")
        .or_else(|| (!section.contains("rekey_bytes")).then_some(0));
    let life_bytes = volume_key(section, "life_bytes")
        .or_else(|| (!section.contains("life_bytes")).then_some(0));
    let rekey_packets = volume_key(section, "rekey_packets")
        .or_else(|| (!section.contains("rekey_packets")).then_some(0));
    let life_packets = volume_key(section, "life_packets")
        .or_else(|| (!section.contains("life_packets")).then_some(0));
    let replay_window = replay_window(section, esp.as_deref());
    Some(Child {
        name: name?,
        local_ts: local_ts?,
        remote_ts: remote_ts?,
        esp_proposals: esp?,
        mode: mode?,
        rekey_time: rekey,
        life_time: life,
        rand_time: rand,
        rekey_bytes: rekey_bytes?,
        life_bytes: life_bytes?,
        rekey_packets: rekey_packets?,
        life_packets: life_packets?,
        replay_window: replay_window?,
    })
}

/// `replay_window`, in packets. With ESN the kernel refuses an inbound SA without a window.
fn replay_window(section: &Section<'_>, esp: Option<&[EspProposal]>) -> Option<u32> {
    let Some(v) = section.integer("replay_window", 0..u64::from(MAX_REPLAY_WINDOW) + 1) else {
        return (!section.contains("replay_window")).then_some(REPLAY_WINDOW);
    };
    let offers_esn = esp.is_some_and(|list| list.iter().any(|p| p.esn.contains(&true)));
    if v.value == 0 && offers_esn {
        section.ctx.error(
            v.span,
            format!("replay_window = 0 in {} cannot go with ESN", section.name),
            Some("the kernel needs a replay window for ESN: remove `esn` or set a window".into()),
        );
        return None;
    }
    u32::try_from(v.value).ok()
}
