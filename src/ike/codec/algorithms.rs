//! Between wire proposals and the configured algorithm types of [`crate::proposal`].
//!
//! Building is exact. Reading back sorts each received transform into "one we implement"
//! or "unsupported" instead of failing: the engine selects a proposal and simply never
//! picks what it cannot do.

use crate::proposal::{
    AdditionalKes, DhGroup, Encryption, EspProposal, IkeProposal, Integrity, Prf,
};

use super::error::EncodeError;
use super::sa::{Attribute, Proposal, ProtocolId, SecurityAssociation, Transform, TransformType};
use super::writer::fit;

/// ESN transform IDs (RFC 7296 section 3.3.2, transform type 5).
const ESN_NONE: u16 = 0;
const ESN_ON: u16 = 1;

/// The NONE transform of an additional key exchange (RFC 9370 section 2.2).
const ADDKE_NONE: u16 = 0;

fn additional_transforms(additional: &AdditionalKes) -> impl Iterator<Item = Transform> + '_ {
    (0u8..).zip(additional).flat_map(|(slot, methods)| {
        methods.iter().map(move |m| {
            let id = m.map_or(ADDKE_NONE, DhGroup::transform_id);
            Transform::new(TransformType::AdditionalKeyExchange(slot), id)
        })
    })
}

/// Files an ADDKE transform into its slot; `None` if its method is unknown.
fn read_additional(t: &Transform, slot: u8, additional: &mut AdditionalKes) -> Option<()> {
    let method = simple(t, |id| match id {
        ADDKE_NONE => Some(None),
        id => DhGroup::from_transform(id).map(Some),
    })?;
    push_new(additional.get_mut(usize::from(slot))?, method);
    Some(())
}

/// The algorithms of a received proposal that routevpn implements, plus the rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalTransforms<P> {
    pub supported: P,
    /// Transforms with unknown types or IDs, or with attributes we do not understand
    /// (RFC 7296 section 3.3.6: such a transform is unusable, not the whole message).
    pub unsupported: Vec<Transform>,
}

fn encryption_transform(e: Encryption) -> Transform {
    let attributes = if e.has_key_length_attribute() {
        vec![Attribute::key_length(e.key_bits())]
    } else {
        vec![]
    };
    Transform {
        transform_type: TransformType::Encryption,
        id: e.transform_id(),
        attributes,
    }
}

impl Proposal {
    /// A wire IKE proposal; `spi` is `None` in IKE_SA_INIT and the new SPI when rekeying.
    pub fn from_ike(number: u8, proposal: &IkeProposal, spi: Option<u64>) -> Proposal {
        let transforms = (proposal.encryption.iter().map(|e| encryption_transform(*e)))
            .chain(
                proposal
                    .prf
                    .iter()
                    .map(|p| Transform::new(TransformType::Prf, p.transform_id())),
            )
            .chain(
                (proposal.integrity.iter())
                    .map(|i| Transform::new(TransformType::Integrity, i.transform_id())),
            )
            .chain(
                (proposal.dh.iter())
                    .map(|d| Transform::new(TransformType::KeyExchange, d.transform_id())),
            )
            .chain(additional_transforms(&proposal.additional))
            .collect();
        Proposal {
            number,
            protocol: ProtocolId::Ike,
            spi: spi.map(|s| s.to_be_bytes().to_vec()).unwrap_or_default(),
            transforms,
        }
    }

    /// A wire ESP proposal with our inbound SPI. ESN is a mandatory transform for ESP, so an
    /// empty `esn` list is offered as "no ESN".
    pub fn from_esp(number: u8, proposal: &EspProposal, spi: u32) -> Proposal {
        let esn: &[bool] = if proposal.esn.is_empty() {
            &[false]
        } else {
            &proposal.esn
        };
        let transforms =
            (proposal.encryption.iter().map(|e| encryption_transform(*e)))
                .chain(
                    (proposal.integrity.iter())
                        .map(|i| Transform::new(TransformType::Integrity, i.transform_id())),
                )
                .chain(
                    (proposal.dh.iter())
                        .map(|d| Transform::new(TransformType::KeyExchange, d.transform_id())),
                )
                .chain(additional_transforms(&proposal.additional))
                .chain(esn.iter().map(|on| {
                    Transform::new(TransformType::Esn, if *on { ESN_ON } else { ESN_NONE })
                }))
                .collect();
        Proposal {
            number,
            protocol: ProtocolId::Esp,
            spi: spi.to_be_bytes().to_vec(),
            transforms,
        }
    }

    /// Reads back an IKE proposal; `None` if this is not an IKE proposal.
    pub fn ike_transforms(&self) -> Option<ProposalTransforms<IkeProposal>> {
        if self.protocol != ProtocolId::Ike {
            return None;
        }
        let mut supported = IkeProposal {
            encryption: vec![],
            integrity: vec![],
            prf: vec![],
            dh: vec![],
            additional: Default::default(),
        };
        let mut unsupported = Vec::new();
        for t in &self.transforms {
            let known = match t.transform_type {
                TransformType::Encryption => {
                    encryption(t).map(|e| push_new(&mut supported.encryption, e))
                }
                TransformType::Prf => {
                    simple(t, Prf::from_transform).map(|p| push_new(&mut supported.prf, p))
                }
                TransformType::Integrity => simple(t, Integrity::from_transform)
                    .map(|i| push_new(&mut supported.integrity, i)),
                TransformType::KeyExchange => {
                    simple(t, DhGroup::from_transform).map(|d| push_new(&mut supported.dh, d))
                }
                TransformType::AdditionalKeyExchange(slot) => {
                    read_additional(t, slot, &mut supported.additional)
                }
                TransformType::Esn | TransformType::Other(_) => None,
            };
            if known.is_none() {
                unsupported.push(t.clone());
            }
        }
        Some(ProposalTransforms {
            supported,
            unsupported,
        })
    }

    /// Reads back an ESP proposal; `None` if this is not an ESP proposal.
    pub fn esp_transforms(&self) -> Option<ProposalTransforms<EspProposal>> {
        if self.protocol != ProtocolId::Esp {
            return None;
        }
        let mut supported = EspProposal {
            encryption: vec![],
            integrity: vec![],
            dh: vec![],
            additional: Default::default(),
            esn: vec![],
        };
        let mut unsupported = Vec::new();
        for t in &self.transforms {
            let known = match t.transform_type {
                TransformType::Encryption => {
                    encryption(t).map(|e| push_new(&mut supported.encryption, e))
                }
                TransformType::Integrity => simple(t, Integrity::from_transform)
                    .map(|i| push_new(&mut supported.integrity, i)),
                TransformType::KeyExchange => {
                    simple(t, DhGroup::from_transform).map(|d| push_new(&mut supported.dh, d))
                }
                TransformType::Esn => simple(t, |id| match id {
                    ESN_NONE => Some(false),
                    ESN_ON => Some(true),
                    _ => None,
                })
                .map(|on| push_new(&mut supported.esn, on)),
                TransformType::AdditionalKeyExchange(slot) => {
                    read_additional(t, slot, &mut supported.additional)
                }
                TransformType::Prf | TransformType::Other(_) => None,
            };
            if known.is_none() {
                unsupported.push(t.clone());
            }
        }
        Some(ProposalTransforms {
            supported,
            unsupported,
        })
    }
}

/// AES needs its Key Length attribute and nothing else, ChaCha20-Poly1305 no attribute.
fn encryption(t: &Transform) -> Option<Encryption> {
    match t.attributes.as_slice() {
        [] => Encryption::from_transform(t.id, None),
        [only] if only.attribute_type == Attribute::KEY_LENGTH => {
            Encryption::from_transform(t.id, Some(t.key_length()?))
        }
        _ => None,
    }
}

/// Transforms other than encryption take no attributes.
fn simple<T>(t: &Transform, from_id: impl Fn(u16) -> Option<T>) -> Option<T> {
    if t.attributes.is_empty() {
        from_id(t.id)
    } else {
        None
    }
}

fn push_new<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

impl SecurityAssociation {
    /// The SA payload offering configured IKE proposals, numbered from 1 in order.
    pub fn from_ike_proposals(
        proposals: &[IkeProposal],
        spi: Option<u64>,
    ) -> Result<Self, EncodeError> {
        Ok(SecurityAssociation {
            proposals: (proposals.iter().enumerate())
                .map(|(i, p)| Ok(Proposal::from_ike(proposal_number(i)?, p, spi)))
                .collect::<Result<_, EncodeError>>()?,
        })
    }

    /// The SA payload offering configured ESP proposals with our inbound SPI.
    pub fn from_esp_proposals(proposals: &[EspProposal], spi: u32) -> Result<Self, EncodeError> {
        Ok(SecurityAssociation {
            proposals: (proposals.iter().enumerate())
                .map(|(i, p)| Ok(Proposal::from_esp(proposal_number(i)?, p, spi)))
                .collect::<Result<_, EncodeError>>()?,
        })
    }
}

fn proposal_number(index: usize) -> Result<u8, EncodeError> {
    fit(index.saturating_add(1), "proposal number")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proposal::{parse_esp, parse_ike, DEFAULT_ESP, DEFAULT_IKE};

    #[test]
    fn configured_ike_proposal_round_trips() {
        for text in DEFAULT_IKE.iter().chain(&[
            "aes256-sha256-prfsha256-modp2048",
            "aes256gcm16-prfsha384-ecp384-ke1_mlkem1024-ke2_mlkem512-ke2_none",
            "aes256gcm16-prfsha256-mlkem768",
        ]) {
            let configured = parse_ike(text, false).unwrap();
            let wire = Proposal::from_ike(1, &configured, None);
            let back = wire.ike_transforms().unwrap();
            assert_eq!(back.supported, configured, "{text}");
            assert!(back.unsupported.is_empty());
            assert!(wire.esp_transforms().is_none());
        }
    }

    #[test]
    fn configured_esp_proposal_round_trips() {
        for text in DEFAULT_ESP.iter().chain(&[
            "aes128gcm16-x25519-esn-noesn",
            "aes256gcm16-x25519-ke1_mlkem768-ke1_none",
        ]) {
            let configured = parse_esp(text, false).unwrap();
            let wire = Proposal::from_esp(2, &configured, 0xc0ffee);
            assert_eq!(wire.spi_u32(), Some(0xc0ffee));
            let back = wire.esp_transforms().unwrap();
            assert_eq!(back.supported, configured, "{text}");
            assert!(back.unsupported.is_empty());
        }
    }

    #[test]
    fn additional_key_exchanges_are_transform_types_6_to_12() {
        let p = parse_ike(
            "aes256gcm16-prfsha256-x25519-ke1_mlkem768-ke1_none-ke7_ecp256",
            false,
        )
        .unwrap();
        let wire = Proposal::from_ike(1, &p, None);
        let addke: Vec<(u8, u16)> = (wire.transforms.iter())
            .filter(|t| t.transform_type.to_u8() >= 6)
            .map(|t| (t.transform_type.to_u8(), t.id))
            .collect();
        assert_eq!(addke, [(6, 36), (6, 0), (12, 19)]);
    }

    #[test]
    fn aes_cbc_256_transform_layout() {
        let p = Proposal::from_ike(
            1,
            &parse_ike("aes256-sha256-modp2048", false).unwrap(),
            None,
        );
        let mut out = Vec::new();
        SecurityAssociation { proposals: vec![p] }
            .write(&mut out)
            .unwrap();
        // ENCR AES-CBC (12) with key length 256 in TV format.
        assert_eq!(&out[8..20], &[3, 0, 0, 12, 1, 0, 0, 12, 0x80, 14, 1, 0]);
    }

    #[test]
    fn chacha20_poly1305_goes_without_key_length() {
        let p = Proposal::from_ike(
            1,
            &parse_ike("chacha20poly1305-prfsha256-x448", false).unwrap(),
            None,
        );
        assert!(p.transforms[0].attributes.is_empty());
        let back = p.ike_transforms().unwrap();
        assert_eq!(
            back.supported.encryption,
            vec![Encryption::ChaCha20Poly1305]
        );
        assert!(back.unsupported.is_empty());
    }

    #[test]
    fn unknown_transforms_are_set_aside_not_fatal() {
        let mut wire =
            Proposal::from_ike(1, &parse_ike("aes128-sha256-ecp256", false).unwrap(), None);
        // RFC 7634 section 2: ChaCha20-Poly1305 never carries a Key Length attribute.
        let chacha = Transform {
            attributes: vec![Attribute::key_length(256)],
            ..Transform::new(TransformType::Encryption, 28)
        };
        let aes_without_key_length = Transform::new(TransformType::Encryption, 12);
        let mut aes_with_extra = encryption_transform(Encryption::AesCbc(256));
        aes_with_extra.attributes.push(Attribute::key_length(1));
        let addke = Transform::new(TransformType::AdditionalKeyExchange(0), 0x7fff);
        let prf_with_attribute = Transform {
            attributes: vec![Attribute::key_length(128)],
            ..Transform::new(TransformType::Prf, 5)
        };
        let esn = Transform::new(TransformType::Esn, 0);
        let odd = [
            chacha,
            aes_without_key_length,
            aes_with_extra,
            addke,
            prf_with_attribute,
            esn,
        ];
        wire.transforms.extend(odd.iter().cloned());
        let back = wire.ike_transforms().unwrap();
        assert_eq!(
            back.supported,
            parse_ike("aes128-sha256-ecp256", false).unwrap()
        );
        assert_eq!(back.unsupported, odd);
    }

    #[test]
    fn sa_payload_numbers_proposals_in_order() {
        let configured: Vec<_> = DEFAULT_IKE
            .iter()
            .map(|t| parse_ike(t, false).unwrap())
            .collect();
        let sa = SecurityAssociation::from_ike_proposals(&configured, Some(7)).unwrap();
        let numbers: Vec<_> = sa.proposals.iter().map(|p| p.number).collect();
        assert_eq!(numbers, [1, 2]);
        assert_eq!(sa.proposals[0].spi_u64(), Some(7));
        let esp = parse_esp("aes256-sha256", false).unwrap();
        assert!(SecurityAssociation::from_esp_proposals(&vec![esp; 256], 1).is_err());
    }
}
