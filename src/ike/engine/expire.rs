//! The kernel's word that an installed SA reached a lifetime limit (XFRM_MSG_EXPIRE): soft
//! when it is time to rekey, hard when the kernel has removed the SA. Time limits are the
//! engine's own timers too; byte and packet limits (`rekey_bytes`, `life_packets`, ...) only
//! the kernel counts, so without these reports a volume limit would end a tunnel.

use std::net::IpAddr;
use std::time::Instant;

use super::sa::{ChildSa, IkeSa};
use super::Engine;

impl Engine {
    /// The SA to `destination` with `spi`, either half of one of our Child SAs, reached
    /// its soft lifetime (`hard == false`: rekey it now) or its hard one (the kernel removed
    /// it: the pair is dropped and the peer told). Unknown SAs are ignored: they may be gone
    /// already, or not ours.
    pub fn child_sa_expired(&mut self, now: Instant, destination: IpAddr, spi: u32, hard: bool) {
        // An SPI names an SA only together with its destination: us inbound, the peer out.
        let names = |sa: &IkeSa, c: &ChildSa| {
            (c.spi_in == spi && sa.local.ip() == destination)
                || (c.spi_out == spi && sa.remote.ip() == destination)
        };
        let owner = (self.sas.iter())
            .find(|(_, sa)| sa.children.iter().any(|c| names(sa, c)))
            .map(|(key, _)| *key);
        let Some(mut sa) = owner.and_then(|key| self.sas.remove(&key)) else {
            return;
        };
        let rekeying = sa.pending_rekey.as_ref().and_then(|p| p.replaces);
        let index = sa.children.iter().position(|c| names(&sa, c));
        if let Some(child) = index.and_then(|i| sa.children.get_mut(i)) {
            let spi_in = child.spi_in;
            if hard {
                if child.superseded {
                    self.remove_children(&mut sa, &[spi_in]);
                } else {
                    self.delete_child_sas(now, &mut sa, vec![spi_in]);
                }
            } else if !child.superseded && rekeying != Some(spi_in) {
                child.rekey_at = Some(child.rekey_at.map_or(now, |at| at.min(now)));
                self.run_rekeys(now, &mut sa);
            }
        }
        self.put(sa);
    }
}
