//! The renewal engine. One [`Engine`] per configuration is made of small parts, each with
//! what it needs and nothing else, composed here:
//!
//! - [`cycle::Cycle`]: a renewal cycle (collect, decide, renew, collect) and the recovery a
//!   start begins with;
//! - [`renew::Renewer`]: one renewal, the billable call journaled before and after;
//! - [`collect::Collector`]: renewals SCM accepted, collected once issued;
//! - [`deploy::Deployer`]: a certificate's files and its hook;
//! - [`enroll::Enroller`]: one enrollment, journaled, and its collection;
//! - [`requests::Requests`]: what Jira issues ask for (enroll, renew, revoke);
//! - [`declared::DeclaredBook`]: certificates declared in `certificates.d/` (enrolled,
//!   replaced, revoked; its pure [`declared::plan`]);
//! - [`settle::Settler`]: unknown outcomes settled after the operator checked SCM;
//! - [`import::Importer`], [`operator::Operator`], [`profile_state::ProfileBook`]: onboarding,
//!   the operator's other changes, the profiles as the state remembers them.
//!
//! Under them: the pure [`policy`] (what is due, when to retry), the ledger (the one way to the
//! state: store, clock, events), the SCM clients and the claims that keep two tasks off one
//! certificate. Imports inside the crate point down this list; none points back here.
//! [`safe_fs`]: files in directories another user may control, never through a link.

pub mod budget;
pub mod clients;
pub mod collect;
mod cost;
pub mod cycle;
pub mod declared;
pub mod deploy;
pub mod discover;
pub mod enroll;
pub mod error;
pub mod import;
pub mod inventory;
mod journal;
mod ledger;
pub mod notify;
pub mod operator;
pub mod policy;
pub mod prebill;
pub mod profile_state;
pub mod renew;
pub mod requests;
pub mod restore;
pub mod safe_fs;
pub mod settings;
pub mod settle;
pub mod settle_auto;
pub mod shared;

use std::sync::Arc;

use sectigo_core::clock::SharedClock;
use sectigo_core::config::Config;
use sectigo_state::{KeyStore, SharedStore};

pub use budget::{Budget, Ticket, Usage};
pub use clients::ScmClients;
pub use collect::{CollectReport, Collector};
pub use cycle::{Cycle, CycleReport, Planned};
pub use declared::{Action, ApplyReport, Consent, DeclaredBook, PlanItem};
pub use deploy::Deployer;
pub use enroll::Enroller;
pub use error::EngineError;
pub use import::{parse_import_lines, ImportLine, ImportSummary, Importer};
pub use inventory::{Inventory, Problem, ProfileCounts, Visit};
pub use operator::{Operator, Renamed, Snapshot};
pub use policy::{Decision, Reason};
pub use profile_state::{Mode, ProfileBook};
pub use renew::{RenewFailure, RenewOutcome, Renewer, Skip};
pub use requests::{IssueOutcome, NotTheIssues, Requests};
pub use settings::{Profiles, RequestLimits, Tuning};
pub use settle::{Finding, Resolved, Settler, Target};
pub use shared::{Counters, Shared};

/// The engine of one configuration: its parts, built over one store, one clock and what
/// outlives the configuration ([`Shared`]).
pub struct Engine {
    shared: Shared,
    ledger: ledger::Ledger,
    scm: ScmClients,
    book: ProfileBook,
    cycle: Cycle,
    renewer: Renewer,
    collector: Collector,
    deployer: Deployer,
    requests: Requests,
    settler: Settler,
    importer: Importer,
    operator: Operator,
    budget: Budget,
    declared: DeclaredBook,
}

impl Engine {
    /// Builds the engine of `cfg` and one SCM client per profile.
    pub fn new(
        cfg: &Config,
        store: SharedStore,
        shared: Shared,
        clock: SharedClock,
    ) -> Result<Engine, EngineError> {
        shared.notifier.set(cfg.connector.notify.clone());
        let scm = ScmClients::new(cfg, shared.limits.clone(), clock.clone())?;
        let ledger = ledger::Ledger::new(
            store,
            clock,
            shared.notifier.clone(),
            cfg.connector.jira.is_some(),
            shared.outbox.clone(),
        );
        let profiles: Profiles = Arc::new(cfg.profiles.clone());
        let tuning = Tuning::of(cfg);
        let keys = Arc::new(KeyStore::new(&cfg.connector.state.dir));
        let counters = shared.counters.clone();
        let claims = shared.claims.clone();
        let book = ProfileBook {
            ledger: ledger.clone(),
            profiles: profiles.clone(),
        };
        let deployer = Deployer {
            ledger: ledger.clone(),
            scm: scm.clone(),
            claims: claims.clone(),
            keys: keys.clone(),
            profiles: profiles.clone(),
            declared: Arc::new(cfg.declared.clone()),
            hook_helper: shared.hook_helper.clone(),
            counters: counters.clone(),
        };
        let budget = Budget {
            ledger: ledger.clone(),
            profiles: profiles.clone(),
            default_limit: cfg.connector.renewal.max_per_day,
            windows: shared.budget.clone(),
        };
        let settler = Settler {
            ledger: ledger.clone(),
            scm: scm.clone(),
            claims: claims.clone(),
            deployer: deployer.clone(),
        };
        let renewer = Renewer {
            ledger: ledger.clone(),
            scm: scm.clone(),
            claims: claims.clone(),
            keys: keys.clone(),
            profiles: profiles.clone(),
            tuning: tuning.clone(),
            counters: counters.clone(),
            budget: budget.clone(),
            refused: shared.refused.clone(),
            prebill: prebill::PreBill {
                ledger: ledger.clone(),
                scm: scm.clone(),
                settler: settler.clone(),
            },
            declared: deployer.declared.clone(),
        };
        let collector = Collector {
            ledger: ledger.clone(),
            scm: scm.clone(),
            claims: claims.clone(),
            deployer: deployer.clone(),
            tuning: tuning.clone(),
            counters: counters.clone(),
        };
        let enroller = Enroller {
            ledger: ledger.clone(),
            scm: scm.clone(),
            deployer: deployer.clone(),
            tuning: tuning.clone(),
            counters,
            budget: budget.clone(),
            keys: keys.clone(),
        };
        let declared = DeclaredBook {
            ledger: ledger.clone(),
            scm: scm.clone(),
            profiles: profiles.clone(),
            declared: deployer.declared.clone(),
            enroller: enroller.clone(),
            budget: budget.clone(),
            book: book.clone(),
            claims: claims.clone(),
        };
        Ok(Engine {
            cycle: Cycle {
                declared: declared.clone(),
                ledger: ledger.clone(),
                renewer: renewer.clone(),
                collector: collector.clone(),
                book: book.clone(),
                tuning: tuning.clone(),
                budget: budget.clone(),
                shared: shared.clone(),
                settle: settle_auto::AutoSettle {
                    ledger: ledger.clone(),
                    scm: scm.clone(),
                    claims: claims.clone(),
                    settler: settler.clone(),
                    settle_after: chrono::Duration::minutes(
                        cfg.connector.renewal.settle_after_minutes as i64,
                    ),
                },
            },
            requests: Requests {
                ledger: ledger.clone(),
                claims: claims.clone(),
                scm: scm.clone(),
                profiles: profiles.clone(),
                limits: RequestLimits::of(cfg),
                renewer: renewer.clone(),
                enroller,
            },
            settler,
            importer: Importer {
                ledger: ledger.clone(),
                scm: scm.clone(),
                profiles,
                tuning,
            },
            operator: Operator {
                ledger: ledger.clone(),
                keys,
                state_dir: cfg.connector.state.dir.clone(),
            },
            shared,
            ledger,
            scm,
            budget,
            declared,
            book,
            renewer,
            collector,
            deployer,
        })
    }

    /// Reads the journal a previous run left (renewals and enrollments whose billable call's
    /// answer was never recorded are unknown outcomes), before anything new is done. Returns
    /// how many it found.
    pub async fn recover(&self) -> Result<usize, EngineError> {
        let n = self.cycle.recover().await? + self.requests.enroller.recover().await?;
        Ok(n)
    }

    /// How many renewals are in flight (journaled, or accepted and not collected yet).
    pub async fn in_flight(&self) -> Result<u64, EngineError> {
        let n = self.ledger.read(|s| s.in_flight()).await?.len();
        Ok(n as u64)
    }

    /// The inventory summary now (see [`inventory::summarize`]).
    pub async fn inventory<V: Visit>(&self, visit: V) -> Result<(Inventory, V), EngineError> {
        inventory::summarize(&self.ledger, &self.book, visit).await
    }

    /// Asks the profile's token endpoint for a token (free): what a dry run can prove about
    /// the credentials without a billable call.
    pub async fn check_token(
        &self,
        profile: &sectigo_core::names::ProfileName,
    ) -> Result<(), EngineError> {
        self.scm.get(profile)?.reserve().await?;
        Ok(())
    }

    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    pub fn clock(&self) -> &SharedClock {
        self.ledger.clock()
    }

    pub fn store(&self) -> &SharedStore {
        self.ledger.store()
    }

    pub fn profiles(&self) -> &Profiles {
        self.book.profiles()
    }

    pub fn scm(&self) -> &ScmClients {
        &self.scm
    }

    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    pub fn book(&self) -> &ProfileBook {
        &self.book
    }

    pub fn cycle(&self) -> &Cycle {
        &self.cycle
    }

    pub fn renewer(&self) -> &Renewer {
        &self.renewer
    }

    pub fn collector(&self) -> &Collector {
        &self.collector
    }

    pub fn deployer(&self) -> &Deployer {
        &self.deployer
    }

    pub fn requests(&self) -> &Requests {
        &self.requests
    }

    pub fn settler(&self) -> &Settler {
        &self.settler
    }

    pub fn importer(&self) -> &Importer {
        &self.importer
    }

    pub fn operator(&self) -> &Operator {
        &self.operator
    }

    /// The certificates declared in `certificates.d/`.
    pub fn declared(&self) -> &DeclaredBook {
        &self.declared
    }
}

/// Explains a decision to an operator.
pub fn explain(d: &Decision) -> String {
    use sectigo_core::text::ts;
    match d {
        Decision::Renew { reason, .. } => match reason {
            Reason::Window => "renew now: inside the expiry window".into(),
            Reason::Forced => "renew now: the profile's force renewal covers it".into(),
            Reason::Requested => "renew now: asked for from its Jira issue".into(),
            Reason::Operator => "renew now: asked for by the operator".into(),
        },
        Decision::Backoff { until } => {
            format!("renew at {}: waiting after a failed attempt", ts(*until))
        }
        Decision::NotDue { at } => {
            format!("renew at {}: when the expiry window opens", ts(*at))
        }
        Decision::ReportNoAutoRenew { .. } => {
            "report: due, but the profile has auto_renew = false".into()
        }
        Decision::Reported => "none: due, but the profile has auto_renew = false (reported)".into(),
        Decision::Idle { why } => format!("none: {why}"),
    }
}
