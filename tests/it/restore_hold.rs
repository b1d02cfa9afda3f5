//! A restore bills nothing twice: a backup taken before a renewal, restored after it. Without
//! `[admin]` the renewal is held until a person confirms (`status --check` lists it); with
//! `[admin]`, the check before the bill finds SCM's renewal and adopts it.

use std::process::Command;

use sectigo_model::CertState;
use sectigo_sim::ScmSimConfig;

use crate::common::{get, Env};

const EXE: &str = env!("CARGO_BIN_EXE_sectigo-connector");

fn run(env: &Env, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(EXE)
        .arg("--config-dir")
        .arg(env.path())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A due certificate tracked, a backup taken, the certificate renewed, the state lost and the
/// backup restored. Returns the certificate's id and `state import`'s output.
fn renewed_after_the_backup(env: &Env) -> (String, String) {
    let id = env.sim_cert("restored.example.com", 3).to_string();
    let (code, _, err) = run(
        env,
        &["certs", "import", "--profile", "web", "--cert-id", &id],
    );
    assert_eq!(code, 0, "{err}");
    let backup = env.path().join("backup.jsonl");
    let (code, _, err) = run(env, &["state", "export", backup.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(env, &["run", "--once"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(env.sim.billable_count(&id), 1);
    std::fs::remove_dir_all(env.path().join("state")).unwrap();
    let (code, out, err) = run(env, &["state", "import", backup.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    (id, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_admin_a_stale_restore_holds_the_renewal_until_a_person_confirms() {
    let env = Env::new(ScmSimConfig::default()).await;
    env.profile("web", "expiry_window_days = 30");
    let (id, out) = renewed_after_the_backup(&env);
    assert!(out.contains("1 renewal held"), "{out}");
    // The cycle renews nothing, and says a person is needed (exit 1).
    let (code, _, err) = run(&env, &["run", "--once"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("held after `state import`"), "{err}");
    assert_eq!(env.sim.billable_count(&id), 1, "the restore billed twice");
    let (code, out, _) = run(&env, &["status", "--check"]);
    assert_eq!(code, 1);
    assert!(
        out.contains(&id) && out.contains("held after `state import`"),
        "{out}"
    );
    // The person finds it renewed in SCM and says so: nothing billed, the renewal adopted.
    let new = env.sim.renewals_of(&id)[0].clone();
    let (code, _, err) = run(&env, &["certs", "resolve", &id, "--renewed-as", &new]);
    assert_eq!(code, 0, "{err}");
    let store = env.store();
    assert!(matches!(
        get(&store, &id).state,
        CertState::Superseded { .. }
    ));
    assert_eq!(env.sim.billable_total(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_admin_a_stale_restore_adopts_scms_renewal_and_bills_nothing() {
    let env = Env::new(ScmSimConfig::default()).await;
    env.profile(
        "web",
        &format!(
            "expiry_window_days = 30\n[admin]\nurl = \"{}\"\nclient_id = \"sim-admin\"\nclient_secret = \"sim-admin-secret\"\n",
            env.sim.admin_url()
        ),
    );
    let (id, out) = renewed_after_the_backup(&env);
    assert!(!out.contains("held"), "{out}");
    let (code, _, err) = run(&env, &["run", "--once"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(env.sim.billable_count(&id), 1, "the restore billed twice");
    let store = env.store();
    let CertState::Superseded { by, .. } = get(&store, &id).state else {
        panic!("{:?}", get(&store, &id).state)
    };
    assert_eq!(vec![by.to_string()], env.sim.renewals_of(&id));
}
