//! routevpn's rules as nf_tables expressions, the same list `nft` generates for the text
//! [`NftRule`]'s `Display` gives (checked against `nft --debug=netlink`).

use std::net::IpAddr;

use ipnet::IpNet;
use nftnl::expr::{Cmp, CmpOp, Immediate, Meta, Register, Verdict};
use nftnl::Rule;

use super::expr::{Base, Hton16, Load, Mask, MaxSeg, RouteMss, Snat};
use crate::plan::{NftFamily as Family, NftRule};

/// Adds the expressions of `rule` to `out`. `as_dumped` builds the form the kernel reports
/// back (see [`Snat`]) instead of the form `nft` sends.
pub fn build(rule: &NftRule, out: &mut Rule, as_dumped: bool) -> Result<(), String> {
    match rule {
        NftRule::Snat {
            device,
            daddr,
            saddr,
            source,
            ..
        } => {
            if let Some(device) = device {
                interface(out, false, device)?;
            }
            let ipv6 = source.is_ipv6();
            nfproto(out, ipv6);
            if let Some(saddr) = saddr {
                prefix(out, *saddr, ipv6, false)?;
            }
            prefix(out, *daddr, ipv6, true)?;
            match source {
                IpAddr::V4(a) => out.add_expr(&Immediate::new(a.octets(), Register::Reg1)),
                IpAddr::V6(a) => out.add_expr(&Immediate::new(a.octets(), Register::Reg1)),
            }
            out.add_expr(&Snat { ipv6, as_dumped });
        }
        NftRule::MssToRouteMtu { device, .. } => {
            interface(out, false, device)?;
            syn(out);
            out.add_expr(&RouteMss);
            out.add_expr(&Hton16);
            out.add_expr(&MaxSeg { write: true });
        }
        NftRule::MssCap {
            device,
            inbound,
            family,
            mss,
            ..
        } => {
            let mss = u16::try_from(*mss).map_err(|_| format!("MSS {mss} exceeds 65535"))?;
            interface(out, *inbound, device)?;
            nfproto(out, *family == Family::Ipv6);
            syn(out);
            out.add_expr(&MaxSeg { write: false });
            out.add_expr(&Cmp::new(CmpOp::Gt, &mss.to_be_bytes()[..]));
            out.add_expr(&Immediate::new(mss.to_be_bytes(), Register::Reg1));
            out.add_expr(&MaxSeg { write: true });
        }
        NftRule::Accept {
            device, inbound, ..
        } => {
            interface(out, *inbound, device)?;
            out.add_expr(&Verdict::Accept);
        }
    }
    Ok(())
}

/// `iifname|oifname "NAME"`: the name zero-padded to IFNAMSIZ, an exact match.
fn interface(out: &mut Rule, inbound: bool, name: &str) -> Result<(), String> {
    let mut padded = [0u8; libc::IFNAMSIZ];
    if name.is_empty() || name.len() >= padded.len() || name.contains('\0') {
        return Err(format!("invalid interface name {name:?}"));
    }
    padded[..name.len()].copy_from_slice(name.as_bytes());
    out.add_expr(&if inbound {
        Meta::IifName
    } else {
        Meta::OifName
    });
    out.add_expr(&Cmp::new(CmpOp::Eq, &padded[..]));
    Ok(())
}

/// `meta nfproto ipv4|ipv6`: an inet table sees both families.
fn nfproto(out: &mut Rule, ipv6: bool) {
    let family = if ipv6 {
        libc::NFPROTO_IPV6
    } else {
        libc::NFPROTO_IPV4
    };
    out.add_expr(&Meta::NfProto);
    out.add_expr(&Cmp::new(CmpOp::Eq, &[family as u8][..]));
}

/// `tcp flags syn / syn,rst`, preceded by the `meta l4proto tcp` check it implies.
fn syn(out: &mut Rule) {
    const SYN: u8 = 0x02;
    const RST: u8 = 0x04;
    const TCP_FLAGS_OFFSET: u32 = 13;
    out.add_expr(&Meta::L4Proto);
    out.add_expr(&Cmp::new(CmpOp::Eq, &[libc::IPPROTO_TCP as u8][..]));
    out.add_expr(&Load {
        base: Base::Transport,
        offset: TCP_FLAGS_OFFSET,
        len: 1,
    });
    out.add_expr(&Mask(vec![SYN | RST]));
    out.add_expr(&Cmp::new(CmpOp::Eq, &[SYN][..]));
}

/// `ip|ip6 saddr|daddr PREFIX`. Like `nft`: a prefix ending on a byte boundary loads just
/// its bytes; any other (including /0) loads the whole address and masks it.
fn prefix(out: &mut Rule, net: IpNet, ipv6: bool, destination: bool) -> Result<(), String> {
    let (addr, offset) = match (net, destination) {
        (IpNet::V4(n), false) if !ipv6 => (n.network().octets().to_vec(), 12),
        (IpNet::V4(n), true) if !ipv6 => (n.network().octets().to_vec(), 16),
        (IpNet::V6(n), false) if ipv6 => (n.network().octets().to_vec(), 8),
        (IpNet::V6(n), true) if ipv6 => (n.network().octets().to_vec(), 24),
        _ => return Err(format!("{net} is not of the SNAT source's family")),
    };
    let bits = usize::from(net.prefix_len());
    let aligned = bits > 0 && bits % 8 == 0;
    let len = if aligned { bits / 8 } else { addr.len() };
    out.add_expr(&Load {
        base: Base::Network,
        offset,
        len: len as u32,
    });
    if !aligned {
        let mask = match net.netmask() {
            IpAddr::V4(m) => m.octets().to_vec(),
            IpAddr::V6(m) => m.octets().to_vec(),
        };
        out.add_expr(&Mask(mask));
    }
    out.add_expr(&Cmp::new(CmpOp::Eq, &addr[..len]));
    Ok(())
}
