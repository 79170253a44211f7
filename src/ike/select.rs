//! Proposal selection, as strongSwan does it by default: walk our configured proposals in
//! order and, for each, the peer's; the first pair with an algorithm of every kind in common
//! wins, and within it our order decides each algorithm.

use crate::proposal::{
    AdditionalKes, DhGroup, Encryption, EspProposal, IkeProposal, Integrity, Prf,
    ADDITIONAL_KE_SLOTS,
};

/// The method chosen for each additional key exchange (RFC 9370); `None` where it is not
/// performed (not offered, or NONE chosen).
pub type AdditionalChoice = [Option<DhGroup>; ADDITIONAL_KE_SLOTS];

/// The additional key exchanges to run, in order (ADDKE1 first).
pub fn additional_methods(choice: &AdditionalChoice) -> Vec<DhGroup> {
    choice.iter().flatten().copied().collect()
}

/// The methods of an answer's slots, if each names at most one (NONE or absent: `None`).
pub fn single_additional(slots: &AdditionalKes) -> Option<AdditionalChoice> {
    let mut chosen = [None; ADDITIONAL_KE_SLOTS];
    for (chosen, methods) in chosen.iter_mut().zip(slots) {
        *chosen = match methods.as_slice() {
            [] => None,
            [one] => *one,
            _ => return None,
        };
    }
    Some(chosen)
}

/// The additional key exchanges of a CREATE_CHILD_SA that cannot carry them (the peer did
/// not announce RFC 9370): none. `None` when a slot is mandatory:
/// that proposal is left out rather than weakened.
pub fn in_create_child_sa(slots: &AdditionalKes) -> Option<AdditionalKes> {
    (slots.iter())
        .all(|methods| methods.is_empty() || methods.contains(&None))
        .then(AdditionalKes::default)
}

/// A choice as proposal slots: the chosen method, nothing where none is performed.
fn additional_slots(choice: &AdditionalChoice) -> AdditionalKes {
    choice.map(|m| m.map(Some).into_iter().collect())
}

/// Both sides' methods for each slot, in our order. A slot a side leaves out counts as NONE
/// only (RFC 9370 section 2.2.2), so an optional exchange matches a peer without it and a
/// mandatory one does not.
fn common_additional(ours: &AdditionalKes, theirs: &AdditionalKes) -> Option<AdditionalChoice> {
    let mut chosen = [None; ADDITIONAL_KE_SLOTS];
    for (slot, chosen) in chosen.iter_mut().enumerate() {
        let none_only = [None];
        let or_none = |methods: &'_ [Option<DhGroup>]| -> Vec<Option<DhGroup>> {
            if methods.is_empty() {
                none_only.to_vec()
            } else {
                methods.to_vec()
            }
        };
        *chosen = first_common(&or_none(&ours[slot]), &or_none(&theirs[slot]))?;
    }
    Some(chosen)
}

/// One algorithm of each kind for an IKE SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IkeChoice {
    pub encryption: Encryption,
    /// `None` with an AEAD cipher.
    pub integrity: Option<Integrity>,
    pub prf: Prf,
    pub dh: DhGroup,
    pub additional: AdditionalChoice,
}

impl IkeChoice {
    /// The choice as a one-algorithm-per-kind proposal, to send back or to check a reply.
    pub fn as_proposal(&self) -> IkeProposal {
        IkeProposal {
            encryption: vec![self.encryption],
            integrity: self.integrity.into_iter().collect(),
            prf: vec![self.prf],
            dh: vec![self.dh],
            additional: additional_slots(&self.additional),
        }
    }
}

/// One algorithm of each kind for a CHILD SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EspChoice {
    pub encryption: Encryption,
    pub integrity: Option<Integrity>,
    /// The PFS group, for CREATE_CHILD_SA with a KE payload.
    pub dh: Option<DhGroup>,
    /// Additional key exchanges after the PFS one (IKE_FOLLOWUP_KE).
    pub additional: AdditionalChoice,
    pub esn: bool,
}

impl EspChoice {
    pub fn as_proposal(&self) -> EspProposal {
        EspProposal {
            encryption: vec![self.encryption],
            integrity: self.integrity.into_iter().collect(),
            dh: self.dh.into_iter().collect(),
            additional: additional_slots(&self.additional),
            esn: vec![self.esn],
        }
    }
}

impl std::fmt::Display for IkeChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_proposal().fmt(f)
    }
}

impl std::fmt::Display for EspChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_proposal().fmt(f)
    }
}

fn first_common<T: Copy + PartialEq>(ours: &[T], theirs: &[T]) -> Option<T> {
    ours.iter().copied().find(|a| theirs.contains(a))
}

/// Integrity must be absent on both sides (AEAD) or have one algorithm in common.
fn common_integrity(ours: &[Integrity], theirs: &[Integrity]) -> Option<Option<Integrity>> {
    match (ours.is_empty(), theirs.is_empty()) {
        (true, true) => Some(None),
        (false, false) => first_common(ours, theirs).map(Some),
        _ => None,
    }
}

fn match_ike(ours: &IkeProposal, theirs: &IkeProposal) -> Option<IkeChoice> {
    Some(IkeChoice {
        encryption: first_common(&ours.encryption, &theirs.encryption)?,
        integrity: common_integrity(&ours.integrity, &theirs.integrity)?,
        prf: first_common(&ours.prf, &theirs.prf)?,
        dh: first_common(&ours.dh, &theirs.dh)?,
        additional: common_additional(&ours.additional, &theirs.additional)?,
    })
}

/// Picks the IKE algorithms; returns the index of the peer's proposal that matched.
pub fn select_ike(
    configured: &[IkeProposal],
    offered: &[IkeProposal],
) -> Option<(usize, IkeChoice)> {
    configured.iter().find_map(|ours| {
        offered
            .iter()
            .enumerate()
            .find_map(|(i, theirs)| match_ike(ours, theirs).map(|c| (i, c)))
    })
}

/// Whether a key exchange is part of the exchange carrying the proposals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyExchange {
    /// IKE_AUTH: no KE payload, so DH transforms are ignored on both sides.
    Absent,
    /// CREATE_CHILD_SA: a proposal without DH means no PFS and matches only the same.
    Present,
    /// CREATE_CHILD_SA with a peer that knows RFC 9370: additional key exchanges may follow
    /// in IKE_FOLLOWUP_KE.
    Followup,
}

fn match_esp(ours: &EspProposal, theirs: &EspProposal, ke: KeyExchange) -> Option<EspChoice> {
    let (dh, additional) = match ke {
        KeyExchange::Absent => (None, [None; ADDITIONAL_KE_SLOTS]),
        KeyExchange::Present | KeyExchange::Followup => {
            match (ours.dh.is_empty(), theirs.dh.is_empty()) {
                (true, true) => (None, [None; ADDITIONAL_KE_SLOTS]),
                (false, false) => (
                    Some(first_common(&ours.dh, &theirs.dh)?),
                    common_additional(&ours.additional, &theirs.additional)?,
                ),
                _ => return None,
            }
        }
    };
    Some(EspChoice {
        encryption: first_common(&ours.encryption, &theirs.encryption)?,
        integrity: common_integrity(&ours.integrity, &theirs.integrity)?,
        dh,
        additional,
        esn: first_common(&ours.esn, &theirs.esn)?,
    })
}

pub fn select_esp(
    configured: &[EspProposal],
    offered: &[EspProposal],
    ke: KeyExchange,
) -> Option<(usize, EspChoice)> {
    configured.iter().find_map(|ours| {
        offered
            .iter()
            .enumerate()
            .find_map(|(i, theirs)| match_esp(ours, theirs, ke).map(|c| (i, c)))
    })
}

/// The initiator's check of a responder's answer: it must be one of our own proposals
/// narrowed to one algorithm each, nothing we did not offer.
pub fn accepts_ike_reply(configured: &[IkeProposal], reply: &IkeChoice) -> bool {
    select_ike(configured, &[reply.as_proposal()]).is_some_and(|(_, c)| c == *reply)
}

pub fn accepts_esp_reply(configured: &[EspProposal], reply: &EspChoice, ke: KeyExchange) -> bool {
    select_esp(configured, &[reply.as_proposal()], ke).is_some_and(|(_, c)| c == *reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proposal::{parse_esp, parse_ike};

    fn ike(list: &[&str]) -> Vec<IkeProposal> {
        list.iter().map(|p| parse_ike(p, true).unwrap()).collect()
    }

    fn esp(list: &[&str]) -> Vec<EspProposal> {
        list.iter().map(|p| parse_esp(p, true).unwrap()).collect()
    }

    #[test]
    fn a_missing_additional_slot_counts_as_none() {
        let optional = ike(&["aes256gcm16-prfsha256-x25519-ke1_mlkem768-ke1_none"]);
        let mandatory = ike(&["aes256gcm16-prfsha256-x25519-ke1_mlkem768"]);
        let plain = ike(&["aes256gcm16-prfsha256-x25519"]);
        let (_, c) = select_ike(&optional, &plain).unwrap();
        assert_eq!(c.additional, [None; ADDITIONAL_KE_SLOTS]);
        assert!(select_ike(&mandatory, &plain).is_none());
        assert!(select_ike(&plain, &mandatory).is_none());
        let (_, c) = select_ike(&optional, &mandatory).unwrap();
        assert_eq!(additional_methods(&c.additional), [DhGroup::MlKem768]);
        // The reply names the method, or nothing for NONE; both check out.
        assert!(accepts_ike_reply(&optional, &c));
        let (_, none) = select_ike(&optional, &plain).unwrap();
        assert!(accepts_ike_reply(&optional, &none));
        assert!(!accepts_ike_reply(&mandatory, &none));
    }

    /// A CREATE_CHILD_SA without additional exchanges: a peer that offers one where our
    /// proposal makes it optional gets NONE, one that insists on it gets no proposal.
    #[test]
    fn create_child_sa_takes_additional_exchanges_only_as_none() {
        let ours = esp(&["aes128gcm16-x25519-ke1_mlkem768-ke1_none"]);
        let ours: Vec<EspProposal> = (ours.iter())
            .map(|p| EspProposal {
                additional: in_create_child_sa(&p.additional).unwrap(),
                ..p.clone()
            })
            .collect();
        let flexible = esp(&["aes128gcm16-x25519-ke1_mlkem768-ke1_none"]);
        let (_, c) = select_esp(&ours, &flexible, KeyExchange::Present).unwrap();
        assert_eq!(c.additional, [None; ADDITIONAL_KE_SLOTS]);
        let insisting = esp(&["aes128gcm16-x25519-ke1_mlkem768"]);
        assert!(select_esp(&ours, &insisting, KeyExchange::Present).is_none());
        assert!(in_create_child_sa(&insisting[0].additional).is_none());
    }

    #[test]
    fn our_order_wins_within_a_match() {
        let ours = ike(&["aes256-aes128-sha256-modp3072-modp2048"]);
        let theirs = ike(&["aes128-aes256-sha256-modp2048-modp3072"]);
        let (i, c) = select_ike(&ours, &theirs).unwrap();
        assert_eq!(i, 0);
        assert_eq!(c.encryption, Encryption::AesCbc(256));
        assert_eq!(c.dh, DhGroup::Modp3072);
        assert_eq!(c.prf, Prf::HmacSha256);
    }

    #[test]
    fn our_first_proposal_is_preferred_over_the_peers_first() {
        let ours = ike(&["aes256gcm16-prfsha384-x25519", "aes256-sha256-modp2048"]);
        let theirs = ike(&["aes256-sha256-modp2048", "aes256gcm16-prfsha384-x25519"]);
        let (i, c) = select_ike(&ours, &theirs).unwrap();
        assert_eq!(i, 1, "index into the offered list");
        assert_eq!(c.integrity, None);
    }

    #[test]
    fn no_common_group_means_no_proposal() {
        assert!(select_ike(
            &ike(&["aes256-sha256-modp2048"]),
            &ike(&["aes256-sha256-ecp256"])
        )
        .is_none());
        assert!(select_ike(
            &ike(&["aes256gcm16-prfsha256-ecp256"]),
            &ike(&["aes256-sha256-ecp256"])
        )
        .is_none());
    }

    #[test]
    fn esp_in_ike_auth_ignores_dh_but_rekey_requires_it() {
        let ours = esp(&["aes256-sha256-modp2048"]);
        let theirs = esp(&["aes256-sha256"]);
        let (_, c) = select_esp(&ours, &theirs, KeyExchange::Absent).unwrap();
        assert_eq!(c.dh, None);
        assert!(select_esp(&ours, &theirs, KeyExchange::Present).is_none());
        let (_, c) = select_esp(
            &ours,
            &esp(&["aes256-sha256-modp2048"]),
            KeyExchange::Present,
        )
        .unwrap();
        assert_eq!(c.dh, Some(DhGroup::Modp2048));
    }

    #[test]
    fn esn_must_agree() {
        assert!(select_esp(
            &esp(&["aes128gcm16-esn"]),
            &esp(&["aes128gcm16-noesn"]),
            KeyExchange::Absent
        )
        .is_none());
        let (_, c) = select_esp(
            &esp(&["aes128gcm16-esn-noesn"]),
            &esp(&["aes128gcm16-noesn-esn"]),
            KeyExchange::Absent,
        )
        .unwrap();
        assert!(c.esn);
    }

    #[test]
    fn replies_are_checked_against_what_we_offered() {
        let ours = ike(&["aes256-sha256-modp2048"]);
        let good = IkeChoice {
            encryption: Encryption::AesCbc(256),
            integrity: Some(Integrity::HmacSha256_128),
            prf: Prf::HmacSha256,
            dh: DhGroup::Modp2048,
            additional: Default::default(),
        };
        assert!(accepts_ike_reply(&ours, &good));
        let sneaky = IkeChoice {
            dh: DhGroup::Modp1024,
            ..good
        };
        assert!(!accepts_ike_reply(&ours, &sneaky));
        let esp_ours = esp(&["aes128gcm16"]);
        let reply = EspChoice {
            encryption: Encryption::AesGcm16(128),
            integrity: None,
            dh: None,
            additional: Default::default(),
            esn: false,
        };
        assert!(accepts_esp_reply(&esp_ours, &reply, KeyExchange::Absent));
        assert!(!accepts_esp_reply(
            &esp_ours,
            &EspChoice { esn: true, ..reply },
            KeyExchange::Absent
        ));
    }
}
