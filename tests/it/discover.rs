//! `certs discover` through the real binary against the simulator's Admin API: every page
//! read (200 at most), the profile's org and type filters, `--cn` and `--expiring-within`,
//! tracked certificates left out, SCM's auto-renewal flagged, `--import` as `certs import`.

use std::process::Command;

use sectigo_sim::{AdminFields, ScmSimConfig};

use crate::common::{get, Env};

const EXE: &str = env!("CARGO_BIN_EXE_sectigo-connector");

fn admin_profile(env: &Env, extra: &str) {
    env.profile(
        "web",
        &format!(
            "[admin]\nurl = \"{}\"\nclient_id = \"sim-admin\"\nclient_secret = \"sim-admin-secret\"\norg_id = 1\n{extra}",
            env.sim.admin_url()
        ),
    );
}

fn discover(env: &Env, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(EXE)
        .arg("--config-dir")
        .arg(env.path())
        .args(["certs", "discover", "--profile", "web"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn found_ids(json: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    v["found"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovers_every_page_within_the_profiles_scope_and_leaves_tracked_ones_out() {
    let env = Env::new(ScmSimConfig::default()).await;
    admin_profile(&env, "");
    // 430 in the profile's organisation, 10 in another, 5 revoked, 5 expiring soon.
    let mine: Vec<String> = (0..430)
        .map(|i| {
            env.sim_cert(&format!("host{i}.example.com"), 200)
                .to_string()
        })
        .collect();
    let other: Vec<String> = (0..10)
        .map(|i| {
            env.sim_cert(&format!("other{i}.example.com"), 200)
                .to_string()
        })
        .collect();
    for id in &other {
        env.sim.set_admin_fields(
            id,
            AdminFields {
                org_id: Some(2),
                ..Default::default()
            },
        );
    }
    for id in &mine[..5] {
        env.sim.revoke_in_ui(id);
    }
    let soon: Vec<String> = (0..5)
        .map(|i| {
            env.sim_cert(&format!("shop{i}.example.com"), 10)
                .to_string()
        })
        .collect();
    env.sim.set_auto_renew(&soon[0], true);
    // Two tracked already.
    let out = Command::new(EXE)
        .arg("--config-dir")
        .arg(env.path())
        .args([
            "certs",
            "import",
            "--profile",
            "web",
            "--cert-id",
            &mine[10],
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Command::new(EXE)
        .arg("--config-dir")
        .arg(env.path())
        .args([
            "certs",
            "import",
            "--profile",
            "web",
            "--cert-id",
            &mine[11],
        ])
        .output()
        .unwrap();

    let (code, out, err) = discover(&env, &["--json"]);
    assert_eq!(code, 0, "{err}");
    let ids = found_ids(&out);
    // 430 - 5 revoked - 2 tracked + 5 soon.
    assert_eq!(ids.len(), 428, "{err}");
    assert!(!ids.contains(&mine[10]) && !ids.contains(&mine[0]) && !ids.contains(&other[0]));
    // Pages of 200, each filtered on the organisation.
    let lists: Vec<_> = env
        .sim
        .admin_requests()
        .into_iter()
        .filter(|r| r.path == "/api/ssl/v1")
        .collect();
    assert_eq!(lists.len(), 3, "{lists:?}");

    // --cn and --expiring-within; SCM's auto-renewal flagged in the text.
    let (code, out, err) = discover(&env, &["--cn", "SHOP*", "--expiring-within", "30"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<&str> = out.lines().filter(|l| l.contains("shop")).collect();
    assert_eq!(rows.len(), 5, "{out}");
    assert!(rows
        .iter()
        .any(|r| r.starts_with(&format!("{}\t", soon[0])) && r.contains("both would bill")));
    assert!(
        out.contains("5 not tracked, 1 with SCM's own auto-renewal on"),
        "{out}"
    );
    let (_, out, _) = discover(
        &env,
        &["--cn", "host1*", "--expiring-within", "30", "--json"],
    );
    assert!(found_ids(&out).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_imports_what_is_found_once_with_the_auto_renewal_warning() {
    let env = Env::new(ScmSimConfig::default()).await;
    admin_profile(&env, "");
    let ids: Vec<String> = (0..250)
        .map(|i| env.sim_cert(&format!("h{i}.example.com"), 100).to_string())
        .collect();
    env.sim.set_auto_renew(&ids[3], true);
    let (code, out, err) = discover(&env, &["--import"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("imported 250, skipped 0 (already tracked), failed 0"),
        "{out}"
    );
    let store = env.store();
    assert!(get(&store, &ids[3]).scm_auto_renew);
    assert!(!get(&store, &ids[4]).scm_auto_renew);
    drop(store);
    // `status --check` names it.
    let st = Command::new(EXE)
        .arg("--config-dir")
        .arg(env.path())
        .args(["status", "--check"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&st.stdout);
    assert!(text.contains("auto-renewal"), "{text}");
    // Nothing left to discover; nothing billed.
    let (code, out, _) = discover(&env, &["--import", "--json"]);
    assert_eq!(code, 0);
    assert!(found_ids(&out).is_empty());
    assert_eq!(env.sim.billable_total(), 0);
}

#[tokio::test]
async fn a_profile_without_admin_is_a_configuration_error() {
    let env = Env::new(ScmSimConfig::default()).await;
    env.profile("web", "");
    let (code, _, err) = discover(&env, &[]);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("[admin]"), "{err}");
}
