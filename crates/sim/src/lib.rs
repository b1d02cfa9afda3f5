//! Simulators of the vendor services, on loopback ports the OS picks. Test equipment for the
//! integration tests and the `demo` command: faithful to the vendors' documented behaviour
//! (status codes, error bodies, pending codes, token expiry, 401 + re-auth, 429 + Retry-After),
//! with latency and error injection.

pub mod jira;
pub mod scm;

pub use jira::{JiraFaults, JiraSim};
pub use scm::{AdminDateFormat, AdminFields, Faults, ScmSim, ScmSimConfig, Scripted};

/// Serves `app` on `listener` until the returned sender is dropped.
fn serve(listener: tokio::net::TcpListener, app: axum::Router) -> tokio::sync::oneshot::Sender<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    tx
}
