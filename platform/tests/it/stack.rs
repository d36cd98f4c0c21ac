//! `scripts/stack status` proves the broker with a round trip (`scripts/lib/probe.py`): a frozen
//! broker keeps its port open, and only the round trip notices.

use std::time::Duration;

use testkit::{TestBroker, stack_env, workspace_root};

const TOPIC: &str = "warung.stack.probe";

async fn probe(broker: &TestBroker) -> (bool, String) {
    let python = stack_env()
        .get("STACK_PYTHON")
        .cloned()
        .expect("STACK_PYTHON (scripts/stack env)");
    let out = tokio::time::timeout(
        Duration::from_secs(8),
        tokio::process::Command::new(python)
            .arg(workspace_root().join("scripts/lib/probe.py"))
            .args(["kafka", &broker.addr.to_string(), TOPIC])
            .kill_on_drop(true)
            .output(),
    )
    .await;
    match out {
        Ok(Ok(out)) => (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ),
        // Still waiting on a frozen broker: the stack's own 12 s bound would report it down.
        _ => (false, "no answer".to_owned()),
    }
}

#[tokio::test]
async fn the_broker_probe_passes_a_live_broker_and_fails_a_frozen_one_whose_port_is_open() {
    let broker = TestBroker::start(&[TOPIC]).await;
    let (ok, out) = probe(&broker).await;
    assert!(ok, "a live broker failed the probe: {out}");

    broker.pause();
    assert!(
        tokio::net::TcpStream::connect(broker.addr).await.is_ok(),
        "the frozen broker's port should still accept connections"
    );
    let (ok, out) = probe(&broker).await;
    broker.resume();
    assert!(!ok, "a frozen broker passed the probe: {out}");
}
