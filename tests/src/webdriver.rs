//! Debian's headless Chromium driven through `chromedriver` with fantoccini (a W3C
//! WebDriver client): sign in, fill forms, click, read text, take screenshots.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Map};
use tokio::process::{Child, Command};

use crate::wait::{wait_until, DEADLINE};

pub struct Browser {
    client: Client,
    /// `DELETE` ends the session (and its Chromium).
    session_url: String,
    _driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium session.
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into()))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver is installed (Debian package chromium-driver)");
        let profile = tempfile::tempdir().unwrap();
        let options = json!({
            "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                     format!("--user-data-dir={}", profile.path().display())]
        });
        let mut capabilities = Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert("goog:chromeOptions".into(), options);
        let url = format!("http://127.0.0.1:{port}");
        // fantoccini's client is built with rustls; with more than one crypto provider
        // compiled into the tests, rustls needs to be told which (chromedriver itself is
        // plain HTTP on loopback).
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        // chromedriver needs a moment to listen: connect until it answers.
        let client = wait_until("chromedriver to open a session", DEADLINE, || async {
            ClientBuilder::rustls().ok()?.capabilities(capabilities.clone()).connect(&url).await.ok()
        })
        .await;
        let session = client.session_id().await.ok().flatten().map(|id| id.to_string()).unwrap_or_default();
        let session_url = format!("{url}/session/{session}");
        Self { client, session_url, _driver: driver, _profile: profile }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    pub async fn url(&self) -> String {
        self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default()
    }

    /// Waits for an element matching a CSS selector to appear.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        wait_until(&format!("element {css}"), DEADLINE, || async { self.client.find(Locator::Css(css)).await.ok() })
            .await
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        self.find(css).await.send_keys(text).await.unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// The visible text of the element matching `css`; retried while the page is
    /// still changing (a navigation makes found elements stale).
    pub async fn text(&self, css: &str) -> String {
        wait_until(&format!("text of {css}"), DEADLINE, || async { self.find(css).await.text().await.ok() }).await
    }

    /// Runs a script in the page and returns what it returns.
    pub async fn execute(&self, script: &str) -> serde_json::Value {
        self.client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("script {script}: {e}"))
    }

    /// An attribute of the element matching `css` (empty if it has none).
    pub async fn attr(&self, css: &str, name: &str) -> String {
        self.find(css).await.attr(name).await.ok().flatten().unwrap_or_default()
    }

    /// Resizes the window (the viewport is a little smaller than the window).
    pub async fn resize(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.unwrap_or_else(|e| panic!("resize: {e}"));
    }

    /// Signs in on the dashboard at `base` and waits for the overview.
    pub async fn sign_in(&self, base: &str, token: &str) {
        self.goto(&format!("{base}/ops/login")).await;
        self.type_into("#token", token).await;
        self.click("#sign-in").await;
        wait_until("the overview after signing in", DEADLINE, || async {
            self.text("main").await.contains("Live workers").then_some(())
        })
        .await;
    }

    /// Saves a PNG of the viewport.
    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.unwrap_or_else(|e| panic!("screenshot: {e}"));
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the session so that Chromium exits (chromedriver itself is killed with
        // its process handle). fantoccini's own `close` needs the test's runtime, which
        // a destructor cannot wait on, so the request goes out on a runtime of its own.
        let url = self.session_url.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async { reqwest::Client::new().delete(url).send().await.ok() })
        })
        .join();
    }
}

/// Polls `check` after reloading the page, until it holds.
pub async fn reload_until(browser: &Browser, what: &str, deadline: Duration, css: &str, expected: &str) {
    wait_until(what, deadline, || async {
        let url = browser.url().await;
        browser.goto(&url).await;
        (browser.text(css).await == expected).then_some(())
    })
    .await;
}
