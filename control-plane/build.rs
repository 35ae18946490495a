//! Rebuilds when a migration is added: `sqlx::migrate!` embeds the migrations directories.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
