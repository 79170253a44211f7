//! Policy rules: `RTM_NEWRULE`/`RTM_DELRULE` for [`Rule`] and the decoding of dumped ones.

use ipnet::IpNet;
use netlink_packet_route::route::RouteProtocol;
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleFlags, RuleMessage};
use netlink_packet_route::AddressFamily;

use crate::apply::objects::Rule;

/// For creation and deletion alike. The action must be given: a rule left at "unspecified"
/// is refused, and the kernel does not infer "lookup" from the table.
pub fn rule_message(rule: &Rule) -> RuleMessage {
    let mut message = RuleMessage::default();
    let h = &mut message.header;
    h.family = if rule.ipv6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    h.action = RuleAction::ToTable;
    h.table = u8::try_from(rule.table).unwrap_or(0);
    h.src_len = rule.from.map_or(0, |n| n.prefix_len());
    h.dst_len = rule.to.map_or(0, |n| n.prefix_len());
    let a = &mut message.attributes;
    a.push(RuleAttribute::Priority(rule.priority));
    a.push(RuleAttribute::Table(rule.table));
    a.push(RuleAttribute::Protocol(RouteProtocol::from(rule.protocol)));
    if let Some(from) = rule.from {
        a.push(RuleAttribute::Source(from.addr()));
    }
    if let Some(to) = rule.to {
        a.push(RuleAttribute::Destination(to.addr()));
    }
    message
}

/// A dumped rule as a [`Rule`]: plain "from/to ... lookup TABLE" rules only. Rules with
/// other selectors or actions are different kernel objects from any routevpn makes, even
/// with the same priority and prefixes, so they are left out rather than misread.
pub fn decode_rule(message: &RuleMessage) -> Option<Rule> {
    let h = &message.header;
    let ipv6 = match h.family {
        AddressFamily::Inet => false,
        AddressFamily::Inet6 => true,
        _ => return None,
    };
    if h.action != RuleAction::ToTable || h.tos != 0 || h.flags.contains(RuleFlags::Invert) {
        return None;
    }
    let mut rule = Rule {
        ipv6,
        priority: 0,
        from: None,
        to: None,
        table: u32::from(h.table),
        protocol: 0,
    };
    for a in &message.attributes {
        match a {
            RuleAttribute::Priority(p) => rule.priority = *p,
            RuleAttribute::Table(t) => rule.table = *t,
            RuleAttribute::Protocol(p) => rule.protocol = u8::from(*p),
            RuleAttribute::Source(ip) => rule.from = Some(IpNet::new(*ip, h.src_len).ok()?),
            RuleAttribute::Destination(ip) => rule.to = Some(IpNet::new(*ip, h.dst_len).ok()?),
            // Always reported; all ones means "not set".
            RuleAttribute::SuppressPrefixLen(u32::MAX)
            | RuleAttribute::SuppressIfGroup(u32::MAX) => {}
            RuleAttribute::Other(_) => {}
            _ => return None,
        }
    }
    Some(rule)
}
