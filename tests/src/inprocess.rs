//! The api started in this test process (the same `Application` the binary runs), on
//! port 0, with the test API keys and admin token.

use std::path::Path;
use std::time::Duration;

use docket::secret::Secret;
use docket_api::config::Config;
use docket_api::startup::Application;

/// The admin token the tests configure, labelled `tester`.
pub use docket_harness::ADMIN_TOKEN;
/// A second Workfront key, to test rotation.
pub const SECOND_KEY: &str = "second-key-for-rotation";

/// Starts the api in-process and returns its base URL.
pub async fn start_api(database_url: &str, catalog: &Path) -> String {
    start_api_with(database_url, catalog, |_| {}).await
}

/// Starts the api in-process with `adjust` applied to the test configuration.
pub async fn start_api_with(database_url: &str, catalog: &Path, adjust: impl FnOnce(&mut Config)) -> String {
    let mut config = Config {
        database_url: Secret::new(database_url),
        addr: "127.0.0.1:0".parse().expect("address"),
        actions: catalog.to_owned(),
        api_keys: vec![Secret::new(crate::API_KEY), Secret::new(SECOND_KEY)],
        admin_tokens: vec![Secret::new(format!("tester:{ADMIN_TOKEN}"))],
        event_tokens: vec![Secret::new(crate::EVENT_TOKEN)],
        insecure_disable_auth: false,
        db_connections: 4,
        db_acquire_timeout: Duration::from_secs(3),
        db: docket::db::DbFlags { statement_cache: 100, pooler: docket::db::Pooler::None, test_before_acquire: false },
        insert_batch: 256,
        request_timeout: Duration::from_secs(10),
        commit_wait: Duration::from_secs(30),
        sample_interval: Duration::from_secs(1),
        public_url: None,
        trusted_proxies: Vec::new(),
        max_connections: 64,
        header_timeout: Duration::from_secs(2),
        rate_limit: None,
    };
    adjust(&mut config);
    let app = Application::build(config).await.expect("api builds");
    let base = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    base
}
