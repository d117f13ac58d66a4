//! The api's HTTP server against clients that hold connections without speaking:
//! sockets that send nothing, or only the HTTP/2 preface, cannot keep Workfront out.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use docket_tests::wait::DEADLINE;
use docket_tests::{catalog, catalog_path, wait_until, Api, TestDb};

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[tokio::test]
async fn silent_sockets_and_bare_h2_prefaces_are_closed_after_the_header_timeout() {
    const SLOTS: usize = 4;
    let db = TestDb::new().await;
    let dir = catalog("[[action]]\nname = \"noop\"\nkind = \"noop\"\n");
    let env = [("DOCKET_API_MAX_CONNECTIONS", SLOTS.to_string()), ("DOCKET_API_HEADER_TIMEOUT", "1s".to_owned())];
    let api = Api::start(&db.url, &catalog_path(&dir), &env).await;
    let addr = api.base.trim_start_matches("http://").to_owned();
    // Every slot taken: two sockets that say nothing, two that send only the h2 preface.
    let mut held = Vec::new();
    for n in 0..SLOTS {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        if n % 2 == 1 {
            stream.write_all(H2_PREFACE).await.unwrap();
        }
        held.push(stream);
    }
    // The server closes each of them once the header timeout has passed.
    for (n, stream) in held.iter_mut().enumerate() {
        let mut buffer = [0u8; 256];
        let closed = tokio::time::timeout(DEADLINE, async {
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {} // an error reply before closing is fine
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "socket {n} still open after {DEADLINE:?}");
    }
    // And a real request is served again.
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    wait_until("a request to be served", DEADLINE, || async {
        let reply = client.get(format!("{}/healthz", api.base)).send().await.ok()?;
        (reply.status() == 200).then_some(())
    })
    .await;
}
