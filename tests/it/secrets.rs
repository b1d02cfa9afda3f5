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
