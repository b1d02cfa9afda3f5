//! A full cycle (import, renewal, Jira delivery) at TRACE level for every crate: no client
//! secret, access token, Jira token or Authorization header value appears in any output.

use std::process::Command;

use crate::common::Env;
use base64::Engine as _;
use sectigo_core::config::JiraFlavor;
use sectigo_sim::{JiraSim, ScmSimConfig};

const EXE: &str = env!("CARGO_BIN_EXE_sectigo-connector");
const CLIENT_SECRET: &str = "CLIENT-SECRET-xyz-789";
const JIRA_TOKEN: &str = "JIRA-TOKEN-abc-456";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_secret_at_trace() {
    let jira = JiraSim::start(JiraFlavor::Cloud, "bot@example.com", JIRA_TOKEN)
        .await
        .unwrap();
    jira.add_issue("CERT-1");
    let env = Env::new(ScmSimConfig {
        clients: vec![("sim-client".into(), CLIENT_SECRET.into())],
        ..Default::default()
    })
    .await;
    env.connector(&format!(
        "[jira]\nurl = \"{}\"\nemail = \"bot@example.com\"\ntoken = \"{JIRA_TOKEN}\"\n[jira.transitions]\nrenewed = \"Renewed\"\n",
        jira.url()
    ));
    // Every crate at TRACE: hyper, reqwest, rustls, h2, sled, ours.
    let text = std::fs::read_to_string(env.path().join("connector.toml"))
        .unwrap()
        .replace("level = \"debug\"", "level = \"trace,sectigo=trace\"");
    std::fs::write(env.path().join("connector.toml"), text).unwrap();
    std::fs::write(
        env.path().join("profiles.d/web.toml"),
        format!("client_id = \"sim-client\"\nclient_secret = \"{CLIENT_SECRET}\"\nscm_url = \"{}\"\ntoken_url = \"{}\"\n", env.sim.url(), env.sim.token_url()),
    )
    .unwrap();
    let id = env.sim_cert("a.example.com", 3);
    let dir = env.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        let mut all = String::new();
        for args in [
            vec!["check-config"],
            vec![
                "certs",
                "import",
                "--profile",
                "web",
                "--cert-id",
                &id,
                "--issue",
                "CERT-1",
            ],
            vec!["run", "--once"],
            vec!["status", "--json"],
            vec!["certs", "list", "--json"],
        ] {
            let o = crate::common::run_bounded(
                Command::new(EXE).arg("--config-dir").arg(&dir).args(&args),
                60,
            );
            assert_eq!(o.code, 0, "{args:?}: {}", o.stderr);
            all.push_str(&o.stdout);
            all.push_str(&o.stderr);
        }
        all
    })
    .await
    .unwrap();

    assert_eq!(
        jira.issue("CERT-1").unwrap().comments.len(),
        2,
        "the cycle ran and reached Jira"
    );
    let http_traces = out
        .lines()
        .filter(|l| l.contains("TRACE") && (l.contains("hyper") || l.contains("reqwest")))
        .count();
    assert!(
        http_traces > 10,
        "TRACE output from the HTTP stack is there to check ({http_traces} lines):\n{out}"
    );
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("bot@example.com:{JIRA_TOKEN}"));
    let mut forbidden = vec![CLIENT_SECRET.to_string(), JIRA_TOKEN.to_string(), basic];
    forbidden.extend(env.sim.tokens());
    assert!(env.sim.tokens_issued() > 0);
    for f in &forbidden {
        assert!(
            !out.contains(f.as_str()),
            "a secret reached the output: {f}"
        );
    }
    let lower = out.to_lowercase();
    for header in [
        "authorization: bearer",
        "authorization: basic",
        "\"authorization\": \"bearer",
        "\"authorization\": \"basic",
    ] {
        assert!(
            !lower.contains(header),
            "an Authorization value reached the output ({header})"
        );
    }
}

/// A fixed secret file takes effect without a reload (issue #27): the daemon reads its
/// `client_secret_file` again when the token endpoint refuses the secret, before it reports
/// refused credentials; the refusal says that the file was read again. The same for the
/// `[admin]` account's file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_secret_file_is_taken_without_a_reload() {
    use sectigo_core::names::ProfileName;
    use sectigo_engine::ImportLine;
    let env = Env::new(ScmSimConfig::default()).await;
    let secret = env.path().join("profiles.d/web.secret");
    let admin_secret = env.path().join("profiles.d/web.admin.secret");
    std::fs::write(&secret, "a-wrong-secret\n").unwrap();
    std::fs::write(&admin_secret, "a-wrong-admin-secret\n").unwrap();
    std::fs::write(
        env.path().join("profiles.d/web.toml"),
        format!(
            "client_id = \"sim-client\"\nclient_secret_file = \"web.secret\"\nscm_url = \"{}\"\ntoken_url = \"{}\"\n[admin]\nurl = \"{}\"\nclient_id = \"sim-admin\"\nclient_secret_file = \"web.admin.secret\"\n",
            env.sim.url(),
            env.sim.token_url(),
            env.sim.admin_url()
        ),
    )
    .unwrap();
    // One engine, as the running daemon holds it: no reload between the calls.
    let engine = env.engine_with(env.store());
    let web = ProfileName::parse("web").unwrap();
    let line = |id: &sectigo_core::names::CertId| ImportLine {
        cert_id: id.clone(),
        issue: None,
        name: None,
    };
    let id = env.sim_cert("shop.example.com", 60);
    let s = engine
        .importer()
        .import(&web, vec![line(&id)])
        .await
        .unwrap();
    assert!(s.imported.is_empty(), "{s:?}");
    let why = &s.failed[0].1;
    assert!(
        why.contains("refused")
            && why.contains(&format!(
                "client_secret_file {} was read again",
                secret.display()
            )),
        "{why}"
    );
    assert!(!why.contains("a-wrong-secret"), "{why}");

    // The operator fixes the file; the next call takes it.
    std::fs::write(&secret, "sim-secret\n").unwrap();
    let s = engine
        .importer()
        .import(&web, vec![line(&id)])
        .await
        .unwrap();
    assert_eq!(s.imported, vec![id.clone()], "{s:?}");

    // The [admin] account, built from the loaded profile as the daemon builds it.
    let cfg = env.config();
    let creds = sectigo_scm::admin::AdminCreds::from_profile(&cfg.profiles["web"]).unwrap();
    let settings = sectigo_engine::ScmClients::settings(&cfg, env.clock.clone());
    let admin = sectigo_scm::admin::AdminClient::new(
        sectigo_scm::http_client(&settings).unwrap(),
        creds,
        settings,
        std::sync::Arc::new(sectigo_scm::Limits::new(4, 100.0)),
    );
    let e = admin.check_token().await.unwrap_err().to_string();
    assert!(
        e.contains(&format!(
            "[admin] client_secret_file {} was read again",
            admin_secret.display()
        )),
        "{e}"
    );
    std::fs::write(&admin_secret, "sim-admin-secret\n").unwrap();
    admin.check_token().await.unwrap();
}
