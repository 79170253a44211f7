//! `routevpn plan` as people read it: one block per tunnel, kernel objects in iproute2 words.

use std::fmt::Write;

use super::policy::Direction;
use super::{LinkKind, Plan, RouteKind, TunnelPlan, XfrmPolicy};
use crate::model::{
    protocol_name, IkeAuth, LocalCredential, Mode, MssClamp, PeerKey, RemoteCredential,
};
use crate::profile::{escaped, shown_secret_path};

fn ports(p: Option<(u16, u16)>) -> String {
    match p {
        None => String::new(),
        Some((a, b)) if a == b => format!(":{a}"),
        Some((a, b)) => format!(":{a}-{b}"),
    }
}

fn policy_line(p: &XfrmPolicy) -> String {
    let dir = match p.direction {
        Direction::Out => "out",
        Direction::In => "in ",
        Direction::Fwd => "fwd",
    };
    let mut s = format!(
        "{dir} {}{} -> {}{}",
        p.src,
        ports(p.src_ports),
        p.dst,
        ports(p.dst_ports)
    );
    if let Some(proto) = p.protocol {
        let _ = write!(s, " proto {}", protocol_name(proto));
    }
    if let Some(mark) = p.mark {
        let _ = write!(s, " mark {mark:#010x}");
    }
    if let Some(id) = p.if_id {
        let _ = write!(s, " if_id {id:#010x}");
    }
    let mode = match p.template.mode {
        Mode::Tunnel => "tunnel",
        Mode::Transport => "transport",
    };
    let _ = write!(
        s,
        " prio {} tmpl esp {mode} {} -> {} reqid {}",
        p.priority, p.template.src, p.template.dst, p.template.reqid
    );
    s
}

fn tunnel_block(out: &mut String, t: &TunnelPlan) {
    // The file name is the only text here no validator restricted.
    let _ = writeln!(out, "tunnel {} ({})", t.name, escaped(&t.file));
    let link = &t.link;
    let kind = match &link.kind {
        LinkKind::Vti {
            ipv6,
            local,
            remote,
            mark,
        } => format!(
            "{} local {local} remote {remote} ikey/okey {mark:#010x}",
            if *ipv6 { "vti6" } else { "vti" }
        ),
        LinkKind::Gre {
            ipv6,
            local,
            remote,
            key,
            ttl,
        } => {
            let mut s = format!(
                "{} local {local} remote {remote} ttl {ttl}",
                if *ipv6 { "ip6gre" } else { "gre" }
            );
            if let Some(key) = key {
                let _ = write!(s, " key {key}");
            }
            s
        }
        LinkKind::Xfrm { if_id, link } => {
            let mut s = format!("xfrm if_id {if_id:#010x}");
            if let Some(dev) = link {
                let _ = write!(s, " dev {dev}");
            }
            s
        }
    };
    let flags = if link.multicast { " multicast" } else { "" };
    let state = if link.up {
        "up"
    } else {
        "down  (no CHILD SA: on_sa_loss = withdraw)"
    };
    let _ = writeln!(
        out,
        "  link     {} {kind} mtu {}{flags} {state}",
        link.name, link.mtu
    );
    match &t.mtu.breakdown {
        Some(b) => {
            let assumed = if t.mtu.outer_mtu_assumed {
                " (outer MTU assumed: set interface.outer_mtu or let apply read it)"
            } else {
                ""
            };
            let _ = writeln!(out, "  mtu      {b}{assumed}");
        }
        None => {
            let _ = writeln!(out, "  mtu      {} (fixed in the profile)", t.mtu.mtu);
        }
    }
    let mss = match t.mtu.mss_clamp {
        MssClamp::Auto => format!(
            "to route MTU out; inbound SYNs capped at {} (IPv4) / {} (IPv6)",
            t.mtu.mss_ipv4, t.mtu.mss_ipv6
        ),
        MssClamp::Fixed(n) => format!("fixed {n} both ways"),
        MssClamp::Off => "off".into(),
    };
    let _ = writeln!(out, "  mss      {mss}");
    for a in &t.addresses {
        match a.peer {
            Some(peer) => {
                let _ = writeln!(out, "  address  {} peer {peer} dev {}", a.address, a.device);
            }
            None => {
                let _ = writeln!(out, "  address  {} dev {}", a.address, a.device);
            }
        }
    }
    for r in &t.routes {
        let mut s = match r.kind {
            RouteKind::Unicast => format!("{}", r.to),
            RouteKind::Blackhole => format!("blackhole {}", r.to),
        };
        if let Some(via) = r.via {
            let _ = write!(s, " via {via}");
        }
        if let Some(dev) = &r.device {
            let _ = write!(s, " dev {dev}");
        }
        if let Some(src) = r.src {
            let _ = write!(s, " src {src}");
        }
        if r.metric != 0 {
            let _ = write!(s, " metric {}", r.metric);
        }
        if let Some(table) = r.table {
            let _ = write!(s, " table {table}");
        }
        let _ = write!(s, " proto {}", r.protocol);
        if r.kind == RouteKind::Blackhole {
            s += "  (fail-closed)";
        }
        let _ = writeln!(out, "  route    {s}");
    }
    for rule in &t.rules {
        let from = rule.from.map_or("all".to_string(), |n| n.to_string());
        let to = rule.to.map_or(String::new(), |n| format!(" to {n}"));
        let _ = writeln!(
            out,
            "  rule     {} from {from}{to} lookup {}",
            rule.priority, rule.table
        );
    }
    for s in &t.sysctls {
        let _ = writeln!(out, "  sysctl   {} = {}  ({})", s.key, s.value, s.why);
    }
    for p in &t.policies {
        let _ = writeln!(out, "  policy   {}", policy_line(p));
    }
    let ike = &t.ike;
    let local_id = ike
        .local_id
        .as_ref()
        .map_or(ike.local.to_string(), ToString::to_string);
    let _ = writeln!(
        out,
        "  ike      {}[500] -> {}[{}]  id {local_id} -> {}  {}",
        ike.local,
        ike.remote,
        ike.remote_port,
        ike.remote_id,
        match (&ike.auth, &ike.manual_keys_file) {
            (_, Some(keys)) => format!("manual keys {} (no IKE)", shown_secret_path(keys)),
            (Some(auth), None) => auth_text(auth),
            (None, None) => String::new(),
        }
    );
    let proposals: Vec<String> = ike.proposals.iter().map(ToString::to_string).collect();
    let _ = writeln!(out, "           proposals {}", proposals.join(", "));
    let _ = writeln!(
        out,
        "           rekey {}s (+{}s over, -{}s jitter), dpd {}s/{}s {:?}, nat-t {:?}, start {:?}, close {:?}",
        ike.rekey_time,
        ike.over_time,
        ike.rand_time,
        ike.dpd.delay.as_secs(),
        ike.dpd.timeout.as_secs(),
        ike.dpd.action,
        ike.nat_traversal,
        ike.start_action,
        ike.close_action
    );
    for c in &ike.children {
        let lts: Vec<String> = c.local_ts.iter().map(ToString::to_string).collect();
        let rts: Vec<String> = c.remote_ts.iter().map(ToString::to_string).collect();
        let esp: Vec<String> = c.esp_proposals.iter().map(ToString::to_string).collect();
        let mode = match c.mode {
            Mode::Tunnel => "tunnel",
            Mode::Transport => "transport",
        };
        let _ = writeln!(
            out,
            "  child    {} {mode} reqid {}  {} === {}",
            c.name,
            c.reqid,
            lts.join(","),
            rts.join(",")
        );
        let _ = writeln!(
            out,
            "           esp {}  rekey {}s life {}s",
            esp.join(", "),
            c.rekey_time,
            c.life_time
        );
    }
}

pub fn render_text(plan: &Plan) -> String {
    let mut out = String::new();
    for t in &plan.tunnels {
        tunnel_block(&mut out, t);
        out.push('\n');
    }
    for s in &plan.sysctls {
        let _ = writeln!(out, "sysctl {} = {}  ({})", s.key, s.value, s.why);
    }
    out += "nftables:\n";
    for line in plan.nftables.to_nft_script().lines() {
        let _ = writeln!(out, "  {line}");
    }
    for w in &plan.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

/// `psk FILE`, or what each side proves itself with when they differ or use keys.
fn auth_text(auth: &IkeAuth) -> String {
    let local = match &auth.local {
        LocalCredential::Psk { file } => format!("psk {}", shown_secret_path(file)),
        LocalCredential::PublicKey {
            private_key,
            certificate,
        } => {
            let key = format!("key {}", shown_secret_path(private_key));
            match certificate {
                Some(cert) => format!("{key} cert {} (send {:?})", cert.display(), auth.send_cert),
                None => key,
            }
        }
    };
    if let (LocalCredential::Psk { .. }, RemoteCredential::Psk { .. }) = (&auth.local, &auth.remote)
    {
        return local; // one key both ways
    }
    let remote = match &auth.remote {
        RemoteCredential::Psk { file } => format!("psk {}", shown_secret_path(file)),
        RemoteCredential::PublicKey {
            key: PeerKey::File(file),
        } => format!("key {}", file.display()),
        RemoteCredential::PublicKey {
            key: PeerKey::Rfc3110(_),
        } => "key 0s… (inline)".to_string(),
        RemoteCredential::Certificate { ca, crl } => {
            let list = |files: &[std::path::PathBuf]| -> String {
                let shown: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
                shown.join(",")
            };
            match crl.is_empty() {
                true => format!("ca {}", list(ca)),
                false => format!("ca {} crl {}", list(ca), list(crl)),
            }
        }
    };
    format!("local {local}, remote {remote}")
}
