//! Server-rendered SVG charts (no script, no library): the overview's per-action
//! sparklines and its 24-hour chart, and a job's attempt timeline. Each chart has a
//! `<title>` that says in words what it draws.

use chrono::{DateTime, Duration, DurationRound, Utc};
use maud::{html, Markup};

use docket::db::samples::Sample;

/// One series over equal time buckets.
pub struct Series {
    pub class: &'static str,
    pub values: Vec<f64>,
}

/// `x,y` points of `values` in a `width` × `height` box whose top is `max`.
fn points(values: &[f64], width: f64, height: f64, max: f64) -> String {
    let step = if values.len() > 1 { width / (values.len() - 1) as f64 } else { 0.0 };
    values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", i as f64 * step, height - 1.0 - (v / max.max(1.0)) * (height - 2.0)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A small chart of a few series sharing one scale.
pub fn sparkline(title: &str, series: &[Series]) -> Markup {
    let (width, height) = (120.0, 26.0);
    let max = series.iter().flat_map(|s| s.values.iter().copied()).fold(0.0, f64::max);
    html! {
        svg.spark width="120" height="26" viewBox="0 0 120 26" preserveAspectRatio="none" role="img" {
            title { (title) }
            @for s in series {
                polyline class=(s.class) points=(points(&s.values, width, height, max)) {}
            }
        }
    }
}

/// Counts per minute over the last hour, oldest first (60 buckets, the current
/// minute last), of one action's samples.
pub fn last_hour(samples: &[&Sample], now: DateTime<Utc>, value: impl Fn(&Sample) -> i64) -> Vec<f64> {
    let current = now.duration_trunc(Duration::minutes(1)).unwrap_or(now);
    let mut buckets = vec![0.0; 60];
    for s in samples {
        let age = (current - s.minute).num_minutes();
        if (0..60).contains(&age) {
            buckets[59 - age as usize] += value(s) as f64;
        }
    }
    buckets
}

/// The last 24 hours in 15-minute buckets, every action together: jobs that
/// succeeded and failed per bucket, and the most that waited in it.
pub fn last_day(samples: &[Sample], now: DateTime<Utc>) -> Markup {
    const BUCKETS: usize = 96;
    let bucket = Duration::minutes(15);
    let end = now.duration_trunc(bucket).unwrap_or(now) + bucket;
    let start = end - bucket * BUCKETS as i32;
    let (mut ok, mut bad, mut waiting) = (vec![0.0; BUCKETS], vec![0.0; BUCKETS], vec![0.0; BUCKETS]);
    let mut waiting_at: std::collections::HashMap<DateTime<Utc>, f64> = Default::default();
    for s in samples.iter().filter(|s| s.minute >= start && s.minute < end) {
        let i = ((s.minute - start).num_minutes() / 15) as usize;
        ok[i] += s.succeeded as f64;
        bad[i] += s.failed as f64;
        *waiting_at.entry(s.minute).or_default() += s.waiting().unwrap_or(0) as f64;
    }
    for (minute, n) in waiting_at {
        let i = ((minute - start).num_minutes() / 15) as usize;
        waiting[i] = f64::max(waiting[i], n);
    }
    let (width, height) = (720.0, 160.0);
    let ended_max = ok.iter().chain(bad.iter()).copied().fold(0.0, f64::max);
    let waiting_max = waiting.iter().copied().fold(0.0, f64::max);
    let total = |v: &[f64]| v.iter().sum::<f64>() as i64;
    let title = format!(
        "Last 24 hours: {} jobs succeeded, {} failed; at most {} waited at once",
        total(&ok),
        total(&bad),
        waiting_max as i64
    );
    html! {
        figure {
            svg.chart id="day-chart" width="100%" height="180" viewBox="0 0 760 180" preserveAspectRatio="none" role="img" {
                title { (title) }
                g transform="translate(30,5)" {
                    line.axis x1="0" y1=(height) x2=(width) y2=(height) {}
                    @for h in (0..=24).step_by(6) {
                        @let x = width * h as f64 / 24.0;
                        text x=(format!("{x:.0}")) y=(height + 13.0) text-anchor="middle" {
                            (if h == 24 { "now".to_owned() } else { format!("-{}h", 24 - h) })
                        }
                    }
                    text x="-4" y="9" text-anchor="end" { (ended_max as i64) }
                    polyline.ok-line points=(points(&ok, width, height, ended_max)) {}
                    polyline.bad-line points=(points(&bad, width, height, ended_max)) {}
                    polyline.wait-line stroke-dasharray="4 3" points=(points(&waiting, width, height, waiting_max)) {}
                }
            }
            figcaption.legend {
                span.ok { "— succeeded per 15 min" } span.bad { "— failed per 15 min" }
                span.wait { "- - most waiting (own scale, max " (waiting_max as i64) ")" }
            }
        }
    }
}

/// One attempt for the timeline.
pub struct Span {
    pub label: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub class: &'static str,
}

/// A job's attempts on one time axis, to scale: a bar per attempt, the waits between
/// them (backoff) drawn as thin gaps.
pub fn timeline(spans: &[Span]) -> Markup {
    let (Some(first), Some(last)) = (spans.iter().map(|s| s.start).min(), spans.iter().map(|s| s.end).max()) else {
        return html! {};
    };
    let total = (last - first).num_milliseconds().max(1) as f64;
    let width = 700.0;
    let x = |t: DateTime<Utc>| (t - first).num_milliseconds() as f64 / total * width;
    let row = 22.0;
    let height = row * spans.len() as f64 + 20.0;
    html! {
        svg.timeline id="timeline" width="100%" height=(format!("{height:.0}")) viewBox=(format!("0 0 900 {height:.0}"))
            preserveAspectRatio="xMinYMin meet" role="img" {
            title { "Attempts over " (human(last - first)) ", to scale" }
            @for (i, s) in spans.iter().enumerate() {
                @let y = i as f64 * row;
                @if i > 0 {
                    @let previous = &spans[i - 1];
                    rect.gap x=(format!("{:.1}", 150.0 + x(previous.end))) y=(format!("{:.1}", y - row / 2.0 + 9.0))
                        width=(format!("{:.1}", (x(s.start) - x(previous.end)).max(0.0))) height="2" {}
                }
                text x="0" y=(format!("{:.1}", y + 14.0)) { (s.label) }
                rect class={ "attempt " (s.class) } x=(format!("{:.1}", 150.0 + x(s.start))) y=(format!("{:.1}", y + 4.0))
                    width=(format!("{:.1}", (x(s.end) - x(s.start)).max(2.0))) height="14" {
                    title { (s.label) ": " (human(s.end - s.start)) }
                }
            }
            text x="150" y=(format!("{:.1}", height - 4.0)) { (first.format("%H:%M:%S%.3f UTC")) }
            text x="850" y=(format!("{:.1}", height - 4.0)) text-anchor="end" { "+" (human(last - first)) }
        }
    }
}

/// [`human`] of a configured duration (catalog settings, lags).
pub fn human_std(d: std::time::Duration) -> String {
    human(Duration::from_std(d).unwrap_or(Duration::MAX))
}

/// "850 ms", "12 s", "3 min 5 s", "2 h 10 min".
pub fn human(d: Duration) -> String {
    let ms = d.num_milliseconds().max(0);
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000),
        _ => format!("{} h {} min", ms / 3_600_000, (ms % 3_600_000) / 60_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_scale_to_the_box() {
        assert_eq!(points(&[0.0, 5.0, 10.0], 100.0, 22.0, 10.0), "0.0,21.0 50.0,11.0 100.0,1.0");
        assert_eq!(points(&[0.0, 0.0], 100.0, 22.0, 0.0), "0.0,21.0 100.0,21.0");
    }

    #[test]
    fn durations_read_like_words() {
        assert_eq!(human(Duration::milliseconds(850)), "850 ms");
        assert_eq!(human(Duration::milliseconds(12_340)), "12.3 s");
        assert_eq!(human(Duration::seconds(185)), "3 min 5 s");
        assert_eq!(human(Duration::minutes(130)), "2 h 10 min");
    }
}
