//! What a new configuration will cost before it is applied: how many certificates it makes
//! due that the running one does not, and how many of those the daily budget lets through
//! today (`reload`, `check-config`). A window typed 300 for 30 is seen before it bills.

use std::collections::BTreeMap;

use sectigo_core::config::Config;
use sectigo_core::names::ProfileName;

use crate::error::EngineError;
use crate::policy::{self, DueChange};
use crate::profile_state::Mode;
use crate::Engine;

impl Engine {
    /// What `next` makes due, against the state now, compared with this engine's
    /// configuration; with `None`, compared with nothing (every due certificate counts: what
    /// a first start would renew). Reads only the certificates inside the widest window (and
    /// the profiles under force renewal).
    pub async fn due_change(
        &self,
        next: &Config,
        against_running: bool,
    ) -> Result<BTreeMap<ProfileName, DueChange>, EngineError> {
        let now = self.clock().now();
        let book = self.book();
        let before = if against_running {
            book.policies(Mode::Live, now).await?
        } else {
            BTreeMap::new()
        };
        // As the next configuration's first cycle would see it: a force renewal switched on
        // starts a run.
        let after = book
            .policies_of(next.profiles.values(), Mode::DryRun, now)
            .await?;
        let certs = crate::cycle::candidates(&self.cycle.ledger, &[&before, &after], now).await?;
        let mut budget = BTreeMap::new();
        for p in next.profiles.values() {
            let used = self.budget().usage(&p.name).await?.used;
            let limit = p
                .max_renewals_per_day
                .unwrap_or(next.connector.renewal.max_per_day);
            budget.insert(p.name.clone(), (used, (limit > 0).then_some(limit)));
        }
        Ok(policy::due_change(&certs, &before, &after, &budget, now))
    }
}
