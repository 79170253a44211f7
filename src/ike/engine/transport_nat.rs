//! Transport mode across a NAT (RFC 7296 section 2.23.1). In transport mode the selectors
//! name the outer addresses, and a NAT makes a side behind it known by two: the one its
//! selectors carry on the wire (what its peer sees, or what it believes it has) and the IKE
//! SA's address on our side of the NAT, which its packets carry here and which the kernel's
//! SAs and policies must name. Received selectors are substituted before anything uses
//! them (narrowing, checks, the kernel); answers and rekeys carry the wire addresses again.

use std::net::IpAddr;

use crate::ike::ts::TsRange;

use super::config::{EngineConnection, Identity, Mode};
use super::sa::IkeSa;

/// One side's addresses: `wire` in the selectors exchanged, `kernel` (the IKE SA's address
/// of that side) in what is installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Substitution {
    pub wire: IpAddr,
    pub kernel: IpAddr,
}

/// Both sides' substitutions of a Child SA (`None`: the side's selectors are the same on
/// the wire and in the kernel).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Substitutions {
    pub local: Option<Substitution>,
    pub remote: Option<Substitution>,
}

/// The IKE SA's address of each side that sits behind a NAT: what that side's received
/// host selectors are replaced by in transport mode.
#[derive(Clone, Copy, Debug, Default)]
pub struct NatSides {
    pub local: Option<IpAddr>,
    pub remote: Option<IpAddr>,
}

impl IkeSa {
    /// The sides behind a NAT, for a Child SA in `mode` (tunnel mode substitutes nothing).
    pub fn nat_sides(&self, mode: Mode) -> NatSides {
        if mode != Mode::Transport {
            return NatSides::default();
        }
        NatSides {
            local: self.local_behind_nat.then(|| self.local.ip()),
            remote: self.remote_behind_nat.then(|| self.remote.ip()),
        }
    }
}

fn is_host(r: &TsRange) -> bool {
    r.start == r.end
}

fn replace(ranges: &[TsRange], from: IpAddr, to: IpAddr) -> Vec<TsRange> {
    (ranges.iter())
        .map(|r| match is_host(r) && r.start == from {
            true => TsRange {
                start: to,
                end: to,
                ..*r
            },
            false => *r,
        })
        .collect()
}

/// Replaces the address of the received host selectors by `ike` (the side's IKE SA
/// address), if that side is behind a NAT. Only selectors naming the first host address
/// are replaced (a side has one outer address; others are left to narrowing).
pub fn substitute(
    received: &[TsRange],
    ike: Option<IpAddr>,
) -> (Vec<TsRange>, Option<Substitution>) {
    let first = ike.and_then(|ike| {
        (received.iter())
            .find(|r| is_host(r) && r.start.is_ipv6() == ike.is_ipv6())
            .map(|r| Substitution {
                wire: r.start,
                kernel: ike,
            })
    });
    match first {
        Some(s) => (replace(received, s.wire, s.kernel), Some(s)),
        None => (received.to_vec(), None),
    }
}

/// The selectors as the wire carries them: the kernel address of a substituted side back
/// to its wire address.
pub fn to_wire(ranges: &[TsRange], substitution: Option<Substitution>) -> Vec<TsRange> {
    match substitution {
        Some(s) => replace(ranges, s.kernel, s.wire),
        None => ranges.to_vec(),
    }
}

impl Substitutions {
    /// Both sides' selectors as the wire carries them.
    pub fn wire(&self, local: &[TsRange], remote: &[TsRange]) -> (Vec<TsRange>, Vec<TsRange>) {
        (to_wire(local, self.local), to_wire(remote, self.remote))
    }

    /// The initiator's own side in a new transport-mode Child SA from behind a NAT: an
    /// address identity other than our outer address is the one the NAT publishes us as,
    /// which a peer such as libreswan expects in our selectors. Without one we name our
    /// own address (strongSwan substitutes whatever we send).
    pub fn initiator(sa: &IkeSa, conn: &EngineConnection, mode: Mode) -> Substitutions {
        let local = sa
            .nat_sides(mode)
            .local
            .and_then(|kernel| match conn.config.local_id {
                Some(Identity::Address(public)) if public != kernel => Some(Substitution {
                    wire: public,
                    kernel,
                }),
                _ => None,
            });
        Substitutions {
            local,
            remote: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(addr: &str, protocol: u8) -> TsRange {
        let a: IpAddr = addr.parse().unwrap();
        TsRange {
            protocol,
            start_port: 0,
            end_port: u16::MAX,
            start: a,
            end: a,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_host_selector_takes_the_ike_address_and_gives_it_back_on_the_wire() {
        let received = [host("198.51.100.1", 47)];
        let (kernel, s) = substitute(&received, Some(ip("172.16.0.2")));
        assert_eq!(kernel, [host("172.16.0.2", 47)]);
        let s = s.unwrap();
        assert_eq!((s.wire, s.kernel), (ip("198.51.100.1"), ip("172.16.0.2")));
        assert_eq!(to_wire(&kernel, Some(s)), received);
    }

    #[test]
    fn without_a_nat_or_a_host_selector_nothing_changes() {
        let received = [host("198.51.100.1", 47)];
        assert_eq!(substitute(&received, None), (received.to_vec(), None));
        let subnet = TsRange {
            end: ip("10.0.0.255"),
            ..host("10.0.0.0", 0)
        };
        assert_eq!(
            substitute(&[subnet], Some(ip("172.16.0.2"))),
            (vec![subnet], None)
        );
        // Another family's host selector is not ours to replace.
        let v6 = [host("2001:db8::1", 0)];
        assert_eq!(substitute(&v6, Some(ip("172.16.0.2"))).1, None);
    }

    fn connection(local_id: Option<Identity>) -> EngineConnection {
        use crate::ike::engine::config::IkeConfig;
        let mut config = IkeConfig::new("gre", ip("192.0.2.2"), vec![], vec![]);
        config.local_id = local_id;
        let psk = crate::ike::crypto::Secret::from_slice(b"transport-nat-test-psk");
        EngineConnection::with_psk(config, ip("172.16.0.2"), psk)
    }

    fn ike_sa(local_behind_nat: bool) -> IkeSa {
        let ends = (
            "172.16.0.2:4500".parse().unwrap(),
            "192.0.2.2:4500".parse().unwrap(),
        );
        let mut sa = IkeSa::new(
            "gre".into(),
            true,
            super::super::sa::State::Established,
            ends,
        );
        sa.local_behind_nat = local_behind_nat;
        sa
    }

    /// What libreswan wants in our TSi: the address the NAT publishes us as.
    #[test]
    fn an_initiator_behind_a_nat_names_its_address_identity() {
        let public = Identity::Address(ip("198.51.100.1"));
        let expected = Substitution {
            wire: ip("198.51.100.1"),
            kernel: ip("172.16.0.2"),
        };
        let ours = |nat, id, mode| Substitutions::initiator(&ike_sa(nat), &connection(id), mode);
        assert_eq!(
            ours(true, Some(public.clone()), Mode::Transport),
            Substitutions {
                local: Some(expected),
                remote: None
            }
        );
        let (local, remote) = ours(true, Some(public.clone()), Mode::Transport)
            .wire(&[host("172.16.0.2", 47)], &[host("192.0.2.2", 47)]);
        assert_eq!(
            (local, remote),
            (vec![host("198.51.100.1", 47)], vec![host("192.0.2.2", 47)])
        );
        // No NAT, tunnel mode, or no address identity: our own address.
        let none = Substitutions::default();
        assert_eq!(ours(false, Some(public.clone()), Mode::Transport), none);
        assert_eq!(ours(true, Some(public), Mode::Tunnel), none);
        assert_eq!(
            ours(
                true,
                Some(Identity::Fqdn("b.example".into())),
                Mode::Transport
            ),
            none
        );
        assert_eq!(ours(true, None, Mode::Transport), none);
    }

    #[test]
    fn only_the_first_host_address_is_replaced() {
        let received = [
            host("198.51.100.1", 47),
            host("198.51.100.9", 47),
            host("198.51.100.1", 17),
        ];
        let (kernel, _) = substitute(&received, Some(ip("172.16.0.2")));
        assert_eq!(
            kernel,
            [
                host("172.16.0.2", 47),
                host("198.51.100.9", 47),
                host("172.16.0.2", 17)
            ]
        );
    }
}
