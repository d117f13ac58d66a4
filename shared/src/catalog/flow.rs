//! Flow control in the catalog: the keys that protect a target (`limit_group`,
//! `max_concurrency`, `rate`, `burst`, `circuit`), validated, and the limit groups
//! they form. Where the limits are enforced is told in the flow-control migration.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// Default cool-down of an open circuit, and the longest it grows to.
pub const DEFAULT_COOL_DOWN: Duration = Duration::from_secs(60);
pub const DEFAULT_COOL_DOWN_MAX: Duration = Duration::from_secs(30 * 60);
/// Default consecutive retryable failures that open a circuit.
pub const DEFAULT_CIRCUIT_FAILURES: u32 = 10;
/// How often a job may be turned away with back-pressure (429 / 503 with
/// Retry-After) without spending an attempt; after that such answers spend attempts
/// like any retryable error, so a target that always answers 429 still ends the job.
pub const MAX_SNOOZES: i32 = 20;

/// An action's flow control, all optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flow {
    /// The limit group whose limits the action shares; `None` with limits or a circuit
    /// means a group of its own (named like the action).
    pub limit_group: Option<String>,
    /// At most this many jobs of the group run at once, across every worker.
    pub max_concurrency: Option<u32>,
    pub rate: Option<Rate>,
    pub circuit: Option<Circuit>,
}

impl Flow {
    /// Whether the action's jobs are claimed through its limit group.
    pub fn is_controlled(&self) -> bool {
        self.limit_group.is_some() || self.max_concurrency.is_some() || self.rate.is_some() || self.circuit.is_some()
    }
}

/// `rate = "5/1s"`, `burst = 5`: a token bucket. Within any window of length T at most
/// `burst + per_second × T` attempts start.
#[derive(Debug, Clone, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
    /// As written in the catalog ("5/1s").
    pub text: String,
}

/// `circuit = { failures = 10, cool_down = "1m", cool_down_max = "30m" }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Circuit {
    pub failures: u32,
    pub cool_down: Duration,
    pub cool_down_max: Duration,
}

/// Actions that share limits, as the claim sees them.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitGroup {
    pub name: String,
    pub actions: Vec<String>,
    pub max_concurrency: Option<u32>,
    pub rate: Option<Rate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCircuit {
    failures: Option<i64>,
    cool_down: Option<String>,
    cool_down_max: Option<String>,
}

/// The flow-control keys of one action, as written.
pub(super) struct RawFlow {
    pub limit_group: Option<String>,
    pub max_concurrency: Option<i64>,
    pub rate: Option<String>,
    pub burst: Option<i64>,
    pub circuit: Option<RawCircuit>,
}

/// Most jobs a concurrency limit may allow, and the highest rate (per second).
const MAX_CONCURRENCY: i64 = 100_000;
const MAX_RATE_PER_SECOND: f64 = 100_000.0;

impl RawFlow {
    pub(super) fn validate(self) -> Result<Flow, (&'static str, String)> {
        let limit_group = match self.limit_group {
            Some(group) => {
                crate::domain::check_text(&group, crate::domain::MAX_NAME_CHARS)
                    .map_err(|e| ("limit_group", e.to_string()))?;
                if !group.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
                    return Err(("limit_group", "may hold only ASCII letters, digits, '_', '-' and '.'".into()));
                }
                Some(group)
            }
            None => None,
        };
        let max_concurrency = match self.max_concurrency {
            None => None,
            Some(n) if (1..=MAX_CONCURRENCY).contains(&n) => Some(n as u32),
            Some(n) => return Err(("max_concurrency", format!("{n} is out of range 1..={MAX_CONCURRENCY}"))),
        };
        let rate = match (self.rate, self.burst) {
            (None, Some(_)) => return Err(("burst", "is used only with rate".into())),
            (None, None) => None,
            (Some(text), burst) => {
                let per_second = parse_rate(&text).map_err(|m| ("rate", m))?;
                let burst = match burst {
                    None => 1,
                    Some(b) if (1..=MAX_CONCURRENCY).contains(&b) => b as u32,
                    Some(b) => return Err(("burst", format!("{b} is out of range 1..={MAX_CONCURRENCY}"))),
                };
                Some(Rate { per_second, burst, text })
            }
        };
        let circuit = match self.circuit {
            None => None,
            Some(raw) => {
                let failures = match raw.failures {
                    None => DEFAULT_CIRCUIT_FAILURES,
                    Some(n) if (1..=1000).contains(&n) => n as u32,
                    Some(n) => return Err(("circuit", format!("failures = {n} is out of range 1..=1000"))),
                };
                let parse = |value: Option<String>, default: Duration, key: &str| match value {
                    None => Ok(default),
                    Some(text) => crate::duration::parse(&text).map_err(|m| ("circuit", format!("{key}: {m}"))),
                };
                let cool_down = parse(raw.cool_down, DEFAULT_COOL_DOWN, "cool_down")?;
                let cool_down_max = parse(raw.cool_down_max, DEFAULT_COOL_DOWN_MAX.max(cool_down), "cool_down_max")?;
                if cool_down_max < cool_down {
                    return Err(("circuit", "cool_down_max must not be shorter than cool_down".into()));
                }
                Some(Circuit { failures, cool_down, cool_down_max })
            }
        };
        Ok(Flow { limit_group, max_concurrency, rate, circuit })
    }
}

/// "5/1s", "300/1m", "1000/1h", "2/s": attempts per period, as attempts per second.
fn parse_rate(text: &str) -> Result<f64, String> {
    let usage = || format!("{text:?} is not a rate; write attempts per period, e.g. \"5/1s\", \"300/1m\", \"1000/1h\"");
    let per_second = match crate::duration::PerPeriod::parse(text) {
        Ok(rate) => rate.per_second(),
        Err(crate::duration::PerPeriodError::Zero) => {
            return Err(format!("{text:?} allows nothing; to stop an action, pause it"))
        }
        Err(crate::duration::PerPeriodError::Malformed) => return Err(usage()),
    };
    if per_second > MAX_RATE_PER_SECOND {
        return Err(format!("{text:?} is above {MAX_RATE_PER_SECOND} per second; leave `rate` out instead"));
    }
    Ok(per_second)
}

/// The limit groups of a catalog: actions with the same `limit_group` share one; an
/// action with limits or a circuit and no group forms one of its own. Actions of a
/// group that set a limit must set the same one, and a group's name may not be the
/// name of an action outside it.
pub(super) fn limit_groups(actions: &[(&str, &Flow)]) -> Result<Vec<LimitGroup>, (String, &'static str, String)> {
    let mut groups: BTreeMap<String, LimitGroup> = BTreeMap::new();
    for &(action, flow) in actions.iter().filter(|(_, flow)| flow.is_controlled()) {
        let name = flow.limit_group.clone().unwrap_or_else(|| action.to_owned());
        let group = groups.entry(name.clone()).or_insert_with(|| LimitGroup {
            name: name.clone(),
            actions: Vec::new(),
            max_concurrency: None,
            rate: None,
        });
        group.actions.push(action.to_owned());
        let fail = |field, message| (action.to_owned(), field, message);
        if let Some(n) = flow.max_concurrency {
            match group.max_concurrency {
                Some(m) if m != n => {
                    return Err(fail(
                        "max_concurrency",
                        format!("{n} differs from {m}, set by another action of limit group {name:?}"),
                    ))
                }
                _ => group.max_concurrency = Some(n),
            }
        }
        if let Some(rate) = &flow.rate {
            match &group.rate {
                Some(r) if r != rate => {
                    return Err(fail(
                        "rate",
                        format!(
                        "{:?} (burst {}) differs from {:?} (burst {}), set by another action of limit group {name:?}",
                        rate.text, rate.burst, r.text, r.burst
                    ),
                    ))
                }
                _ => group.rate = Some(rate.clone()),
            }
        }
    }
    for group in groups.values() {
        if let Some((other, _)) =
            actions.iter().find(|(a, _)| *a == group.name && !group.actions.iter().any(|g| g == a))
        {
            return Err((
                group.actions[0].clone(),
                "limit_group",
                format!(
                    "{:?} is the name of action {:?}, which is not in the group; name the group otherwise",
                    group.name, other
                ),
            ));
        }
    }
    Ok(groups.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_attempts_per_period() {
        assert_eq!(parse_rate("5/1s"), Ok(5.0));
        assert_eq!(parse_rate("5/s"), Ok(5.0));
        assert_eq!(parse_rate("300/1m"), Ok(5.0));
        assert_eq!(parse_rate("3600/1h"), Ok(1.0));
        assert_eq!(parse_rate(" 10 / 2s "), Ok(5.0));
        for bad in ["5", "x/1s", "5/soon", "-1/1s", "5/0s", "", "/", "5/1s/2"] {
            assert!(parse_rate(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse_rate("0/1s").unwrap_err().contains("pause"));
        assert!(parse_rate("1000000/1s").unwrap_err().contains("above"));
    }
}
