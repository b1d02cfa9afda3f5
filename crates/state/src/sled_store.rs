//! The sled implementation of [`Store`].
//!
//! Trees:
//! - `certs`: id → record (JSON)
//! - `by_not_after`: notAfter (sortable 8 bytes) ‖ id → (), **active** certificates only
//! - `in_flight`: id → (), certificates with a journaled billable call
//! - `deploys`: id → (), certificates whose files or deploy hook are owed
//! - `by_profile`: profile ‖ 0 ‖ id → (), every record
//! - `profiles`: name → [`ProfileState`]
//! - `outbox`: seq (8 bytes) → queued Jira update; `outbox_markers`: marker → seq
//! - `issues`: Jira issue key → [`IssueRecord`] (the workflow's journal)
//! - `csrs`: CSR SHA-256 → issue key, for every CSR an issue enrolled (or may have)
//! - `issue_work`: issue key → (), issues with an enrollment or revocation unanswered
//! - `issue_handled`: action ‖ 0 ‖ issue key → (), requests marked handled (so a poll reads
//!   only those, not every issue record)
//! - `meta`: `schema_version`, `last_cycle`, `enrollment_starts` (the Jira workflow's daily cap),
//!   `restore_unfinished` (while `state import` runs)
//!
//! Every write takes `gate` shared; a snapshot takes it alone, so it sees one moment across
//! all trees (sled's iterators alone do not).

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;

use super::{Entry, Record, Store, StoreError, StoreResult};
use sectigo_core::names::{CertId, CertName, IssueKey, ProfileName};
use sectigo_model::{
    BillingEntry, CertRecord, CertState, CycleSummary, DeclaredRecord, IssueRecord, OutboxItem,
    ProfileState,
};

pub const SCHEMA_VERSION: u32 = 1;

pub struct SledStore {
    db: sled::Db,
    certs: sled::Tree,
    by_not_after: sled::Tree,
    in_flight: sled::Tree,
    deploys: sled::Tree,
    by_profile: sled::Tree,
    profiles: sled::Tree,
    outbox: sled::Tree,
    outbox_markers: sled::Tree,
    issues: sled::Tree,
    csrs: sled::Tree,
    issue_work: sled::Tree,
    issue_handled: sled::Tree,
    meta: sled::Tree,
    /// The billing log: profile NUL time (8 bytes) request → BillingEntry.
    billing: sled::Tree,
    /// Declared certificates' records, by name.
    declared: sled::Tree,
    dir: String,
    gate: std::sync::RwLock<()>,
}

const RESTORE_UNFINISHED: &str = "restore_unfinished";

fn time_key(t: DateTime<Utc>) -> [u8; 8] {
    ((t.timestamp() as u64) ^ (1u64 << 63)).to_be_bytes()
}

/// The billing log's key: the profile's entries together, in time order.
fn billing_key(e: &BillingEntry) -> Vec<u8> {
    let mut k = e.profile.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&time_key(e.at));
    k.extend_from_slice(e.request.as_bytes());
    k
}

fn na_key(r: &CertRecord) -> Vec<u8> {
    let mut k = time_key(r.not_after).to_vec();
    k.extend_from_slice(r.id.as_bytes());
    k
}

fn profile_key(profile: &str, id: &str) -> Vec<u8> {
    let mut k = profile.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

fn decode<T: serde::de::DeserializeOwned>(key: &[u8], v: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(v).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        error: e.to_string(),
    })
}

/// A name (`N`: a profile name, an issue key) stored as a key or a value: checked as it is
/// read, as every record is.
fn name_of<N: std::str::FromStr<Err = sectigo_core::names::InvalidName>>(
    key: &[u8],
    v: &[u8],
) -> StoreResult<N> {
    let corrupt = |error: String| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        error,
    };
    std::str::from_utf8(v)
        .map_err(|e| corrupt(e.to_string()))?
        .parse()
        .map_err(|e: sectigo_core::names::InvalidName| corrupt(e.to_string()))
}

fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records serialize")
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

fn tx_err(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Db(e),
    }
}

impl SledStore {
    /// Opens (creating if needed) the state under `dir`, with at most `cache_mb` MiB of cache.
    pub fn open(dir: &Path, cache_mb: u64) -> StoreResult<SledStore> {
        Self::open_with(dir, cache_mb, false)
    }

    /// As [`SledStore::open`]; `restoring`: an unfinished `state import` is no refusal.
    pub fn open_with(dir: &Path, cache_mb: u64, restoring: bool) -> StoreResult<SledStore> {
        let d = dir.display().to_string();
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
            dir: d.clone(),
            error: sled::Error::Io(e),
        })?;
        // A process that just closed the database releases its lock from a background thread
        // a moment later: retry a lock conflict briefly (never a hang) before answering "in use".
        let mut tries = 0;
        let db = loop {
            let r = sled::Config::new()
                .path(dir.join("db"))
                .cache_capacity(cache_mb * 1024 * 1024)
                .mode(sled::Mode::LowSpace)
                // Every write that matters is flushed explicitly; no background flushes, so an
                // idle daemon has no thread waking up twice a second.
                .flush_every_ms(None)
                .open();
            match r {
                Ok(db) => break db,
                Err(sled::Error::Io(ref io))
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("lock") =>
                {
                    tries += 1;
                    if tries >= 10 {
                        return Err(StoreError::Locked { dir: d.clone() });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(other) => {
                    return Err(StoreError::Open {
                        dir: d.clone(),
                        error: other,
                    })
                }
            }
        };
        let store = SledStore {
            certs: db.open_tree("certs")?,
            by_not_after: db.open_tree("by_not_after")?,
            in_flight: db.open_tree("in_flight")?,
            deploys: db.open_tree("deploys")?,
            by_profile: db.open_tree("by_profile")?,
            profiles: db.open_tree("profiles")?,
            outbox: db.open_tree("outbox")?,
            outbox_markers: db.open_tree("outbox_markers")?,
            issues: db.open_tree("issues")?,
            csrs: db.open_tree("csrs")?,
            issue_work: db.open_tree("issue_work")?,
            issue_handled: db.open_tree("issue_handled")?,
            meta: db.open_tree("meta")?,
            billing: db.open_tree("billing")?,
            declared: db.open_tree("declared")?,
            db,
            dir: d.clone(),
            gate: std::sync::RwLock::new(()),
        };
        if !restoring && store.meta.contains_key(RESTORE_UNFINISHED)? {
            return Err(StoreError::RestoreUnfinished { dir: d });
        }
        match store.meta.get("schema_version")? {
            None => {
                store
                    .meta
                    .insert("schema_version", SCHEMA_VERSION.to_string().as_bytes())?;
                store.db.flush()?;
            }
            Some(v) => {
                let found: u32 = std::str::from_utf8(&v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                if found != SCHEMA_VERSION {
                    return Err(StoreError::Schema {
                        dir: d,
                        found,
                        expected: SCHEMA_VERSION,
                        hint: if found > SCHEMA_VERSION {
                            "it was written by a newer version; upgrade sectigo-connector"
                        } else {
                            "no migration from that version exists"
                        },
                    });
                }
            }
        }
        Ok(store)
    }

    /// Held by every write; a snapshot holds it alone.
    fn writing(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The trees whose records are not derived from others (the ones a snapshot holds).
    fn primary_trees(&self) -> [(&'static str, &sled::Tree); 7] {
        [
            ("declared certificates", &self.declared),
            ("certificates", &self.certs),
            ("issues", &self.issues),
            ("CSRs", &self.csrs),
            ("queued Jira updates", &self.outbox),
            ("delivered Jira update markers", &self.outbox_markers),
            ("profiles", &self.profiles),
        ]
    }

    fn put_tx(
        certs: &TransactionalTree,
        na: &TransactionalTree,
        inf: &TransactionalTree,
        byp: &TransactionalTree,
        dep: &TransactionalTree,
        rec: &CertRecord,
    ) -> TxResult<()> {
        if let Some(old) = certs.get(rec.id.as_bytes())? {
            let old: CertRecord =
                decode(rec.id.as_bytes(), &old).map_err(ConflictableTransactionError::Abort)?;
            na.remove(na_key(&old))?;
            inf.remove(old.id.as_bytes())?;
            byp.remove(profile_key(&old.profile, &old.id))?;
            dep.remove(old.id.as_bytes())?;
        }
        certs.insert(rec.id.as_bytes(), encode(rec))?;
        if rec.state == CertState::Active {
            na.insert(na_key(rec), &[])?;
        }
        if rec.state.is_in_flight() {
            inf.insert(rec.id.as_bytes(), &[])?;
        }
        if rec.deploy.is_some() {
            dep.insert(rec.id.as_bytes(), &[])?;
        }
        byp.insert(profile_key(&rec.profile, &rec.id), &[])?;
        Ok(())
    }

    fn put_issue_tx(
        issues: &TransactionalTree,
        csrs: &TransactionalTree,
        work: &TransactionalTree,
        handled: &TransactionalTree,
        rec: &IssueRecord,
    ) -> TxResult<()> {
        let key = rec.key.as_bytes();
        if let Some(old) = issues.get(key)? {
            let old: IssueRecord =
                decode(key, &old).map_err(ConflictableTransactionError::Abort)?;
            for h in &old.handled {
                handled.remove(profile_key(&h.action, &old.key))?;
            }
            if let Some(h) = old.held_csr() {
                if rec.held_csr() != Some(h) && csrs.get(h.as_bytes())?.as_deref() == Some(key) {
                    csrs.remove(h.as_bytes())?;
                }
            }
        }
        if let Some(h) = rec.held_csr() {
            match csrs.get(h.as_bytes())? {
                Some(other) if &*other != key => {
                    return Err(ConflictableTransactionError::Abort(StoreError::Conflict(
                        format!(
                            "the CSR is already enrolled by {}",
                            String::from_utf8_lossy(&other)
                        ),
                    )))
                }
                _ => {
                    csrs.insert(h.as_bytes(), key)?;
                }
            }
        }
        issues.insert(key, encode(rec))?;
        for h in &rec.handled {
            handled.insert(profile_key(&h.action, &rec.key), &[])?;
        }
        if rec.has_work() {
            work.insert(key, &[])?;
        } else {
            work.remove(key)?;
        }
        Ok(())
    }

    fn get_many(&self, ids: impl Iterator<Item = Vec<u8>>) -> StoreResult<Vec<CertRecord>> {
        let mut out = Vec::new();
        for id in ids {
            if let Some(v) = self.certs.get(&id)? {
                out.push(decode(&id, &v)?);
            }
        }
        Ok(out)
    }
}

impl Store for SledStore {
    fn get(&self, id: &CertId) -> StoreResult<Option<CertRecord>> {
        match self.certs.get(id.as_bytes())? {
            Some(v) => Ok(Some(decode(id.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    fn commit_all(
        &self,
        recs: &[CertRecord],
        issues: &[IssueRecord],
        outbox: &[OutboxItem],
    ) -> StoreResult<()> {
        let _w = self.writing();
        (
            &self.certs,
            &self.by_not_after,
            &self.in_flight,
            &self.by_profile,
            &self.deploys,
            &self.outbox,
            &self.outbox_markers,
            &self.issues,
            &self.csrs,
            &self.issue_work,
            &self.issue_handled,
        )
            .transaction(|(c, na, inf, byp, dep, ob, obm, is, cs, iw, ih)| {
                for r in recs {
                    Self::put_tx(c, na, inf, byp, dep, r)?;
                }
                for r in issues {
                    Self::put_issue_tx(is, cs, iw, ih, r)?;
                }
                for item in outbox {
                    if obm.get(item.marker.as_bytes())?.is_some() {
                        continue;
                    }
                    let seq = ob.generate_id()?;
                    let mut item = item.clone();
                    item.seq = seq;
                    ob.insert(&seq.to_be_bytes(), encode(&item))?;
                    obm.insert(item.marker.as_bytes(), &seq.to_be_bytes())?;
                }
                Ok(())
            })
            .map_err(tx_err)
    }

    fn issue(&self, key: &IssueKey) -> StoreResult<Option<IssueRecord>> {
        match self.issues.get(key.as_bytes())? {
            Some(v) => Ok(Some(decode(key.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    fn issue_by_csr(&self, sha256: &str) -> StoreResult<Option<IssueKey>> {
        match self.csrs.get(sha256.as_bytes())? {
            None => Ok(None),
            Some(v) => name_of(sha256.as_bytes(), &v).map(Some),
        }
    }

    fn issues_with_work(&self) -> StoreResult<Vec<IssueRecord>> {
        let mut out = Vec::new();
        for k in self.issue_work.iter().keys() {
            let k = k?;
            if let Some(v) = self.issues.get(&k)? {
                out.push(decode(&k, &v)?);
            }
        }
        Ok(out)
    }

    fn issues_handled(&self, action: &str) -> StoreResult<Vec<IssueRecord>> {
        let prefix = profile_key(action, "");
        let mut out = Vec::new();
        for k in self.issue_handled.scan_prefix(&prefix).keys() {
            let k = k?;
            let key = &k[prefix.len()..];
            if let Some(v) = self.issues.get(key)? {
                out.push(decode(key, &v)?);
            }
        }
        Ok(out)
    }

    fn issues(&self) -> StoreResult<Vec<IssueRecord>> {
        let mut out = Vec::new();
        for kv in self.issues.iter() {
            let (k, v) = kv?;
            out.push(decode(&k, &v)?);
        }
        Ok(out)
    }

    fn outbox(&self, limit: usize) -> StoreResult<Vec<OutboxItem>> {
        let mut out = Vec::new();
        for kv in self.outbox.iter().take(limit) {
            let (k, v) = kv?;
            out.push(decode(&k, &v)?);
        }
        Ok(out)
    }

    fn update_outbox(&self, item: &OutboxItem) -> StoreResult<()> {
        let _w = self.writing();
        let key = item.seq.to_be_bytes();
        if self.outbox.contains_key(key)? {
            self.outbox.insert(key, encode(item))?;
        }
        Ok(())
    }

    fn remove_outbox(&self, seq: u64) -> StoreResult<()> {
        let _w = self.writing();
        self.outbox.remove(seq.to_be_bytes())?;
        Ok(())
    }

    fn outbox_stats(&self) -> StoreResult<(usize, Option<DateTime<Utc>>, usize)> {
        let (mut pending, mut oldest, mut dead) = (0, None, 0);
        for kv in self.outbox.iter() {
            let (k, v) = kv?;
            let item: OutboxItem = decode(&k, &v)?;
            if item.dead.is_some() {
                dead += 1;
            } else {
                pending += 1;
                oldest = Some(oldest.map_or(item.created, |o: DateTime<Utc>| o.min(item.created)));
            }
        }
        Ok((pending, oldest, dead))
    }

    fn remove(&self, id: &CertId) -> StoreResult<Option<CertRecord>> {
        let _w = self.writing();
        (
            &self.certs,
            &self.by_not_after,
            &self.in_flight,
            &self.by_profile,
            &self.deploys,
        )
            .transaction(|(c, na, inf, byp, dep)| {
                let Some(old) = c.remove(id.as_bytes())? else {
                    return Ok(None);
                };
                let old: CertRecord =
                    decode(id.as_bytes(), &old).map_err(ConflictableTransactionError::Abort)?;
                na.remove(na_key(&old))?;
                inf.remove(id.as_bytes())?;
                byp.remove(profile_key(&old.profile, id))?;
                dep.remove(id.as_bytes())?;
                Ok(Some(old))
            })
            .map_err(tx_err)
    }

    fn active_expiring_before(&self, before: DateTime<Utc>) -> StoreResult<Vec<CertRecord>> {
        let end = time_key(before);
        let ids = self.by_not_after.range(..end.to_vec()).keys();
        let mut keys = Vec::new();
        for k in ids {
            keys.push(k?[8..].to_vec());
        }
        self.get_many(keys.into_iter())
    }

    fn deploys_owed(&self) -> StoreResult<Vec<CertRecord>> {
        let mut keys = Vec::new();
        for k in self.deploys.iter().keys() {
            keys.push(k?.to_vec());
        }
        self.get_many(keys.into_iter())
    }

    fn in_flight(&self) -> StoreResult<Vec<CertRecord>> {
        let mut keys = Vec::new();
        for k in self.in_flight.iter().keys() {
            keys.push(k?.to_vec());
        }
        self.get_many(keys.into_iter())
    }

    fn by_profile(&self, profile: &ProfileName) -> StoreResult<Vec<CertRecord>> {
        let mut prefix = profile.as_bytes().to_vec();
        prefix.push(0);
        let mut keys = Vec::new();
        for k in self.by_profile.scan_prefix(&prefix).keys() {
            keys.push(k?[prefix.len()..].to_vec());
        }
        self.get_many(keys.into_iter())
    }

    fn scan(&self, f: &mut dyn FnMut(CertRecord) -> bool) -> StoreResult<()> {
        for kv in self.certs.iter() {
            let (k, v) = kv?;
            if !f(decode(&k, &v)?) {
                break;
            }
        }
        Ok(())
    }

    fn len(&self) -> StoreResult<usize> {
        Ok(self.certs.len())
    }

    fn profile_state(&self, name: &ProfileName) -> StoreResult<Option<ProfileState>> {
        match self.profiles.get(name.as_bytes())? {
            Some(v) => Ok(Some(decode(name.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    fn put_profile_state(&self, name: &ProfileName, st: &ProfileState) -> StoreResult<()> {
        let _w = self.writing();
        self.profiles.insert(name.as_bytes(), encode(st))?;
        Ok(())
    }

    fn profile_states(&self) -> StoreResult<BTreeMap<ProfileName, ProfileState>> {
        let mut out = BTreeMap::new();
        for kv in self.profiles.iter() {
            let (k, v) = kv?;
            out.insert(name_of(&k, &k)?, decode(&k, &v)?);
        }
        Ok(out)
    }

    fn rename_profile(&self, old: &ProfileName, new: &ProfileName) -> StoreResult<usize> {
        let _w = self.writing();
        let recs = self.by_profile(old)?;
        (
            &self.certs,
            &self.by_not_after,
            &self.in_flight,
            &self.by_profile,
            &self.deploys,
            &self.profiles,
        )
            .transaction(|(c, na, inf, byp, dep, prof)| {
                if prof.get(new.as_bytes())?.is_some() {
                    return Err(ConflictableTransactionError::Abort(StoreError::Conflict(
                        format!("the state already has a profile named {new:?}"),
                    )));
                }
                if let Some(st) = prof.remove(old.as_bytes())? {
                    prof.insert(new.as_bytes(), st)?;
                }
                for r in &recs {
                    let mut r = r.clone();
                    r.profile = new.clone();
                    Self::put_tx(c, na, inf, byp, dep, &r)?;
                }
                Ok(recs.len())
            })
            .map_err(tx_err)
    }

    fn merge_profile(&self, old: &ProfileName, new: &ProfileName) -> StoreResult<usize> {
        let _w = self.writing();
        let recs = self.by_profile(old)?;
        (
            &self.certs,
            &self.by_not_after,
            &self.in_flight,
            &self.by_profile,
            &self.deploys,
            &self.profiles,
        )
            .transaction(|(c, na, inf, byp, dep, prof)| {
                if let Some(st) = prof.remove(old.as_bytes())? {
                    if prof.get(new.as_bytes())?.is_none() {
                        prof.insert(new.as_bytes(), st)?;
                    }
                }
                for r in &recs {
                    let mut r = r.clone();
                    r.profile = new.clone();
                    Self::put_tx(c, na, inf, byp, dep, &r)?;
                }
                Ok(recs.len())
            })
            .map_err(tx_err)
    }

    fn last_cycle(&self) -> StoreResult<Option<CycleSummary>> {
        match self.meta.get("last_cycle")? {
            Some(v) => Ok(Some(decode(b"last_cycle", &v)?)),
            None => Ok(None),
        }
    }

    fn put_last_cycle(&self, c: &CycleSummary) -> StoreResult<()> {
        let _w = self.writing();
        self.meta.insert("last_cycle", encode(c))?;
        Ok(())
    }

    fn enrollment_starts(&self) -> StoreResult<Vec<DateTime<Utc>>> {
        match self.meta.get("enrollment_starts")? {
            Some(v) => decode(b"enrollment_starts", &v),
            None => Ok(Vec::new()),
        }
    }

    fn put_enrollment_starts(&self, starts: &[DateTime<Utc>]) -> StoreResult<()> {
        let _w = self.writing();
        self.meta.insert("enrollment_starts", encode(&starts))?;
        Ok(())
    }

    fn record_billing(&self, e: &BillingEntry) -> StoreResult<()> {
        let _w = self.writing();
        self.billing.insert(billing_key(e), encode(e))?;
        Ok(())
    }

    fn billing_since(
        &self,
        profile: &ProfileName,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<DateTime<Utc>>> {
        let mut start = profile.as_bytes().to_vec();
        start.push(0);
        let mut end = start.clone();
        *end.last_mut().expect("not empty") = 1;
        start.extend_from_slice(&time_key(since));
        let mut out = Vec::new();
        for kv in self.billing.range(start..end) {
            let (k, v) = kv?;
            let e: BillingEntry = decode(&k, &v)?;
            out.push(e.at);
        }
        Ok(out)
    }

    fn prune_billing(&self, before: DateTime<Utc>) -> StoreResult<usize> {
        let _w = self.writing();
        let mut n = 0;
        for kv in self.billing.iter() {
            let (k, v) = kv?;
            let e: BillingEntry = decode(&k, &v)?;
            if e.at < before {
                self.billing.remove(k)?;
                n += 1;
            }
        }
        Ok(n)
    }

    fn flush(&self) -> StoreResult<()> {
        self.db.flush()?;
        Ok(())
    }

    fn declared_records(&self) -> StoreResult<Vec<DeclaredRecord>> {
        self.declared
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                decode(&k, &v)
            })
            .collect()
    }

    fn declared_record(&self, name: &CertName) -> StoreResult<Option<DeclaredRecord>> {
        match self.declared.get(name.as_bytes())? {
            Some(v) => Ok(Some(decode(name.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    fn commit_declared(
        &self,
        recs: &[CertRecord],
        declared: &[DeclaredRecord],
        drop: &[CertName],
        outbox: &[OutboxItem],
    ) -> StoreResult<()> {
        let _w = self.writing();
        (
            &self.certs,
            &self.by_not_after,
            &self.in_flight,
            &self.by_profile,
            &self.deploys,
            &self.outbox,
            &self.outbox_markers,
            &self.declared,
        )
            .transaction(|(c, na, inf, byp, dep, ob, obm, decl)| {
                for r in recs {
                    Self::put_tx(c, na, inf, byp, dep, r)?;
                }
                for d in declared {
                    decl.insert(d.name.as_bytes(), encode(d))?;
                }
                for n in drop {
                    decl.remove(n.as_bytes())?;
                }
                for item in outbox {
                    if obm.get(item.marker.as_bytes())?.is_some() {
                        continue;
                    }
                    let seq = ob.generate_id()?;
                    let mut item = item.clone();
                    item.seq = seq;
                    ob.insert(&seq.to_be_bytes(), encode(&item))?;
                    obm.insert(item.marker.as_bytes(), &seq.to_be_bytes())?;
                }
                Ok(())
            })
            .map_err(tx_err)
    }

    fn snapshot(&self, f: &mut dyn FnMut(Entry<'_>) -> StoreResult<()>) -> StoreResult<()> {
        let _alone = self.gate.write().unwrap_or_else(|p| p.into_inner());
        let text = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
        for kv in self.certs.iter() {
            f(Entry::Cert(&kv?.1))?;
        }
        for kv in self.profiles.iter() {
            let (k, v) = kv?;
            f(Entry::Profile {
                name: &text(&k),
                state: &v,
            })?;
        }
        for kv in self.issues.iter() {
            f(Entry::Issue(&kv?.1))?;
        }
        for kv in self.csrs.iter() {
            let (k, v) = kv?;
            f(Entry::Csr {
                sha256: &text(&k),
                issue: &text(&v),
            })?;
        }
        for kv in self.outbox.iter() {
            f(Entry::Outbox(&kv?.1))?;
        }
        for kv in self.outbox_markers.iter() {
            let (k, v) = kv?;
            let seq = <[u8; 8]>::try_from(&*v)
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt {
                    key: text(&k),
                    error: "a marker's sequence number is not 8 bytes".into(),
                })?;
            f(Entry::Marker {
                marker: &text(&k),
                seq,
            })?;
        }
        if let Some(v) = self.meta.get("last_cycle")? {
            f(Entry::LastCycle(&v))?;
        }
        if let Some(v) = self.meta.get("enrollment_starts")? {
            f(Entry::EnrollmentStarts(&v))?;
        }
        for kv in self.billing.iter() {
            f(Entry::Billing(&kv?.1))?;
        }
        for kv in self.declared.iter() {
            f(Entry::Declared(&kv?.1))?;
        }
        f(Entry::Done)
    }

    fn begin_restore(&self) -> StoreResult<()> {
        let _w = self.writing();
        if self.meta.contains_key(RESTORE_UNFINISHED)? {
            // What an unfinished restore wrote: the state held nothing before it began.
            for t in [
                &self.certs,
                &self.by_not_after,
                &self.in_flight,
                &self.deploys,
                &self.by_profile,
                &self.profiles,
                &self.outbox,
                &self.outbox_markers,
                &self.issues,
                &self.csrs,
                &self.issue_work,
                &self.issue_handled,
                &self.billing,
                &self.declared,
            ] {
                t.clear()?;
            }
        } else {
            let held = self.holds()?;
            if !held.is_empty() {
                return Err(StoreError::Conflict(format!(
                    "the state in {} is not empty (it holds {}); an import goes only into an empty state: stop the daemon and move its db/ (and keys/) away first",
                    self.dir,
                    held.join(", ")
                )));
            }
            // A state that tracks nothing may still remember profiles, a last cycle and a
            // billing log: the import's take their place.
            self.profiles.clear()?;
            self.billing.clear()?;
        }
        self.meta.remove("last_cycle")?;
        self.meta.remove("enrollment_starts")?;
        self.meta.insert(RESTORE_UNFINISHED, &[])?;
        self.db.flush()?;
        Ok(())
    }

    fn restore(&self, recs: Vec<Record>) -> StoreResult<()> {
        let _w = self.writing();
        for r in &recs {
            if let Record::Billing(e) = r {
                self.billing.insert(billing_key(e), encode(&**e))?;
            }
            if let Record::Declared(d) = r {
                self.declared.insert(d.name.as_bytes(), encode(&**d))?;
            }
        }
        let max_seq = recs
            .iter()
            .filter_map(|r| match r {
                Record::Outbox(item) => Some(item.seq),
                Record::Marker { seq, .. } => Some(*seq),
                _ => None,
            })
            .max();
        (
            &self.certs,
            &self.by_not_after,
            &self.in_flight,
            &self.by_profile,
            &self.deploys,
            &self.outbox,
            &self.outbox_markers,
            &self.issues,
            &self.csrs,
            &self.issue_work,
            &self.issue_handled,
            &self.profiles,
            &self.meta,
        )
            .transaction(
                |(c, na, inf, byp, dep, ob, obm, is, cs, iw, ih, prof, meta)| {
                    for r in &recs {
                        match r {
                            Record::Cert(rec) => Self::put_tx(c, na, inf, byp, dep, rec)?,
                            Record::Issue(rec) => Self::put_issue_tx(is, cs, iw, ih, rec)?,
                            Record::Csr { sha256, issue } => {
                                cs.insert(sha256.as_bytes(), issue.as_bytes())?;
                            }
                            Record::Outbox(item) => {
                                ob.insert(&item.seq.to_be_bytes(), encode(&**item))?;
                                obm.insert(item.marker.as_bytes(), &item.seq.to_be_bytes())?;
                            }
                            Record::Marker { marker, seq } => {
                                obm.insert(marker.as_bytes(), &seq.to_be_bytes())?;
                            }
                            Record::Profile { name, state } => {
                                prof.insert(name.as_bytes(), encode(state))?;
                            }
                            Record::LastCycle(c) => {
                                meta.insert("last_cycle", encode(c))?;
                            }
                            Record::EnrollmentStarts(s) => {
                                meta.insert("enrollment_starts", encode(s))?;
                            }
                            // Written before the transaction (their own trees).
                            Record::Billing(_) | Record::Declared(_) => {}
                        }
                    }
                    Ok(())
                },
            )
            .map_err(tx_err)?;
        // Updates queued from now on are numbered after the restored ones (delivery order).
        if let Some(max) = max_seq {
            while self.db.generate_id()? <= max {}
        }
        Ok(())
    }

    fn holds(&self) -> StoreResult<Vec<String>> {
        Ok(self
            .primary_trees()
            .iter()
            .filter(|(what, t)| *what != "profiles" && !t.is_empty())
            .map(|(what, t)| format!("{} {what}", t.len()))
            .collect())
    }

    fn restore_unfinished(&self) -> StoreResult<bool> {
        Ok(self.meta.contains_key(RESTORE_UNFINISHED)?)
    }

    fn finish_restore(&self) -> StoreResult<()> {
        let _w = self.writing();
        self.meta.remove(RESTORE_UNFINISHED)?;
        self.db.flush()?;
        Ok(())
    }
}
