//! The expressions routevpn sends, against what `nft --debug=netlink add rule inet t c ...`
//! printed for the same statements (nftables 1.0.6, libnftnl 1.2.4, little-endian host).

use nftnl::{Chain, MsgType, ProtoFamily, Rule, Table};

use super::batch::Encoder;
use super::message::Message;
use super::parse;
use super::rules;
use crate::plan::{NftFamily, NftRule};

fn sent(rule: &NftRule) -> Vec<String> {
    let table = Table::new(c"t", ProtoFamily::Inet);
    let chain = Chain::new(c"c", &table);
    let mut out = Rule::new(&chain);
    rules::build(rule, &mut out, false).expect("valid rule");
    let message = Message::new(&Encoder::default().encode(&out, 1, MsgType::Add));
    let parsed = parse::Rule::parse(&message).expect("parses");
    parsed
        .expressions()
        .iter()
        .map(|e| format!("[ {e} ]"))
        .collect()
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(|l| l.trim().to_string()).collect()
}

const OIFNAME_TUN0: &str = "[ meta load oifname => reg 1 ]
[ cmp eq reg 1 0x306e7574 0x00000000 0x00000000 0x00000000 ]";
const IIFNAME_TUN0: &str = "[ meta load iifname => reg 1 ]
[ cmp eq reg 1 0x306e7574 0x00000000 0x00000000 0x00000000 ]";
const TCP_SYN: &str = "[ meta load l4proto => reg 1 ]
[ cmp eq reg 1 0x00000006 ]
[ payload load 1b @ transport header + 13 => reg 1 ]
[ bitwise reg 1 = ( reg 1 & 0x00000006 ) ^ 0x00000000 ]
[ cmp eq reg 1 0x00000002 ]";

#[test]
#[cfg(target_endian = "little")]
fn snat_as_nft_sends_it() {
    // oifname "tun0" ip saddr 10.1.0.0/16 ip daddr 10.2.0.0/24 snat ip to 10.1.0.1
    let v4 = NftRule::Snat {
        tunnel: "t".into(),
        device: Some("tun0".into()),
        daddr: "10.2.0.0/24".parse().unwrap(),
        saddr: Some("10.1.0.0/16".parse().unwrap()),
        source: "10.1.0.1".parse().unwrap(),
    };
    let nft = format!(
        "{OIFNAME_TUN0}
        [ meta load nfproto => reg 1 ]
        [ cmp eq reg 1 0x00000002 ]
        [ payload load 2b @ network header + 12 => reg 1 ]
        [ cmp eq reg 1 0x0000010a ]
        [ payload load 3b @ network header + 16 => reg 1 ]
        [ cmp eq reg 1 0x0000020a ]
        [ immediate reg 1 0x0100010a ]
        [ nat snat ip addr_min reg 1 ]"
    );
    assert_eq!(sent(&v4), lines(&nft));

    // ip6 saddr 2001:db8::/48 ip6 daddr 2001:db8:1::/64 snat ip6 to 2001:db8::1
    let v6 = NftRule::Snat {
        tunnel: "t".into(),
        device: None,
        daddr: "2001:db8:1::/64".parse().unwrap(),
        saddr: Some("2001:db8::/48".parse().unwrap()),
        source: "2001:db8::1".parse().unwrap(),
    };
    let nft = "[ meta load nfproto => reg 1 ]
        [ cmp eq reg 1 0x0000000a ]
        [ payload load 6b @ network header + 8 => reg 1 ]
        [ cmp eq reg 1 0xb80d0120 0x00000000 ]
        [ payload load 8b @ network header + 24 => reg 1 ]
        [ cmp eq reg 1 0xb80d0120 0x00000100 ]
        [ immediate reg 1 0xb80d0120 0x00000000 0x00000000 0x01000000 ]
        [ nat snat ip6 addr_min reg 1 ]";
    assert_eq!(sent(&v6), lines(nft));

    // ip saddr 10.16.0.0/12 ip daddr 0.0.0.0/0 snat ip to 10.1.0.1: masked, whole address
    let masked = NftRule::Snat {
        tunnel: "t".into(),
        device: None,
        daddr: "0.0.0.0/0".parse().unwrap(),
        saddr: Some("10.16.0.0/12".parse().unwrap()),
        source: "10.1.0.1".parse().unwrap(),
    };
    let nft = "[ meta load nfproto => reg 1 ]
        [ cmp eq reg 1 0x00000002 ]
        [ payload load 4b @ network header + 12 => reg 1 ]
        [ bitwise reg 1 = ( reg 1 & 0x0000f0ff ) ^ 0x00000000 ]
        [ cmp eq reg 1 0x0000100a ]
        [ payload load 4b @ network header + 16 => reg 1 ]
        [ bitwise reg 1 = ( reg 1 & 0x00000000 ) ^ 0x00000000 ]
        [ cmp eq reg 1 0x00000000 ]
        [ immediate reg 1 0x0100010a ]
        [ nat snat ip addr_min reg 1 ]";
    assert_eq!(sent(&masked), lines(nft));
}

#[test]
#[cfg(target_endian = "little")]
fn mss_clamping_as_nft_sends_it() {
    // oifname "tun0" tcp flags syn / syn,rst tcp option maxseg size set rt mtu
    let rt = NftRule::MssToRouteMtu {
        tunnel: "t".into(),
        device: "tun0".into(),
    };
    let nft = format!(
        "{OIFNAME_TUN0}
        {TCP_SYN}
        [ rt load tcpmss => reg 1 ]
        [ byteorder reg 1 = hton(reg 1, 2, 2) ]
        [ exthdr write tcpopt reg 1 => 2b @ 2 + 2 ]"
    );
    assert_eq!(sent(&rt), lines(&nft));

    // iifname "tun0" meta nfproto ipv4 tcp flags syn / syn,rst
    //     tcp option maxseg size > 1360 tcp option maxseg size set 1360
    let cap = NftRule::MssCap {
        tunnel: "t".into(),
        device: "tun0".into(),
        inbound: true,
        family: NftFamily::Ipv4,
        mss: 1360,
    };
    let nft = format!(
        "{IIFNAME_TUN0}
        [ meta load nfproto => reg 1 ]
        [ cmp eq reg 1 0x00000002 ]
        {TCP_SYN}
        [ exthdr load tcpopt 2b @ 2 + 2 => reg 1 ]
        [ cmp gt reg 1 0x00005005 ]
        [ immediate reg 1 0x00005005 ]
        [ exthdr write tcpopt reg 1 => 2b @ 2 + 2 ]"
    );
    assert_eq!(sent(&cap), lines(&nft));
}

#[test]
#[cfg(target_endian = "little")]
fn accept_as_nft_sends_it() {
    // iifname "tun0" accept
    let accept = NftRule::Accept {
        tunnel: "t".into(),
        device: "tun0".into(),
        inbound: true,
    };
    let nft = format!("{IIFNAME_TUN0}\n[ immediate reg 0 accept ]");
    assert_eq!(sent(&accept), lines(&nft));
}

#[test]
fn rules_routevpn_cannot_express_are_refused() {
    let table = Table::new(c"t", ProtoFamily::Inet);
    let chain = Chain::new(c"c", &table);
    let refused = [
        NftRule::MssCap {
            tunnel: "t".into(),
            device: "tun0".into(),
            inbound: true,
            family: NftFamily::Ipv4,
            mss: 70000,
        },
        NftRule::Accept {
            tunnel: "t".into(),
            device: "a-name-over-15-bytes".into(),
            inbound: true,
        },
        NftRule::Snat {
            tunnel: "t".into(),
            device: None,
            daddr: "2001:db8::/32".parse().unwrap(),
            saddr: None,
            source: "10.1.0.1".parse().unwrap(),
        },
    ];
    for rule in refused {
        assert!(rules::build(&rule, &mut Rule::new(&chain), false).is_err());
    }
}
