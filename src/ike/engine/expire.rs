//! The kernel's word that an installed SA reached a lifetime limit (XFRM_MSG_EXPIRE): soft
//! when it is time to rekey, hard when the kernel has removed the SA. Time limits are the
//! engine's own timers too; byte and packet limits (`rekey_bytes`, `life_packets`, ...) only
//! the kernel counts, so without these reports a volume limit would end a tunnel.

use std::time::Instant;

use super::Engine;

impl Engine {
    /// The SA with `spi`, either half of one of our Child SAs, reached its soft lifetime
    /// (`hard == false`: rekey it now) or its hard one (the kernel removed it: the pair is
    /// dropped and the peer told). Unknown SPIs are ignored: the SA may be gone already.
    pub fn child_sa_expired(&mut self, now: Instant, spi: u32, hard: bool) {
        let owner = (self.sas.iter())
            .find(|(_, sa)| (sa.children.iter()).any(|c| c.spi_in == spi || c.spi_out == spi))
            .map(|(key, _)| *key);
        let Some(mut sa) = owner.and_then(|key| self.sas.remove(&key)) else {
            return;
        };
        let key = sa.local_spi();
        let rekeying = sa.pending_rekey.as_ref().map(|p| p.old_spi_in);
        if let Some(child) = (sa.children.iter_mut()).find(|c| c.spi_in == spi || c.spi_out == spi)
        {
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
        self.sas.insert(key, sa);
    }
}
