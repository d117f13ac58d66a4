//! Every metric that deploy/prometheus/alerts.yml and deploy/grafana/docket.json
//! query is one that Docket really exports: an api and a worker run a job, both
//! `/metrics` are scraped, and each `docket_*` name in the two files must be among
//! the names they expose (a histogram's `_bucket`, `_sum` and `_count` count as its
//! own). A renamed metric then fails here instead of leaving an alert silent.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use docket::db::jobs;
use docket_tests::wait::DEADLINE;
use docket_tests::{catalog, catalog_path, wait_until, Api, TestDb, Worker};

const FILES: [&str; 2] = ["deploy/prometheus/alerts.yml", "deploy/grafana/docket.json"];
const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];

/// Every identifier starting with `docket_` (not inside a longer identifier).
fn docket_identifiers(text: &str) -> BTreeSet<String> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("docket_") {
        let preceded = rest[..at].chars().next_back().is_some_and(is_ident);
        let tail = &rest[at..];
        let end = tail.find(|c: char| !is_ident(c)).unwrap_or(tail.len());
        if !preceded {
            names.insert(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

/// Metric names in a Prometheus text exposition, with their `# TYPE`.
fn exposed(body: &str, into: &mut HashMap<String, String>) {
    for line in body.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let mut parts = declared.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                into.insert(name.to_owned(), kind.to_owned());
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            into.entry(name.to_owned()).or_insert_with(|| "sample".to_owned());
        }
    }
}

/// Whether `name` is exposed: as is, or as a histogram's (or summary's) series.
fn is_exposed(name: &str, names: &HashMap<String, String>) -> bool {
    names.contains_key(name)
        || HISTOGRAM_SUFFIXES.iter().any(|suffix| {
            name.strip_suffix(suffix)
                .and_then(|base| names.get(base))
                .is_some_and(|kind| kind == "histogram" || kind == "summary")
        })
}

#[tokio::test]
async fn alerts_and_dashboard_query_only_metrics_docket_exports() {
    let db = TestDb::new().await;
    let dir = catalog("[[action]]\nname = \"noop\"\nkind = \"noop\"\n");
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let worker = Worker::start(&db.url, &catalog_path(&dir), "w-metrics", &[]).await;
    let client = reqwest::Client::new();

    // A job through intake and a worker, so the histograms have samples.
    let id = api.enqueue(&client, "noop", "doc-metrics").await;
    wait_until("the job to finish", DEADLINE, || async {
        jobs::get(&db.pool, id).await.unwrap().filter(|j| j.state.is_final())
    })
    .await;

    let mut names = HashMap::new();
    for url in [format!("{}/metrics", api.base), format!("{}/metrics", worker.health)] {
        let response = client.get(&url).send().await.expect("scrape");
        assert_eq!(response.status(), 200, "{url}");
        exposed(&response.text().await.unwrap(), &mut names);
    }
    assert!(names.contains_key("docket_attempts_total"), "the worker's metrics were scraped: {names:?}");

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut missing = Vec::new();
    let mut checked = 0;
    for file in FILES {
        let text = std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("read {file}: {e}"));
        let used = docket_identifiers(&text);
        assert!(!used.is_empty(), "{file} names no docket_ metric");
        for name in used {
            checked += 1;
            if !is_exposed(&name, &names) {
                missing.push(format!("{file}: {name}"));
            }
        }
    }
    let mut exported: Vec<&String> = names.keys().filter(|n| n.starts_with("docket_")).collect();
    exported.sort();
    assert!(missing.is_empty(), "metrics that Docket does not export: {missing:#?}\nexported: {exported:?}");
    eprintln!("{checked} metric names in {FILES:?}, all exported");
}

#[test]
fn identifiers_and_histogram_suffixes() {
    let used = docket_identifiers(
        "rate(docket_a_total{x=\"1\"}[5m]) / docket_b_seconds_bucket[1m] max(docket_c) xdocket_d not_docket_e",
    );
    assert_eq!(used.into_iter().collect::<Vec<_>>(), ["docket_a_total", "docket_b_seconds_bucket", "docket_c"]);
    let mut names = HashMap::new();
    exposed(
        "# TYPE docket_b_seconds histogram\ndocket_b_seconds_bucket{le=\"1\"} 0\ndocket_c 1\n# TYPE docket_g gauge\n",
        &mut names,
    );
    assert!(is_exposed("docket_b_seconds_bucket", &names));
    assert!(is_exposed("docket_b_seconds_count", &names));
    assert!(is_exposed("docket_c", &names));
    assert!(!is_exposed("docket_c_count", &names), "a gauge has no _count");
    assert!(!is_exposed("docket_missing", &names));
}
