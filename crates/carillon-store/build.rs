// Rebuild when a migration is added or edited: `sqlx::migrate!` embeds the
// files at compile time, and cargo does not watch that directory by itself.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
