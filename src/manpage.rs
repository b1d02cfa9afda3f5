//! The manual pages, generated: sectigo-connector(8) from the command line's own definitions,
//! sectigo-connector.toml(5) from the shipped, commented configuration files. The packaged
//! copies under packaging/man/ are checked against these by a test.

const CONNECTOR_TOML: &str = include_str!("../etc/sectigo-connector/connector.toml");
const EXAMPLE_PROFILE: &str = include_str!("../etc/sectigo-connector/profiles.d/example.toml");
const EXAMPLE_DECLARED: &str =
    include_str!("../etc/sectigo-connector/certificates.d/example.toml.example");

/// Escapes text for a roff no-fill block.
fn roff_literal(text: &str) -> String {
    text.lines()
        .map(|l| {
            let l = l.replace('\\', "\\e");
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The end of sectigo-connector(8): examples, files, environment, signals, exit status.
const PAGE8_END: &str = r#".SH EXAMPLES
Start managing a certificate of the profile in profiles.d/web.toml, and watch it:
.PP
.nf
.RS
sectigo\-connector check\-config \-\-online
systemctl enable \-\-now sectigo\-connector
sectigo\-connector certs import \-\-profile web \-\-cert\-id 1234567 \-\-name shop
sectigo\-connector certs show shop
journalctl \-u sectigo\-connector PROFILE=web
.RE
.fi
.PP
Onboard many certificates at once (one `ID [ISSUE\-KEY]` per line):
.PP
.nf
.RS
sectigo\-connector certs import \-\-profile web \-\-from ids.txt
.RE
.fi
.PP
What is due, and a check for monitoring (exit 1 with one line per problem):
.PP
.nf
.RS
sectigo\-connector certs list \-\-due
sectigo\-connector status \-\-check
.RE
.fi
.PP
Renew one certificate now; several, or one not due, need \-\-yes:
.PP
.nf
.RS
sectigo\-connector renew 1234567
sectigo\-connector renew 1234567 1234568 \-\-yes
.RE
.fi
.PP
Settle a renewal whose answer was lost, after finding its request id in SCM:
.PP
.nf
.RS
sectigo\-connector certs show 1234567        # the request id to search for
sectigo\-connector certs resolve 1234567 \-\-renewed\-as 7654321
.RE
.fi
.PP
With a profile's [admin] (SCM's Admin API), the daemon settles such outcomes itself, checks
SCM's record before every renewal it would bill, and finds what is not tracked yet:
.PP
.nf
.RS
sectigo\-connector certs discover \-\-profile web \-\-expiring\-within 60
sectigo\-connector certs discover \-\-profile web \-\-cn '*.shop.example.com' \-\-import
.RE
.fi
.PP
Back up daily, and restore on a new machine:
.PP
.nf
.RS
systemctl enable \-\-now sectigo\-connector\-backup.timer
systemctl stop sectigo\-connector
sectigo\-connector state import /var/backups/sectigo\-connector/state.jsonl
systemctl start sectigo\-connector
.RE
.fi
.SH FILES
.TP
/etc/sectigo-connector/connector.toml
Global settings; see sectigo-connector.toml(5).
.TP
/etc/sectigo-connector/profiles.d/NAME.toml
One Sectigo profile per file; NAME is the profile's name.
.TP
/etc/sectigo-connector/certificates.d/NAME.toml
One declared certificate per file, enrolled, replaced and renewed by the daemon (certs plan,
certs apply); NAME is its name and its deploy directory's.
.TP
/var/lib/sectigo-connector/
The state: certificate inventory, renewal journal, queued Jira updates (sled).
.TP
/run/sectigo-connector/control.sock
The control socket of the running daemon.
.TP
/var/backups/sectigo-connector/state.jsonl
The backup written by sectigo\-connector\-backup.service (daily, once its timer is enabled).
.SH ENVIRONMENT
.TP
SECTIGO_CONNECTOR_CONFIG_DIR
The configuration directory (as \-\-config\-dir).
.TP
SECTIGO_CONNECTOR_\fISECTION\fR__\fIKEY\fR
Overrides a key of connector.toml, e.g. SECTIGO_CONNECTOR_STATE__DIR.
.TP
CREDENTIALS_DIRECTORY
Set by systemd's LoadCredential=; secrets not set in the files are read from it.
.SH SIGNALS
SIGHUP re-reads the configuration (an invalid one is refused, the running one stays).
SIGTERM and SIGINT stop the daemon after renew calls in flight are answered.
.SH EXIT STATUS
0 success; 1 the work failed; 2 usage error; 75 temporary failure (state locked, SCM
unreachable); 78 configuration error (the message names the file and the key).
.SH NOTES
A build from source (\fBcargo run \-\- demo\fR in a checkout) also has \fBdemo\fR: the daemon's
engine against its own SCM and Jira simulators on loopback, with sample certificates. The
packaged binary has no simulators, and no \fBdemo\fR.
.SH SEE ALSO
sectigo-connector.toml(5), systemctl(1), journalctl(1)
"#;

/// sectigo-connector(8), from the command line's definition `cmd`. The page is the packaged
/// binary's: `demo`, which only a build from source has (the packages hold no simulators), is
/// left out of the commands and named in NOTES as a source build's.
pub fn page8(cmd: clap::Command) -> String {
    let cmd = if cmd.find_subcommand("demo").is_some() {
        cmd.mut_subcommand("demo", |c| c.hide(true))
    } else {
        cmd
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section("8")
        .render(&mut out)
        .expect("render");
    let s = String::from_utf8(out).expect("utf-8");
    // The subcommands are documented below, in this page, not in pages of their own.
    let mut s = subcommand_refs(&s);
    for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
        let mut subs: Vec<(String, clap::Command)> =
            vec![(sub.get_name().to_string(), sub.clone())];
        subs.extend(
            sub.get_subcommands()
                .map(|c| (format!("{} {}", sub.get_name(), c.get_name()), c.clone())),
        );
        for (name, c) in subs {
            if c.has_subcommands() {
                continue;
            }
            s.push_str(&format!(".SH \"COMMAND: {}\"\n", name.to_uppercase()));
            let mut buf = Vec::new();
            let man = clap_mangen::Man::new(c.clone().name(format!("sectigo-connector {name}")));
            man.render_synopsis_section(&mut buf).expect("render");
            man.render_description_section(&mut buf).expect("render");
            if c.get_arguments()
                .any(|a| !a.is_hide_set() && a.get_id() != "help" && a.get_id() != "config_dir")
            {
                man.render_options_section(&mut buf).expect("render");
            }
            let text = String::from_utf8(buf).expect("utf-8");
            // Nest the generated sections under this command.
            s.push_str(&text.replace(".SH ", ".SS "));
        }
    }
    s.push_str(PAGE8_END);
    s
}

/// `sectigo\-connector\-run(8)` → `sectigo\-connector run` (see its COMMAND section).
fn subcommand_refs(s: &str) -> String {
    const PREFIX: &str = "sectigo\\-connector\\-";
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(PREFIX) {
        out.push_str(&rest[..i]);
        let after = &rest[i + PREFIX.len()..];
        match after.find("(8)") {
            Some(j)
                if after[..j]
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '\\' || c == '-') =>
            {
                out.push_str(&format!("sectigo\\-connector {}", &after[..j]));
                rest = &after[j + 3..];
            }
            _ => {
                out.push_str(PREFIX);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// sectigo-connector.toml(5).
pub fn page5() -> String {
    format!(
        r#".TH SECTIGO-CONNECTOR.TOML 5 "" "sectigo-connector {version}" "File Formats"
.SH NAME
sectigo-connector.toml \- configuration of sectigo-connector
.SH SYNOPSIS
/etc/sectigo-connector/connector.toml
.br
/etc/sectigo-connector/profiles.d/\fINAME\fR.toml
.br
/etc/sectigo-connector/certificates.d/\fINAME\fR.toml
.SH DESCRIPTION
sectigo-connector reads TOML files from its configuration directory: connector.toml for the
global settings, and one file per Sectigo profile in profiles.d/, whose stem is the profile's
name. Files in profiles.d/ not ending in .toml are skipped with a warning that names them (hidden
files silently), but for the secret files a profile names (client_secret_file). Unknown keys,
wrong types and out-of-range values are errors that name the file and the key; every error
of every file is reported at once, and the daemon exits 78 (or, on reload, keeps the running
configuration). Check a configuration with \fBsectigo-connector check-config\fR.
.PP
Any key of connector.toml can be overridden by an environment variable
SECTIGO_CONNECTOR_\fISECTION\fR__\fIKEY\fR (for example SECTIGO_CONNECTOR_STATE__DIR).
.PP
Secrets (client_secret, the Jira token) can be given inline, in a file (client_secret_file,
token_file; a relative path is looked up in $CREDENTIALS_DIRECTORY, then beside the file), or
as systemd credentials named \fINAME\fR.client_secret, \fINAME\fR.admin_client_secret (a profile's
[admin] account) and jira.token. A profile file holding
an inline secret and readable by other users gets a warning. When SCM refuses a secret from a
client_secret_file, the daemon reads the file again before it reports the refusal: a fixed file
takes effect without a reload.
.PP
The daemon runs as the service user (the owner of [state] dir; the packages' sectigo-connector),
and must be able to read every file named here: \fBsectigo-connector check-config\fR run as root
checks them as that user and names the fix, e.g.
\fBchgrp sectigo-connector FILE && chmod 0640 FILE\fR.
.SH CONNECTOR.TOML
Every key, with its default:
.PP
.nf
{connector}
.fi
.SH PROFILES.D/NAME.TOML
Every key; client_id, a secret and scm_url are required:
.PP
.nf
{profile}
.fi
.SH CERTIFICATES.D/NAME.TOML
One declared certificate per file; NAME (the file's stem) is its name. profile and names are
required. A bad declaration (unknown key or profile, a name outside the profile's
allowed_domains, an invalid key_type) is a configuration error like any other:
\fBcheck-config\fR exits 78 naming the file and the key, and a reload is refused while the
running configuration (every other declaration) keeps working. A name declared in two files is
a conflict: neither is enrolled until one file drops it.
.PP
.nf
{declared}
.fi
.SH SEE ALSO
sectigo-connector(8)
"#,
        version = env!("CARGO_PKG_VERSION"),
        connector = roff_literal(CONNECTOR_TOML),
        profile = roff_literal(EXAMPLE_PROFILE),
        declared = roff_literal(EXAMPLE_DECLARED),
    )
}
