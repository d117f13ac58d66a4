//! The real `docket-api` and `docket-worker` binaries as child processes, with their
//! logs captured (JSON lines) so tests can wait for and assert on them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::wait::{wait_until, DEADLINE};

/// Path of a workspace binary: beside the running executable (`target/<profile>/`,
/// for `docket-bench`) or one level up (`target/<profile>/deps/`, for tests), or in
/// `DOCKET_BIN_DIR`.
pub fn binary(name: &str) -> PathBuf {
    let candidates: Vec<PathBuf> = match std::env::var_os("DOCKET_BIN_DIR") {
        Some(dir) => vec![PathBuf::from(dir)],
        None => {
            let exe = std::env::current_exe().expect("executable path");
            exe.ancestors().skip(1).take(2).map(Path::to_path_buf).collect()
        }
    };
    candidates.iter().map(|dir| dir.join(name)).find(|path| path.exists()).unwrap_or_else(|| {
        panic!("{name} not found in {candidates:?}: build it (`cargo test --workspace` does) or set DOCKET_BIN_DIR")
    })
}

/// A running child process and the log lines it has written.
pub struct Process {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    /// The task that collects `logs`; done once the process closed its stderr.
    reader: Option<tokio::task::JoinHandle<()>>,
}

impl Process {
    pub fn spawn(binary_name: &str, envs: &[(&str, String)]) -> Self {
        let mut command = Command::new(binary(binary_name));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DOCKET_LOG_FORMAT", "json")
            .env("RUST_LOG", std::env::var("TEST_RUST_LOG").unwrap_or_else(|_| "info,sqlx=warn".into()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in envs {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn binary");
        let stderr = child.stderr.take().expect("piped stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let echo = std::env::var_os("TEST_LOG").is_some();
        let label = binary_name.to_owned();
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if echo {
                    eprintln!("[{label}] {line}");
                }
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, logs, reader: Some(reader) }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id().expect("process still running") as i32)
    }

    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).expect("send signal");
    }

    /// SIGKILL, and wait until it is gone.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("kill child");
    }

    /// Waits for the process to exit and returns its exit code; by then [`logs`](Self::logs)
    /// holds every line it wrote.
    pub async fn wait_exit(&mut self, deadline: Duration) -> Option<i32> {
        let status = tokio::time::timeout(deadline, self.child.wait()).await.expect("process did not exit in time");
        if let Some(reader) = self.reader.take() {
            tokio::time::timeout(deadline, reader).await.expect("stderr closed after exit").expect("log reader");
        }
        status.expect("wait for child").code()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Waits until a log line contains `needle`; returns that line.
    pub async fn wait_for_log(&self, needle: &str) -> String {
        let logs = self.logs.clone();
        wait_until(&format!("a log line containing {needle:?}"), DEADLINE, || {
            let found = logs.lock().unwrap().iter().find(|l| l.contains(needle)).cloned();
            async move { found }
        })
        .await
    }
}

/// A running `docket-api`.
pub struct Api {
    pub process: Process,
    pub base: String,
}

impl Api {
    /// Starts the api on a free port with the test API key.
    pub async fn start(database_url: &str, catalog: &Path, extra: &[(&str, String)]) -> Self {
        let mut envs = vec![
            ("DATABASE_URL", database_url.to_owned()),
            ("DOCKET_API_ADDR", "127.0.0.1:0".to_owned()),
            ("DOCKET_ACTIONS", catalog.display().to_string()),
            ("DOCKET_API_KEYS", crate::API_KEY.to_owned()),
            ("DOCKET_EVENT_TOKENS", crate::EVENT_TOKEN.to_owned()),
        ];
        envs.extend(extra.iter().cloned());
        let process = Process::spawn("docket-api", &envs);
        let line = process.wait_for_log("docket-api listening").await;
        let value: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        let addr = value["addr"].as_str().expect("addr field").to_owned();
        Self { process, base: format!("http://{addr}") }
    }

    /// `GET /customAction` with the test key.
    pub async fn custom_action(&self, client: &reqwest::Client, name: &str, document_id: &str) -> reqwest::Response {
        client
            .get(format!("{}/customAction", self.base))
            .query(&[("name", name), ("documentId", document_id), ("documentVersionId", "v1")])
            .header("apiKey", crate::API_KEY)
            .header("username", "ada@example.com")
            .send()
            .await
            .expect("request to api")
    }

    /// Queues `n` jobs (documents `doc-0` … `doc-{n-1}`) through the api, 16 requests
    /// at a time; returns their ids.
    pub async fn enqueue_many(&self, client: &reqwest::Client, name: &str, n: usize) -> Vec<docket::domain::JobId> {
        use futures::StreamExt;
        futures::stream::iter(0..n)
            .map(|i| async move { self.enqueue(client, name, &format!("doc-{i}")).await })
            .buffer_unordered(16)
            .collect()
            .await
    }

    /// `GET /ops/jobs/{id}` with the tests' admin token: the job, its attempts, its
    /// follow-ups and the operator actions on it.
    pub async fn job_detail(&self, client: &reqwest::Client, id: docket::domain::JobId) -> serde_json::Value {
        let response = client
            .get(format!("{}/ops/jobs/{id}", self.base))
            .bearer_auth(crate::ADMIN_TOKEN)
            .send()
            .await
            .expect("request to api");
        response.json().await.expect("JSON reply")
    }

    /// Queues a job through the api and returns its id.
    pub async fn enqueue(&self, client: &reqwest::Client, name: &str, document_id: &str) -> docket::domain::JobId {
        let response = self.custom_action(client, name, document_id).await;
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.expect("JSON reply");
        assert_eq!(body["status"], "success");
        let id: uuid::Uuid = body["jobId"].as_str().expect("jobId").parse().expect("uuid");
        docket::domain::JobId(id)
    }
}

/// A running `docket-worker`.
pub struct Worker {
    pub process: Process,
    pub id: String,
    /// Base URL of the worker's health server.
    pub health: String,
}

impl Worker {
    /// Starts a worker with a given id; `extra` overrides defaults (lease, intervals).
    pub async fn start(database_url: &str, catalog: &Path, id: &str, extra: &[(&str, String)]) -> Self {
        let mut envs = vec![
            ("DATABASE_URL", database_url.to_owned()),
            ("DOCKET_ACTIONS", catalog.display().to_string()),
            ("DOCKET_WORKER_ID", id.to_owned()),
            ("DOCKET_WORKER_ADDR", "127.0.0.1:0".to_owned()),
        ];
        envs.extend(extra.iter().cloned());
        let process = Process::spawn("docket-worker", &envs);
        let started = process.wait_for_log("docket-worker started").await;
        let value: serde_json::Value = serde_json::from_str(&started).expect("JSON log line");
        let health = format!("http://{}", value["health.addr"].as_str().expect("health.addr field"));
        process.wait_for_log("listening for new jobs").await;
        Self { process, id: id.to_owned(), health }
    }
}

/// Starts `binary` on `database_url` with a catalog of `catalog_text`, checks that it
/// refuses to start (exit code 2), and returns its last log line (the reason).
pub async fn refusal(binary: &str, database_url: &str, catalog_text: &str) -> String {
    refusal_with(binary, database_url, catalog_text, &[]).await
}

/// [`refusal`], with `extra` variables in the environment.
pub async fn refusal_with(binary: &str, database_url: &str, catalog_text: &str, extra: &[(&str, String)]) -> String {
    let dir = crate::catalog(catalog_text);
    let mut envs = vec![
        ("DATABASE_URL", database_url.to_owned()),
        ("DOCKET_ACTIONS", crate::catalog_path(&dir).display().to_string()),
        ("DOCKET_API_KEYS", crate::API_KEY.to_owned()),
        ("DOCKET_API_ADDR", "127.0.0.1:0".to_owned()),
        ("DOCKET_WORKER_ADDR", "127.0.0.1:0".to_owned()),
    ];
    envs.extend(extra.iter().cloned());
    let mut process = Process::spawn(binary, &envs);
    assert_eq!(process.wait_exit(DEADLINE).await, Some(2), "{binary} refused to start");
    process.logs().last().cloned().unwrap_or_default()
}
