//! The peer rekeys the IKE SA (RFC 7296 section 2.18): a CREATE_CHILD_SA carrying an IKE
//! proposal, a nonce and a key exchange. We answer, move every Child SA to the new IKE SA
//! and keep the old one, retired, until the peer deletes it (or for a minute at most).
//! Starting an IKE rekey ourselves is not done yet.

use std::time::{Duration, Instant};

use crate::ike::codec::{
    KeyExchange as KePayload, Nonce, Notify, NotifyType, Payload, PayloadLookup, Proposal,
    SecurityAssociation,
};
use crate::ike::crypto::{random, IkeSuite, KeyExchange, SkCiphers};
use crate::ike::select::select_ike;
use crate::proposal::IkeProposal;

use super::events::Event;
use super::sa::{IkeSa, Phase};
use super::Engine;

/// How long a replaced IKE SA waits for the peer's Delete.
pub const RETIRED_FOR: Duration = Duration::from_secs(60);

impl Engine {
    pub(super) fn answer_ike_rekey(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        offer: &SecurityAssociation,
        payloads: &[Payload],
    ) -> Result<Vec<Payload>, Notify> {
        let refuse = |t: NotifyType| Notify::new(t, Vec::new());
        let conn = (self.connection(&sa.connection).cloned())
            .ok_or_else(|| refuse(NotifyType::NoAdditionalSas))?;
        let (Some(nonce_i), Some(ke), Some(old_keys)) =
            (payloads.nonce(), payloads.key_exchange(), sa.keys.as_ref())
        else {
            return Err(refuse(NotifyType::InvalidSyntax));
        };
        if sa.retired_at.is_some() || sa.pending_rekey.is_some() || sa.outstanding.is_some() {
            // One rekey at a time; the peer tries again (section 2.25).
            return Err(refuse(NotifyType::TemporaryFailure));
        }
        let offered: Vec<(u8, u64, IkeProposal)> = (offer.proposals.iter())
            .filter_map(|p| Some((p.number, p.spi_u64()?, p.ike_transforms()?.supported)))
            .collect();
        let list: Vec<IkeProposal> = offered.iter().map(|(_, _, p)| p.clone()).collect();
        let Some((index, choice)) = select_ike(&conn.config.proposals, &list) else {
            return Err(refuse(NotifyType::NoProposalChosen));
        };
        if ke.group != choice.dh.transform_id() {
            return Err(Notify::invalid_ke_payload(choice.dh.transform_id()));
        }
        let (number, spi_i, _) = offered[index];
        let internal = |_| refuse(NotifyType::NoProposalChosen);
        let kex = KeyExchange::new(choice.dh).map_err(internal)?;
        let shared = kex
            .shared_secret(&ke.data)
            .map_err(|_| refuse(NotifyType::InvalidSyntax))?;
        let spi_r = self.unique_spi().map_err(internal)?;
        let nonce_r = random::nonce().map_err(internal)?;
        let suite =
            IkeSuite::new(choice.encryption, choice.integrity, choice.prf).map_err(internal)?;
        // The rekey's initiator becomes the new IKE SA's original initiator.
        let keys = old_keys
            .rekey(
                suite,
                &shared,
                &nonce_i.data,
                &nonce_r,
                &spi_i.to_be_bytes(),
                &spi_r.to_be_bytes(),
            )
            .map_err(internal)?;
        let ciphers = SkCiphers::new(&keys, false).map_err(internal)?;
        let mut new = IkeSa::new(sa.connection.clone(), false, sa.local, sa.remote);
        new.phase = Phase::Established;
        (new.spi_i, new.spi_r) = (spi_i, spi_r);
        new.choice = Some(choice);
        new.nonce_i = nonce_i.data.clone();
        new.nonce_r = nonce_r.clone();
        new.keys = Some(keys);
        new.ciphers = Some(ciphers);
        new.udp_encap = sa.udp_encap;
        (new.local_behind_nat, new.remote_behind_nat) = (sa.local_behind_nat, sa.remote_behind_nat);
        new.established_at = Some(now);
        new.last_heard = Some(now);
        new.children = std::mem::take(&mut sa.children);
        sa.retired_at = Some(now);
        self.events.push_back(Event::IkeRekeyed {
            name: sa.connection.clone(),
            old: (sa.spi_i, sa.spi_r),
            new: (spi_i, spi_r),
        });
        self.sas.insert(spi_r, new);
        Ok(vec![
            Payload::SecurityAssociation(SecurityAssociation {
                proposals: vec![Proposal::from_ike(
                    number,
                    &choice.as_proposal(),
                    Some(spi_r),
                )],
            }),
            Payload::Nonce(Nonce { data: nonce_r }),
            Payload::KeyExchange(KePayload::new(choice.dh, kex.public_value().to_vec())),
        ])
    }
}
