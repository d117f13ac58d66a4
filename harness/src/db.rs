//! A fresh database per test, dropped when the test ends.

use sqlx::{Connection, PgConnection, PgPool};

/// Where the tests find Postgres: `DOCKET_TEST_DATABASE_URL`, else the local server.
pub fn server_url() -> String {
    std::env::var("DOCKET_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub struct TestDb {
    server: String,
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl TestDb {
    /// Creates an empty, migrated database with a unique name on the test server.
    pub async fn new() -> Self {
        Self::on_server(&server_url(), "docket_test").await
    }

    /// Creates an empty, migrated database named `<prefix>_<random>` on `server`
    /// (a URL without database name).
    pub async fn on_server(server: &str, prefix: &str) -> Self {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let url = format!("{server}/{name}");
        let pool = docket::db::connect_and_migrate(&url, &docket::db::PoolSettings::default())
            .await
            .expect("create and migrate the test database")
            .pool()
            .clone();
        Self { server: server.to_owned(), name, url, pool }
    }

    /// A URL for the same database through another host:port (a proxy).
    pub fn url_via(&self, addr: std::net::SocketAddr) -> String {
        format!("postgres://postgres@{addr}/{}", self.name)
    }

    /// The server URL, without database name.
    pub fn server(&self) -> &str {
        &self.server
    }
}

/// Seconds from the job's creation to the start of its first attempt, waiting (up to a
/// minute) until that attempt exists.
pub async fn seconds_to_first_start(pool: &PgPool, id: docket::domain::JobId) -> f64 {
    crate::wait::wait_until(&format!("job {id} to start"), std::time::Duration::from_secs(60), || async {
        sqlx::query_scalar::<_, f64>(
            "select extract(epoch from a.started_at - j.created_at)::float8
             from jobs j join job_attempts a on a.job_id = j.id and a.attempt = 1 where j.id = $1",
        )
        .bind(id.0)
        .fetch_optional(pool)
        .await
        .ok()
        .flatten()
    })
    .await
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let server = self.server.clone();
        // Drop runs outside async; use a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&format!("{server}/postgres")).await.ok()?;
                sqlx::raw_sql(&format!("drop database if exists \"{name}\" with (force)"))
                    .execute(&mut admin)
                    .await
                    .ok()
            })
        })
        .join();
    }
}
