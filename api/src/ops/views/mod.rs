//! The dashboard's markup, written with maud: every value is escaped unless wrapped
//! in `PreEscaped` (nothing is), and the templates are checked when the
//! crate compiles. The handlers in [`super::pages`] load the data; these modules
//! only show it: [`overview`], [`jobs`] (the list and bulk actions), [`job`], [`action`],
//! [`sessions`], and the SVG [`charts`].

pub mod action;
pub mod charts;
pub mod flow;
pub mod job;
pub mod jobs;
pub mod overview;
pub mod sessions;

use chrono::{DateTime, SecondsFormat, Utc};
use maud::{html, Markup, DOCTYPE};

use docket::domain::{JobId, JobState};

use super::session::Session;

/// Percent-encodes a query value.
pub fn q(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Served at [`CSS_PATH`] (a file, not an inline block, so the pages' Content Security
/// Policy can allow styles from the api only).
pub const CSS: &str = include_str!("../assets/dashboard.css");
pub const CSS_PATH: &str = "/ops/ui/dashboard.css";
/// Served at [`SCRIPT_PATH`]: relative times, live refresh, bulk selection.
pub const SCRIPT: &str = include_str!("../assets/dashboard.js");
pub const SCRIPT_PATH: &str = "/ops/ui/dashboard.js";

/// A whole page: the header with navigation (and the operator, once signed in), the
/// title, the body.
pub fn page(title: &str, who: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · Docket" }
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                link rel="stylesheet" href=(CSS_PATH);
                script src=(SCRIPT_PATH) defer {}
            }
            body {
                header {
                    strong { "Docket" }
                    nav aria-label="Dashboard" {
                        a href="/ops/" { "Overview" } " "
                        a href="/ops/ui/jobs" { "Jobs" } " "
                        a href="/ops/ui/sessions" { "Sessions" }
                    }
                    @if let Some(s) = who {
                        span.who { "signed in as " (s.actor.0) }
                        form.inline method="post" action="/ops/logout" { (csrf_field(s)) button { "Sign out" } }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// The hidden field that carries the session's CSRF token in every changing form.
pub fn csrf_field(s: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.csrf()); }
}

/// A sentence in red.
pub fn error(sentence: &str) -> Markup {
    html! { p.error role="alert" { (sentence) } }
}

pub fn login_form() -> Markup {
    html! {
        form method="post" action="/ops/login" {
            label { "Admin token " input type="password" name="token" id="token" autocomplete="current-password" autofocus; }
            " " button id="sign-in" { "Sign in" }
        }
    }
}

pub fn login_refused() -> Markup {
    html! { (error("That token is not valid.")) p { a href="/ops/login" { "Try again" } } }
}

/// A moment: absolute (UTC) without script; the script shows "3 min ago" and the
/// browser's local time on hover.
pub fn when(t: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(t.to_rfc3339_opts(SecondsFormat::Millis, true)) data-rel title=(t.format("%Y-%m-%d %H:%M:%S UTC")) {
            (t.format("%Y-%m-%d %H:%M:%S UTC"))
        }
    }
}

/// A job id in 8 characters, the whole id on hover and in a copy button.
pub fn short_id(id: JobId) -> Markup {
    let full = id.to_string();
    html! { span.id title=(full) { (full[..8]) "…" } }
}

/// A state as text with its colour (the text carries it; the colour only repeats it).
pub fn state(s: JobState) -> Markup {
    html! { span class={ "state state-" (s.as_str()) } { (s.as_str()) } }
}

/// At most `max` characters of `text`, cut at a word boundary, with "…" when cut.
pub fn excerpt(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max).collect();
    let at_word = match cut.rfind(char::is_whitespace) {
        Some(i) if i > max / 2 => cut[..i].trim_end().to_owned(),
        _ => cut,
    };
    format!("{at_word}…")
}

/// Tables scroll inside their box on a narrow screen; the page itself never does.
pub fn scroll(table: Markup) -> Markup {
    html! { div.scroll { (table) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_in_content_and_attributes() {
        let hostile = "<script>alert('x')</script>\"&";
        let html = page(hostile, None, error(hostile)).into_string();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert('x')&lt;/script&gt;&quot;&amp;"), "{html}");
        let query = crate::ops::list_query::ListQuery {
            action: Some("\"><img src=x onerror=alert(1)>".into()),
            ..Default::default()
        };
        let form = jobs::filters(&query).into_string();
        assert!(!form.contains("<img"), "{form}");
        assert!(form.contains(r#"value="&quot;&gt;&lt;img src=x onerror=alert(1)&gt;""#), "{form}");
    }

    #[test]
    fn excerpts_end_at_a_word() {
        assert_eq!(excerpt("short", 10), "short");
        assert_eq!(excerpt("target answered HTTP 503 Service Unavailable", 30), "target answered HTTP 503…");
        assert_eq!(excerpt(&"x".repeat(40), 10), format!("{}…", "x".repeat(10)));
        assert_eq!(excerpt("ünïcödé wörds everywhere", 12), "ünïcödé…");
    }
}
