//! Tests of the catalog parser: defaults, every validation error, and properties.

use super::*;
use proptest::prelude::*;

fn parse(text: &str) -> Result<Catalog, CatalogError> {
    Catalog::parse(text, Path::new("actions.toml"))
}

fn error(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn example_catalog_is_valid() {
    let text = include_str!("../../../actions.example.toml");
    let catalog = parse(text).unwrap();
    assert!(catalog.get("archive").is_some());
}

#[test]
fn defaults_fill_optional_keys() {
    let catalog = parse("[[action]]\nname = \"demo\"\nkind = \"noop\"\n").unwrap();
    let action = catalog.get("demo").unwrap();
    assert_eq!(action.display_name, "demo");
    assert_eq!(action.kind, ActionKind::Noop);
    assert_eq!(action.timeout, DEFAULT_TIMEOUT);
    assert_eq!(action.retry.max_attempts, DEFAULT_MAX_ATTEMPTS);
    assert_eq!(action.retry.base, DEFAULT_RETRY_BASE);
    assert_eq!(action.retry.cap, DEFAULT_RETRY_MAX);
    assert!(action.dedupe, "dedupe is on by default");
    let off = parse("[[action]]\nname = \"x\"\nkind = \"noop\"\ndedupe = false\n").unwrap();
    assert!(!off.get("x").unwrap().dedupe);
}

#[test]
fn full_http_action() {
    let catalog = parse(
        r#"[[action]]
name = "archive"
display_name = "Archive"
kind = "http"
url = "https://dam.example.com/hooks/archive"
timeout = "10s"
max_attempts = 3
retry_base = "250ms"
retry_max = "2m"
"#,
    )
    .unwrap();
    let a = catalog.get("archive").unwrap();
    assert_eq!(
        a.kind,
        ActionKind::Http(Box::new(HttpSpec {
            url: "https://dam.example.com/hooks/archive".into(),
            signing_secret_env: None,
            request: None,
            auth: None,
            success_status: None,
            result: None,
            allow_http: false
        }))
    );
    assert_eq!(a.timeout, Duration::from_secs(10));
    assert_eq!(
        a.retry,
        RetryPolicy { max_attempts: 3, base: Duration::from_millis(250), cap: Duration::from_secs(120) }
    );
    assert_eq!(catalog.names(), vec!["archive".to_owned()]);
}

#[test]
fn errors_name_file_action_and_field() {
    let cases: &[(&str, &str)] = &[
        ("[[action]]\nkind = \"noop\"\n", "action \"#1\", field `name`: is missing"),
        ("[[action]]\nname = \"\"\nkind = \"noop\"\n", "field `name`: is empty"),
        ("[[action]]\nname = \"a b\"\nkind = \"noop\"\n", "action \"a b\", field `name`: may hold only"),
        ("[[action]]\nname = \"x\"\n", "action \"x\", field `kind`: is missing"),
        ("[[action]]\nname = \"x\"\nkind = \"ftp\"\n", "field `kind`: \"ftp\" is not a kind"),
        ("[[action]]\nname = \"x\"\nkind = \"http\"\n", "action \"x\", field `url`: is missing"),
        (
            "[[action]]\nname = \"x\"\nkind = \"http\"\nurl = \"ftp://a\"\n",
            "field `url`: \"ftp://a\" must start with http",
        ),
        (
            "[[action]]\nname = \"x\"\nkind = \"http\"\nurl = \"http:///p\"\n",
            "field `url`: \"http:///p\" is not a valid URL",
        ),
        ("[[action]]\nname = \"x\"\nkind = \"noop\"\nurl = \"http://a\"\n", "field `url`: is not used by kind"),
        (
            "[[action]]\nname = \"x\"\nkind = \"noop\"\nsigning_secret_env = \"S\"\n",
            "field `signing_secret_env`: is not used",
        ),
        (
            "[[action]]\nname = \"x\"\nkind = \"http\"\nurl = \"http://a\"\nsigning_secret_env = \"my-secret\"\n",
            "field `signing_secret_env`: \"my-secret\" is not an environment variable name",
        ),
        (
            "[[action]]\nname = \"x\"\nkind = \"noop\"\ntimeout = \"soon\"\n",
            "field `timeout`: \"soon\" is not a duration",
        ),
        ("[[action]]\nname = \"x\"\nkind = \"noop\"\ntimeout = \"0s\"\n", "field `timeout`: must be longer than zero"),
        (
            "[[action]]\nname = \"x\"\nkind = \"noop\"\ntimeout = \"30d\"\n",
            "field `timeout`: \"30d\" is longer than 7 days",
        ),
        ("[[action]]\nname = \"x\"\nkind = \"noop\"\nmax_attempts = 0\n", "field `max_attempts`: 0 is out of range"),
        ("[[action]]\nname = \"x\"\nkind = \"noop\"\nmax_attempts = -4\n", "field `max_attempts`: -4 is out of range"),
        (
            "[[action]]\nname = \"x\"\nkind = \"noop\"\nretry_base = \"1m\"\nretry_max = \"1s\"\n",
            "field `retry_max`: must not be shorter than retry_base",
        ),
        (
            "[[action]]\nname = \"x\"\nkind = \"noop\"\n[[action]]\nname = \"x\"\nkind = \"noop\"\n",
            "action \"x\", field `name`: is defined twice",
        ),
        ("", "defines no action"),
        ("[[action]]\nname = \"x\"\nkind = \"noop\"\ncolour = \"red\"\n", "unknown field `colour`"),
        ("[[action]\n", "is not valid TOML"),
        ("[[action]]\nname = 5\nkind = \"noop\"\n", "is not valid TOML"),
    ];
    for (text, expected) in cases {
        let message = error(text);
        assert!(message.contains(expected), "for {text:?}: expected {expected:?} in {message:?}");
        assert!(message.contains("actions.toml"), "error must name the file: {message}");
    }
}

#[test]
fn unreadable_file_is_named() {
    let err = Catalog::load(Path::new("/nonexistent/docket-actions.toml")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/docket-actions.toml"), "{err}");
}

#[test]
fn retry_base_longer_than_default_cap_raises_the_default_cap() {
    let catalog = parse("[[action]]\nname = \"x\"\nkind = \"noop\"\nretry_base = \"20m\"\n").unwrap();
    assert_eq!(catalog.get("x").unwrap().retry.cap, Duration::from_secs(1200));
}

proptest! {
    /// Any text at all either parses or yields an error naming the file; never a panic.
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        if let Err(e) = parse(&text) {
            prop_assert!(e.to_string().contains("actions.toml"));
        }
    }

    /// Any well-formed action name and attempt count round-trips.
    #[test]
    fn valid_actions_round_trip(name in "[A-Za-z0-9_.-]{1,64}", attempts in 1u32..=1000, base_ms in 1u64..10_000) {
        let text = format!("[[action]]\nname = \"{name}\"\nkind = \"noop\"\nmax_attempts = {attempts}\nretry_base = \"{base_ms}ms\"\n");
        let catalog = parse(&text).unwrap();
        let action = catalog.get(&name).unwrap();
        prop_assert_eq!(action.retry.max_attempts, attempts);
        prop_assert_eq!(action.retry.base, Duration::from_millis(base_ms));
    }
}

#[test]
fn real_system_examples_are_valid() {
    let text = include_str!("../../../examples/real-systems.toml");
    let catalog = parse(text).unwrap();
    assert_eq!(catalog.actions().len(), 5);
    for action in catalog.actions() {
        assert!(matches!(&action.kind, ActionKind::Http(spec) if spec.request.is_some()), "{}", action.name);
    }
}

#[test]
fn request_keys_are_checked() {
    let http =
        |extra: &str| format!("[[action]]\nname = \"a\"\nkind = \"http\"\nurl = \"https://x.example/\"\n{extra}");
    for (extra, expected) in [
        ("method = \"TRACE\"\n", "field `method`: \"TRACE\" is not a method"),
        ("body_template = \"x\"\n", "field `content_type`: is missing"),
        ("content_type = \"text/plain\"\n", "field `content_type`: is used only with body_template"),
        ("success_status = [700]\n", "field `success_status`: 700 is not an HTTP status"),
        ("success_status = []\n", "field `success_status`: is empty"),
        ("result = \"data/url\"\n", "field `result`: \"data/url\" is not a JSON pointer"),
        ("auth = { type = \"magic\" }\n", "field `auth`: type \"magic\" is not one of"),
        ("auth = { type = \"bearer\" }\n", "field `auth`: `token_env` is missing"),
        (
            "auth = { type = \"bearer\", token_env = \"lower\" }\n",
            "`token_env`: \"lower\" is not an environment variable name",
        ),
        (
            "auth = { type = \"bearer\", token_env = \"T\", client_id = \"x\" }\n",
            "`client_id` is not used by type \"bearer\"",
        ),
        ("[action.headers]\n\"Bad Header\" = \"x\"\n", "field `headers`: \"Bad Header\" is not a header name"),
        ("[action.headers]\nX-N = 3\n", "field `headers`: X-N: the value must be a string"),
    ] {
        let message = error(&http(extra));
        assert!(message.contains(expected), "{extra}: {message}");
    }
    let noop = error("[[action]]\nname = \"n\"\nkind = \"noop\"\nmethod = \"PUT\"\n");
    assert!(noop.contains("field `method`: is not used by kind \"noop\""), "{noop}");
}

#[test]
fn follow_ups_name_known_actions_final_states_and_no_cycle() {
    let ok = parse(
        "[[action]]\nname = \"archive\"\nkind = \"noop\"\non_finish = [{ when = [\"failed\", \"cancelled\"], run = \"note\" }]\n\
         [[action]]\nname = \"note\"\nkind = \"noop\"\nmax_attempts = 3\n",
    )
    .unwrap();
    use crate::domain::JobState;
    assert_eq!(
        ok.follow_up_rules(),
        [
            ("archive".to_owned(), JobState::Failed, "note".to_owned(), 3),
            ("archive".to_owned(), JobState::Cancelled, "note".to_owned(), 3)
        ]
    );
    let unknown =
        error("[[action]]\nname = \"a\"\nkind = \"noop\"\non_finish = [{ when = [\"failed\"], run = \"nope\" }]\n");
    assert!(unknown.contains("field `on_finish`: runs \"nope\", which is not an action"), "{unknown}");
    let running =
        error("[[action]]\nname = \"a\"\nkind = \"noop\"\non_finish = [{ when = [\"running\"], run = \"a\" }]\n");
    assert!(running.contains("\"running\" is not a final state"), "{running}");
    let cycle = error(
        "[[action]]\nname = \"a\"\nkind = \"noop\"\non_finish = [{ when = [\"failed\"], run = \"b\" }]\n\
         [[action]]\nname = \"b\"\nkind = \"noop\"\non_finish = [{ when = [\"succeeded\"], run = \"c\" }]\n\
         [[action]]\nname = \"c\"\nkind = \"noop\"\non_finish = [{ when = [\"failed\"], run = \"a\" }]\n",
    );
    assert!(cycle.contains("action \"a\", field `on_finish`: follow-ups form a cycle: a → b → c → a"), "{cycle}");
    let itself =
        error("[[action]]\nname = \"a\"\nkind = \"noop\"\non_finish = [{ when = [\"failed\"], run = \"a\" }]\n");
    assert!(itself.contains("cycle: a → a"), "{itself}");
}

#[test]
fn flow_control_keys_form_limit_groups() {
    let catalog = parse(
        "[[action]]\nname = \"archive\"\nkind = \"noop\"\nlimit_group = \"dam\"\nmax_concurrency = 3\nrate = \"300/1m\"\nburst = 5\n\n\
         [[action]]\nname = \"tag\"\nkind = \"noop\"\nlimit_group = \"dam\"\n\n\
         [[action]]\nname = \"print\"\nkind = \"noop\"\ncircuit = { failures = 4, cool_down = \"10s\" }\n\n\
         [[action]]\nname = \"free\"\nkind = \"noop\"\n",
    )
    .unwrap();
    let groups = catalog.limit_groups();
    assert_eq!(groups.len(), 2);
    let dam = catalog.limit_group_of("tag").unwrap();
    assert_eq!((dam.name.as_str(), dam.actions.clone()), ("dam", vec!["archive".to_owned(), "tag".to_owned()]));
    assert_eq!(dam.max_concurrency, Some(3));
    let rate = dam.rate.clone().unwrap();
    assert_eq!((rate.per_second, rate.burst, rate.text.as_str()), (5.0, 5, "300/1m"));
    let print = catalog.limit_group_of("print").unwrap();
    assert_eq!((print.name.as_str(), print.max_concurrency, print.rate.is_none()), ("print", None, true));
    let circuit = catalog.get("print").unwrap().flow.circuit.clone().unwrap();
    assert_eq!(
        (circuit.failures, circuit.cool_down, circuit.cool_down_max),
        (4, Duration::from_secs(10), flow::DEFAULT_COOL_DOWN_MAX)
    );
    assert!(catalog.limit_group_of("free").is_none(), "an action without limits keeps the plain claim");
    // A rate without a burst allows one at a time.
    let one = parse("[[action]]\nname = \"a\"\nkind = \"noop\"\nrate = \"5/1s\"\n").unwrap();
    assert_eq!(one.limit_group_of("a").unwrap().rate.as_ref().unwrap().burst, 1);
}

#[test]
fn flow_control_mistakes_are_named() {
    let action = |extra: &str| error(&format!("[[action]]\nname = \"a\"\nkind = \"noop\"\n{extra}\n"));
    assert!(action("max_concurrency = 0").contains("`max_concurrency`: 0 is out of range"));
    assert!(action("max_concurrency = -3").contains("out of range"));
    assert!(action("max_concurrency = \"3\"").contains("not valid TOML"));
    assert!(action("rate = \"fast\"").contains("`rate`: \"fast\" is not a rate"));
    assert!(action("rate = \"0/1s\"").contains("pause it"));
    assert!(action("burst = 3").contains("`burst`: is used only with rate"));
    assert!(action("rate = \"1/1s\"\nburst = 0").contains("`burst`: 0 is out of range"));
    assert!(action("circuit = { failures = 0 }").contains("`circuit`: failures = 0"));
    assert!(action("circuit = { cool_down = \"soon\" }").contains("cool_down"));
    assert!(action("circuit = { cool_down = \"1m\", cool_down_max = \"10s\" }").contains("must not be shorter"));
    assert!(action("circuit = { failures = 3, open = true }").contains("unknown field"));
    assert!(action("limit_group = \"\"").contains("`limit_group`: is empty"));
    assert!(action("limit_group = \"a b\"").contains("may hold only"));
    let disagree = error(
        "[[action]]\nname = \"a\"\nkind = \"noop\"\nlimit_group = \"g\"\nmax_concurrency = 3\n\n\
         [[action]]\nname = \"b\"\nkind = \"noop\"\nlimit_group = \"g\"\nmax_concurrency = 4\n",
    );
    assert!(disagree.contains("action \"b\", field `max_concurrency`: 4 differs from 3"), "{disagree}");
    let rates = error(
        "[[action]]\nname = \"a\"\nkind = \"noop\"\nlimit_group = \"g\"\nrate = \"1/1s\"\n\n\
         [[action]]\nname = \"b\"\nkind = \"noop\"\nlimit_group = \"g\"\nrate = \"2/1s\"\n",
    );
    assert!(rates.contains("field `rate`"), "{rates}");
    let named_like_another = error(
        "[[action]]\nname = \"a\"\nkind = \"noop\"\nlimit_group = \"b\"\nmax_concurrency = 1\n\n\
         [[action]]\nname = \"b\"\nkind = \"noop\"\n",
    );
    assert!(named_like_another.contains("is the name of action \"b\""), "{named_like_another}");
}

const TRIGGER_ACTIONS: &str = r#"
[[action]]
name = "archive"
kind = "http"
url = "https://dam.example.com/archive/{% if event %}{{ event.objID }}{% else %}{{ document.id }}{% endif %}"
on_finish = [{ when = ["succeeded"], run = "tell-owner" }]

[[action]]
name = "tell-owner"
kind = "http"
menu = false
url = "https://workfront.example.com/attask/api/v19.0/note"
body = { objID = "{{ event.objID if event else document.id }}", text = "{{ parent.state }} {{ event.newState.name if event }}" }
"#;

#[test]
fn triggers_load_with_their_filters() {
    let catalog = parse(&format!(
        r#"{TRIGGER_ACTIONS}
[[trigger]]
name = "archive-approved"
obj_code = "DOCU"
event_type = "UPDATE"
run = "archive"
filters = [{{ field = "status", comparison = "changed" }},
           {{ field = "status", comparison = "eq", value = "APR" }},
           {{ field = "DE:Channels", comparison = "containsOnly", value = ["web", 2], state = "oldState" }}]

[[trigger]]
name = "any-task"
obj_code = "TASK"
event_type = "DELETE"
run = ["archive", "tell-owner"]
filter_connector = "OR"
"#
    ))
    .unwrap();
    let [approved, task] = catalog.triggers() else { panic!("two triggers") };
    assert_eq!(approved.run, ["archive"]);
    assert_eq!(approved.event_type, crate::events::EventType::Update);
    assert_eq!(approved.filters.len(), 3);
    assert_eq!(approved.filters[0].value, None);
    assert_eq!(approved.filters[2].value, Some(crate::events::FilterValue::Many(vec!["web".into(), "2".into()])));
    assert_eq!(approved.filters[2].state, crate::events::StateSide::OldState);
    assert_eq!(task.connector, crate::events::Connector::Or);
    assert!(catalog.get("archive").unwrap().menu);
    assert!(!catalog.get("tell-owner").unwrap().menu);
    assert_eq!(catalog.menu().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["archive"]);
    assert!(catalog.sees_events("tell-owner"), "a follow-up of a trigger's action reads the event");
}

#[test]
fn trigger_errors_name_file_trigger_and_field() {
    let cases: &[(&str, &str)] = &[
        ("name = \"t\"\nobj_code = \"DOCU\"\nevent_type = \"UPDATE\"\nrun = \"archive\"\nbogus = 1", "unknown field `bogus`"),
        ("obj_code = \"DOCU\"\nevent_type = \"UPDATE\"\nrun = \"archive\"", "trigger \"#1\", field `name`: is missing"),
        ("name = \"t\"\nevent_type = \"UPDATE\"\nrun = \"archive\"", "trigger \"t\", field `obj_code`: is missing"),
        ("name = \"t\"\nobj_code = \"document\"\nevent_type = \"UPDATE\"\nrun = \"archive\"", "field `obj_code`: \"document\" is not"),
        ("name = \"t\"\nobj_code = \"DOCU\"\nevent_type = \"EDIT\"\nrun = \"archive\"", "field `event_type`: \"EDIT\""),
        ("name = \"t\"\nobj_code = \"DOCU\"\nevent_type = \"UPDATE\"", "field `run`: is missing"),
        ("name = \"t\"\nobj_code = \"DOCU\"\nevent_type = \"UPDATE\"\nrun = \"nope\"", "field `run`: \"nope\" is not an action"),
        ("name = \"t\"\nobj_code = \"DOCU\"\nevent_type = \"UPDATE\"\nrun = []", "field `run`: is empty"),
        ("name = \"t\"\nobj_code = \"DOCU\"\nevent_type = \"UPDATE\"\nrun = [\"archive\", \"archive\"]", "names \"archive\" twice"),
        ("name = \"t\"\nobj_code = \"DOCU\"\nevent_type = \"UPDATE\"\nrun = \"archive\"\nfilter_connector = \"XOR\"", "field `filter_connector`"),
        ("name = \"t\"\nobj_code = \"DOCU\"\nevent_type = \"UPDATE\"\nrun = \"archive\"\nfilters = [{ field = \"status\", comparison = \"like\", value = \"A\" }]", "filter 1: `comparison` \"like\" is not one of"),
        ("name = \"t\"\nobj_code = \"DOCU\"\nevent_type = \"UPDATE\"\nrun = \"archive\"\nfilters = [{ field = \"status\", comparison = \"eq\" }]", "`value` is missing"),
        ("name = \"t\"\nobj_code = \"DOCU\"\nevent_type = \"UPDATE\"\nrun = \"archive\"\nfilters = [{ field = \"status\", comparison = \"changed\", value = \"A\" }]", "`value` is not used with \"changed\""),
        ("name = \"t\"\nobj_code = \"DOCU\"\nevent_type = \"UPDATE\"\nrun = \"archive\"\nfilters = [{ field = \"status\", comparison = \"eq\", value = \"A\", state = \"midState\" }]", "`state` \"midState\""),
        ("name = \"t\"\nobj_code = \"DOCU\"\nevent_type = \"UPDATE\"\nrun = \"archive\"\nfilters = [{ comparison = \"eq\", value = \"A\" }]", "`field` is missing"),
        ("name = \"t\"\nobj_code = \"DOCU\"\nevent_type = \"UPDATE\"\nrun = \"archive\"\nfilters = [{ field = \"s\", comparison = \"eq\", value = [\"A\"] }]", "a list of values works only with"),
        ("name = \"t\"\nobj_code = \"DOCU\"\nevent_type = \"UPDATE\"\nrun = \"archive\"\nfilters = [{ field = \"s\", comparison = \"eq\", value = \"a\\u202eb\" }]", "`value`"),
    ];
    for (trigger, expected) in cases {
        let message = error(&format!("{TRIGGER_ACTIONS}\n[[trigger]]\n{trigger}\n"));
        assert!(message.contains(expected), "{trigger:?}: {message}");
        assert!(message.contains("actions.toml"), "{message}");
    }
    let twice = "[[trigger]]\nname = \"t\"\nobj_code = \"DOCU\"\nevent_type = \"UPDATE\"\nrun = \"archive\"\n";
    let message = error(&format!("{TRIGGER_ACTIONS}\n{twice}{twice}"));
    assert!(message.contains("trigger \"t\", field `name`: is defined twice"), "{message}");
}

#[test]
fn templates_are_rendered_for_every_way_an_action_starts() {
    // Unguarded `event` fields in an action a menu click also starts.
    let unguarded = r#"
[[action]]
name = "both"
kind = "http"
url = "https://dam.example.com/archive/{{ event.objID }}"

[[trigger]]
name = "t"
obj_code = "TASK"
event_type = "CREATE"
run = "both"
"#;
    let message = error(unguarded);
    assert!(
        message.contains("action \"both\", field `url`") && message.contains("rendered for a menu click"),
        "{message}"
    );
    // The same action with menu = false loads: only events start it.
    parse(&unguarded.replace("kind = \"http\"", "kind = \"http\"\nmenu = false")).unwrap();
    // A state field may choose the path, not the host.
    let host = unguarded
        .replace("kind = \"http\"", "kind = \"http\"\nmenu = false")
        .replace("dam.example.com/archive/{{ event.objID }}", "{{ event.newState.name }}/hook");
    let message = error(&host);
    assert!(message.contains("must not depend on a template value"), "{message}");
    // An unknown variable is still caught in an event-only action.
    let unknown =
        unguarded.replace("kind = \"http\"", "kind = \"http\"\nmenu = false").replace("event.objID", "evnt.objID");
    assert!(error(&unknown).contains("undefined"), "{}", error(&unknown));
}

#[test]
fn workfront_events_example_is_valid() {
    let catalog = parse(include_str!("../../../examples/workfront-events.toml")).unwrap();
    assert_eq!(catalog.triggers().len(), 2);
    assert_eq!(catalog.menu().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["archive"]);
}

#[test]
fn credentials_need_https_unless_allowed() {
    let action =
        |url: &str, extra: &str| format!("[[action]]\nname = \"a\"\nkind = \"http\"\nurl = \"{url}\"\n{extra}");
    let bearer = "auth = { type = \"bearer\", token_env = \"T\" }\n";
    let oauth = "auth = { type = \"oauth2_client_credentials\", token_url = \"http://idp.example/token\", \
                 client_id = \"c\", client_secret_env = \"S\" }\n";
    for (text, field) in [
        (action("http://dam.example/hook", bearer), "field `url`"),
        (action("http://dam.example/{{ document.id }}", bearer), "field `url`"),
        (action("https://dam.example/hook", oauth), "field `auth`: `token_url`"),
    ] {
        let message = error(&text);
        assert!(message.contains(field) && message.contains("allow_http = true"), "{message}");
        parse(&format!("{text}allow_http = true\n")).unwrap();
    }
    parse(&action("http://dam.example/hook", "")).expect("no credentials: http is allowed");
    parse(&action("https://dam.example/hook", bearer)).unwrap();
    assert!(error("[[action]]\nname = \"n\"\nkind = \"noop\"\nallow_http = true\n").contains("allow_http"));
}
