//! Rebuilds the crate when a migration is added or changed: `sqlx::migrate!` embeds
//! the migrations at compile time, and cargo does not watch that folder by itself
//! (a binary built before a new migration would refuse a database that has it).
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
