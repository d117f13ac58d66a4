//! Trace context end to end: a `traceparent` received at intake (`/customAction`,
//! `/workfront/events`) is stored with the job and continued by the worker's call to
//! the target and by the follow-ups; without one, or with a malformed one, the
//! request still succeeds and the call starts a new, valid trace.

use docket::domain::JobId;
use docket::trace::TraceParent;
use docket_tests::deliveries::{Answer, Encoding, Event, Sender};
use docket_tests::traced::{call_of, follow_up, stored, trace_of, traced_catalog, trigger, INCOMING, TRACE_ID};
use docket_tests::{catalog_path, Api, Target, TestDb, Worker, EVENT_TOKEN};

#[tokio::test]
async fn the_intakes_trace_reaches_the_target_and_the_follow_up() {
    let db = TestDb::new().await;
    let target = Target::always(200).await;
    let dir = traced_catalog(&target.url);
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let _worker = Worker::start(&db.url, &catalog_path(&dir), "w-traces", &[]).await;
    let client = reqwest::Client::new();
    let incoming = TraceParent::parse(INCOMING).unwrap();

    // A valid traceparent: the job stores the intake's span (a child), the call to
    // the target is the attempt's span (another child), the follow-up stays in the trace.
    let id = trigger(&api, &client, "doc-traced", Some(INCOMING)).await;
    let intake = stored(&db, id).await;
    assert_eq!(intake.trace_id_hex(), TRACE_ID);
    assert_ne!(intake.span_id, incoming.span_id, "the intake is a span of its own");
    let sent = trace_of(&call_of(&target, id).await);
    assert_eq!((sent.trace_id_hex().as_str(), sent.flags), (TRACE_ID, 1));
    assert!(sent.span_id != incoming.span_id && sent.span_id != intake.span_id, "the attempt is a span of its own");
    let tell = follow_up(&db, id).await;
    assert_eq!(stored(&db, tell).await.trace_id_hex(), TRACE_ID);
    let told = trace_of(&call_of(&target, tell).await);
    assert_eq!(told.trace_id_hex(), TRACE_ID, "the follow-up's call continues the trigger's trace");
    assert_ne!(told.span_id, sent.span_id);
    // The api's log line of the request names the trace.
    api.process.wait_for_log(TRACE_ID).await;

    // No traceparent, or a malformed one: the request succeeds and the call starts a
    // new trace (a different one each time), which its follow-up continues.
    let mut seen = vec![incoming.trace_id];
    for (document, header) in [
        ("doc-none", None),
        ("doc-upper", Some("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01")),
        ("doc-zeros", Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01")),
        ("doc-version", Some("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")),
        ("doc-garbage", Some("not a trace")),
    ] {
        let id = trigger(&api, &client, document, header).await;
        let sent = trace_of(&call_of(&target, id).await);
        assert!(!seen.contains(&sent.trace_id), "{document}: a new trace");
        assert_eq!(stored(&db, id).await.trace_id, sent.trace_id, "{document}");
        let told = trace_of(&call_of(&target, follow_up(&db, id).await).await);
        assert_eq!(told.trace_id, sent.trace_id, "{document}: the follow-up stays in the trace");
        seen.push(sent.trace_id);
    }
}

#[tokio::test]
async fn an_event_deliverys_trace_reaches_the_target() {
    let db = TestDb::new().await;
    let target = Target::always(200).await;
    let dir = traced_catalog(&target.url);
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let _worker = Worker::start(&db.url, &catalog_path(&dir), "w-traces-events", &[]).await;

    let approve = Event::document_update("doc-7", "a.pdf", "CUR", "APR", 1_780_000_000);
    let sender = Sender::new(&api.base, &format!("Bearer {EVENT_TOKEN}")).with_header("traceparent", INCOMING);
    let Answer::Status(200, body) = sender.post(&approve.message(Encoding::Object)).await else {
        panic!("the delivery is stored");
    };
    let ids = body["jobIds"].as_array().expect("jobIds").clone();
    assert_eq!(ids.len(), 1, "{body}");
    let id = JobId(ids[0].as_str().unwrap().parse().unwrap());
    let sent = trace_of(&call_of(&target, id).await);
    assert_eq!(sent.trace_id_hex(), TRACE_ID);
    assert_ne!(sent.span_id, TraceParent::parse(INCOMING).unwrap().span_id);
    assert_eq!(stored(&db, id).await.trace_id_hex(), TRACE_ID);
}
