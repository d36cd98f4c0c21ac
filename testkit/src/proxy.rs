//! A TCP proxy a test can cut: the dependency behind it stays real, only the network to it fails,
//! exactly as the app would see a crashed or partitioned server. Cutting drops every open
//! connection and refuses new ones until restored.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::{
    net::{TcpListener, TcpStream},
    task::AbortHandle,
};

#[derive(Debug)]
pub struct FaultProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: AbortHandle,
}

#[derive(Debug, Default)]
struct Shared {
    cut: AtomicBool,
    live: Mutex<Vec<AbortHandle>>,
}

impl FaultProxy {
    /// Forwards `127.0.0.1:<random port>` to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let accept_shared = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if accept_shared.cut.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                let mut live = accept_shared.live.lock().unwrap();
                live.retain(|h| !h.is_finished());
                // A cut between the check above and here has drained `live` already: this
                // connection must not outlive it (a pooled client would keep using it).
                if accept_shared.cut.load(Ordering::SeqCst) {
                    task.abort();
                } else {
                    live.push(task.abort_handle());
                }
            }
        })
        .abort_handle();
        Self {
            addr,
            shared,
            accept,
        }
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        for handle in self.shared.live.lock().unwrap().drain(..) {
            handle.abort();
        }
    }

    pub fn restore(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
