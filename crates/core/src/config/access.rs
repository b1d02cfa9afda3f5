//! Who the daemon runs as, and whether that user can read a file.
//!
//! The packaged unit runs the daemon as the service user, the owner of `[state] dir`, while an
//! operator edits `/etc/sectigo-connector/` as root. `check-config` run as root checks every
//! file the daemon reads as the service user will find it ([`super::Config::unreadable_by`]),
//! and the daemon's own "cannot read" errors name the user it runs as and the fix
//! ([`denied_hint`]).
//!
//! Accounts come from `/etc/passwd` and `/etc/group` (local accounts, as `[deploy] owner` and
//! the packages use them); a user known only to another NSS service (LDAP, ...) is not found,
//! and then nothing is checked. The permission bits are read as the kernel reads them (owner,
//! else group, else others; search permission on every directory on the way); ACLs are not
//! read, and a symbolic link on the way is followed, its target's own directories not checked.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use super::ConfigError;

/// The user the packages create and run the daemon as.
pub const PACKAGE_USER: &str = "sectigo-connector";

const PASSWD: &str = "/etc/passwd";
const GROUP: &str = "/etc/group";

/// A local account: its name, ids, primary group's name and every group it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// The primary group's name (its number when /etc/group does not name it).
    pub group: String,
    /// The primary group and the supplementary groups (from /etc/group).
    pub groups: Vec<u32>,
}

/// The user the daemon will run as, and why it is that one (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUser {
    pub account: Account,
    /// "the owner of [state] dir /var/lib/sectigo-connector", ...
    pub why: String,
}

impl Account {
    /// The account with this uid, from /etc/passwd and /etc/group.
    pub fn by_uid(uid: u32) -> Option<Account> {
        let passwd = std::fs::read_to_string(PASSWD).ok()?;
        let group = std::fs::read_to_string(GROUP).unwrap_or_default();
        account_from(&passwd, &group, |_, u| u == uid)
    }

    /// The account with this name.
    pub fn by_name(name: &str) -> Option<Account> {
        let passwd = std::fs::read_to_string(PASSWD).ok()?;
        let group = std::fs::read_to_string(GROUP).unwrap_or_default();
        account_from(&passwd, &group, |n, _| n == name)
    }

    /// The account this process runs as (its effective uid).
    pub fn current() -> Option<Account> {
        Account::by_uid(rustix::process::geteuid().as_raw())
    }

    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// Whether this account may do `want` (4 read, 1 search) on a file of this mode and owner.
    /// Pure.
    pub fn may(&self, mode: u32, owner: u32, group: u32, want: u32) -> bool {
        if self.is_root() {
            return true;
        }
        let bits = if owner == self.uid {
            mode >> 6
        } else if self.groups.contains(&group) {
            mode >> 3
        } else {
            mode
        };
        bits & want == want
    }

    /// The first thing on the way to `path` that this account may not pass: a directory it
    /// may not search, or the file itself it may not read (`list`: a directory it must list,
    /// read and search). `None`: it can read it, or the path does not exist (another check
    /// says so).
    pub fn blocked(&self, path: &Path, list: bool) -> Option<Blocked> {
        let path = std::path::absolute(path).ok()?;
        let mut ancestors: Vec<&Path> = path.ancestors().skip(1).collect();
        ancestors.reverse();
        for dir in ancestors {
            let m = std::fs::metadata(dir).ok()?;
            if !self.may(m.mode(), m.uid(), m.gid(), 0o1) {
                return Some(Blocked::new(dir, &m, Need::Search));
            }
        }
        let m = std::fs::metadata(&path).ok()?;
        let want = if list && m.is_dir() { 0o5 } else { 0o4 };
        let need = if m.is_dir() { Need::List } else { Need::Read };
        (!self.may(m.mode(), m.uid(), m.gid(), want)).then(|| Blocked::new(&path, &m, need))
    }

    /// The command that lets this account through `b`, never taking access from it.
    pub fn fix(&self, b: &Blocked) -> String {
        let p = shell_word(&b.path.display().to_string());
        let g = shell_word(&self.group);
        match (b.need, b.owner == self.uid) {
            (Need::Read, true) => format!("chmod u+r {p}"),
            (Need::Read, false) => format!("chgrp {g} {p} && chmod 0640 {p}"),
            (Need::Search, true) => format!("chmod u+x {p}"),
            (Need::Search, false) => format!("chgrp {g} {p} && chmod g+x {p}"),
            (Need::List, true) => format!("chmod u+rx {p}"),
            (Need::List, false) => format!("chgrp {g} {p} && chmod g+rx {p}"),
        }
    }

    /// The command that makes a file holding a secret unreadable by other users while the
    /// service user (this account) can still read it: `chmod o-r` only when it owns the file,
    /// else the file goes to its group, 0640.
    pub fn private_fix(&self, file: &Path) -> String {
        let p = shell_word(&file.display().to_string());
        match std::fs::metadata(file) {
            Ok(m) if m.uid() == self.uid => format!("chmod o-r {p}"),
            _ => format!("chgrp {} {p} && chmod 0640 {p}", shell_word(&self.group)),
        }
    }
}

/// What a user needs on a path and does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Search (`x`) on a directory on the way.
    Search,
    /// Read a file.
    Read,
    /// List a directory (`r` and `x`).
    List,
}

/// Where a user is stopped on the way to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub path: PathBuf,
    pub need: Need,
    pub mode: u32,
    pub owner: u32,
    pub group: u32,
}

impl Blocked {
    fn new(path: &Path, m: &std::fs::Metadata, need: Need) -> Blocked {
        Blocked {
            path: path.to_path_buf(),
            need,
            mode: m.mode() & 0o7777,
            owner: m.uid(),
            group: m.gid(),
        }
    }

    /// "cannot read FILE (mode 0640, owner root, group root)", "cannot search the directory
    /// DIR (...)".
    pub fn describe(&self) -> String {
        let verb = match self.need {
            Need::Search => "cannot enter the directory",
            Need::Read => "cannot read",
            Need::List => "cannot list the directory",
        };
        format!(
            "{verb} {} (mode {:04o}, owner {}, group {})",
            self.path.display(),
            self.mode,
            user_name(self.owner),
            group_name(self.group)
        )
    }
}

/// A file the daemon reads: the file that names it and the key (none: a configuration file
/// itself), and whether it is a directory the daemon lists.
struct DaemonRead {
    file: PathBuf,
    named_by: Option<(PathBuf, &'static str)>,
    list: bool,
}

impl super::Config {
    /// The files the daemon reads (connector.toml, profiles.d and each profile, each secret
    /// file, certificates.d and each declaration, the Jira token file, the CA bundle) that `user` cannot read, each an error naming
    /// the file (or the key that names it), the user and the fix. For `check-config` run as
    /// root: the daemon runs as `user`.
    pub fn unreadable_by(&self, user: &ServiceUser) -> Vec<ConfigError> {
        let a = &user.account;
        if a.is_root() {
            return Vec::new();
        }
        let connector = self.dir.join(super::CONNECTOR_FILE);
        let profiles_dir = self.dir.join(super::PROFILES_DIR);
        let mut files: Vec<DaemonRead> = Vec::new();
        let mut add = |file: &Path, named_by: Option<(&Path, &'static str)>, list: bool| {
            files.push(DaemonRead {
                file: file.to_path_buf(),
                named_by: named_by.map(|(f, k)| (f.to_path_buf(), k)),
                list,
            });
        };
        if connector.exists() {
            add(&connector, None, false);
        }
        if profiles_dir.exists() {
            add(&profiles_dir, None, true);
        }
        for p in self.profiles.values() {
            add(&p.file, None, false);
            if let Some(f) = p.client_secret_from.file() {
                add(f, Some((&p.file, "client_secret_file")), false);
            }
            if let Some(f) = p.admin.as_ref().and_then(|x| x.client_secret_from.file()) {
                add(f, Some((&p.file, "admin.client_secret_file")), false);
            }
        }
        // The declared certificates (certificates.d/ and each of its files).
        let declared_dir = self.dir.join(super::DECLARED_DIR);
        if declared_dir.exists() {
            add(&declared_dir, None, true);
        }
        for d in self.declared.values() {
            add(&d.file, None, false);
        }
        let jira_token = self
            .connector
            .jira
            .as_ref()
            .and_then(|j| j.token_from.file());
        if let Some(f) = jira_token {
            add(f, Some((&connector, "jira.token_file")), false);
        }
        if let Some(ca) = &self.connector.scm.ca_bundle {
            add(ca, Some((&connector, "scm.ca_bundle")), false);
        }
        let mut errors = Vec::new();
        let mut seen: Vec<PathBuf> = Vec::new();
        for DaemonRead {
            file,
            named_by,
            list,
        } in files
        {
            let Some(b) = a.blocked(&file, list) else {
                continue;
            };
            // One directory that stops the user stops it for every file below: say it once.
            if seen.contains(&b.path) {
                continue;
            }
            seen.push(b.path.clone());
            let message = format!(
                "the daemon runs as {} ({}), which {}: the daemon would exit 78 at start or reload; run `{}`",
                a.name,
                user.why,
                b.describe(),
                a.fix(&b)
            );
            errors.push(match named_by {
                Some((declared_in, key)) => ConfigError::key(
                    super::Origin::File(declared_in),
                    key,
                    format!("{}: {message}", file.display()),
                ),
                None => ConfigError::file(file, message),
            });
        }
        errors
    }
}

/// The user the daemon will run as: the owner of `[state] dir` when it exists; else the
/// package's user when it exists; else the user running this command.
pub fn service_user(state_dir: &Path) -> Option<ServiceUser> {
    if let Ok(m) = std::fs::metadata(state_dir) {
        return Account::by_uid(m.uid()).map(|account| ServiceUser {
            account,
            why: format!("the owner of [state] dir {}", state_dir.display()),
        });
    }
    if let Some(account) = Account::by_name(PACKAGE_USER) {
        return Some(ServiceUser {
            account,
            why: format!(
                "the package's user; [state] dir {} does not exist yet",
                state_dir.display()
            ),
        });
    }
    Account::current().map(|account| ServiceUser {
        account,
        why: "the user running this command: [state] dir does not exist and there is no sectigo-connector user".to_string(),
    })
}

/// For an error reading `path` that the system refused (EACCES): who the process runs as,
/// what stops it and the command that fixes it. Empty for any other error.
pub fn denied_hint(path: &Path, error: &std::io::Error) -> String {
    if error.kind() != std::io::ErrorKind::PermissionDenied {
        return String::new();
    }
    let Some(me) = Account::current() else {
        return String::new();
    };
    match me.blocked(path, false) {
        Some(b) => format!(
            "; running as user {}, which {}: run `{}` (as root)",
            me.name,
            b.describe(),
            me.fix(&b)
        ),
        None => format!(
            "; running as user {}: make the file readable to it, e.g. `chgrp {} {p} && chmod 0640 {p}` (as root)",
            me.name,
            shell_word(&me.group),
            p = shell_word(&path.display().to_string())
        ),
    }
}

/// The account from `passwd` (and its groups from `group`) whose (name, uid) matches. Pure.
fn account_from(passwd: &str, group: &str, matches: impl Fn(&str, u32) -> bool) -> Option<Account> {
    let (name, uid, gid) = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        let (name, uid, gid): (&str, u32, u32) =
            (f.first()?, f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?);
        matches(name, uid).then(|| (name.to_string(), uid, gid))
    })?;
    let mut groups = vec![gid];
    let mut primary = gid.to_string();
    for l in group.lines() {
        let f: Vec<&str> = l.split(':').collect();
        let (Some(gname), Some(Ok(id))) = (f.first(), f.get(2).map(|g| g.parse::<u32>())) else {
            continue;
        };
        if id == gid {
            primary = gname.to_string();
        }
        let member = f
            .get(3)
            .is_some_and(|m| m.split(',').any(|m| m.trim() == name));
        if member && !groups.contains(&id) {
            groups.push(id);
        }
    }
    Some(Account {
        name,
        uid,
        gid,
        group: primary,
        groups,
    })
}

fn user_name(uid: u32) -> String {
    Account::by_uid(uid)
        .map(|a| a.name)
        .unwrap_or_else(|| uid.to_string())
}

fn group_name(gid: u32) -> String {
    std::fs::read_to_string(GROUP)
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.get(2)?.parse::<u32>().ok()? == gid).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| gid.to_string())
}

/// `s` as one shell word: as it is when it is made of safe characters, else single-quoted.
fn shell_word(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+:@%=,".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD_TEXT: &str = "root:x:0:0:root:/root:/bin/bash\nsectigo-connector:x:998:997::/var/lib/sectigo-connector:/usr/sbin/nologin\nbob:x:1000:1000::/home/bob:/bin/sh\n";
    const GROUP_TEXT: &str =
        "root:x:0:\nsectigo-connector:x:997:\nssl-cert:x:110:sectigo-connector,bob\nbob:x:1000:\n";

    fn svc() -> Account {
        account_from(PASSWD_TEXT, GROUP_TEXT, |n, _| n == "sectigo-connector").unwrap()
    }

    #[test]
    fn accounts_and_their_groups() {
        let a = svc();
        assert_eq!(
            (a.uid, a.gid, a.group.as_str()),
            (998, 997, "sectigo-connector")
        );
        assert_eq!(a.groups, vec![997, 110]);
        let root = account_from(PASSWD_TEXT, GROUP_TEXT, |_, u| u == 0).unwrap();
        assert!(root.is_root());
        assert!(account_from(PASSWD_TEXT, GROUP_TEXT, |n, _| n == "nobody").is_none());
    }

    /// The quick start's trap: root:root 0640 is unreadable to the service user; the group's
    /// bits count only through membership; the owner's bits alone count for the owner.
    #[test]
    fn permission_bits_as_the_kernel_reads_them() {
        let a = svc();
        for (mode, owner, group, want, ok) in [
            (0o640, 0, 0, 4, false),
            (0o640, 0, 997, 4, true),
            (0o640, 0, 110, 4, true),
            (0o644, 0, 0, 4, true),
            (0o600, 998, 997, 4, true),
            (0o060, 998, 997, 4, false),
            (0o750, 0, 997, 1, true),
            (0o700, 0, 997, 1, false),
            (0o711, 0, 0, 1, true),
        ] {
            assert_eq!(
                a.may(mode, owner, group, want),
                ok,
                "{mode:o} {owner}:{group} want {want}"
            );
        }
        let root = account_from(PASSWD_TEXT, GROUP_TEXT, |_, u| u == 0).unwrap();
        assert!(root.may(0o000, 5, 5, 4));
    }

    #[test]
    fn fixes_give_access_and_never_take_it() {
        let a = svc();
        let b = |need, owner| Blocked {
            path: "/etc/sectigo-connector/profiles.d/web.toml".into(),
            need,
            mode: 0o640,
            owner,
            group: 0,
        };
        assert_eq!(
            a.fix(&b(Need::Read, 0)),
            "chgrp sectigo-connector /etc/sectigo-connector/profiles.d/web.toml && chmod 0640 /etc/sectigo-connector/profiles.d/web.toml"
        );
        assert_eq!(
            a.fix(&b(Need::Read, 998)),
            "chmod u+r /etc/sectigo-connector/profiles.d/web.toml"
        );
        assert!(a
            .fix(&b(Need::Search, 0))
            .ends_with("chmod g+x /etc/sectigo-connector/profiles.d/web.toml"));
        assert_eq!(shell_word("/a b/it's"), "'/a b/it'\\''s'");
    }
}
