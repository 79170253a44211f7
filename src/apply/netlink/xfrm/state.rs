//! XFRM states (SAs) to and from [`objects::Sa`], and their counters for `status`.

use netlink_packet_xfrm::state::{DelGetMessage, ModifyMessage};
use netlink_packet_xfrm::{
    Address, Alg, AlgAead, AlgAuth, EncapTmpl, Id, LifetimeConfig, Mark, ReplayEsn, Selector,
    UserSaId, UserSaInfo, XfrmAttrs, IPPROTO_ESP, UDP_ENCAP_ESPINUDP, XFRM_MODE_TRANSPORT,
    XFRM_MODE_TUNNEL, XFRM_STATE_AF_UNSPEC, XFRM_STATE_ESN,
};

use super::algorithms::{
    encryption_from_kernel, encryption_name, integrity_from_kernel, integrity_name,
};
use crate::apply::objects::{KeyMaterial, Sa};
use crate::apply::status::SaStatus;
use crate::ike::crypto::Secret;
use crate::ike::engine::Lifetimes;
use crate::model::Mode;

const AF_INET: u16 = libc::AF_INET as u16;
const AF_INET6: u16 = libc::AF_INET6 as u16;
/// The widest window the legacy `replay_window` field gives: its bitmap is one u32.
const LEGACY_REPLAY_WINDOW: u32 = 32;

fn name<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let n = text.len().min(N - 1);
    out[..n].copy_from_slice(&text.as_bytes()[..n]);
    out
}

fn name_of(bytes: &[u8]) -> &str {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    std::str::from_utf8(&bytes[..end]).unwrap_or("")
}

fn family(sa: &Sa) -> u16 {
    if sa.dst.is_ipv4() {
        AF_INET
    } else {
        AF_INET6
    }
}

fn identity_attrs(sa: &Sa) -> Vec<XfrmAttrs> {
    let mut attrs = Vec::new();
    if let Some(value) = sa.mark {
        attrs.push(XfrmAttrs::Mark(Mark {
            value,
            mask: u32::MAX,
        }));
    }
    if let Some(id) = sa.if_id {
        attrs.push(XfrmAttrs::IfId(id));
    }
    attrs
}

/// The kernel's soft limits make it report (not act); the hard ones remove the SA. Zero in
/// the engine's limits means none (the kernel's "infinite").
fn lifetime(l: &Lifetimes) -> LifetimeConfig {
    let limit = |n: u64| if n == 0 { u64::MAX } else { n };
    LifetimeConfig {
        soft_byte_limit: limit(l.soft_bytes),
        hard_byte_limit: limit(l.hard_bytes),
        soft_packet_limit: limit(l.soft_packets),
        hard_packet_limit: limit(l.hard_packets),
        soft_add_expires_seconds: l.soft.as_secs(),
        hard_add_expires_seconds: l.hard.as_secs(),
        ..LifetimeConfig::default()
    }
}

/// ESN, and windows wider than the legacy bitmap, need the XFRMA_REPLAY_ESN_VAL attribute,
/// and then the legacy field must be 0 (the kernel refuses both).
fn replay(sa: &Sa) -> (u8, Option<XfrmAttrs>) {
    if !sa.esn && sa.replay_window <= LEGACY_REPLAY_WINDOW {
        return (sa.replay_window as u8, None);
    }
    let bmp_len = sa.replay_window.div_ceil(32);
    let state = ReplayEsn {
        bmp_len,
        replay_window: sa.replay_window,
        bmp: vec![0; bmp_len as usize],
        ..ReplayEsn::default()
    };
    (0, Some(XfrmAttrs::ReplayStateEsn(state)))
}

/// Tunnel mode may carry the other family than its outer one (4-in-6, 6-in-4): with a
/// selector of the outer family the kernel knows only that inner family and drops the other.
fn flags(sa: &Sa) -> u8 {
    let mut flags = 0;
    if sa.mode == Mode::Tunnel {
        flags |= XFRM_STATE_AF_UNSPEC;
    }
    if sa.esn {
        flags |= XFRM_STATE_ESN;
    }
    flags
}

pub fn add_message(sa: &Sa) -> ModifyMessage {
    let (replay_window, replay_state) = replay(sa);
    // A tunnel-mode SA's selector family stays unspecified: the kernel then decapsulates
    // and encapsulates both inner families (with AF_UNSPEC in the flags, as strongSwan).
    let selector = Selector {
        family: match sa.mode {
            Mode::Tunnel => 0,
            Mode::Transport => family(sa),
        },
        ..Selector::default()
    };
    let info = UserSaInfo {
        selector,
        id: Id {
            daddr: Address::from_ip(&sa.dst),
            spi: sa.spi,
            proto: IPPROTO_ESP,
        },
        saddr: Address::from_ip(&sa.src),
        lifetime_cfg: sa
            .lifetimes
            .as_ref()
            .map_or_else(LifetimeConfig::default, lifetime),
        reqid: sa.reqid,
        family: family(sa),
        mode: match sa.mode {
            Mode::Tunnel => XFRM_MODE_TUNNEL,
            Mode::Transport => XFRM_MODE_TRANSPORT,
        },
        replay_window,
        flags: flags(sa),
        ..UserSaInfo::default()
    };
    let key = sa.key.0.expose().to_vec();
    // The key length counts the salt / nonce at the key's end (see `algorithms`).
    let alg_name = name(encryption_name(sa.encryption));
    let alg_key_len = (key.len() * 8) as u32;
    let mut nlas = vec![if sa.encryption.is_aead() {
        XfrmAttrs::EncryptionAlgAead(AlgAead {
            alg_name,
            alg_key_len,
            alg_icv_len: (sa.encryption.aead_icv_len() * 8) as u32,
            alg_key: key,
        })
    } else {
        XfrmAttrs::EncryptionAlg(Alg {
            alg_name,
            alg_key_len,
            alg_key: key,
        })
    }];
    if let Some((integrity, key)) = &sa.integrity {
        let key = key.0.expose().to_vec();
        nlas.push(XfrmAttrs::AuthenticationAlgTrunc(AlgAuth {
            alg_name: name(integrity_name(*integrity)),
            alg_key_len: (key.len() * 8) as u32,
            alg_trunc_len: (integrity.icv_len() * 8) as u32,
            alg_key: key,
        }));
    }
    nlas.extend(replay_state);
    nlas.extend(identity_attrs(sa));
    if let Some((sport, dport)) = sa.encap {
        nlas.push(XfrmAttrs::EncapsulationTemplate(EncapTmpl {
            encap_type: UDP_ENCAP_ESPINUDP,
            encap_sport: sport,
            encap_dport: dport,
            encap_oa: Address::default(),
        }));
    }
    ModifyMessage {
        user_sa_info: info,
        nlas,
    }
}

pub fn delete_message(sa: &Sa) -> DelGetMessage {
    DelGetMessage {
        user_sa_id: UserSaId {
            daddr: Address::from_ip(&sa.dst),
            spi: sa.spi,
            family: family(sa),
            proto: IPPROTO_ESP,
        },
        nlas: identity_attrs(sa),
    }
}

/// An XFRM address as an IP address of `family` (AF_INET / AF_INET6).
pub fn address(a: &Address, family: u16) -> Option<std::net::IpAddr> {
    match family {
        AF_INET => Some(a.to_ipv4().into()),
        AF_INET6 => Some(a.to_ipv6().into()),
        _ => None,
    }
}

/// An ESP SA in a shape routevpn can install, with its key material.
pub fn decode(message: &ModifyMessage) -> Option<Sa> {
    let info = &message.user_sa_info;
    if info.id.proto != IPPROTO_ESP {
        return None;
    }
    let (mut encryption, mut integrity, mut mark, mut if_id) = (None, None, None, None);
    let mut replay_window = u32::from(info.replay_window);
    for nla in &message.nlas {
        match nla {
            XfrmAttrs::EncryptionAlgAead(a) => {
                let alg =
                    encryption_from_kernel(name_of(&a.alg_name), a.alg_key.len(), a.alg_icv_len)?;
                encryption = Some((alg, Secret::from_slice(&a.alg_key)));
            }
            XfrmAttrs::EncryptionAlg(a) => {
                let alg = encryption_from_kernel(name_of(&a.alg_name), a.alg_key.len(), 0)?;
                encryption = Some((alg, Secret::from_slice(&a.alg_key)));
            }
            XfrmAttrs::AuthenticationAlgTrunc(a) => {
                let alg = integrity_from_kernel(name_of(&a.alg_name), a.alg_trunc_len)?;
                integrity = Some((alg, KeyMaterial(Secret::from_slice(&a.alg_key))));
            }
            XfrmAttrs::Mark(m) if m.mask == u32::MAX => mark = Some(m.value),
            XfrmAttrs::IfId(id) if *id != 0 => if_id = Some(*id),
            XfrmAttrs::ReplayStateEsn(r) => replay_window = r.replay_window,
            _ => {}
        }
    }
    let (encryption, key) = encryption?;
    Some(Sa {
        src: address(&info.saddr, info.family)?,
        dst: address(&info.id.daddr, info.family)?,
        spi: info.id.spi,
        mode: match info.mode {
            XFRM_MODE_TUNNEL => Mode::Tunnel,
            XFRM_MODE_TRANSPORT => Mode::Transport,
            _ => return None,
        },
        reqid: info.reqid,
        mark,
        if_id,
        encryption,
        key: KeyMaterial(key),
        integrity,
        // Manual SAs, the only ones reconciled, have neither.
        encap: None,
        lifetimes: None,
        esn: info.flags & XFRM_STATE_ESN != 0,
        replay_window,
    })
}

/// Any ESP SA's counters, whoever installed it, for `routevpn status`.
pub fn status(message: &ModifyMessage, now_unix: u64) -> Option<SaStatus> {
    let info = &message.user_sa_info;
    if info.id.proto != IPPROTO_ESP {
        return None;
    }
    let algorithms: Vec<&str> = message
        .nlas
        .iter()
        .filter_map(|nla| match nla {
            XfrmAttrs::EncryptionAlgAead(a) => Some(name_of(&a.alg_name)),
            XfrmAttrs::EncryptionAlg(a) => Some(name_of(&a.alg_name)),
            XfrmAttrs::AuthenticationAlgTrunc(a) => Some(name_of(&a.alg_name)),
            _ => None,
        })
        .collect();
    Some(SaStatus {
        reqid: info.reqid,
        spi: info.id.spi,
        src: address(&info.saddr, info.family)?,
        dst: address(&info.id.daddr, info.family)?,
        algorithms: algorithms.join("+"),
        bytes: info.lifetime_cur.bytes,
        packets: info.lifetime_cur.packets,
        age: now_unix.saturating_sub(info.lifetime_cur.add_time),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proposal::{Encryption, Integrity};
    use netlink_packet_core::{Emitable, Parseable};

    fn sa(encryption: Encryption, integrity: Option<Integrity>) -> Sa {
        Sa {
            src: "192.0.2.1".parse().unwrap(),
            dst: "192.0.2.2".parse().unwrap(),
            spi: 0x1001,
            mode: Mode::Tunnel,
            reqid: 42,
            mark: Some(0x5200_0001),
            if_id: None,
            encryption,
            key: KeyMaterial(Secret::new(vec![7; encryption.keymat_len()])),
            integrity: integrity.map(|i| (i, KeyMaterial(Secret::new(vec![9; i.key_len()])))),
            encap: None,
            lifetimes: None,
            esn: false,
            replay_window: 32,
        }
    }

    fn parsed(sa: &Sa) -> ModifyMessage {
        let message = add_message(sa);
        let mut bytes = vec![0; message.buffer_len()];
        message.emit(&mut bytes);
        ModifyMessage::parse(bytes.as_slice()).unwrap()
    }

    fn replay_esn(message: &ModifyMessage) -> Option<&ReplayEsn> {
        message.nlas.iter().find_map(|nla| match nla {
            XfrmAttrs::ReplayStateEsn(r) => Some(r),
            _ => None,
        })
    }

    #[test]
    fn tunnel_mode_states_may_carry_the_other_family() {
        // An IPv6 outer carrying IPv4 (4-in-6) and the reverse.
        let mut six = sa(Encryption::AesGcm16(128), None);
        (six.src, six.dst) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        );
        for tunnel in [sa(Encryption::AesGcm16(128), None), six] {
            let info = parsed(&tunnel).user_sa_info;
            assert_eq!(info.flags & XFRM_STATE_AF_UNSPEC, XFRM_STATE_AF_UNSPEC);
            assert_eq!(info.selector.family, 0, "both inner families");
        }
        let transport = Sa {
            mode: Mode::Transport,
            ..sa(Encryption::AesGcm16(128), None)
        };
        let info = parsed(&transport).user_sa_info;
        assert_eq!(info.flags & XFRM_STATE_AF_UNSPEC, 0);
        assert_eq!(info.selector.family, AF_INET);
    }

    #[test]
    fn esn_states_carry_the_esn_flag_and_an_esn_replay_state() {
        for (window, words) in [(32, 1), (33, 2), (4096, 128)] {
            let esn = Sa {
                esn: true,
                replay_window: window,
                ..sa(Encryption::AesGcm16(128), None)
            };
            let message = parsed(&esn);
            let info = &message.user_sa_info;
            assert_eq!(info.flags & XFRM_STATE_ESN, XFRM_STATE_ESN);
            // The kernel refuses a legacy window beside the ESN state.
            assert_eq!(info.replay_window, 0);
            let state = replay_esn(&message).expect("XFRMA_REPLAY_ESN_VAL");
            assert_eq!((state.replay_window, state.bmp_len), (window, words));
            assert_eq!(state.bmp.len(), words as usize);
            assert_eq!(decode(&message), Some(esn));
        }
    }

    #[test]
    fn without_esn_the_legacy_window_serves_up_to_its_32_packets() {
        for window in [0, 1, 32] {
            let plain = Sa {
                replay_window: window,
                ..sa(Encryption::AesGcm16(128), None)
            };
            let message = parsed(&plain);
            assert_eq!(u32::from(message.user_sa_info.replay_window), window);
            assert_eq!(message.user_sa_info.flags & XFRM_STATE_ESN, 0);
            assert!(replay_esn(&message).is_none());
            assert_eq!(decode(&message), Some(plain));
        }
        let wide = Sa {
            replay_window: 64,
            ..sa(Encryption::AesGcm16(128), None)
        };
        let message = parsed(&wide);
        assert_eq!(message.user_sa_info.flags & XFRM_STATE_ESN, 0);
        assert_eq!(replay_esn(&message).map(|r| r.bmp_len), Some(2));
        assert_eq!(decode(&message), Some(wide));
    }

    #[test]
    fn states_round_trip_with_their_keys() {
        for original in [
            sa(Encryption::AesGcm16(128), None),
            sa(Encryption::AesGcm16(256), None),
            sa(Encryption::AesCbc(256), Some(Integrity::HmacSha256_128)),
            sa(Encryption::AesCbc(128), Some(Integrity::HmacSha512_256)),
            sa(Encryption::AesCtr(256), Some(Integrity::AesXcbc96)),
            sa(Encryption::AesCcm8(128), None),
            sa(Encryption::AesGcm12(192), None),
            sa(Encryption::ChaCha20Poly1305, None),
            sa(Encryption::AesCbc(128), Some(Integrity::AesCmac96)),
        ] {
            assert_eq!(decode(&parsed(&original)), Some(original));
        }
    }

    #[test]
    fn debug_output_hides_keys() {
        let text = format!(
            "{:?}",
            sa(Encryption::AesCbc(256), Some(Integrity::HmacSha256_128))
        );
        assert!(!text.contains("7, 7") && !text.contains("9, 9"), "{text}");
    }
}
