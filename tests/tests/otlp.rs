//! The OTLP exporter end to end: a real `docket-api` and `docket-worker` pointed at a
//! stand-in collector (`OTEL_EXPORTER_OTLP_ENDPOINT`) export the intake's span and
//! each attempt's, with the very ids that `traceparent` carried, so the collector
//! draws caller → intake → attempt (→ target) and the follow-up in one trace; failures
//! are marked; a collector that is away changes nothing for the jobs.

use docket::domain::JobId;
use docket::trace::TraceParent;
use docket_tests::collector::{Collector, ReceivedSpan};
use docket_tests::deliveries::{Answer, Encoding, Event, Sender};
use docket_tests::process::refusal_with;
use docket_tests::traced::{call_of, follow_up, stored, trace_of, traced_catalog, trigger, INCOMING, TRACE_ID};
use docket_tests::wait::DEADLINE;
use docket_tests::{catalog_path, wait_until, Api, Target, TestDb, Worker, API_KEY, EVENT_TOKEN};
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode};

/// The span with `span_id`, once the collector has it.
async fn span(collector: &Collector, span_id: [u8; 8]) -> ReceivedSpan {
    wait_until(&format!("the span {}", hex(&span_id)), DEADLINE, || async {
        collector.spans().into_iter().find(|s| s.span_id == span_id)
    })
    .await
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn the_collector_gets_intake_attempt_and_follow_up_as_one_trace() {
    let db = TestDb::new().await;
    let collector = Collector::start().await;
    let target = Target::always(200).await;
    let dir = traced_catalog(&target.url);
    let api = Api::start(&db.url, &catalog_path(&dir), &collector.env()).await;
    let _worker = Worker::start(&db.url, &catalog_path(&dir), "w-otlp", &collector.env()).await;
    let client = reqwest::Client::new();
    let incoming = TraceParent::parse(INCOMING).unwrap();

    let id = trigger(&api, &client, "doc-otlp", Some(INCOMING)).await;
    // The intake's span: the caller's child, with the id stored with the job.
    let intake = stored(&db, id).await;
    let exported = span(&collector, intake.span_id).await;
    assert_eq!(exported.service, "docket-api");
    assert_eq!(exported.name, "GET /customAction");
    assert_eq!(exported.kind, SpanKind::Server);
    assert_eq!(hex(&exported.trace_id), TRACE_ID);
    assert_eq!(exported.parent_span_id, incoming.span_id, "the intake continues the caller's span");
    assert_eq!(exported.attribute("http.response.status_code").as_deref(), Some("200"));
    assert_eq!(exported.attribute("docket.job.id"), Some(id.to_string()));
    assert_eq!(exported.status, StatusCode::Unset);

    // The attempt's span: the intake's child, with the id the target received.
    let sent = trace_of(&call_of(&target, id).await);
    let attempt = span(&collector, sent.span_id).await;
    assert_eq!(attempt.service, "docket-worker");
    assert_eq!(attempt.name, "attempt archive");
    assert_eq!(attempt.kind, SpanKind::Consumer);
    assert_eq!(hex(&attempt.trace_id), TRACE_ID);
    assert_eq!(attempt.parent_span_id, intake.span_id, "the attempt is the intake's child");
    assert_eq!(attempt.attribute("docket.job.id"), Some(id.to_string()));
    assert_eq!(attempt.attribute("docket.attempt").as_deref(), Some("1"));
    assert_eq!(attempt.attribute("docket.outcome").as_deref(), Some("succeeded"));
    assert_eq!(attempt.status, StatusCode::Unset);

    // The follow-up's attempt stays in the trace, under the span its job stored.
    let tell = follow_up(&db, id).await;
    let told = trace_of(&call_of(&target, tell).await);
    let follow = span(&collector, told.span_id).await;
    assert_eq!((follow.name.as_str(), hex(&follow.trace_id).as_str()), ("attempt tell", TRACE_ID));
    assert_eq!(follow.parent_span_id, stored(&db, tell).await.span_id);

    // Without a traceparent the intake is a root, and its attempt its child.
    let id = trigger(&api, &client, "doc-root", None).await;
    let root = span(&collector, stored(&db, id).await.span_id).await;
    assert!(root.parent_span_id.is_empty(), "a new trace: no parent");
    let attempt = span(&collector, trace_of(&call_of(&target, id).await).span_id).await;
    assert_eq!((attempt.trace_id.clone(), attempt.parent_span_id.clone()), (root.trace_id, root.span_id));
}

#[tokio::test]
async fn failures_and_refusals_are_told_apart_and_events_are_exported() {
    let db = TestDb::new().await;
    let collector = Collector::start().await;
    let target = Target::always(500).await;
    let dir = traced_catalog(&target.url);
    let api = Api::start(&db.url, &catalog_path(&dir), &collector.env()).await;
    let _worker = Worker::start(&db.url, &catalog_path(&dir), "w-otlp-fail", &collector.env()).await;
    let client = reqwest::Client::new();

    // A target's 500: the attempt's span is an error that says why.
    let id = trigger(&api, &client, "doc-fails", Some(INCOMING)).await;
    let sent = trace_of(&call_of(&target, id).await);
    let attempt = span(&collector, sent.span_id).await;
    assert_eq!(attempt.status, StatusCode::Error);
    assert!(attempt.status_message.contains("HTTP 500"), "{attempt:?}");
    assert_eq!(attempt.attribute("docket.outcome").as_deref(), Some("retryable_error"));

    // A wrong apiKey: a 403 is exported, but as the caller's error, not the server's.
    let traceparent = TraceParent::new_root();
    let response = client
        .get(format!("{}/customAction", api.base))
        .query(&[("name", "archive"), ("documentId", "d"), ("documentVersionId", "v")])
        .header("apiKey", format!("{API_KEY}-wrong"))
        .header("traceparent", traceparent.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let refused = wait_until("the refused request's span", DEADLINE, || async {
        collector.spans().into_iter().find(|s| s.parent_span_id == traceparent.span_id)
    })
    .await;
    assert_eq!(refused.attribute("http.response.status_code").as_deref(), Some("403"));
    assert_eq!(refused.status, StatusCode::Unset);
    assert_eq!(refused.attribute("docket.job.id"), None);

    // An event delivery: its span names the event and counts the jobs it queued.
    let caller = TraceParent::new_root();
    let approve = Event::document_update("doc-8", "b.pdf", "CUR", "APR", 1_780_000_100);
    let sender =
        Sender::new(&api.base, &format!("Bearer {EVENT_TOKEN}")).with_header("traceparent", &caller.to_string());
    let Answer::Status(200, body) = sender.post(&approve.message(Encoding::Object)).await else {
        panic!("the delivery is stored");
    };
    let job = JobId(body["jobIds"][0].as_str().expect("a job").parse().unwrap());
    let delivery = span(&collector, stored(&db, job).await.span_id).await;
    assert_eq!(delivery.name, "POST /workfront/events");
    assert_eq!(delivery.parent_span_id, caller.span_id);
    assert_eq!(delivery.attribute("docket.jobs").as_deref(), Some("1"));
    assert_eq!(delivery.attribute("docket.event.id"), body["eventId"].as_str().map(str::to_owned));
}

#[tokio::test]
async fn a_collector_that_is_away_changes_nothing() {
    let db = TestDb::new().await;
    // A port nothing listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let env =
        vec![("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{closed}")), ("OTEL_BSP_SCHEDULE_DELAY", "50".into())];
    let target = Target::always(200).await;
    let dir = traced_catalog(&target.url);
    let api = Api::start(&db.url, &catalog_path(&dir), &env).await;
    let mut worker = Worker::start(&db.url, &catalog_path(&dir), "w-otlp-away", &env).await;
    let client = reqwest::Client::new();

    let id = trigger(&api, &client, "doc-away", Some(INCOMING)).await;
    let sent = trace_of(&call_of(&target, id).await);
    assert_eq!(sent.trace_id_hex(), TRACE_ID, "the target still gets the trace");
    let tell = follow_up(&db, id).await;
    call_of(&target, tell).await;
    // The operator sees why no span arrives.
    worker.process.wait_for_log("BatchSpanProcessor.ExportError").await;
    // SIGTERM: the worker still stops cleanly; the flush gives up within its bound.
    worker.process.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(worker.process.wait_exit(DEADLINE).await, Some(0));
}

#[tokio::test]
async fn an_endpoint_that_is_not_an_http_url_is_refused_at_start() {
    let db = TestDb::new().await;
    let catalog = "[[action]]\nname = \"noop\"\nkind = \"noop\"\n";
    for binary in ["docket-api", "docket-worker"] {
        for (name, value) in [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://user:hunter2@collector:4318"),
        ] {
            let line = refusal_with(binary, &db.url, catalog, &[(name, value.to_owned())]).await;
            assert!(line.contains(&format!("{name} must be an http:// or https:// URL")), "{binary} {value}: {line}");
            assert!(!line.contains("hunter2"), "the value is not repeated: {line}");
        }
    }
}
