//! A PgBouncer of the test's own, in transaction mode, in front of the test server:
//! Docket must work through a transaction-mode pooler (with the LISTEN connection
//! going to Postgres directly).

use std::process::Command;

pub struct PgBouncer {
    dir: tempfile::TempDir,
    pub port: u16,
}

impl PgBouncer {
    /// Starts `pgbouncer` (Debian package `pgbouncer`) forwarding every database to
    /// `upstream_host:upstream_port`, trust authentication, transaction pooling, at
    /// most `server_connections` server connections per database — fewer than the
    /// clients hold, so that clients share them. Otherwise PgBouncer's defaults: no
    /// reset query in transaction mode, and no `ignore_startup_parameters` (a stock
    /// PgBouncer refuses start-up parameters it does not know, such as
    /// `extra_float_digits`, and managed poolers often cannot be told otherwise).
    pub fn start(upstream_host: &str, upstream_port: u16, server_connections: u32) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let path = |name: &str| dir.path().join(name).display().to_string();
        let config = format!(
            "[databases]\n* = host={upstream_host} port={upstream_port}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\n\
             listen_port = {port}\nauth_type = trust\nauth_file = {}\npool_mode = transaction\nmax_client_conn = 500\n\
             default_pool_size = {server_connections}\nunix_socket_dir =\nlogfile = {}\npidfile = {}\n",
            path("userlist.txt"),
            path("pgbouncer.log"),
            path("pgbouncer.pid"),
        );
        std::fs::write(path("pgbouncer.ini"), config).unwrap();
        std::fs::write(path("userlist.txt"), "\"postgres\" \"\"\n").unwrap();
        if nix::unistd::geteuid().is_root() {
            // PgBouncer refuses to run as root.
            let status = Command::new("chown").arg("-R").arg("postgres:").arg(dir.path()).status().unwrap();
            assert!(status.success());
        }
        let bouncer = Self { dir, port };
        bouncer.run();
        bouncer
    }

    /// Starts the daemon with this directory's configuration and waits until it
    /// accepts connections.
    fn run(&self) {
        let mut command = if nix::unistd::geteuid().is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &program()]);
            c
        } else {
            Command::new(program())
        };
        let output =
            command.arg("-d").arg(self.dir.path().join("pgbouncer.ini")).output().expect("pgbouncer is installed");
        assert!(output.status.success(), "pgbouncer: {}", String::from_utf8_lossy(&output.stderr));
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("pgbouncer did not start listening");
    }

    /// SIGKILLs PgBouncer: every client and server connection through it breaks.
    pub fn kill(&self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
        let pidfile = self.dir.path().join("pgbouncer.pid");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                // Left behind by the killed daemon; a new one would refuse to start.
                let _ = std::fs::remove_file(pidfile);
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("pgbouncer still accepts connections after SIGKILL");
    }

    /// Starts PgBouncer again on the same port, after [`kill`](Self::kill).
    pub fn restart(&self) {
        self.run();
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("pgbouncer.pid")) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
            }
        }
    }

    /// What PgBouncer wrote to its log (errors it saw from clients and servers).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }

    /// A URL for `database` through the pooler.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
    }
}

/// The pgbouncer binary: on the PATH, or where Debian puts it (`/usr/sbin`, which is
/// not on every user's PATH).
fn program() -> String {
    let sbin = "/usr/sbin/pgbouncer";
    if std::path::Path::new(sbin).exists() {
        sbin.to_owned()
    } else {
        "pgbouncer".to_owned()
    }
}
