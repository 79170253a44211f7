//! One profile file → one [`Tunnel`], with every problem reported at its location.

use std::net::IpAddr;
use std::ops::Range;
use std::path::Path;

use toml::de::DeTable;

use super::child::read_children;
use super::diagnostic::SourceFile;
use super::fields::{checked, choice};
use super::ike::read_ike;
use super::ike::IKE_KEYS;
use super::interface::{read_gre, read_interface};
use super::reader::{Context, Section, Val};
use super::routing::{read_routes, read_snat};
use super::values;
use crate::model::{Identity, LocalEndpoint, OnSaLoss, Tunnel, TunnelKind};

/// The top-level keys, in the order of the reference (and of profiles import writes).
pub const TOP_KEYS: &[&str] = &[
    "name",
    "kind",
    "local",
    "remote",
    "local_id",
    "remote_id",
    "mark",
    "if_id",
    "fail_closed",
    "on_sa_loss",
    "allow_remote_in_routes",
    "ike",
    "child",
    "interface",
    "gre",
    "route",
    "snat",
];

/// Spans of the values cross-file checks point at.
#[derive(Clone, Debug, Default)]
pub struct Spans {
    pub name: Range<usize>,
    pub mark: Option<Range<usize>>,
    pub if_id: Option<Range<usize>>,
    pub interface_name: Range<usize>,
    pub gre_key: Option<Range<usize>>,
    pub gre_local: Option<Range<usize>>,
    pub gre_remote: Option<Range<usize>>,
    pub remote: Range<usize>,
    pub routes: Vec<Range<usize>>,
    pub route_src: Vec<Option<Range<usize>>>,
    pub snat_to: Vec<Range<usize>>,
    pub snat_source: Vec<Range<usize>>,
    pub children: Vec<ChildSpans>,
    pub ike_proposals: Range<usize>,
    pub psk_file: Range<usize>,
    pub auth: super::auth::AuthSpans,
    /// `None` when the profile leaves the identity to its default.
    pub local_id: Option<Range<usize>>,
    pub on_sa_loss: Option<Range<usize>>,
}

/// Where one child's values are; keys left to their defaults point at the child itself.
#[derive(Clone, Debug, Default)]
pub struct ChildSpans {
    pub name: Range<usize>,
    pub local_ts: Range<usize>,
    pub remote_ts: Range<usize>,
    pub esp: Range<usize>,
}

pub struct Parsed {
    pub tunnel: Tunnel,
    pub spans: Spans,
}

/// Reads one profile. Returns `None` when it has errors (they are in `ctx`).
pub fn read(ctx: &Context<'_>, doc: &DeTable<'_>, whole: Range<usize>) -> Option<Parsed> {
    let source = ctx.source;
    let top = Section::new(ctx, "the profile", doc, whole.clone(), TOP_KEYS);
    let mut spans = Spans::default();

    let name = match top.string("name") {
        Some(v) => {
            spans.name = v.span.clone();
            checked(ctx, &v, values::object_name).map(|()| v.value.to_string())
        }
        None => name_from_file(ctx, source.path(), &whole),
    };

    let kind = top
        .required_string("kind", Some("one of: vti, gre, xfrm".into()))
        .and_then(|v| match v.value {
            "vti" => Some(TunnelKind::Vti),
            "gre" => Some(TunnelKind::Gre),
            "xfrm" => Some(TunnelKind::Xfrm),
            other => {
                ctx.error(
                    v.span,
                    format!("unknown tunnel kind \"{other}\""),
                    Some("one of: vti, gre (GRE over IPsec), xfrm (XFRM interface)".into()),
                );
                None
            }
        });

    let remote = top
        .required_string(
            "remote",
            Some("the peer's outer address, e.g. remote = \"198.51.100.7\"".into()),
        )
        .and_then(|v| {
            spans.remote = v.span.clone();
            checked(ctx, &v, values::address).and_then(|a| usable_outer(ctx, &v, a))
        });
    let local = top
        .string("local")
        .map_or(Some(LocalEndpoint::DefaultRoute), |v| {
            if v.value == "%defaultroute" {
                Some(LocalEndpoint::DefaultRoute)
            } else {
                checked(ctx, &v, values::address)
                    .and_then(|a| usable_outer(ctx, &v, a))
                    .and_then(|a| fits_remote(ctx, &v, a, remote))
                    .map(LocalEndpoint::Address)
            }
        });
    let local_id = top.string("local_id").and_then(|v| {
        spans.local_id = Some(v.span.clone());
        checked(ctx, &v, values::identity)
    });
    let remote_id = match top.string("remote_id") {
        Some(v) => checked(ctx, &v, values::identity),
        None => remote.map(Identity::Address),
    };

    let mark = id_value(&top, "mark", kind, TunnelKind::Vti, &mut spans.mark);
    let if_id = id_value(&top, "if_id", kind, TunnelKind::Xfrm, &mut spans.if_id);
    let fail_closed = top.boolean("fail_closed").is_none_or(|v| v.value);
    let on_sa_loss = choice(
        &top,
        "on_sa_loss",
        &[("keep", OnSaLoss::Keep), ("withdraw", OnSaLoss::Withdraw)],
        OnSaLoss::Keep,
    );
    spans.on_sa_loss = top.string("on_sa_loss").map(|v| v.span);
    let allow_remote_in_routes = top
        .boolean("allow_remote_in_routes")
        .is_some_and(|v| v.value);

    let ike = match top.table("ike", "[ike]".into(), IKE_KEYS) {
        Some(section) => read_ike(&section, &mut spans),
        None => {
            // A present `ike` of the wrong type was reported by `table`.
            if !top.contains("ike") {
                top.missing(
                    "ike",
                    Some("add an [ike] table with at least psk_file".into()),
                );
            }
            None
        }
    };
    let gre = read_gre(&top, kind, &mut spans);
    let interface = read_interface(&top, kind, name.as_deref(), &mut spans);
    let allow_legacy = ike.as_ref().is_some_and(|i| i.allow_legacy);
    let children = read_children(
        &top,
        kind,
        name.as_deref(),
        gre.as_ref(),
        allow_legacy,
        &mut spans,
    );
    let routes = read_routes(&top, &mut spans);
    let snat = read_snat(&top, &mut spans);

    if let Some(ike) = &ike {
        super::auth::require_remote_id(&top, &ike.auth, &spans.auth);
    }
    let tunnel = Tunnel {
        name: name?,
        file: source.path().to_path_buf(),
        kind: kind?,
        local: local?,
        remote: remote?,
        local_id,
        remote_id: remote_id?,
        mark,
        if_id,
        fail_closed,
        on_sa_loss: on_sa_loss?,
        ike: ike?,
        children: children?,
        interface: interface?,
        gre,
        routes: routes?,
        snat: snat?,
    };
    if ctx.has_errors() {
        return None;
    }
    super::semantics::check(ctx, &tunnel, &spans, allow_remote_in_routes);
    (!ctx.has_errors()).then_some(Parsed { tunnel, spans })
}

fn name_from_file(ctx: &Context<'_>, path: &Path, whole: &Range<usize>) -> Option<String> {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    match values::object_name(stem) {
        Ok(()) => Some(stem.to_string()),
        Err(e) => {
            ctx.error(
                whole.start..whole.start,
                format!("the file name gives the tunnel {}", e.message),
                Some("rename the file or set `name` in the profile".into()),
            );
            None
        }
    }
}

fn usable_outer(ctx: &Context<'_>, v: &Val<&str>, addr: IpAddr) -> Option<IpAddr> {
    // Canonical: an IPv4-mapped IPv6 address (::ffff:127.0.0.1) is judged as the IPv4 one.
    let canonical = addr.to_canonical();
    let broadcast = matches!(canonical, IpAddr::V4(a) if a.is_broadcast());
    if canonical.is_unspecified()
        || canonical.is_multicast()
        || canonical.is_loopback()
        || broadcast
    {
        ctx.error(
            v.span.clone(),
            format!("{addr} cannot be a tunnel endpoint"),
            Some("use a unicast address reachable by the peer".into()),
        );
        return None;
    }
    Some(addr)
}

/// A local address of the remote's family, and not the remote itself.
fn fits_remote(
    ctx: &Context<'_>,
    v: &Val<&str>,
    local: IpAddr,
    remote: Option<IpAddr>,
) -> Option<IpAddr> {
    let Some(remote) = remote else {
        return Some(local);
    };
    let problem = if remote.is_ipv4() != local.is_ipv4() {
        (
            format!("local {local} and remote {remote} are of different address families"),
            "the outer addresses must both be IPv4 or both IPv6",
        )
    } else if remote.to_canonical() == local.to_canonical() {
        (
            format!("local {local} is the same address as remote"),
            "remote is the peer's outer address, local this host's",
        )
    } else {
        return Some(local);
    };
    ctx.error(v.span.clone(), problem.0, Some(problem.1.into()));
    None
}

/// `mark` (VTI only) and `if_id` (XFRM interfaces only): explicit 32-bit IDs.
fn id_value(
    top: &Section<'_>,
    key: &str,
    kind: Option<TunnelKind>,
    owner: TunnelKind,
    span: &mut Option<Range<usize>>,
) -> Option<u32> {
    let v = top.integer(key, 1..1 << 32)?;
    if kind.is_some_and(|k| k != owner) {
        let owner_name = if owner == TunnelKind::Vti {
            "vti"
        } else {
            "xfrm"
        };
        top.ctx.error(
            top.key_span(key).unwrap_or(v.span),
            format!("`{key}` only applies to kind = \"{owner_name}\" tunnels"),
            Some("remove it".into()),
        );
        return None;
    }
    *span = Some(v.span);
    u32::try_from(v.value).ok()
}

pub(super) fn kind_name(kind: TunnelKind) -> &'static str {
    match kind {
        TunnelKind::Vti => "vti",
        TunnelKind::Gre => "gre",
        TunnelKind::Xfrm => "xfrm",
    }
}

/// Reads a whole file's text into a tunnel, or the diagnostics explaining why not.
pub fn parse_source(source: &SourceFile) -> (Option<Parsed>, Vec<crate::profile::Diagnostic>) {
    let ctx = Context::new(source);
    let parsed = match DeTable::parse(source.text()) {
        Ok(doc) => {
            let span = doc.span();
            read(&ctx, doc.get_ref(), span)
        }
        Err(e) => {
            // Only the parser's message and position: its Display would quote the source line.
            let span = e.span().unwrap_or(0..0);
            ctx.error(
                span,
                format!("TOML syntax: {}", e.message().trim_end()),
                None,
            );
            None
        }
    };
    (parsed, ctx.into_diagnostics())
}
