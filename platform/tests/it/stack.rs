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

/// The Vault token renewal worker renews a periodic token: its remaining time, run down
/// between two reads, goes back up to the full period. The token is one of the test's own (a
/// one-hour periodic token with the app's policy, made with the stack's root token beside the
/// app token), since every process renews the shared app token.
#[tokio::test]
async fn the_token_renewal_worker_resets_a_periodic_tokens_time_to_live() {
    let mut config = testkit::config_with(&[]);
    config.vault.token = secrecy::SecretString::from(testkit::vault_root_token());
    let root = platform::clients::Vault::connect(&config.vault).unwrap();
    let own = vaultrs::token::new_orphan(
        root.client(),
        Some(
            vaultrs::api::token::requests::CreateOrphanTokenRequest::builder()
                .period("1h")
                .policies(vec!["warung-app".to_owned()])
                .display_name("renewal-test"),
        ),
    )
    .await
    .unwrap();
    config.vault.token = secrecy::SecretString::from(own.client_token.clone());
    let vault = platform::clients::Vault::connect(&config.vault).unwrap();
    let ttl = || async {
        vaultrs::token::lookup_self(vault.client())
            .await
            .unwrap()
            .ttl
    };
    let first = ttl().await;
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let ran_down = ttl().await;
    assert!(
        ran_down < first,
        "{first} -> {ran_down}: the TTL is not running"
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let worker = {
        let (vault, shutdown) = (vault.clone(), shutdown.clone());
        tokio::spawn(async move { vault.keep_token_alive(shutdown).await })
    };
    let mut renewed = ran_down;
    for _ in 0..50 {
        renewed = ttl().await;
        if renewed > ran_down {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    worker.await.unwrap().unwrap();
    assert!(renewed > ran_down, "{ran_down} -> {renewed}: not renewed");
    assert!(
        renewed >= 3_600 - 5,
        "renewed to {renewed} s, not the period"
    );
    let _ = vaultrs::token::revoke_self(vault.client()).await;
}
