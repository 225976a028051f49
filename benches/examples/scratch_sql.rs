use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let f: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}
fn main() {
    let variant: String = std::env::args().nth(1).unwrap_or("base".into());
    let rows: u64 = 100_000;
    let users = 10_000u64;
    let batch = 200usize;
    let dir = std::env::temp_dir().join(format!("carillon-scr-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}/b.db", dir.display())).unwrap().create_if_missing(true).journal_mode(SqliteJournalMode::Wal).synchronous(SqliteSynchronous::Normal);
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.unwrap();
        let wr = if variant.contains("wr") { " WITHOUT ROWID" } else { "" };
        sqlx::query(&format!("CREATE TABLE bindings (aor TEXT NOT NULL, contact TEXT NOT NULL, instance TEXT, reg_id INTEGER, source TEXT, path TEXT NOT NULL DEFAULT '[]', call_id TEXT NOT NULL, cseq INTEGER NOT NULL, expires_at INTEGER NOT NULL, q REAL, user_agent TEXT, PRIMARY KEY (aor, contact)){wr}")).execute(&pool).await.unwrap();
        if !variant.contains("noidx") { sqlx::query("CREATE INDEX bindings_expires_at ON bindings (expires_at)").execute(&pool).await.unwrap(); }
        let t0 = cpu_ticks(); let w = std::time::Instant::now();
        let all: Vec<u64> = (0..rows).collect();
        for chunk in all.chunks(batch) {
            let mut tx = pool.begin().await.unwrap();
            if variant.contains("json") {
                let mut js = String::from("[");
                for (k, i) in chunk.iter().enumerate() {
                    let ext = 100_000 + i % users; let round = i / users;
                    if k > 0 { js.push(','); }
                    js.push_str(&format!("[\"{ext}\",\"sip:{ext}@127.0.0.1:5070\",null,null,\"udp:127.0.0.1:5070\",\"[]\",\"{ext}-{round}@127.0.0.1\",2,{},null,\"SIPp\"]", 1_800_003_600 + round));
                }
                js.push(']');
                sqlx::query("INSERT INTO bindings (aor, contact, instance, reg_id, source, path, call_id, cseq, expires_at, q, user_agent) SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7, value->>8, value->>9, value->>10 FROM json_each($1) WHERE true ON CONFLICT (aor, contact) DO UPDATE SET instance = excluded.instance, reg_id = excluded.reg_id, source = excluded.source, path = excluded.path, call_id = excluded.call_id, cseq = excluded.cseq, expires_at = excluded.expires_at, q = excluded.q, user_agent = excluded.user_agent").bind(js).execute(&mut *tx).await.unwrap();
            } else {
                for sub in chunk.chunks(64) {
                    let mut q = sqlx::QueryBuilder::new("INSERT INTO bindings (aor, contact, instance, reg_id, source, path, call_id, cseq, expires_at, q, user_agent) ");
                    q.push_values(sub, |mut v, i| {
                        let ext = 100_000 + i % users; let round = i / users;
                        v.push_bind(format!("{ext}")).push_bind(format!("sip:{ext}@127.0.0.1:5070")).push_bind(None::<String>).push_bind(None::<i64>).push_bind("udp:127.0.0.1:5070").push_bind("[]").push_bind(format!("{ext}-{round}@127.0.0.1")).push_bind(2i64).push_bind((1_800_003_600 + round) as i64).push_bind(None::<f32>).push_bind("SIPp");
                    });
                    q.push(" ON CONFLICT (aor, contact) DO UPDATE SET instance = excluded.instance, reg_id = excluded.reg_id, source = excluded.source, path = excluded.path, call_id = excluded.call_id, cseq = excluded.cseq, expires_at = excluded.expires_at, q = excluded.q, user_agent = excluded.user_agent");
                    q.build().execute(&mut *tx).await.unwrap();
                }
            }
            tx.commit().await.unwrap();
        }
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM bindings").fetch_one(&pool).await.unwrap();
        let t = cpu_ticks() - t0;
        println!("{variant}: rows={n} cpu_per_row={:.2}us wall={:.3}", t as f64 * 10_000.0 / rows as f64, w.elapsed().as_secs_f64());
    });
    let _ = std::fs::remove_dir_all(&dir);
}
