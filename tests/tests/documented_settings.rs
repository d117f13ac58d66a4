//! Every value the README's configuration table shows — each default and each example
//! in its meaning column — is accepted by the binary the row names, so the docs and
//! the parsers cannot drift apart. Each binary is started with the value and a
//! database URL that refuses connections: getting as far as connecting means every
//! setting was accepted.

use std::path::Path;
use std::process::{Command, Stdio};

use docket_tests::process::binary;

/// (variable, binaries, value) for every value the README's settings table shows.
fn documented_values() -> Vec<(String, Vec<&'static str>, String)> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let section = readme.split("\n## Configuration\n").nth(1).expect("a Configuration section");
    let section = section.split("\n## ").next().unwrap();
    let mut values = Vec::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").map(str::trim).collect();
        let [name, used_by, default, meaning] = cells[..] else { panic!("a settings row of four cells: {row}") };
        let name = name.trim_matches('`').to_owned();
        if name == "DATABASE_URL" {
            continue;
        }
        let binaries = match used_by {
            "api" => vec!["docket-api"],
            "worker" => vec!["docket-worker"],
            "both" => vec!["docket-api", "docket-worker"],
            other => panic!("{name}: used by {other:?}?"),
        };
        // A default that names another variable ("`DATABASE_URL`") is not a value.
        let mut shown: Vec<String> = backticked(default)
            .into_iter()
            .filter(|v| !v.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            .collect();
        shown.extend(backticked(meaning).into_iter().filter(|v| looks_like_a_value(v)));
        for value in shown {
            values.push((name.clone(), binaries.clone(), value));
        }
    }
    // Settings written out elsewhere in the README (`DOCKET_DB_POOLER=transaction`).
    let table = values.clone();
    for (at, _) in readme.match_indices("DOCKET_") {
        let assignment: String =
            readme[at..].chars().take_while(|c| !c.is_whitespace() && !"`|)".contains(*c)).collect();
        let Some((name, value)) = assignment.split_once('=') else { continue };
        let row = table.iter().find(|(n, _, _)| n == name);
        if let (Some((_, binaries, _)), false) = (row, value.starts_with(['<', '$'])) {
            values.push((name.to_owned(), binaries.clone(), value.to_owned()));
        }
    }
    values.sort();
    values.dedup();
    values
}

fn backticked(text: &str) -> Vec<String> {
    text.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// A duration, a rate (`100/1s`), a number or a word a setting takes; not a variable
/// name, a path or a sentence.
fn looks_like_a_value(token: &str) -> bool {
    let duration = |t: &str| {
        let digits = t.trim_end_matches(char::is_alphabetic);
        !digits.is_empty()
            && digits.chars().all(|c| c.is_ascii_digit())
            && t.len() > digits.len()
            && t.len() - digits.len() <= 2
    };
    let rate = |t: &str| t.split_once('/').is_some_and(|(n, per)| n.parse::<u64>().is_ok() && duration(per));
    duration(token)
        || rate(token)
        || token.parse::<u64>().is_ok()
        || ["true", "false", "none", "transaction", "json", "text"].contains(&token)
}

/// Starts `binary` with `name=value`; returns its standard error once it exits.
fn start_with(dir: &Path, binary_name: &str, name: &str, value: &str) -> String {
    // Port 1 refuses connections: the binary stops when it first connects.
    let refusing = "postgres://postgres@127.0.0.1:1/docket_settings";
    let output = Command::new(binary(binary_name))
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", refusing)
        .env("DOCKET_LISTEN_DATABASE_URL", refusing)
        .env("DOCKET_API_KEYS", docket_tests::API_KEY)
        .env("DOCKET_API_ADDR", "127.0.0.1:0")
        .env("DOCKET_WORKER_ADDR", "127.0.0.1:0")
        .env(name, value)
        .stdin(Stdio::null())
        .output()
        .expect("run the binary");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn every_value_the_readme_shows_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    // The default DOCKET_ACTIONS, ./actions.toml, is found in the working directory.
    std::fs::write(dir.path().join("actions.toml"), "[[action]]\nname = \"noop\"\nkind = \"noop\"\n").unwrap();
    let values = documented_values();
    assert!(values.len() > 30, "the table was read: {values:?}");
    for needle in
        [("DOCKET_API_SAMPLE_INTERVAL", "0s"), ("DOCKET_API_RATE_LIMIT", "600/1m"), ("DOCKET_DB_POOLER", "transaction")]
    {
        assert!(values.iter().any(|(n, _, v)| (n.as_str(), v.as_str()) == needle), "{needle:?} in {values:?}");
    }
    let mut refused = Vec::new();
    for (name, binaries, value) in &values {
        for binary_name in binaries {
            let stderr = start_with(dir.path(), binary_name, name, value);
            if !stderr.contains("cannot connect to Postgres") {
                refused.push(format!("{binary_name} {name}={value}: {}", stderr.trim()));
            }
        }
    }
    assert!(refused.is_empty(), "documented values refused:\n{}", refused.join("\n"));
}
