//! A TCP proxy in front of Postgres that a test can cut and restore, or pause and
//! resume, so a database outage or stall can be simulated for some processes without
//! disturbing other tests.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub addr: SocketAddr,
    up: watch::Sender<bool>,
    flowing: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts forwarding 127.0.0.1:<free port> to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let (up, up_rx) = watch::channel(true);
        let (flowing, flowing_rx) = watch::channel(true);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut state = up_rx.clone();
                if !*state.borrow() {
                    drop(client); // refused while cut
                    continue;
                }
                let flowing = flowing_rx.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::select! {
                        _ = pump(client_read, server_write, flowing.clone()) => {}
                        _ = pump(server_read, client_write, flowing) => {}
                        _ = state.wait_for(|up| !*up) => {} // cut: drop both ends
                    }
                });
            }
        });
        Self { addr, up, flowing, task }
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        let _ = self.up.send(false);
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        let _ = self.up.send(true);
    }

    /// Holds every byte in both directions (connections stay open): a stalled database.
    pub fn pause(&self) {
        let _ = self.flowing.send(false);
    }

    /// Delivers what was held, and forwards again.
    pub fn resume(&self) {
        let _ = self.flowing.send(true);
    }
}

/// Copies `from` to `to`, holding each chunk while the proxy is paused.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut flowing: watch::Receiver<bool>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if flowing.wait_for(|flowing| *flowing).await.is_err() || to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
