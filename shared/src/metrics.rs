//! The process-wide Prometheus recorder: counters and histograms recorded with the
//! `metrics` macros anywhere in the process, rendered by `/metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets (seconds) for every `*_seconds` histogram: 1 ms to 1 min.
const BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The recorder's handle, installing it on first use.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
            .expect("valid buckets")
            .build_recorder();
        let handle = recorder.handle();
        // Only fails if another recorder is installed; then ours simply stays empty.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Publishes `docket_build_info{version}` = 1, so that dashboards see which build
/// runs (and that the process is up) from its first scrape.
pub fn publish_build_info() {
    metrics::gauge!("docket_build_info", "version" => crate::VERSION).set(1.0);
}
