//! The optional OTLP exporter: off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, and then each intake request and
//! each attempt is sent as one span to that collector (OTLP over HTTP, protobuf).
//!
//! The spans carry exactly the ids of [`TraceParent`](crate::trace::TraceParent): the
//! intake's span id is the one stored with the job, the attempt's is the one sent to
//! the target in `traceparent`. So the collector shows trigger → intake → attempt →
//! target (and follow-ups) as one tree. Docket's own `tracing` spans stay in the
//! logs; only these two kinds go out, so the export costs one span per request and
//! per attempt, batched off the request path (the SDK's batch processor, on a thread
//! of its own, tuned by the standard `OTEL_BSP_*` variables; a full queue drops spans,
//! it never blocks a request).
//!
//! The standard variables apply: `OTEL_EXPORTER_OTLP_HEADERS` (e.g. a collector's
//! token), `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_SERVICE_NAME` (default `docket-api` /
//! `docket-worker`), `OTEL_RESOURCE_ATTRIBUTES`.

use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer as _,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;

use crate::trace::TraceParent;

/// The variables that turn the exporter on (either one).
pub const ENDPOINT_VARIABLES: [&str; 2] = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"];

struct Exporter {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

static EXPORTER: OnceLock<Exporter> = OnceLock::new();

/// Starts the exporter if an endpoint is configured; `Ok(false)` if none is (nothing
/// is exported then, and [`Span`]s cost nothing). `service` names the process unless
/// `OTEL_SERVICE_NAME` does. Call once, before the first span.
pub fn init(service: &'static str) -> Result<bool, String> {
    let mut configured = false;
    for name in ENDPOINT_VARIABLES {
        let Ok(value) = std::env::var(name) else { continue };
        if value.trim().is_empty() {
            continue;
        }
        check_endpoint(name, &value)?;
        configured = true;
    }
    if !configured {
        return Ok(false);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| format!("cannot start the OTLP exporter: {e}"))?;
    let mut resource = Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name(service);
    }
    let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build();
    let tracer = provider.tracer("docket");
    EXPORTER.set(Exporter { provider, tracer }).map_err(|_| "the OTLP exporter was started twice".to_owned())?;
    tracing::info!("exporting spans over OTLP");
    Ok(true)
}

/// The SDK takes any text as an endpoint and fails at each export; Docket refuses to
/// start instead. The value is not repeated: it may hold credentials.
fn check_endpoint(name: &str, value: &str) -> Result<(), String> {
    match url::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        _ => Err(format!(
            "{name} must be an http:// or https:// URL of an OTLP collector, e.g. http://otel-collector:4318"
        )),
    }
}

/// Longest [`shutdown`] waits for the collector.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends the spans still queued and stops the exporter (at most [`FLUSH_TIMEOUT`]);
/// nothing to do when it is off.
pub async fn shutdown() {
    if EXPORTER.get().is_none() {
        return;
    }
    // The SDK's shutdown blocks until its thread has exported.
    let flushed =
        tokio::task::spawn_blocking(|| EXPORTER.get().map(|e| e.provider.shutdown_with_timeout(FLUSH_TIMEOUT)));
    if let Ok(Some(Err(e))) = flushed.await {
        tracing::warn!(error = %e, "the OTLP exporter did not flush every span");
    }
}

/// What a span stands for, as OTLP names it.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A request Docket received (the intake).
    Server,
    /// A job's attempt: taken from the queue, it calls the target.
    Consumer,
}

/// One exported span: started with [`Span::start`], ended when dropped. A no-op when
/// the exporter is off or the trace is not sampled.
pub struct Span(Option<opentelemetry_sdk::trace::Span>);

impl Span {
    /// A span with `own`'s ids whose parent is `parent` (a span of another process:
    /// the caller's, or the intake's for an attempt), or a root if `None`.
    pub fn start(
        name: impl Into<Cow<'static, str>>,
        kind: Kind,
        own: &TraceParent,
        parent: Option<&TraceParent>,
    ) -> Self {
        Self::start_with(|| name.into(), kind, own, parent)
    }

    /// [`Span::start`] with a name built only if the span is recorded.
    pub fn start_with(
        name: impl FnOnce() -> Cow<'static, str>,
        kind: Kind,
        own: &TraceParent,
        parent: Option<&TraceParent>,
    ) -> Self {
        let Some(exporter) = EXPORTER.get() else {
            return Self(None);
        };
        let parent_cx = match parent {
            Some(p) => Context::new().with_remote_span_context(span_context(p)),
            None => Context::new(),
        };
        let kind = match kind {
            Kind::Server => SpanKind::Server,
            Kind::Consumer => SpanKind::Consumer,
        };
        let span = exporter
            .tracer
            .span_builder(name())
            .with_kind(kind)
            .with_trace_id(TraceId::from_bytes(own.trace_id))
            .with_span_id(SpanId::from_bytes(own.span_id))
            .start_with_context(&exporter.tracer, &parent_cx);
        Self(Some(span))
    }

    /// Sets an attribute (OpenTelemetry's conventions where one exists).
    pub fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        use opentelemetry::trace::Span as _;
        if let Some(span) = &mut self.0 {
            span.set_attribute(KeyValue::new(key, value));
        }
    }

    /// Records the HTTP status a request was answered with; a 5xx marks the span
    /// failed (a 4xx is the caller's error, not the server's, as OpenTelemetry's
    /// conventions say).
    pub fn answered(&mut self, status: u16) {
        self.set("http.response.status_code", i64::from(status));
        if status >= 500 {
            self.fail(format!("answered HTTP {status}"));
        }
    }

    /// Marks the span as failed, with what went wrong.
    pub fn fail(&mut self, description: impl Into<Cow<'static, str>>) {
        use opentelemetry::trace::Span as _;
        if let Some(span) = &mut self.0 {
            span.set_status(Status::error(description));
        }
    }

    /// Whether anything is recorded (the exporter is on and the trace sampled).
    pub fn is_recording(&self) -> bool {
        use opentelemetry::trace::Span as _;
        self.0.as_ref().is_some_and(|s| s.is_recording())
    }
}

fn span_context(p: &TraceParent) -> SpanContext {
    SpanContext::new(
        TraceId::from_bytes(p.trace_id),
        SpanId::from_bytes(p.span_id),
        TraceFlags::new(p.flags),
        true,
        TraceState::default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_http_urls() {
        for good in ["http://otel-collector:4318", "https://collector.example.com", "http://127.0.0.1:4318/v1/traces"] {
            assert_eq!(check_endpoint("X", good), Ok(()), "{good}");
        }
        for bad in
            ["not a url", "ftp://collector:4318", "http://", "collector:4318", "unix:/run/otel.sock", "http://:4318"]
        {
            let error = check_endpoint("OTEL_EXPORTER_OTLP_ENDPOINT", bad).unwrap_err();
            assert!(error.starts_with("OTEL_EXPORTER_OTLP_ENDPOINT must be an http"), "{bad}: {error}");
        }
        let secret = check_endpoint("X", "ftp://user:hunter2@collector").unwrap_err();
        assert!(!secret.contains("hunter2"), "{secret}");
    }

    #[test]
    fn without_an_exporter_a_span_is_a_no_op() {
        // Unit tests never call `init`: a span costs nothing and records nothing.
        let own = TraceParent::new_root();
        let mut span = Span::start("intake", Kind::Server, &own.child(), Some(&own));
        span.set("http.response.status_code", 200);
        span.fail("nothing");
        assert!(!span.is_recording());
    }
}
