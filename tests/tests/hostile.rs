//! Hostile clients at the socket level: slow headers, huge headers, raw invalid bytes,
//! thousands of parameters, floods of connections. Each gets a 4xx or a closed
//! connection — never a 5xx, a crash or a stored job.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use docket_tests::inprocess::start_api;
use docket_tests::wait::DEADLINE;
use docket_tests::{catalog, catalog_path, wait_until, TestDb, API_KEY};

const CATALOG: &str = "[[action]]\nname = \"archive\"\nkind = \"noop\"\n";

struct Target {
    addr: String,
    db: TestDb,
    _dir: tempfile::TempDir,
}

async fn api() -> Target {
    let db = TestDb::new().await;
    let dir = catalog(CATALOG);
    let base = start_api(&db.url, &catalog_path(&dir)).await;
    Target { addr: base.trim_start_matches("http://").to_owned(), db, _dir: dir }
}

/// Sends raw bytes and returns what the server answered before closing (bounded).
async fn raw(addr: &str, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

fn status(answer: &str) -> u16 {
    answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

async fn jobs(db: &TestDb) -> i64 {
    sqlx::query_scalar("select count(*) from jobs").fetch_one(&db.pool).await.unwrap()
}

async fn still_serves(addr: &str) {
    wait_until("the api to serve normally", DEADLINE, || async {
        let response = reqwest::get(format!("http://{addr}/serviceInfo")).await.ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let t = api().await;
    let mut stream = TcpStream::connect(&t.addr).await.unwrap();
    stream.write_all(b"GET /serviceInfo HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    let mut buffer = Vec::new();
    // The header timeout is 2 s in these tests; the deadline here only bounds the test.
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut buffer)).await;
    assert!(read.is_ok(), "the server closed the connection");
    let answer = String::from_utf8_lossy(&buffer);
    assert!(answer.is_empty() || status(&answer) == 408, "{answer}");
    still_serves(&t.addr).await;
}

#[tokio::test]
async fn huge_headers_and_raw_invalid_bytes_get_4xx() {
    let t = api().await;
    let huge = format!(
        "GET /customAction?name=archive&documentId=d&documentVersionId=v HTTP/1.1\r\nHost: x\r\napiKey: {API_KEY}\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    assert_eq!(status(&raw(&t.addr, huge.as_bytes()).await), 431);

    let mut invalid = b"GET /customAction?name=archive&documentId=".to_vec();
    invalid.extend_from_slice(&[0xff, 0xfe, 0x00]);
    invalid.extend_from_slice(b"&documentVersionId=v HTTP/1.1\r\nHost: x\r\napiKey: ");
    invalid.extend_from_slice(API_KEY.as_bytes());
    invalid.extend_from_slice(b"\r\n\r\n");
    let code = status(&raw(&t.addr, &invalid).await);
    assert_eq!(code, 400, "raw invalid bytes get an answer, and it is 400");

    let nul_header = format!("GET /customAction?name=archive&documentId=d&documentVersionId=v HTTP/1.1\r\nHost: x\r\napiKey: {API_KEY}\r\nusername: a\0b\r\n\r\n");
    let code = status(&raw(&t.addr, nul_header.as_bytes()).await);
    assert_eq!(code, 400, "NUL in a header gets an answer, and it is 400");

    let mut many = String::from("GET /customAction?name=archive&documentId=d&documentVersionId=v");
    for i in 0..3000 {
        many.push_str(&format!("&p{i}=x"));
    }
    many.push_str(&format!(" HTTP/1.1\r\nHost: x\r\napiKey: {API_KEY}\r\n\r\n"));
    let code = status(&raw(&t.addr, many.as_bytes()).await);
    assert!((400..500).contains(&code), "thousands of parameters: {code}");

    assert_eq!(jobs(&t.db).await, 0, "nothing hostile was stored");
    still_serves(&t.addr).await;
}

#[tokio::test]
async fn a_flood_of_connections_meets_a_limit_not_a_crash() {
    let t = api().await;
    // The in-process api allows 64 connections. Hold them all, idle.
    let mut held = Vec::new();
    for _ in 0..64 {
        held.push(TcpStream::connect(&t.addr).await.unwrap());
    }
    // Give the server a moment to accept them all, then one more is closed at once.
    wait_until("the 65th connection to be refused", DEADLINE, || async {
        let mut extra = TcpStream::connect(&t.addr).await.ok()?;
        extra.write_all(b"GET /serviceInfo HTTP/1.1\r\nHost: x\r\n\r\n").await.ok();
        let mut buffer = Vec::new();
        // Closed without an answer: end of stream, or a reset (the request was unread).
        let _read = tokio::time::timeout(Duration::from_secs(5), extra.read_to_end(&mut buffer)).await.ok()?;
        buffer.is_empty().then_some(())
    })
    .await;
    drop(held);
    still_serves(&t.addr).await;
}
