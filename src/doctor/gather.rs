//! Reads [`Facts`] from the calling thread's network namespace: rtnetlink, XFRM and
//! nf_tables netlink, procfs and sysfs (read only), the daemon's control socket and FRR's
//! ospfd and pimd vty sockets ([`super::frr`]). Nothing is written and no program is started.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage, State};
use netlink_packet_route::route::RouteMessage;
use netlink_packet_route::rule::RuleMessage;
use netlink_packet_route::RouteNetlinkMessage as Msg;

use super::facts::{Counters, DeviceCounters, Egress, Facts, KernelSupport, LinkFacts, SaCounters};
use crate::apply::kernel::Scope;
use crate::apply::netlink::rtnl::{self, link, route, rule};
use crate::apply::netlink::socket::Socket;
use crate::apply::netlink::xfrm::Xfrm;
use crate::apply::netlink::{nft, Backend, RouteBackend};
use crate::apply::objects::{Object, Sysctl};
use crate::daemon::control::{self, ClientError, Request};
use crate::plan::TunnelPlan;

pub struct Options {
    /// Between the two counter samples.
    pub interval: Duration,
    pub control_socket: PathBuf,
    /// FRR's vty sockets (`ospfd.vty`, `pimd.vty`, `bgpd.vty`), usually /run/frr.
    pub frr_dir: PathBuf,
}

fn failed(what: &str) -> impl Fn(io::Error) -> String + '_ {
    move |e| format!("reading {what}: {e}")
}

/// Everything the checks read. Errors mean doctor cannot run (exit 2); parts that are
/// merely absent (no daemon, no FRR, nftables refused) are recorded as such.
pub fn gather(tunnels: &[TunnelPlan], options: &Options) -> Result<Facts, String> {
    let mut socket: Socket<Msg> =
        Socket::open(netlink_sys::protocols::NETLINK_ROUTE).map_err(failed("rtnetlink"))?;
    let mut xfrm = Xfrm::open().map_err(failed("XFRM netlink"))?;
    let before = sample(&mut socket, &mut xfrm)?;
    let started = std::time::Instant::now();

    let mut facts = Facts::default();
    let links = dump_links(&mut socket)?;
    let names = link::Links::from_messages(&links);
    for m in &links {
        if let Some(name) = link::name_of(m) {
            facts.links.insert(name.to_string(), link_facts(m));
        }
    }
    for m in socket
        .dump(Msg::GetRoute(RouteMessage::default()))
        .map_err(failed("routes"))?
    {
        if let Msg::NewRoute(r) = m {
            facts.routes.extend(route::decode_route(&r, &names));
        }
    }
    for m in socket
        .dump(Msg::GetRule(RuleMessage::default()))
        .map_err(failed("rules"))?
    {
        if let Msg::NewRule(r) = m {
            facts.rules.extend(rule::decode_rule(&r));
        }
    }
    let mut objects = Vec::new();
    xfrm.read(&Scope::default(), &mut objects)
        .map_err(|e| e.to_string())?;
    // SAs come with their keys: only the policies are kept.
    facts.policies = objects
        .into_iter()
        .filter_map(|o| match o {
            Object::Policy(p) => Some(p),
            _ => None,
        })
        .collect();
    facts.sysctls = sysctls(tunnels, facts.links.keys())?;
    facts.nftables = match nft::ruleset::ruleset() {
        Ok(chains) => Some(chains),
        // A kernel without nf_tables has no rule to drop anything.
        Err(e) if e.raw_os_error() == Some(libc::EPROTONOSUPPORT) => Some(Vec::new()),
        Err(e) => return Err(format!("reading the nftables ruleset: {e}")),
    };
    facts.iptables_tables = iptables_tables()?;
    facts.kernel = kernel_support();
    let mut rtnl = rtnl::Rtnl::open().map_err(failed("rtnetlink"))?;
    for t in tunnels {
        let egress = rtnl
            .egress(t.ike.remote)
            .map(|e| Egress {
                device: e.device,
                source: e.source,
                mtu: e.mtu,
            })
            .map_err(|e| e.message);
        facts.egress.insert(t.name.clone(), egress);
    }
    facts.daemon = match control::request(
        &options.control_socket,
        &Request::Status,
        Duration::from_secs(10),
    ) {
        Ok(response) => Some(response),
        Err(ClientError::NotRunning(_)) => None,
        Err(e) => return Err(e.to_string()),
    };
    facts.ospf = super::frr::ospf_neighbors(&options.frr_dir);
    facts.pim = super::frr::pim_neighbors(&options.frr_dir);
    facts.bgp = super::frr::bgp_peers(&options.frr_dir);

    std::thread::sleep(options.interval.saturating_sub(started.elapsed()));
    facts.interval_secs = started.elapsed().as_secs_f64();
    facts.before = before;
    facts.after = sample(&mut socket, &mut xfrm)?;
    Ok(facts)
}

fn dump_links(socket: &mut Socket<Msg>) -> Result<Vec<LinkMessage>, String> {
    Ok(socket
        .dump(Msg::GetLink(LinkMessage::default()))
        .map_err(failed("links"))?
        .into_iter()
        .filter_map(|m| match m {
            Msg::NewLink(l) => Some(l),
            _ => None,
        })
        .collect())
}

fn link_facts(m: &LinkMessage) -> LinkFacts {
    let mut facts = LinkFacts {
        kind: link::info_kind(m)
            .map(|k| k.to_string())
            .unwrap_or_default(),
        up: m.header.flags.contains(LinkFlags::Up),
        ..LinkFacts::default()
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::Mtu(mtu) => facts.mtu = *mtu,
            LinkAttribute::OperState(state) => {
                facts.operstate = match state {
                    State::Up => "up".into(),
                    State::Down => "down".into(),
                    State::LowerLayerDown => "lowerlayerdown".into(),
                    State::Unknown => "unknown".into(),
                    other => format!("{other:?}").to_lowercase(),
                }
            }
            _ => {}
        }
    }
    facts
}

fn device_counters(m: &LinkMessage) -> Option<DeviceCounters> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::Stats64(s) => Some(DeviceCounters {
            rx_packets: s.rx_packets,
            tx_packets: s.tx_packets,
            rx_errors: s.rx_errors,
            tx_errors: s.tx_errors,
            rx_dropped: s.rx_dropped,
            tx_dropped: s.tx_dropped,
            tx_carrier_errors: s.tx_carrier_errors,
        }),
        _ => None,
    })
}

fn sample(socket: &mut Socket<Msg>, xfrm: &mut Xfrm) -> Result<Counters, String> {
    let mut counters = Counters::default();
    for m in dump_links(socket)? {
        if let (Some(name), Some(c)) = (link::name_of(&m), device_counters(&m)) {
            counters.devices.insert(name.to_string(), c);
        }
    }
    counters.sas = xfrm
        .sa_status()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|s| SaCounters {
            src: s.src,
            dst: s.dst,
            spi: s.spi,
            reqid: s.reqid,
            packets: s.packets,
            bytes: s.bytes,
        })
        .collect();
    counters.xfrm_stat = xfrm_stat()?;
    Ok(counters)
}

/// `/proc/net` is the process's namespace; the thread's is what netlink sees.
fn proc_net(name: &str) -> PathBuf {
    Path::new("/proc/thread-self/net").join(name)
}

/// `None` when the file does not exist.
fn read_optional(path: &Path) -> Result<Option<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

/// Without XFRM in the kernel there is no file, and nothing to count.
fn xfrm_stat() -> Result<BTreeMap<String, u64>, String> {
    let text = read_optional(&proc_net("xfrm_stat"))?.unwrap_or_default();
    Ok(parse_xfrm_stat(&text))
}

pub fn parse_xfrm_stat(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next()?;
            let value = words.next()?.parse().ok()?;
            Some((name.to_string(), value))
        })
        .collect()
}

/// The planned sysctls, every rp_filter that decides the tunnels' devices', and each
/// device's IPv4 forwarding (LAN devices must forward into the tunnel too).
fn sysctls<'a>(
    tunnels: &[TunnelPlan],
    links: impl Iterator<Item = &'a String>,
) -> Result<BTreeMap<String, String>, String> {
    let mut keys: BTreeSet<String> = ["net.ipv4.conf.all.rp_filter".to_string()].into();
    keys.extend(links.map(|l| format!("net.ipv4.conf.{l}.forwarding")));
    for t in tunnels {
        keys.extend(t.sysctls.iter().map(|s| s.key.clone()));
        keys.insert(format!("net.ipv4.conf.{}.rp_filter", t.link.name));
    }
    let mut out = BTreeMap::new();
    for key in keys {
        let path = Sysctl {
            key: key.clone(),
            value: String::new(),
        }
        .proc_path();
        if let Some(value) = read_optional(&path)? {
            out.insert(key, value.trim().to_string());
        }
    }
    Ok(out)
}

fn iptables_tables() -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (file, family) in [("ip_tables_names", "ip"), ("ip6_tables_names", "ip6")] {
        let text = read_optional(&proc_net(file))?.unwrap_or_default();
        out.extend(text.lines().map(|t| format!("{family} {}", t.trim())));
    }
    Ok(out)
}

/// `esp4.ko.zst` or `kernel/net/ipv4/esp4.ko` → `esp4`; names use `_` where files may
/// use `-`.
fn module_name(path: &str) -> Option<String> {
    let file = path.rsplit('/').next()?;
    let stem = file.split(".ko").next()?;
    Some(stem.replace('-', "_"))
}

fn kernel_support() -> KernelSupport {
    let mut k = KernelSupport::default();
    let text = |p: &str| std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"));
    if let Ok(modules) = text("/proc/modules") {
        k.loaded = modules
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect();
    }
    // Loaded modules and built-ins with parameters show up here, also without /lib/modules.
    if let Ok(entries) = std::fs::read_dir("/sys/module") {
        k.loaded.extend(
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned()),
        );
    }
    if let Ok(crypto) = text("/proc/crypto") {
        k.crypto = crypto
            .lines()
            .filter_map(|l| l.strip_prefix("name"))
            .filter_map(|l| l.split(':').nth(1))
            .map(|n| n.trim().to_string())
            .collect();
    }
    let listed = text("/proc/sys/kernel/osrelease").and_then(|release| {
        let dir = format!("/lib/modules/{}", release.trim());
        let builtin = text(&format!("{dir}/modules.builtin"))?;
        let dep = text(&format!("{dir}/modules.dep"))?;
        Ok((builtin, dep))
    });
    match listed {
        Ok((builtin, dep)) => {
            k.builtin = builtin.lines().filter_map(module_name).collect();
            k.available = dep
                .lines()
                .filter_map(|l| l.split(':').next())
                .filter_map(module_name)
                .collect();
        }
        Err(e) => k.unreadable = Some(e),
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_files_and_xfrm_stat_are_read() {
        assert_eq!(
            module_name("kernel/net/ipv4/esp4.ko.zst").as_deref(),
            Some("esp4")
        );
        assert_eq!(
            module_name("kernel/net/xfrm/xfrm-interface.ko").as_deref(),
            Some("xfrm_interface")
        );
        let stat = parse_xfrm_stat("XfrmInError    \t0\nXfrmInNoStates \t7\n");
        assert_eq!(stat["XfrmInNoStates"], 7);
    }
}
