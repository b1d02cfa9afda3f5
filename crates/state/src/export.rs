//! `state export` / `state import`: the whole state as JSON lines, for backup, restore and
//! moving to another machine.
//!
//! The file is a [`Header`] line, then one [`Line`] per record (certificates, profiles, issues,
//! CSRs, queued Jira updates, delivered updates' markers, the last cycle, the Jira workflow's
//! enrollment starts, the private keys the daemon made), then an `end` line with the counts, so
//! a file cut short is refused instead of restoring part of a state. The records are the store's
//! own (their JSON form is [`crate::SCHEMA_VERSION`]'s); indexes are not written, they are
//! rebuilt on import.
//!
//! An export is one moment of the state: the store holds its writers off while it is taken
//! ([`Store::snapshot`]). An import reads the whole file once to check it before writing
//! anything, and only into a state that tracks nothing; until it finishes, the state refuses
//! to open, so a crash half way is never taken for a real state. The file is streamed, a line
//! at a time: a line longer than [`MAX_LINE`] is refused, not read whole.

use std::io::{BufRead, Write};

use chrono::{DateTime, Utc};
use sectigo_core::lines::LineError;
use serde::{Deserialize, Serialize};

use crate::{Entry, KeyStore, Record, Store, StoreError, SCHEMA_VERSION};
use sectigo_core::names::{IssueKey, ProfileName};
use sectigo_model::{
    BillingEntry, CertRecord, CycleSummary, DeclaredRecord, IssueRecord, OutboxItem, ProfileState,
};

/// The `format` of the header line.
pub const FORMAT: &str = "sectigo-connector-state";
/// The file format's version (the lines' kinds and shapes); records inside follow the schema.
pub const FORMAT_VERSION: u32 = 1;

/// Records restored per transaction.
const BATCH: usize = 1000;

/// The longest line read, in bytes. A record is small: a private key's line is under 4 KiB
/// (RSA-4096), a queued Jira update with its PEM attachment (certificate and chain) some 10
/// KiB, a certificate with years of history a few hundred KiB. The largest a record can grow
/// is a certificate whose deploy hook keeps failing: each attempt (every 6 hours once the
/// backoff is at its longest) adds a history entry with up to 8 Ki characters of the hook's
/// output, some 12 MiB a year. 64 MiB leaves years of that; a longer line is no record of
/// ours, and is refused after reading just past it (the file is streamed, one line at a
/// time), however long it is.
pub const MAX_LINE: usize = 64 << 20;

/// The first line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub version: u32,
    /// The store's schema version the records follow.
    pub schema: u32,
    pub exported_at: DateTime<Utc>,
    /// The program that wrote it (`sectigo-connector X.Y.Z`).
    pub by: String,
}

/// How many records of each kind a file holds (its last line), or an import restored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub certificates: u64,
    pub profiles: u64,
    pub issues: u64,
    pub csrs: u64,
    pub outbox: u64,
    pub markers: u64,
    pub keys: u64,
    /// The last cycle and the enrollment starts, when present.
    pub meta: u64,
    /// Entries of the billing log (the daily budget's memory).
    #[serde(default)]
    pub billing: u64,
    /// Records of declared certificates (`certificates.d/`).
    #[serde(default)]
    pub declared: u64,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.certificates
            + self.profiles
            + self.issues
            + self.csrs
            + self.outbox
            + self.markers
            + self.keys
            + self.meta
            + self.billing
            + self.declared
    }
}

/// One line after the header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Line {
    Cert(Box<CertRecord>),
    Profile {
        name: ProfileName,
        state: ProfileState,
    },
    Issue(Box<IssueRecord>),
    Csr {
        sha256: String,
        issue: IssueKey,
    },
    Outbox(Box<OutboxItem>),
    Marker {
        marker: String,
        seq: u64,
    },
    LastCycle(CycleSummary),
    EnrollmentStarts(Vec<DateTime<Utc>>),
    Billing(Box<BillingEntry>),
    Declared(Box<DeclaredRecord>),
    /// A private key the daemon made, under its certificate's (or request's) id.
    Key {
        name: crate::keys::KeyName,
        pem: KeyPem,
    },
    End(Counts),
}

/// A private key's PEM in an export line: written and read as it is, never shown by `{:?}`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyPem(pub String);

impl std::fmt::Debug for KeyPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyPem(********)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{what}: {error}")]
    Io { what: String, error: std::io::Error },
    /// The file is not a whole export this version can read; nothing was written.
    #[error("line {line}: {message}")]
    Format { line: u64, message: String },
    /// Refused: nothing was written.
    #[error("{0}")]
    Refused(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ExportError {
    let what = what.into();
    move |error| ExportError::Io { what, error }
}

/// Writes the state as one consistent snapshot to `out`. The private keys go with it when
/// `with_keys`; without, an export of a state that holds keys is refused (a restore without
/// them would deploy certificates without their key).
pub fn export(
    store: &dyn Store,
    keys: &KeyStore,
    with_keys: bool,
    by: &str,
    now: DateTime<Utc>,
    out: &mut dyn Write,
) -> Result<Counts, ExportError> {
    let header = Header {
        format: FORMAT.into(),
        version: FORMAT_VERSION,
        schema: SCHEMA_VERSION,
        exported_at: now.trunc_subsecs(0),
        by: by.into(),
    };
    let mut counts = Counts::default();
    let mut failed: Option<ExportError> = None;
    let w = |out: &mut dyn Write, parts: &[&[u8]]| -> std::io::Result<()> {
        for p in parts {
            out.write_all(p)?;
        }
        out.write_all(b"\n")
    };
    let json = |s: &str| serde_json::to_vec(s).expect("strings serialize");
    w(
        out,
        &[&serde_json::to_vec(&header).expect("header serializes")],
    )
    .map_err(io("writing the export"))?;
    let r = store.snapshot(&mut |e| {
        // The records are written as stored (no decoding while writers wait); [`verify`]
        // reads the file back afterwards, so a backup that could not be restored fails now.
        let r = match e {
            Entry::Cert(v) => {
                counts.certificates += 1;
                w(out, &[b"{\"cert\":", v, b"}"]).map_err(io("writing the export"))
            }
            Entry::Profile { name, state } => {
                counts.profiles += 1;
                w(
                    out,
                    &[
                        b"{\"profile\":{\"name\":",
                        &json(name),
                        b",\"state\":",
                        state,
                        b"}}",
                    ],
                )
                .map_err(io("writing the export"))
            }
            Entry::Issue(v) => {
                counts.issues += 1;
                w(out, &[b"{\"issue\":", v, b"}"]).map_err(io("writing the export"))
            }
            Entry::Csr { sha256, issue } => {
                counts.csrs += 1;
                w(
                    out,
                    &[
                        b"{\"csr\":{\"sha256\":",
                        &json(sha256),
                        b",\"issue\":",
                        &json(issue),
                        b"}}",
                    ],
                )
                .map_err(io("writing the export"))
            }
            Entry::Outbox(v) => {
                counts.outbox += 1;
                w(out, &[b"{\"outbox\":", v, b"}"]).map_err(io("writing the export"))
            }
            Entry::Marker { marker, seq } => {
                counts.markers += 1;
                w(
                    out,
                    &[
                        b"{\"marker\":{\"marker\":",
                        &json(marker),
                        b",\"seq\":",
                        seq.to_string().as_bytes(),
                        b"}}",
                    ],
                )
                .map_err(io("writing the export"))
            }
            Entry::LastCycle(v) => {
                counts.meta += 1;
                w(out, &[b"{\"last_cycle\":", v, b"}"]).map_err(io("writing the export"))
            }
            Entry::EnrollmentStarts(v) => {
                counts.meta += 1;
                w(out, &[b"{\"enrollment_starts\":", v, b"}"]).map_err(io("writing the export"))
            }
            Entry::Billing(v) => {
                counts.billing += 1;
                w(out, &[b"{\"billing\":", v, b"}"]).map_err(io("writing the export"))
            }
            Entry::Declared(v) => {
                counts.declared += 1;
                w(out, &[b"{\"declared\":", v, b"}"]).map_err(io("writing the export"))
            }
            // Still alone with the state: the keys belong to the same moment.
            Entry::Done => export_keys(keys, with_keys, out, &mut counts),
        };
        r.map_err(|e| {
            let m = e.to_string();
            failed = Some(e);
            StoreError::Conflict(m)
        })
    });
    if let Some(e) = failed {
        return Err(e);
    }
    r?;
    let end = Line::End(counts.clone());
    w(out, &[&serde_json::to_vec(&end).expect("counts serialize")])
        .map_err(io("writing the export"))?;
    out.flush().map_err(io("writing the export"))?;
    Ok(counts)
}

/// Reads a whole export back, every record decoded as an import would: the counts, or why it
/// could not be restored. Run on a fresh export (after writers are released), so that a backup
/// that could not be restored fails when it is made.
pub fn verify<R: BufRead>(r: R) -> Result<Counts, ExportError> {
    read(r, &mut |_| Ok(()))
}

fn export_keys(
    keys: &KeyStore,
    with_keys: bool,
    out: &mut dyn Write,
    counts: &mut Counts,
) -> Result<(), ExportError> {
    let names = keys.names().map_err(io("listing the private keys"))?;
    if !with_keys && !names.is_empty() {
        return Err(ExportError::Refused(format!(
            "the state holds {} the daemon made, and only root or the service user may export {}: run `state export` as one of them",
            count(names.len() as u64, "private key", "private keys"),
            if names.len() == 1 { "it" } else { "them" },
        )));
    }
    for name in names {
        let Some(pem) = keys
            .get(&name)
            .map_err(io(format!("reading the private key {name}")))?
        else {
            continue; // removed since it was listed (a `certs forget` of its certificate,
                      // whose record is then not in this snapshot either)
        };
        let name =
            crate::keys::KeyName::parse(&name).map_err(io(format!("the private key {name:?}")))?;
        let line = Line::Key {
            name,
            pem: KeyPem(pem.expose().to_string()),
        };
        serde_json::to_writer(&mut *out, &line).map_err(|e| ExportError::Io {
            what: "writing the export".into(),
            error: e.into(),
        })?;
        out.write_all(b"\n").map_err(io("writing the export"))?;
        counts.keys += 1;
    }
    Ok(())
}

/// The header (first line) of an export: when it was taken (`state import` holds the
/// renewals that fell due since).
pub fn header<R: BufRead>(r: R) -> Result<Header, ExportError> {
    let first = sectigo_core::lines::capped(r, MAX_LINE)
        .next()
        .ok_or_else(|| ExportError::Format {
            line: 1,
            message: "empty: not a sectigo-connector state export".into(),
        })?
        .map_err(|e| ExportError::Format {
            line: 1,
            message: format!("not a sectigo-connector state export ({e:?})"),
        })?;
    serde_json::from_str(&first).map_err(|e| ExportError::Format {
        line: 1,
        message: format!("not a sectigo-connector state export (no header: {e})"),
    })
}

/// Reads a whole export from `open()` (called twice: once to check every line, once to
/// restore) into `store` and `keys`, which must track nothing. Nothing is written when the
/// file is refused.
pub fn import<R: BufRead>(
    store: &dyn Store,
    keys: &KeyStore,
    open: &mut dyn FnMut() -> std::io::Result<R>,
) -> Result<Counts, ExportError> {
    let expected = verify(open()?)?;
    if !store.restore_unfinished()? {
        let mut held = store.holds()?;
        let keys_held = keys.names().map_err(io("listing the private keys"))?.len();
        if keys_held > 0 {
            held.push(count(keys_held as u64, "private key", "private keys"));
        }
        if !held.is_empty() {
            return Err(ExportError::Refused(format!(
                "the state is not empty (it holds {}); an import goes only into an empty state: stop the daemon and move the state's db/ (and keys/) away first",
                held.join(", ")
            )));
        }
    }
    store.begin_restore()?;
    let mut batch = Vec::with_capacity(BATCH);
    let flush = |batch: &mut Vec<Record>| -> Result<(), ExportError> {
        if !batch.is_empty() {
            store.restore(std::mem::take(batch))?;
        }
        Ok(())
    };
    let got = read(open()?, &mut |line| {
        let rec = match line {
            Line::Cert(r) => Record::Cert(r),
            Line::Profile { name, state } => Record::Profile { name, state },
            Line::Issue(r) => Record::Issue(r),
            Line::Csr { sha256, issue } => Record::Csr { sha256, issue },
            Line::Outbox(i) => Record::Outbox(i),
            Line::Marker { marker, seq } => Record::Marker { marker, seq },
            Line::LastCycle(c) => Record::LastCycle(c),
            Line::EnrollmentStarts(s) => Record::EnrollmentStarts(s),
            Line::Billing(e) => Record::Billing(e),
            Line::Declared(d) => Record::Declared(d),
            Line::Key { name, pem } => {
                return keys
                    .put(name.as_str(), &sectigo_core::secret::Secret::new(pem.0))
                    .map_err(io(format!("writing the private key {name}")));
            }
            Line::End(_) => return Ok(()),
        };
        batch.push(rec);
        if batch.len() >= BATCH {
            flush(&mut batch)?;
        }
        Ok(())
    })?;
    flush(&mut batch)?;
    if got != expected {
        // The file changed between the two readings.
        return Err(ExportError::Refused(
            "the file changed while it was imported; import it again".into(),
        ));
    }
    store.finish_restore()?;
    Ok(got)
}

impl From<std::io::Error> for ExportError {
    fn from(error: std::io::Error) -> Self {
        ExportError::Io {
            what: "reading the export".into(),
            error,
        }
    }
}

/// Reads and checks every line, handing each record to `f`; the counts of the `end` line,
/// which must match what was read. One line is held at a time, at most [`MAX_LINE`] bytes.
fn read(
    r: impl BufRead,
    f: &mut dyn FnMut(Line) -> Result<(), ExportError>,
) -> Result<Counts, ExportError> {
    let mut n = 0u64;
    let mut counts = Counts::default();
    let mut end = None;
    let fmt = |line, message: String| ExportError::Format { line, message };
    for text in sectigo_core::lines::capped(r, MAX_LINE) {
        let text = text.map_err(|e| match e {
            LineError::TooLong { line, max } => fmt(
                line,
                format!(
                    "longer than {} MiB, which no record of a state takes: not a state export, or a damaged one",
                    max >> 20
                ),
            ),
            LineError::NotUtf8 { line } => fmt(line, "not UTF-8 text".into()),
            LineError::Io { error, .. } => error.into(),
        })?;
        n += 1;
        if n == 1 {
            let h: Header = serde_json::from_str(&text).map_err(|e| {
                fmt(
                    1,
                    format!("not a sectigo-connector state export (no header: {e})"),
                )
            })?;
            if h.format != FORMAT {
                return Err(fmt(
                    1,
                    format!("the format is {:?}, not {FORMAT:?}", h.format),
                ));
            }
            if h.version != FORMAT_VERSION || h.schema != SCHEMA_VERSION {
                return Err(fmt(
                    1,
                    format!(
                        "written by {} in format version {} (schema {}); this sectigo-connector reads version {FORMAT_VERSION} (schema {SCHEMA_VERSION})",
                        h.by, h.version, h.schema
                    ),
                ));
            }
            continue;
        }
        if end.is_some() {
            return Err(fmt(n, "a line after the end line".into()));
        }
        if text.trim().is_empty() {
            return Err(fmt(n, "an empty line".into()));
        }
        let line: Line = serde_json::from_str(&text).map_err(|e| fmt(n, e.to_string()))?;
        match &line {
            Line::Cert(_) => counts.certificates += 1,
            Line::Profile { .. } => counts.profiles += 1,
            Line::Issue(_) => counts.issues += 1,
            Line::Csr { .. } => counts.csrs += 1,
            Line::Outbox(_) => counts.outbox += 1,
            Line::Marker { .. } => counts.markers += 1,
            Line::LastCycle(_) | Line::EnrollmentStarts(_) => counts.meta += 1,
            Line::Billing(_) => counts.billing += 1,
            Line::Declared(_) => counts.declared += 1,
            Line::Key { .. } => counts.keys += 1,
            Line::End(c) => end = Some((n, c.clone())),
        }
        f(line)?;
    }
    if n == 0 {
        return Err(fmt(1, "the file is empty".into()));
    }
    match end {
        None => Err(fmt(
            n,
            "the file ends without its end line: it was cut short (an export that did not finish)"
                .into(),
        )),
        Some((at, c)) if c != counts => Err(fmt(
            at,
            format!(
                "the end line counts {} records, the file holds {}",
                c.total(),
                counts.total()
            ),
        )),
        Some((_, c)) => Ok(c),
    }
}

use chrono::SubsecRound as _;
use sectigo_core::text::count;
