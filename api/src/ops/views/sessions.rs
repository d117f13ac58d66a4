//! The live dashboard sessions, each with a revoke button, and a button per label that
//! revokes all of its sessions. Sessions are named by the digest of their id; the id
//! and the cookie are never shown.

use maud::{html, Markup};

use super::{csrf_field, scroll, when};
use crate::ops::session::Session;
use crate::service::sessions::SessionView;

/// `current` is the id (digest) of the session looking at the page.
pub fn page(s: &Session, sessions: &[SessionView], current: &str) -> Markup {
    let mut labels: Vec<&str> = sessions.iter().map(|x| x.label.as_str()).collect();
    labels.sort_unstable();
    labels.dedup();
    html! {
        p { "Everyone signed in to this dashboard. Revoking a session signs it out at once, wherever its cookie is; \
             the operator can sign in again with the admin token." }
        @if sessions.is_empty() {
            p { "No live sessions." }
        } @else {
            (scroll(html! {
                table id="sessions" {
                    tr { th { "label" } th { "signed in" } th { "last seen" } th { "expires" } th { "from" } th { "session" } th {} }
                    @for x in sessions {
                        tr {
                            td { (x.label) }
                            td { (when(x.created_at)) }
                            td { (when(x.last_seen_at)) }
                            td { (when(x.expires_at)) }
                            td { (x.client.as_deref().unwrap_or("unknown")) }
                            td { span.id title=(x.id) { (x.id[..8]) "…" } @if x.id == current { " (this session)" } }
                            td {
                                form.inline method="post" action={ "/ops/ui/sessions/" (x.id) "/revoke" } {
                                    (csrf_field(s)) button { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }))
            @for label in &labels {
                form method="post" action="/ops/ui/sessions/revoke" {
                    (csrf_field(s))
                    input type="hidden" name="label" value=(label);
                    button { "Revoke every session of " (label) }
                }
            }
        }
    }
}
