//! A fresh database per test, dropped when the test ends.

use sqlx::{Connection, PgConnection, PgPool};

/// Where the tests find Postgres: `DOCKET_TEST_DATABASE_URL`, else the local server.
pub fn server_url() -> String {
    std::env::var("DOCKET_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl TestDb {
    /// Creates an empty, migrated database with a unique name.
    pub async fn new() -> Self {
        let name = format!("docket_test_{}", uuid::Uuid::new_v4().simple());
        let url = format!("{}/{name}", server_url());
        let pool = docket::db::connect_and_migrate(&url, &docket::db::PoolSettings::default())
            .await
            .expect("create and migrate the test database");
        Self { name, url, pool }
    }

    /// A URL for the same database through another host:port (a proxy).
    pub fn url_via(&self, addr: std::net::SocketAddr) -> String {
        format!("postgres://postgres@{addr}/{}", self.name)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async; use a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&format!("{}/postgres", server_url())).await.ok()?;
                sqlx::raw_sql(&format!("drop database if exists \"{name}\" with (force)"))
                    .execute(&mut admin)
                    .await
                    .ok()
            })
        })
        .join();
    }
}
