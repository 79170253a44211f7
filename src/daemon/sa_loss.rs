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
