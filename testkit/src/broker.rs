//! A Kafka-protocol broker of a test's own (durable Tansu in a temporary folder), so a test can
//! pause it (SIGSTOP) and resume it (SIGCONT) without stalling every other test on the shared
//! broker. Paused, not killed: the broker keeps what it acknowledged, so the test measures
//! Warung, not the broker's memory.

use std::{net::SocketAddr, process::Stdio, time::Duration};

use tokio::process::{Child, Command};

use crate::stack_env;

#[derive(Debug)]
pub struct TestBroker {
    pub addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

impl TestBroker {
    /// A port nothing listens on yet, for a broker a test starts later.
    pub fn free_addr() -> SocketAddr {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    }

    /// Starts a broker with `topics` (one partition each) and waits until it answers.
    pub async fn start(topics: &[&str]) -> Self {
        Self::start_on(Self::free_addr(), topics).await
    }

    pub async fn start_on(addr: SocketAddr, topics: &[&str]) -> Self {
        let bin = stack_env()
            .get("STACK_TANSU_BIN")
            .cloned()
            .expect("STACK_TANSU_BIN (scripts/stack env)");
        let dir = tempfile::tempdir().unwrap();
        let url = format!("tcp://{addr}");
        // Tansu resolves the SQLite path against its working directory: run it from `/`.
        let storage = format!("sqlite://{}/tansu.db", dir.path().display());
        let child = Command::new(&bin)
            .args([
                "broker",
                "--cluster-id",
                "test",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", &storage])
            .current_dir("/")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for topic in topics {
            let status = Command::new(&bin)
                .args([
                    "topic",
                    "create",
                    "--broker",
                    &url,
                    "--partitions",
                    "1",
                    topic,
                ])
                .current_dir("/")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await
                .unwrap();
            assert!(
                status.success(),
                "creating topic {topic} on the test broker failed"
            );
        }
        Self {
            addr,
            child,
            _dir: dir,
        }
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("broker running").to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// Freezes the broker: connections stay open, nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .status();
        }
    }
}
