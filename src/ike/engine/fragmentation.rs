//! IKE fragmentation (RFC 7383) in the engine: negotiated in IKE_SA_INIT with
//! IKEV2_FRAGMENTATION_SUPPORTED; our protected messages longer than `fragment_size`
//! allows go out as SKF fragments (`protect::seal`, all of them again on retransmission);
//! the peer's fragments are checked and decrypted one by one before they are kept
//! (section 2.6), then reassembled by the codec's [`Reassembler`].

use crate::ike::codec::{Message, Notify, NotifyType, Reassembler, Reassembly, ReassemblyLimits};

use super::protect;
use super::sa::{IkeSa, State};
use super::Engine;

/// IKEV2_FRAGMENTATION_SUPPORTED, which both IKE_SA_INIT messages carry.
pub(super) fn supported() -> Notify {
    Notify::new(NotifyType::Ikev2FragmentationSupported, Vec::new())
}

impl Engine {
    /// One fragment of the peer's message (`message` has an SKF payload). True once the
    /// message is whole: its payloads then wait in `sa.reassembled` for the handler. False
    /// for a fragment that is forged, unexpected, a duplicate, or not the last one missing.
    pub(super) fn collect_fragment(
        &mut self,
        sa: &mut IkeSa,
        message: &Message,
        bytes: &[u8],
    ) -> bool {
        let h = message.header;
        let answered = (!h.flags.response)
            .then_some(sa.last_response.as_ref())
            .flatten()
            .filter(|(id, _)| *id == h.message_id);
        let awaited = if h.flags.response {
            sa.outstanding.as_ref().map(|o| o.message_id) == Some(h.message_id)
        } else {
            h.message_id == sa.expected_request_id
        };
        // Nothing is decrypted for a message we would not take anyway.
        if !(awaited || answered.is_some()) {
            return false;
        }
        // A request answered just before an IKE_INTERMEDIATE changed the keys came under
        // the old ones.
        let answered_under = match &mut sa.state {
            State::Auth(auth) => (auth.intermediate.answered_under.as_mut())
                .filter(|(id, _)| answered.is_some() && *id == h.message_id)
                .map(|(_, ciphers)| ciphers),
            _ => None,
        };
        let current = answered_under.or(sa.ciphers.as_mut());
        let Some(ciphers) = current.filter(|_| sa.fragmentation) else {
            return false;
        };
        let Ok((skf, plaintext)) = protect::open_fragment(ciphers, message, bytes) else {
            return false;
        };
        if let Some((_, response)) = answered {
            // A retransmitted request: answered again once, on its first fragment, not
            // once per fragment (section 2.6.1).
            if skf.fragment_number == 1 {
                let again = super::transmits(sa.local, sa.remote, response);
                self.transmits.extend(again);
            }
            return false;
        }
        let reassembler = match &mut sa.reassembly {
            Some(r) if r.message_id() == h.message_id => r,
            other => other.insert(Reassembler::new(h.message_id, ReassemblyLimits::default())),
        };
        let Reassembly::Complete {
            first_payload,
            plaintext,
        } = reassembler.add(h.message_id, skf, plaintext)
        else {
            return false;
        };
        sa.reassembly = None;
        match protect::Opened::decode(first_payload, plaintext) {
            Ok(opened) => {
                sa.reassembled = Some((h.message_id, opened));
                true
            }
            Err(_) => false,
        }
    }
}
