//! `on_sa_loss = "withdraw"`: which tunnels the dataplane takes down for lack of CHILD SAs.
//! The set is an input of the plan (and recorded in the state file), so the daemon's next
//! apply, a reload or a CLI `apply` plan the same routes instead of fighting each other.

use std::collections::BTreeSet;

use super::sas::Installed;
use crate::model::{OnSaLoss, Tunnel};

/// The enabled tunnels with on_sa_loss = "withdraw" that hold no installed SA. Others are
/// left out: their plan does not depend on SAs, so it stays as it is.
pub fn without_sas(
    tunnels: &[Tunnel],
    enabled: &BTreeSet<String>,
    installed: &Installed,
) -> BTreeSet<String> {
    (tunnels.iter())
        .filter(|t| t.on_sa_loss == OnSaLoss::Withdraw && enabled.contains(&t.name))
        .filter(|t| !installed.holds_sas(&t.name))
        .map(|t| t.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{self, Options};

    #[test]
    fn only_enabled_tunnels_that_withdraw_count() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
        let tunnels = profile::load(&[dir], Options::default()).tunnels.unwrap();
        let all: BTreeSet<String> = tunnels.iter().map(|t| t.name.clone()).collect();
        let none = Installed::default();
        // The examples: the cloud pairs withdraw, every other keeps (the default).
        let pairs = [
            "bgp-cloud-1",
            "bgp-cloud-2",
            "cloud-backup",
            "cloud-primary",
        ];
        let pairs = BTreeSet::from(pairs.map(String::from));
        assert_eq!(without_sas(&tunnels, &all, &none), pairs);
        let enabled = BTreeSet::from(["cloud-primary".to_string(), "net-to-net".to_string()]);
        let primary = BTreeSet::from(["cloud-primary".to_string()]);
        assert_eq!(without_sas(&tunnels, &enabled, &none), primary);
    }
}
