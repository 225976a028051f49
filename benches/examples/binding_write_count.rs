//! Cost of persisting registrar bindings to SQLite, as the binding writer
//! does it under REGISTER load: `ROWS` upserts (USERS distinct AORs, so
//! the second half refreshes the first) applied through
//! `Store::apply_bindings` in batches of `BATCH` (what one 20 ms group
//! commit window gathers at 10,000 registrations/s). Prints the process's
//! CPU (utime + stime, every thread: the tokio side and sqlx's SQLite
//! worker) per row, the figure that `benches/register_load.sh` counts as
//! part of each registration.
//!
//! ```sh
//! cargo build --release -p carillon-benches --example binding_write_count
//! $CARGO_TARGET_DIR/release/examples/binding_write_count [ROWS] [USERS] [BATCH]
//! ```

use carillon_store::{BindingChange, BindingRow, Store};

fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let f: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

fn row(i: u64, users: u64, round: u64) -> BindingRow {
    let ext = 100_000 + i % users;
    BindingRow {
        aor: format!("{ext}").into(),
        contact: format!("sip:{ext}@127.0.0.1:5070").into(),
        instance: None,
        reg_id: None,
        source: Some("udp:127.0.0.1:5070".into()),
        path: vec![],
        call_id: format!("{ext}-{round}@127.0.0.1").into(),
        cseq: 2,
        expires_at: 1_800_003_600 + round as i64,
        q: None,
        user_agent: Some("SIPp".into()),
    }
}

/// Two workers, as the switch's runtime has.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let arg = |n: usize, d: u64| {
        std::env::args()
            .nth(n)
            .and_then(|a| a.parse().ok())
            .unwrap_or(d)
    };
    let (rows, users, batch) = (arg(1, 20_000), arg(2, 10_000).max(1), arg(3, 200).max(1));
    let dir = std::env::temp_dir().join(format!("carillon-bwc-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let url = format!("sqlite://{}/b.db", dir.display());
    let result = async {
        let store = Store::connect(&url).await?;
        let changes: Vec<BindingChange> = (0..rows)
            .map(|i| BindingChange::Upsert(row(i, users, i / users)))
            .collect();
        let t0 = cpu_ticks();
        let wall = std::time::Instant::now();
        for chunk in changes.chunks(batch as usize) {
            store.apply_bindings(chunk).await?;
        }
        let ticks = cpu_ticks() - t0;
        let wall = wall.elapsed();
        store.close().await;
        Ok::<_, carillon_store::StoreError>((ticks, wall))
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok((ticks, wall)) => {
            // CLK_TCK is 100 on Linux.
            let cpu_us = ticks as f64 * 10_000.0;
            println!(
                "rows={rows} users={users} batch={batch} cpu={:.3}s wall={:.3}s cpu_per_row={:.2}us",
                cpu_us / 1e6,
                wall.as_secs_f64(),
                cpu_us / rows.max(1) as f64
            );
        }
        Err(e) => {
            eprintln!("store: {e}");
            std::process::exit(1);
        }
    }
}
