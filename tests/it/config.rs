//! Configuration loading: every error names its file (or environment variable) and key, all
//! errors are reported in one run, and secrets never print.

use std::path::Path;

use sectigo_core::config::{Config, ConfigError, Origin};

const GOOD_PROFILE: &str = r#"
client_id = "cid"
client_secret = "TOPSECRET-123"
scm_url = "https://acme.enroll.enterprise.sectigo.com"
"#;

/// A configuration directory; files are 0640, as the packages install them.
fn dir_with(connector: Option<&str>, profiles: &[(&str, &str)]) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("profiles.d")).unwrap();
    let write = |p: std::path::PathBuf, text: &str| {
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
    };
    if let Some(c) = connector {
        write(d.path().join("connector.toml"), c);
    }
    for (name, text) in profiles {
        write(d.path().join("profiles.d").join(name), text);
    }
    d
}

fn errors_of(dir: &Path) -> Vec<ConfigError> {
    match Config::load(dir) {
        Ok(_) => panic!("expected configuration errors in {}", dir.display()),
        Err(e) => e.0,
    }
}

/// Each case: file name, file text (connector.toml when the name is that), the file the error
/// must name, the key it must name (None: whole file), and a fragment of the message.
#[test]
fn each_error_names_file_and_key() {
    let p = |extra: &str| format!("{GOOD_PROFILE}{extra}");
    let cases: Vec<(&str, String, &str, Option<&str>, &str)> = vec![
        (
            "connector.toml",
            "[scm]\nmax_concurent = 4\n".into(),
            "connector.toml",
            Some("scm.max_concurent"),
            "did you mean `scm.max_concurrent`",
        ),
        (
            "connector.toml",
            "[scm]\ntimeout_secs = \"thirty\"\n".into(),
            "connector.toml",
            Some("scm.timeout_secs"),
            "invalid type",
        ),
        (
            "connector.toml",
            "[schedule]\ncron = \"0 0 * * *\"\n".into(),
            "connector.toml",
            Some("schedule.cron"),
            "invalid cron expression",
        ),
        (
            "connector.toml",
            "[schedule]\ncron = \"hourly\"\n".into(),
            "connector.toml",
            Some("schedule.cron"),
            "six fields",
        ),
        (
            "connector.toml",
            "[log]\nlevel = \"chatty\"\n".into(),
            "connector.toml",
            Some("log.level"),
            "not a level",
        ),
        (
            "connector.toml",
            "[log]\nformat = \"xml\"\n".into(),
            "connector.toml",
            Some("log.format"),
            "unknown variant",
        ),
        (
            "connector.toml",
            "[scm]\nmax_requests_per_second = 0\n".into(),
            "connector.toml",
            Some("scm.max_requests_per_second"),
            "greater than 0",
        ),
        (
            "connector.toml",
            "[scm]\nmax_concurrent = 0\n".into(),
            "connector.toml",
            Some("scm.max_concurrent"),
            "between 1 and 256",
        ),
        (
            "connector.toml",
            "[jira]\nurl = \"https://x.atlassian.net\"\ntoken = \"t\"\n".into(),
            "connector.toml",
            Some("jira.email"),
            "Jira Cloud",
        ),
        (
            "connector.toml",
            "[jira]\nurl = \"http://jira.example.com\"\nflavor = \"datacenter\"\ntoken = \"t\"\n"
                .into(),
            "connector.toml",
            Some("jira.url"),
            "https://",
        ),
        (
            "connector.toml",
            "[jira]\nurl = \"https://j\"\nflavor = \"server\"\ntoken = \"t\"\n".into(),
            "connector.toml",
            Some("jira.flavor"),
            "unknown variant",
        ),
        (
            "connector.toml",
            "[jira]\nurl = \"https://j\"\nemail = \"a@b\"\ntoken = \"t\"\n[jira.workflow]\nenabled = true\npoll_cron = \"every minute\"\n".into(),
            "connector.toml",
            Some("jira.workflow.poll_cron"),
            "invalid cron expression",
        ),
        (
            "connector.toml",
            "[jira]\nurl = \"https://j\"\nemail = \"a@b\"\ntoken = \"t\"\n[jira.workflow]\nenabled = true\nrevoke_reason_code = 2\n".into(),
            "connector.toml",
            Some("jira.workflow.revoke_reason_code"),
            "RFC 5280 reason code",
        ),
        (
            "connector.toml",
            "[jira]\nurl = \"https://j\"\nemail = \"a@b\"\ntoken = \"t\"\n[jira.workflow]\nenabled = true\ncsr_feild = \"CSR\"\n".into(),
            "connector.toml",
            Some("jira.workflow.csr_feild"),
            "did you mean `jira.workflow.csr_field`",
        ),
        (
            "connector.toml",
            "[nonsense]\nx = 1\n".into(),
            "connector.toml",
            Some("nonsense"),
            "unknown key",
        ),
        (
            "connector.toml",
            "[state\ndir = 1".into(),
            "connector.toml",
            None,
            "invalid TOML",
        ),
        (
            "web.toml",
            p("allowed_domains = [\"example.com\", \"exa mple.com\"]\n"),
            "web.toml",
            Some("allowed_domains"),
            "is not a domain",
        ),
        (
            "connector.toml",
            "[jira]\nurl = \"https://j\"\nemail = \"a@b\"\ntoken = \"t\"\n[jira.workflow]\nenabled = true\nmax_enrollments_per_day = 100000\n".into(),
            "connector.toml",
            Some("jira.workflow.max_enrollments_per_day"),
            "between 0",
        ),
        (
            "web.toml",
            "client_secret = \"s\"\nscm_url = \"https://a.example\"\n".into(),
            "web.toml",
            Some("client_id"),
            "required",
        ),
        (
            "web.toml",
            "client_id = \"c\"\nscm_url = \"https://a.example\"\n".into(),
            "web.toml",
            Some("client_secret"),
            "systemd credential `web.client_secret`",
        ),
        (
            "web.toml",
            "client_id = \"c\"\nclient_secret = \"s\"\n".into(),
            "web.toml",
            Some("scm_url"),
            "required",
        ),
        (
            "web.toml",
            p("client_secret_file = \"x\"\n"),
            "web.toml",
            Some("client_secret"),
            "not both",
        ),
        // A missing secret file is named by the key that names it (issue #27).
        (
            "web.toml",
            "client_id = \"c\"\nclient_secret_file = \"web.secret\"\nscm_url = \"https://a.example\"\n".into(),
            "web.toml",
            Some("client_secret_file"),
            "cannot read the secret file",
        ),
        (
            "web.toml",
            p("[admin]\nurl = \"https://admin.enterprise.sectigo.com\"\nclient_id = \"a\"\nclient_secret_file = \"web.admin.secret\"\n"),
            "web.toml",
            Some("admin.client_secret_file"),
            "cannot read the secret file",
        ),
        (
            "connector.toml",
            "[jira]\nurl = \"https://x.atlassian.net\"\nemail = \"a@b\"\ntoken_file = \"/nonexistent/jira.token\"\n".into(),
            "connector.toml",
            Some("jira.token_file"),
            "cannot read the secret file /nonexistent/jira.token",
        ),
        (
            "web.toml",
            GOOD_PROFILE.replace("https://acme", "http://acme"),
            "web.toml",
            Some("scm_url"),
            "http:// is allowed only to loopback",
        ),
        (
            "web.toml",
            p("token_url = \"ftp://x\"\n"),
            "web.toml",
            Some("token_url"),
            "https://",
        ),
        (
            "web.toml",
            p("expiry_window_days = -1\n"),
            "web.toml",
            Some("expiry_window_days"),
            "between 1 and 397",
        ),
        (
            "web.toml",
            p("expiry_window_days = 1000\n"),
            "web.toml",
            Some("expiry_window_days"),
            "between 1 and 397",
        ),
        (
            "web.toml",
            p("expiry_window_days = \"30\"\n"),
            "web.toml",
            Some("expiry_window_days"),
            "invalid type",
        ),
        (
            "web.toml",
            p(&format!("ssl_cert_comments = \"{}\"\n", "c".repeat(1025))),
            "web.toml",
            Some("ssl_cert_comments"),
            "at most 1024",
        ),
        (
            "web.toml",
            p("auto_renew = \"yes\"\n"),
            "web.toml",
            Some("auto_renew"),
            "invalid type",
        ),
        (
            "web.toml",
            p("scm_profile_id = -3\n"),
            "web.toml",
            Some("scm_profile_id"),
            "positive",
        ),
        (
            "web.toml",
            p("expiry_window = 30\n"),
            "web.toml",
            Some("expiry_window"),
            "did you mean `expiry_window_days`",
        ),
        (
            "web.toml",
            p("client_secret_file_typo = 1\n"),
            "web.toml",
            Some("client_secret_file_typo"),
            "unknown key",
        ),
        (
            "bad name!.toml",
            GOOD_PROFILE.into(),
            "bad name!.toml",
            None,
            "is not a profile name",
        ),
        // [admin]: SCM's Admin API, with an account of its own.
        (
            "web.toml",
            p("[admin]\nurl = \"https://admin.enterprise.sectigo.com\"\nclient_secret = \"s\"\n"),
            "web.toml",
            Some("admin.client_id"),
            "required with [admin] url",
        ),
        (
            "web.toml",
            p("[admin]\nurl = \"https://admin.enterprise.sectigo.com\"\nclient_id = \"a\"\n"),
            "web.toml",
            Some("admin.client_secret"),
            "systemd credential `web.admin_client_secret`",
        ),
        (
            "web.toml",
            p("[admin]\nurl = \"http://admin.example.com\"\nclient_id = \"a\"\nclient_secret = \"s\"\n"),
            "web.toml",
            Some("admin.url"),
            "http:// is allowed only to loopback",
        ),
        (
            "web.toml",
            p("[admin]\nurl = \"https://admin.enterprise.sectigo.com/api/ssl/v1\"\nclient_id = \"a\"\nclient_secret = \"s\"\n"),
            "web.toml",
            Some("admin.url"),
            "give the base URL only",
        ),
        (
            "web.toml",
            p("[admin]\nurl = \"https://admin.enterprise.sectigo.com\"\nclient_id = \"a\"\nclient_secret = \"s\"\ntoken_url = \"http://auth.example.com/token\"\n"),
            "web.toml",
            Some("admin.token_url"),
            "https://",
        ),
        (
            "web.toml",
            p("[admin]\nurl = \"https://admin.enterprise.sectigo.com\"\nclient_id = \"a\"\nclient_secret = \"s\"\nclient_secret_file = \"x\"\n"),
            "web.toml",
            Some("admin.client_secret"),
            "not both",
        ),
        (
            "web.toml",
            p("[admin]\nurl = \"https://admin.enterprise.sectigo.com\"\nclient_id = \"a\"\nclient_secret = \"s\"\nclient_idd = \"b\"\n"),
            "web.toml",
            Some("admin.client_idd"),
            "did you mean `admin.client_id`",
        ),
        (
            "web.toml",
            p("[admin]\nurl = \"https://admin.enterprise.sectigo.com\"\nclient_id = \"a\"\nclient_secret = \"s\"\nssl_type_id = 0\n"),
            "web.toml",
            Some("admin.ssl_type_id"),
            "positive",
        ),
        (
            "web.toml",
            p("[admin]\nurl = \"https://admin.enterprise.sectigo.com\"\nclient_id = \"a\"\nclient_secret = \"s\"\norg_id = \"7\"\n"),
            "web.toml",
            Some("admin.org_id"),
            "invalid type",
        ),
        (
            "web.toml",
            p("[admin]\nclient_id = \"a\"\n"),
            "web.toml",
            Some("admin.client_id"),
            "needs [admin] url",
        ),
    ];
    for (file, text, want_file, want_key, want_msg) in cases {
        let d = if file == "connector.toml" {
            dir_with(Some(&text), &[("ok.toml", GOOD_PROFILE)])
        } else {
            dir_with(None, &[(file, &text)])
        };
        let errs = errors_of(d.path());
        let hit = errs
            .iter()
            .find(|e| e.key.as_deref() == want_key && e.message.contains(want_msg));
        let Some(e) = hit else {
            panic!("{file} {text:?}: no error for key {want_key:?} containing {want_msg:?}; got {errs:#?}")
        };
        match &e.origin {
            Origin::File(f) => assert!(f.ends_with(want_file), "{e} should name {want_file}"),
            Origin::Env(v) => panic!("{e} should name the file, not {v}"),
        }
        let shown = e.to_string();
        assert!(shown.contains(want_file), "{shown}");
        if let Some(k) = want_key {
            assert!(shown.contains(k), "{shown}");
        }
        assert!(!shown.contains("TOPSECRET"), "a secret leaked: {shown}");
    }
}

#[test]
fn all_errors_of_all_files_in_one_run() {
    let d = dir_with(
        Some("[scm]\ntimeout_secs = 0\nmax_concurrent = 0\n[log]\nlevel = \"x\"\n"),
        &[
            (
                "a.toml",
                "client_id = \"c\"\nscm_url = \"http://example.com\"\nexpiry_window_days = 0\n",
            ),
            ("b.toml", "nonsense = 1\n"),
        ],
    );
    let errs = errors_of(d.path());
    let found: Vec<(String, String)> = errs
        .iter()
        .map(|e| {
            let file = match &e.origin {
                Origin::File(f) => f.file_name().unwrap().to_string_lossy().into_owned(),
                Origin::Env(v) => v.clone(),
            };
            (file, e.key.clone().unwrap_or_default())
        })
        .collect();
    for (file, key) in [
        ("connector.toml", "scm.timeout_secs"),
        ("connector.toml", "scm.max_concurrent"),
        ("connector.toml", "log.level"),
        ("a.toml", "client_secret"),
        ("a.toml", "scm_url"),
        ("a.toml", "expiry_window_days"),
        ("b.toml", "client_id"),
        ("b.toml", "client_secret"),
        ("b.toml", "scm_url"),
        ("b.toml", "nonsense"),
    ] {
        assert!(
            found.contains(&(file.to_string(), key.to_string())),
            "missing {file} {key} in {found:#?}"
        );
    }
    let keys = &found;
    assert_eq!(errs.len(), 10, "{keys:#?}");
}

#[test]
fn two_profiles_with_one_name() {
    let d = dir_with(
        None,
        &[("web.toml", GOOD_PROFILE), ("WEB.toml", GOOD_PROFILE)],
    );
    let errs = errors_of(d.path());
    assert!(
        errs.iter()
            .any(|e| e.message.contains("two profiles with one name")),
        "{errs:#?}"
    );
}

#[test]
fn ignored_files_and_defaults() {
    let d = dir_with(
        None,
        &[
            ("web.toml", GOOD_PROFILE),
            (".hidden.toml", "garbage ["),
            ("notes.txt", "garbage ["),
            ("web.toml.bak", "garbage ["),
        ],
    );
    let cfg = Config::load(d.path()).unwrap();
    assert_eq!(cfg.profiles.keys().collect::<Vec<_>>(), vec!["web"]);
    // The skipped entries are named (a profile saved as web.toml.bak is not silently lost);
    // hidden ones (editor files) are not.
    for skipped in ["notes.txt", "web.toml.bak"] {
        assert!(
            cfg.warnings
                .iter()
                .any(|w| w.contains(&format!("profiles.d/{skipped}: skipped"))),
            "{skipped}: {:?}",
            cfg.warnings
        );
    }
    assert!(!cfg.warnings.iter().any(|w| w.contains(".hidden")));
    let p = &cfg.profiles["web"];
    assert_eq!(p.expiry_window_days, 30);
    assert!(p.auto_renew);
    assert!(!p.force_renewal);
    assert_eq!(p.ssl_cert_comments, "");
    assert_eq!(p.token_url, sectigo_core::config::DEFAULT_TOKEN_URL);
    assert_eq!(cfg.connector.schedule.cron, "0 0 * * * *");
    assert_eq!(cfg.connector.log.level, "info");
    assert!(cfg.connector.jira.is_none(), "no [jira] section: Jira off");
}

#[test]
fn deploy_settings_are_checked() {
    for (extra, key, want) in [
        (
            "[deploy]\nhook = [\"true\"]\n",
            "deploy.hook",
            "needs [deploy] dir",
        ),
        (
            "[deploy]\ndir = \"certs\"\n",
            "deploy.dir",
            "not an absolute path",
        ),
        (
            "[deploy]\ndir = \"/srv/certs\"\nmode = \"0999\"\n",
            "deploy.mode",
            "not a file mode",
        ),
        (
            "[deploy]\ndir = \"/srv/certs\"\nmode = \"0044\"\n",
            "deploy.mode",
            "owner read",
        ),
        (
            "[deploy]\ndir = \"/srv/certs\"\nmode = \"4755\"\n",
            "deploy.mode",
            "setuid",
        ),
        (
            "[deploy]\ndir = \"/srv/certs\"\nhook = []\n",
            "deploy.hook",
            "names the program",
        ),
        (
            "[deploy]\ndir = \"/srv/certs\"\nowner = \"a b\"\n",
            "deploy.owner",
            "not a user or group name",
        ),
        (
            "[deploy]\ndir = \"/srv/certs\"\nhooks = [\"x\"]\n",
            "deploy.hooks",
            "",
        ),
        (
            "key_rotation = \"sometimes\"\n",
            "key_rotation",
            "\"reuse\"",
        ),
        (
            "key_type = \"rsa-2048\"\n",
            "key_type",
            "only with key_rotation",
        ),
        (
            "key_rotation = \"new\"\n",
            "key_rotation",
            "needs [deploy] dir",
        ),
        (
            "key_rotation = \"new\"\nkey_type = \"dsa\"\n[deploy]\ndir = \"/srv/c\"\n",
            "key_type",
            "ec-p256, rsa-2048, rsa-3072",
        ),
    ] {
        let d = dir_with(None, &[("web.toml", &format!("{GOOD_PROFILE}{extra}"))]);
        let errs = errors_of(d.path());
        assert!(
            errs.iter().any(|e| {
                let s = e.to_string();
                s.contains("web.toml") && s.contains(&format!("key `{key}`")) && s.contains(want)
            }),
            "{extra:?}: {errs:?}"
        );
    }
    let d = dir_with(
        None,
        &[(
            "web.toml",
            &format!("{GOOD_PROFILE}[deploy]\ndir = \"/srv/certs\"\nhook = [\"systemctl\", \"reload\", \"nginx\"]\n"),
        )],
    );
    let cfg = Config::load(d.path()).unwrap_or_else(|e| panic!("{e}"));
    let dep = cfg.profiles["web"].deploy.clone().unwrap();
    assert_eq!(dep.mode, 0o640, "the default mode");
    assert_eq!(dep.hook.unwrap()[0], "systemctl");
}

#[test]
fn the_ca_bundle_must_hold_a_certificate() {
    let d = tempfile::tempdir().unwrap();
    let bundle = d.path().join("ca.pem");
    for (text, want) in [
        ("".to_string(), "holds no PEM certificate"),
        ("not pem at all\n".to_string(), "holds no PEM certificate"),
        (
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_string(),
            "certificate 1",
        ),
    ] {
        std::fs::write(&bundle, &text).unwrap();
        let c = dir_with(
            Some(&format!("[scm]\nca_bundle = {bundle:?}\n")),
            &[("web.toml", GOOD_PROFILE)],
        );
        let errs = errors_of(c.path());
        assert!(
            errs.iter().any(|e| {
                let s = e.to_string();
                s.contains("key `scm.ca_bundle`") && s.contains("ca.pem") && s.contains(want)
            }),
            "{text:?}: {errs:?}"
        );
    }
    // A real CA certificate passes.
    let ca = rcgen::generate_simple_self_signed(vec!["ca.example".into()]).unwrap();
    std::fs::write(&bundle, ca.cert.pem()).unwrap();
    let c = dir_with(
        Some(&format!("[scm]\nca_bundle = {bundle:?}\n")),
        &[("web.toml", GOOD_PROFILE)],
    );
    Config::load(c.path()).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn environment_overrides_and_names_the_variable() {
    // Environment variables are process-wide: this test uses names no other test sets.
    std::env::set_var("SECTIGO_CONNECTOR_RENEWAL__COLLECT_POLL_SECS", "7");
    let d = dir_with(Some("[renewal]\ncollect_poll_secs = 60\n"), &[]);
    let cfg = Config::load(d.path()).unwrap();
    assert_eq!(cfg.connector.renewal.collect_poll_secs, 7);
    std::env::set_var("SECTIGO_CONNECTOR_RENEWAL__RETRY_MAX_HOURS", "lots");
    let errs = errors_of(d.path());
    std::env::remove_var("SECTIGO_CONNECTOR_RENEWAL__COLLECT_POLL_SECS");
    std::env::remove_var("SECTIGO_CONNECTOR_RENEWAL__RETRY_MAX_HOURS");
    assert!(
        errs.iter().any(|e| e.origin
            == Origin::Env("SECTIGO_CONNECTOR_RENEWAL__RETRY_MAX_HOURS".into())
            && e.key.as_deref() == Some("renewal.retry_max_hours")),
        "{errs:#?}"
    );
}

#[test]
fn secrets_from_file_and_credentials_never_print() {
    let d = dir_with(None, &[("web.toml", "client_id = \"c\"\nclient_secret_file = \"web.secret\"\nscm_url = \"https://a.example\"\n")]);
    std::fs::write(d.path().join("profiles.d/web.secret"), "FILE-SECRET-9\n").unwrap();
    let cfg = Config::load(d.path()).unwrap();
    let p = &cfg.profiles["web"];
    assert_eq!(p.client_secret.expose(), "FILE-SECRET-9");
    let all = format!(
        "{cfg:?} {p:?} {} {}",
        p.client_secret,
        serde_json::to_string(p).unwrap()
    );
    assert!(!all.contains("FILE-SECRET-9"), "secret printed");
}

/// A secret file the README puts beside its profile is that profile's, not a stray file: no
/// "skipped" warning on every check, start and reload (issue #27). Other files still warn.
#[test]
fn secret_files_a_profile_names_are_not_stray_files() {
    let d = dir_with(
        None,
        &[
            ("web.toml", "client_id = \"c\"\nclient_secret_file = \"web.secret\"\nscm_url = \"https://a.enroll.enterprise.sectigo.com\"\n[admin]\nurl = \"https://admin.enterprise.sectigo.com\"\nclient_id = \"a\"\nclient_secret_file = \"web.admin.secret\"\n"),
            ("web.secret", "s\n"),
            ("web.admin.secret", "a\n"),
            ("web.toml.bak", "old"),
            ("gone.secret", "s\n"),
        ],
    );
    let w = Config::load(d.path()).unwrap().warnings;
    assert!(
        !w.iter()
            .any(|w| w.contains("web.secret") || w.contains("web.admin.secret")),
        "{w:?}"
    );
    for stray in ["web.toml.bak", "gone.secret"] {
        assert!(
            w.iter().any(|w| w.contains(stray) && w.contains("skipped")),
            "{stray}: {w:?}"
        );
    }
}

#[test]
fn inline_secret_readable_by_others_warns() {
    use std::os::unix::fs::PermissionsExt;
    let d = dir_with(None, &[("web.toml", GOOD_PROFILE)]);
    let f = d.path().join("profiles.d/web.toml");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = Config::load(d.path()).unwrap();
    assert!(
        cfg.warnings
            .iter()
            .any(|w| w.contains("web.toml") && w.contains("readable by other users")),
        "{:?}",
        cfg.warnings
    );
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(Config::load(d.path()).unwrap().warnings.is_empty());
}

#[test]
fn the_workflow_profiles_must_exist() {
    let d = dir_with(
        Some("[jira]\nurl = \"https://j\"\nemail = \"a@b\"\ntoken = \"t\"\n[jira.workflow]\nenabled = true\nprofiles = [\"web\", \"nosuch\"]\n"),
        &[("web.toml", GOOD_PROFILE)],
    );
    let e = errors_of(d.path());
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].key.as_deref(), Some("jira.workflow.profiles"));
    assert!(e[0].to_string().contains("connector.toml"), "{}", e[0]);
    assert!(e[0].message.contains("\"nosuch\""), "{}", e[0]);
    assert!(!e[0].message.contains("\"web\""), "{}", e[0]);
}

#[test]
fn shipped_defaults_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/sectigo-connector");
    let cfg = Config::load(&dir).unwrap_or_else(|e| panic!("shipped configuration fails: {e}"));
    assert_eq!(cfg.profiles.len(), 1);
    // Loads, but the untouched example is named as such, key by key.
    for key in ["client_id", "client_secret", "scm_url"] {
        assert!(
            cfg.warnings.iter().any(|w| w.contains("example.toml")
                && w.contains(&format!("{key} still holds the example's placeholder"))),
            "{key}: {:?}",
            cfg.warnings
        );
    }
    // Every key the loader knows is present (commented or not) in the shipped connector.toml.
    let text = std::fs::read_to_string(dir.join("connector.toml")).unwrap();
    for key in [
        "dir",
        "cache_mb",
        "cron",
        "run_at_start",
        "level",
        "format",
        "file",
        "timeout_secs",
        "max_concurrent",
        "max_requests_per_second",
        "retry_max_secs",
        "ca_bundle",
        "retry_initial_mins",
        "retry_max_hours",
        "collect_poll_secs",
        "collect_timeout_hours",
        "settle_after_minutes",
        "renewal_stalled",
        "revoked_in_scm",
        "socket",
        "command",
        "url",
        "flavor",
        "email",
        "token_file",
        "renewed",
        "renewal_failed",
        "enabled",
        "poll_cron",
        "enroll_jql",
        "renew_jql",
        "revoke_jql",
        "csr_field",
        "profile_field",
        "cert_id_field",
        "revoke_reason_field",
        "revoke_reason_code",
        "enrolled_transition",
        "revoked_transition",
        "failed_transition",
        "max_enrollments_per_day",
        "min_renewal_interval_hours",
        "max_issues",
        "profiles",
    ] {
        assert!(
            text.contains(&format!("{key} =")),
            "shipped connector.toml does not document `{key}`"
        );
    }
    let profile = std::fs::read_to_string(dir.join("profiles.d/example.toml")).unwrap();
    assert!(profile.contains("allowed_domains ="));
    // The optional [admin] block: every key, commented out.
    assert!(profile.contains("# [admin]\n"));
    for key in [
        "url",
        "client_id",
        "client_secret_file",
        "token_url",
        "org_id",
        "ssl_type_id",
    ] {
        assert!(
            profile
                .split("# [admin]")
                .nth(1)
                .is_some_and(|admin| admin.contains(&format!("# {key} ="))),
            "the example's [admin] block does not document `{key}`"
        );
    }
}

#[test]
fn the_workflow_defaults_follow_sectigos_layout_and_warn_without_renewal_started() {
    let jira = "[jira]\nurl = \"https://x.atlassian.net\"\nemail = \"a@b\"\ntoken = \"t\"\n";
    let d = dir_with(
        Some(&format!("{jira}[jira.workflow]\nenabled = true\n")),
        &[],
    );
    let cfg = Config::load(d.path()).unwrap();
    let w = cfg
        .connector
        .jira
        .as_ref()
        .unwrap()
        .workflow
        .clone()
        .unwrap();
    assert!(w
        .enroll_jql
        .contains("project = CERT AND issuetype = Certificate"));
    assert_eq!(
        (w.csr_field.as_str(), w.profile_field.as_str()),
        ("Certificate CSR text", "Certificate profile")
    );
    assert_eq!(w.poll_cron, "0 * * * * *");
    let t = &cfg.connector.jira.as_ref().unwrap().transitions;
    assert_eq!(t["enrolled"], "Certificate Enrolled");
    assert_eq!(t["request_failed"], "Request Failed");
    assert!(
        cfg.warnings.iter().any(|w| w.contains("renewal_started")),
        "{:?}",
        cfg.warnings
    );
    // Off unless enabled; a renewal_started transition silences the warning.
    let d = dir_with(
        Some(&format!("{jira}[jira.transitions]\nrenewal_started = \"Start Renewal\"\n[jira.workflow]\nenabled = true\n")),
        &[],
    );
    assert!(Config::load(d.path()).unwrap().warnings.is_empty());
    let d = dir_with(Some(jira), &[]);
    assert!(Config::load(d.path())
        .unwrap()
        .connector
        .jira
        .unwrap()
        .workflow
        .is_none());
}

#[test]
fn check_config_into_a_closed_pipe_ends_quietly() {
    // `check-config | head -1`: the reader is gone before the command writes.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/sectigo-connector");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sectigo-connector"))
        .arg("--config-dir")
        .arg(&dir)
        .arg("check-config")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn config_files_must_be_small_regular_files() {
    let d = dir_with(None, &[("web.toml", GOOD_PROFILE)]);
    // A device as connector.toml, and a 2 MiB profile.
    std::os::unix::fs::symlink("/dev/zero", d.path().join("connector.toml")).unwrap();
    std::fs::write(
        d.path().join("profiles.d/big.toml"),
        format!("# {}\n", "x".repeat(2 * 1024 * 1024)),
    )
    .unwrap();
    let e = errors_of(d.path());
    let text: Vec<String> = e.iter().map(|e| e.to_string()).collect();
    assert!(
        text.iter()
            .any(|t| t.contains("connector.toml") && t.contains("not a regular file")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains("big.toml") && t.contains("larger than 1 MiB")),
        "{text:?}"
    );
}

#[test]
fn a_secret_of_the_wrong_type_is_not_echoed() {
    let d = dir_with(
        Some("[jira]\nurl = \"https://j.example.com\"\nflavor = \"datacenter\"\n"),
        &[(
            "web.toml",
            "client_id = \"c\"\nclient_secret = 987654321012\nscm_url = \"https://a.example\"\n",
        )],
    );
    // In a process of its own: the environment is the whole test binary's.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sectigo-connector"))
        .arg("--config-dir")
        .arg(d.path())
        .arg("check-config")
        .env("SECTIGO_CONNECTOR_JIRA__TOKEN", "123456789098")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("client_secret") && text.contains("jira.token"),
        "{text}"
    );
    assert!(
        !text.contains("987654321012") && !text.contains("123456789098"),
        "{text}"
    );
}

#[test]
fn readable_secret_files_and_foreign_token_hosts_warn() {
    use std::os::unix::fs::PermissionsExt;
    let d = dir_with(
        None,
        &[(
            "web.toml",
            "client_id = \"c\"\nclient_secret_file = \"web.secret\"\nscm_url = \"https://a.enroll.enterprise.sectigo.com\"\ntoken_url = \"https://evil.example.net/token\"\n",
        )],
    );
    let f = d.path().join("profiles.d/web.secret");
    std::fs::write(&f, "s3cret\n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let w = Config::load(d.path()).unwrap().warnings;
    assert!(
        w.iter()
            .any(|w| w.contains("web.secret") && w.contains("readable by other users")),
        "{w:?}"
    );
    assert!(w.iter().any(|w| w.contains("evil.example.net")), "{w:?}");
}

/// `[admin]`: the defaults (token_url from the profile, ssl_type_id from scm_profile_id), the
/// secret from `client_secret_file` beside the profile, never printed.
#[test]
fn the_admin_api_account_and_its_defaults() {
    let d = dir_with(
        None,
        &[
            ("web.toml", &format!("{GOOD_PROFILE}scm_profile_id = 77\ntoken_url = \"https://auth.example.sectigo.com/token\"\n[admin]\nurl = \"https://admin.enterprise.sectigo.com/\"\nclient_id = \"adm\"\nclient_secret_file = \"web.admin.secret\"\n")),
            ("plain.toml", GOOD_PROFILE),
            // The shipped example's form: an [admin] table with every key commented out.
            ("empty.toml", &format!("{GOOD_PROFILE}[admin]\n# url = \"https://admin.enterprise.sectigo.com\"\n")),
        ],
    );
    std::fs::write(
        d.path().join("profiles.d/web.admin.secret"),
        "ADMIN-SECRET-42\n",
    )
    .unwrap();
    let cfg = Config::load(d.path()).unwrap();
    let a = cfg.profiles["web"].admin.as_ref().expect("[admin] read");
    assert_eq!(a.url, "https://admin.enterprise.sectigo.com");
    assert_eq!(a.client_id, "adm");
    assert_eq!(a.client_secret.expose(), "ADMIN-SECRET-42");
    assert_eq!(a.token_url, "https://auth.example.sectigo.com/token");
    assert_eq!(a.ssl_type_id, Some(77));
    assert_eq!(a.org_id, None);
    assert!(cfg.profiles["plain"].admin.is_none());
    assert!(cfg.profiles["empty"].admin.is_none());
    let shown = format!(
        "{cfg:?} {}",
        serde_json::to_string(&cfg.profiles["web"]).unwrap()
    );
    assert!(!shown.contains("ADMIN-SECRET-42"), "secret printed");

    // Its own token_url and ssl_type_id win over the profile's.
    let d = dir_with(
        None,
        &[("web.toml", &format!("{GOOD_PROFILE}scm_profile_id = 77\n[admin]\nurl = \"http://127.0.0.1:9\"\nclient_id = \"adm\"\nclient_secret = \"s\"\ntoken_url = \"http://127.0.0.1:9/token\"\nssl_type_id = 5\norg_id = 12\n"))],
    );
    let cfg = Config::load(d.path()).unwrap();
    let a = cfg.profiles["web"].admin.as_ref().unwrap();
    assert_eq!(
        (a.token_url.as_str(), a.ssl_type_id, a.org_id),
        ("http://127.0.0.1:9/token", Some(5), Some(12))
    );
}

/// The admin secret from the systemd credential `NAME.admin_client_secret` (in a process of
/// its own: `$CREDENTIALS_DIRECTORY` is the whole test binary's environment).
#[test]
fn the_admin_secret_from_a_systemd_credential() {
    let d = dir_with(
        None,
        &[("web.toml", &format!("{GOOD_PROFILE}[admin]\nurl = \"https://admin.enterprise.sectigo.com\"\nclient_id = \"adm\"\n"))],
    );
    let check = |creds: Option<&Path>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sectigo-connector"));
        cmd.arg("--config-dir").arg(d.path()).arg("check-config");
        cmd.env_remove("CREDENTIALS_DIRECTORY");
        if let Some(c) = creds {
            cmd.env("CREDENTIALS_DIRECTORY", c);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (code, text) = check(None);
    assert_eq!(code, Some(78), "{text}");
    assert!(
        text.contains("web.toml")
            && text.contains("admin.client_secret")
            && text.contains("web.admin_client_secret"),
        "{text}"
    );
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(
        creds.path().join("web.admin_client_secret"),
        "CRED-SECRET-7\n",
    )
    .unwrap();
    let (code, text) = check(Some(creds.path()));
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("CRED-SECRET-7"), "{text}");
}

/// An admin secret file readable by others, and an admin token URL on a foreign host, warn.
#[test]
fn admin_secret_exposure_and_foreign_admin_token_hosts_warn() {
    use std::os::unix::fs::PermissionsExt;
    let d = dir_with(
        None,
        &[(
            "web.toml",
            &format!("{GOOD_PROFILE}[admin]\nurl = \"https://admin.enterprise.sectigo.com\"\nclient_id = \"adm\"\nclient_secret_file = \"web.admin.secret\"\ntoken_url = \"https://evil.example.net/token\"\n"),
        )],
    );
    let f = d.path().join("profiles.d/web.admin.secret");
    std::fs::write(&f, "s3cret\n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let w = Config::load(d.path()).unwrap().warnings;
    assert!(
        w.iter().any(|w| w.contains("web.admin.secret")
            && w.contains("[admin] client_secret")
            && w.contains("readable by other users")),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|w| w.contains("evil.example.net") && w.contains("[admin] token_url")),
        "{w:?}"
    );
}
