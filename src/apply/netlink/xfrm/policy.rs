//! XFRM policies to and from [`objects::Policy`]: exactly one ESP template, action allow,
//! mark with a full mask (VTI) or if_id (XFRM interfaces). Anything else in the kernel is
//! not representable, so it is never mistaken for routevpn's.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_xfrm::policy::{DelGetMessage, ModifyMessage};
use netlink_packet_xfrm::{
    Address, Id, Mark, Selector, UserPolicyId, UserPolicyInfo, UserTemplate, XfrmAttrs,
    IPPROTO_ESP, XFRM_MODE_TRANSPORT, XFRM_MODE_TUNNEL, XFRM_POLICY_ALLOW, XFRM_POLICY_FWD,
    XFRM_POLICY_IN, XFRM_POLICY_OUT,
};

use crate::apply::objects::{Policy, Template};
use crate::model::Mode;
use crate::plan::Direction;

const AF_INET: u16 = libc::AF_INET as u16;
const AF_INET6: u16 = libc::AF_INET6 as u16;
const FULL_MASK: u32 = u32::MAX;

fn family(addr: IpAddr) -> u16 {
    if addr.is_ipv4() {
        AF_INET
    } else {
        AF_INET6
    }
}

fn direction_code(direction: Direction) -> u8 {
    match direction {
        Direction::In => XFRM_POLICY_IN,
        Direction::Out => XFRM_POLICY_OUT,
        Direction::Fwd => XFRM_POLICY_FWD,
    }
}

/// A port range as selector port and mask: the aligned block `objects::selector_ports`
/// normalises plans to, so read-back compares equal.
pub fn port_and_mask(range: Option<(u16, u16)>) -> (u16, u16) {
    match crate::apply::objects::selector_ports(range) {
        None => (0, 0),
        Some((lo, hi)) => (lo, !(lo ^ hi)),
    }
}

fn port_range(port: u16, mask: u16) -> Option<(u16, u16)> {
    (mask != 0).then_some((port & mask, port | !mask))
}

fn selector(policy: &Policy) -> Selector {
    let mut s = Selector::default();
    s.source_prefix(&policy.src.addr(), policy.src.prefix_len());
    s.destination_prefix(&policy.dst.addr(), policy.dst.prefix_len());
    // An unspecified address clears the family in the helpers' eyes; set it from the prefix.
    s.family = family(policy.src.addr());
    s.proto = policy.protocol.unwrap_or(0);
    let (sport, sport_mask) = port_and_mask(policy.src_ports);
    let (dport, dport_mask) = port_and_mask(policy.dst_ports);
    // Host order: netlink-packet-xfrm converts to network order itself.
    s.sport = sport;
    s.sport_mask = sport_mask;
    s.dport = dport;
    s.dport_mask = dport_mask;
    s
}

fn identity_attrs(policy: &Policy) -> Vec<XfrmAttrs> {
    let mut attrs = Vec::new();
    if let Some(value) = policy.mark {
        attrs.push(XfrmAttrs::Mark(Mark {
            value,
            mask: FULL_MASK,
        }));
    }
    if let Some(id) = policy.if_id {
        attrs.push(XfrmAttrs::IfId(id));
    }
    attrs
}

pub fn modify_message(policy: &Policy) -> ModifyMessage {
    let info = UserPolicyInfo {
        selector: selector(policy),
        priority: policy.priority,
        direction: direction_code(policy.direction),
        action: XFRM_POLICY_ALLOW,
        ..UserPolicyInfo::default()
    };
    let t = &policy.template;
    let template = UserTemplate {
        id: Id {
            daddr: Address::from_ip(&t.dst),
            spi: 0,
            proto: IPPROTO_ESP,
        },
        family: family(t.dst),
        saddr: Address::from_ip(&t.src),
        reqid: t.reqid,
        mode: match t.mode {
            Mode::Tunnel => XFRM_MODE_TUNNEL,
            Mode::Transport => XFRM_MODE_TRANSPORT,
        },
        // Required, not optional: no SA means the packet is dropped (fail closed).
        optional: 0,
        ..UserTemplate::default()
    };
    let mut nlas = vec![XfrmAttrs::Template(vec![template])];
    nlas.extend(identity_attrs(policy));
    ModifyMessage {
        user_policy_info: info,
        nlas,
    }
}

pub fn delete_message(policy: &Policy) -> DelGetMessage {
    DelGetMessage {
        user_policy_id: UserPolicyId {
            selector: selector(policy),
            index: 0,
            direction: direction_code(policy.direction),
        },
        nlas: identity_attrs(policy),
    }
}

fn prefix(address: &Address, len: u8, family: u16) -> Option<IpNet> {
    IpNet::new(super::state::address(address, family)?, len).ok()
}

/// The policy as routevpn models it, or `None` when it is of another shape.
pub fn decode(message: &ModifyMessage) -> Option<Policy> {
    let info = &message.user_policy_info;
    if info.action != XFRM_POLICY_ALLOW {
        return None;
    }
    let direction = match info.direction {
        XFRM_POLICY_IN => Direction::In,
        XFRM_POLICY_OUT => Direction::Out,
        XFRM_POLICY_FWD => Direction::Fwd,
        _ => return None,
    };
    let sel = &info.selector;
    let (mut templates, mut mark, mut if_id) = (None, None, None);
    for nla in &message.nlas {
        match nla {
            XfrmAttrs::Template(t) => templates = Some(t),
            XfrmAttrs::Mark(m) if m.mask == FULL_MASK => mark = Some(m.value),
            XfrmAttrs::Mark(m) if m.mask == 0 && m.value == 0 => {}
            XfrmAttrs::Mark(_) => return None,
            XfrmAttrs::IfId(id) if *id != 0 => if_id = Some(*id),
            _ => {}
        }
    }
    let [t] = templates?.as_slice() else {
        return None;
    };
    if t.id.proto != IPPROTO_ESP || t.optional != 0 {
        return None;
    }
    let mode = match t.mode {
        XFRM_MODE_TUNNEL => Mode::Tunnel,
        XFRM_MODE_TRANSPORT => Mode::Transport,
        _ => return None,
    };
    Some(Policy {
        direction,
        src: prefix(&sel.saddr, sel.prefixlen_s, sel.family)?,
        dst: prefix(&sel.daddr, sel.prefixlen_d, sel.family)?,
        protocol: (sel.proto != 0).then_some(sel.proto),
        src_ports: port_range(sel.sport, sel.sport_mask),
        dst_ports: port_range(sel.dport, sel.dport_mask),
        mark,
        if_id,
        priority: info.priority,
        template: Template {
            src: super::state::address(&t.saddr, t.family)?,
            dst: super::state::address(&t.id.daddr, t.family)?,
            mode,
            reqid: t.reqid,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{Emitable, Parseable};

    fn policy(src: &str, dst: &str) -> Policy {
        Policy {
            direction: Direction::Out,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            protocol: Some(6),
            src_ports: None,
            dst_ports: Some((443, 443)),
            mark: Some(0x5200_1234),
            if_id: None,
            priority: 0x3000,
            template: Template {
                src: "192.0.2.1".parse().unwrap(),
                dst: "192.0.2.2".parse().unwrap(),
                mode: Mode::Tunnel,
                reqid: 7,
            },
        }
    }

    #[test]
    fn policies_round_trip_through_the_wire_format() {
        for (src, dst) in [("10.1.0.0/16", "0.0.0.0/0"), ("2001:db8::/32", "::/0")] {
            let mut p = policy(src, dst);
            if src.contains(':') {
                p.template.src = "2001:db8::1".parse().unwrap();
                p.template.dst = "2001:db8::2".parse().unwrap();
                p.mark = None;
                p.if_id = Some(9);
            }
            let message = modify_message(&p);
            let mut bytes = vec![0; message.buffer_len()];
            message.emit(&mut bytes);
            let parsed = ModifyMessage::parse(bytes.as_slice()).unwrap();
            assert_eq!(decode(&parsed), Some(p));
        }
    }

    #[test]
    fn port_ranges_become_aligned_blocks() {
        assert_eq!(port_and_mask(Some((443, 443))), (443, 0xffff));
        assert_eq!(port_and_mask(Some((5000, 5010))), (4992, 0xffe0));
        assert_eq!(port_and_mask(None), (0, 0));
        assert_eq!(port_range(4992, 0xffe0), Some((4992, 5023)));
        assert_eq!(port_and_mask(Some((0, u16::MAX))), (0, 0));
    }
}
