//! A TCP proxy in front of Postgres that a test can cut and restore, or pause and
//! resume, so a database outage or stall can be simulated for some processes without
//! disturbing other tests.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Whether the proxy lets connections through, and how it keeps them out when not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    Open,
    /// Open connections are dropped; new ones are accepted and closed at once (a
    /// database that hangs up on its clients).
    Cut,
    /// Open connections are dropped and the port is closed: new ones are refused
    /// (`ECONNREFUSED`), as when the database host is up but Postgres is not.
    Refusing,
}

pub struct Proxy {
    pub addr: SocketAddr,
    gate: watch::Sender<Gate>,
    flowing: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts forwarding 127.0.0.1:<free port> to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let (gate, gate_rx) = watch::channel(Gate::Open);
        let (flowing, flowing_rx) = watch::channel(true);
        let task = tokio::spawn(accept_loop(listener, upstream, gate_rx, flowing_rx));
        Self { addr, gate, flowing, task }
    }

    /// Closes every connection and closes new ones as soon as they are accepted.
    pub fn cut(&self) {
        let _ = self.gate.send(Gate::Cut);
    }

    /// Closes every connection and the port itself: new connections are refused.
    pub fn refuse(&self) {
        let _ = self.gate.send(Gate::Refusing);
    }

    /// Accepts connections again (on the same port).
    pub fn restore(&self) {
        let _ = self.gate.send(Gate::Open);
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

async fn accept_loop(
    mut listener: TcpListener,
    upstream: SocketAddr,
    mut gate: watch::Receiver<Gate>,
    flowing: watch::Receiver<bool>,
) {
    let addr = listener.local_addr().unwrap();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => Some(accepted),
            refusing = gate.wait_for(|g| *g == Gate::Refusing) => match refusing {
                Ok(_) => None,
                Err(_) => return,
            },
        };
        let Some(accepted) = accepted else {
            // Close the port until the gate opens again, then listen on it anew.
            drop(listener);
            if gate.wait_for(|g| *g != Gate::Refusing).await.is_err() {
                return;
            }
            listener = loop {
                match TcpListener::bind(addr).await {
                    Ok(listener) => break listener,
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            };
            continue;
        };
        let Ok((client, _)) = accepted else { continue };
        if *gate.borrow() != Gate::Open {
            drop(client); // hung up on while cut
            continue;
        }
        let (mut gate, flowing) = (gate.clone(), flowing.clone());
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::select! {
                _ = pump(client_read, server_write, flowing.clone()) => {}
                _ = pump(server_read, client_write, flowing) => {}
                _ = gate.wait_for(|g| *g != Gate::Open) => {} // cut: drop both ends
            }
        });
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
