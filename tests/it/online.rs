//! `check-config --online` as a person waits for it (issue #27): an endpoint that cannot be
//! reached is reported within `[scm] timeout_secs` plus a few seconds (not the daemon's
//! `retry_max_secs`), exit 75; refused credentials exit 78 and name the profile's file and key,
//! for the REST account, the `[admin]` account and Jira.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{run_bounded, Env};
use sectigo_sim::ScmSimConfig;

const EXE: &str = env!("CARGO_BIN_EXE_sectigo-connector");

fn check_online(dir: &Path) -> (i32, String, Duration) {
    let start = Instant::now();
    let o = run_bounded(
        Command::new(EXE)
            .arg("--config-dir")
            .arg(dir)
            .args(["check-config", "--online"]),
        120,
    );
    (o.code, format!("{}{}", o.stdout, o.stderr), start.elapsed())
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The daemon's retry_max_secs stays 300: the check does not inherit it.
fn slow_daemon_settings(env: &Env) {
    std::fs::write(
        env.path().join("connector.toml"),
        format!(
            "[state]\ndir = {:?}\n[scm]\ntimeout_secs = 5\nretry_max_secs = 300\n",
            env.path().join("state")
        ),
    )
    .unwrap();
}

fn write_profile(env: &Env, name: &str, text: &str) {
    std::fs::write(
        env.path().join("profiles.d").join(format!("{name}.toml")),
        text,
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_refuses_connections_is_reported_in_seconds() {
    let env = Env::new(ScmSimConfig::default()).await;
    slow_daemon_settings(&env);
    let port = closed_port();
    write_profile(
        &env,
        "web",
        &format!("client_id = \"c\"\nclient_secret = \"s\"\nscm_url = \"http://127.0.0.1:{port}\"\ntoken_url = \"http://127.0.0.1:{port}/token\"\n"),
    );
    let dir = env.path().to_path_buf();
    let (code, out, took) = tokio::task::spawn_blocking(move || check_online(&dir))
        .await
        .unwrap();
    assert_eq!(code, 75, "{out}");
    assert!(
        took < Duration::from_secs(20),
        "took {took:?} (timeout_secs = 5): {out}"
    );
    assert!(
        out.contains("online: profile web: UNREACHABLE") && out.contains("127.0.0.1"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_host_is_reported_in_seconds() {
    let env = Env::new(ScmSimConfig::default()).await;
    slow_daemon_settings(&env);
    write_profile(
        &env,
        "web",
        "client_id = \"c\"\nclient_secret = \"s\"\nscm_url = \"https://nonexistent.invalid\"\ntoken_url = \"https://nonexistent.invalid/token\"\n",
    );
    let dir = env.path().to_path_buf();
    let (code, out, took) = tokio::task::spawn_blocking(move || check_online(&dir))
        .await
        .unwrap();
    assert_eq!(code, 75, "{out}");
    assert!(
        took < Duration::from_secs(20),
        "took {took:?} (timeout_secs = 5): {out}"
    );
    assert!(
        out.contains("online: profile web: UNREACHABLE") && out.contains("nonexistent.invalid"),
        "{out}"
    );
}

/// Refused credentials are a configuration error: exit 78, naming the file and the key to
/// change: the REST account's secret file, the `[admin]` account's, Jira's token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_exit_78_and_name_the_file_and_key() {
    let env = Env::new(ScmSimConfig::default()).await;
    let jira = sectigo_sim::JiraSim::start(
        sectigo_core::config::JiraFlavor::Cloud,
        "bot@example.com",
        "jira-token",
    )
    .await
    .unwrap();
    let secrets = env.path().join("profiles.d");
    std::fs::write(secrets.join("web.secret"), "not-the-secret\n").unwrap();
    std::fs::write(secrets.join("jira.token"), "wrong-token\n").unwrap();
    env.connector(&format!(
        "[jira]\nurl = \"{}\"\nemail = \"bot@example.com\"\ntoken_file = {:?}\n",
        jira.url(),
        secrets.join("jira.token")
    ));
    write_profile(
        &env,
        "web",
        &format!(
            "client_id = \"sim-client\"\nclient_secret_file = \"web.secret\"\nscm_url = \"{}\"\ntoken_url = \"{}\"\n",
            env.sim.url(),
            env.sim.token_url()
        ),
    );
    let dir = env.path().to_path_buf();
    let (code, out, _) = tokio::task::spawn_blocking(move || check_online(&dir))
        .await
        .unwrap();
    assert_eq!(code, 78, "{out}");
    let web = secrets.join("web.toml");
    assert!(
        out.lines()
            .any(|l| l.starts_with("online: profile web: REFUSED")
                && l.contains("`client_secret_file`")
                && l.contains(&secrets.join("web.secret").display().to_string())
                && l.contains(&web.display().to_string())),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("online: jira")
            && l.contains("REFUSED")
            && l.contains("`token_file`")
            && l.contains("connector.toml")),
        "{out}"
    );
    assert!(
        !out.contains("not-the-secret") && !out.contains("wrong-token"),
        "{out}"
    );

    // The REST account fixed; the [admin] account's secret wrong: asked too, and named.
    std::fs::write(secrets.join("web.secret"), "sim-secret\n").unwrap();
    std::fs::write(secrets.join("jira.token"), "jira-token\n").unwrap();
    write_profile(
        &env,
        "web",
        &format!(
            "client_id = \"sim-client\"\nclient_secret_file = \"web.secret\"\nscm_url = \"{}\"\ntoken_url = \"{}\"\n[admin]\nurl = \"{}\"\nclient_id = \"sim-admin\"\nclient_secret = \"not-the-admin-secret\"\n",
            env.sim.url(),
            env.sim.token_url(),
            env.sim.admin_url()
        ),
    );
    let dir = env.path().to_path_buf();
    let (code, out, _) = tokio::task::spawn_blocking(move || check_online(&dir))
        .await
        .unwrap();
    assert_eq!(code, 78, "{out}");
    assert!(
        out.contains("online: profile web: the token endpoint"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("online: profile web [admin]: REFUSED")
                && l.contains("`[admin] client_secret`")
                && l.contains(&web.display().to_string())),
        "{out}"
    );
    assert!(
        out.contains("credentials taken, for Certificate Bot"),
        "{out}"
    );

    // All taken: exit 0, the [admin] account's token too.
    write_profile(
        &env,
        "web",
        &format!(
            "client_id = \"sim-client\"\nclient_secret_file = \"web.secret\"\nscm_url = \"{}\"\ntoken_url = \"{}\"\n[admin]\nurl = \"{}\"\nclient_id = \"sim-admin\"\nclient_secret = \"sim-admin-secret\"\n",
            env.sim.url(),
            env.sim.token_url(),
            env.sim.admin_url()
        ),
    );
    let dir = env.path().to_path_buf();
    let (code, out, _) = tokio::task::spawn_blocking(move || check_online(&dir))
        .await
        .unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("online: profile web [admin]: the token endpoint"),
        "{out}"
    );
    assert_eq!(env.sim.billable_total(), 0);
}

/// A wait over two seconds on a terminal says what it waits for; off a terminal (a script,
/// a pipe), nothing is added.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_endpoint_is_announced_on_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no script(1) (util-linux) to give the command a terminal");
        return;
    }
    let env = Env::new(ScmSimConfig::default()).await;
    env.profile("web", "");
    env.sim.set_faults(sectigo_sim::Faults {
        latency: Duration::from_secs(3),
        ..Default::default()
    });
    let dir = env.path().to_path_buf();
    let (on_terminal, piped) = tokio::task::spawn_blocking(move || {
        let cmd = format!("{EXE} --config-dir {} check-config --online", dir.display());
        let o = run_bounded(Command::new("script").args(["-qec", &cmd, "/dev/null"]), 60);
        (
            (o.code, format!("{}{}", o.stdout, o.stderr)),
            check_online(&dir),
        )
    })
    .await
    .unwrap();
    assert_eq!(on_terminal.0, 0, "{}", on_terminal.1);
    assert!(
        on_terminal
            .1
            .contains("waiting for profile web's token endpoint"),
        "{}",
        on_terminal.1
    );
    assert_eq!(piped.0, 0, "{}", piped.1);
    assert!(!piped.1.contains("waiting for"), "{}", piped.1);
}
