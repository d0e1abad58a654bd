//! shadowcut's own write-load generator for the demo and the benchmarks.
//!
//! Every transaction applies the same statements to the table and to a
//! control copy, so that after a migration the two can be compared. Runs a
//! bounded time with a bounded number of writers and stops by itself.
//!
//! ```text
//! cargo run --release --example loadgen -- --host 127.0.0.1 --port 3306 \
//!   --user u --password p --database demo --table orders --control orders_control \
//!   --max-id 1000000 --writers 4 --seconds 60
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use mysql_async::prelude::*;
use mysql_async::{Conn, Value};

#[derive(Parser, Debug, Clone)]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 3306)]
    port: u16,
    #[arg(long)]
    user: String,
    #[arg(long, env = "MYSQL_PWD", hide_env_values = true)]
    password: Option<String>,
    #[arg(long)]
    database: String,
    #[arg(long)]
    table: String,
    /// Control table that receives the same changes (omit for plain load).
    #[arg(long)]
    control: Option<String>,
    /// Keys are drawn from 1..=max-id (plus a tenth beyond, for inserts).
    #[arg(long)]
    max_id: u64,
    #[arg(long, default_value_t = 4)]
    writers: u64,
    /// Stop after this many seconds (or when the stop file appears).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Stop early when this file exists.
    #[arg(long)]
    stop_file: Option<std::path::PathBuf>,
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn statements(rng: &mut Rng, max_id: u64) -> Vec<(&'static str, Vec<Value>)> {
    let id = Value::from(1 + rng.below(max_id + max_id / 10));
    let amount = Value::from(format!("{}.{:02}", rng.below(10_000), rng.below(100)));
    match rng.below(10) {
        0..=3 => vec![("UPDATE {T} SET amount = ?, status = 'updated' WHERE id = ?", vec![amount, id])],
        4..=6 => vec![(
            "INSERT INTO {T} (id, customer_id, amount, status, created_at, note) VALUES (?, ?, ?, 'new', '2026-01-01 00:00:00', NULL) \
             ON DUPLICATE KEY UPDATE amount = VALUES(amount), status = 'upserted'",
            vec![id, Value::from(rng.below(50_000)), amount],
        )],
        7 => vec![("DELETE FROM {T} WHERE id = ?", vec![id])],
        _ => {
            let from = 1 + rng.below(max_id);
            vec![(
                "UPDATE {T} SET note = 'range' WHERE id BETWEEN ? AND ?",
                vec![Value::from(from), Value::from(from + rng.below(10))],
            )]
        }
    }
}

async fn writer(
    args: Args,
    n: u64,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) -> Result<(), mysql_async::Error> {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(args.host.clone())
        .tcp_port(args.port)
        .user(Some(args.user.clone()))
        .pass(args.password.clone())
        .db_name(Some(args.database.clone()))
        .prefer_socket(false);
    let mut conn = Conn::new(opts).await?;
    conn.query_drop("SET SESSION time_zone = '+00:00', innodb_lock_wait_timeout = 10")
        .await?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((n + 1) * 7919));
    let tables: Vec<String> = std::iter::once(args.table.clone())
        .chain(args.control.clone())
        .collect();
    while !stop.load(Ordering::Relaxed) {
        let stmts = statements(&mut rng, args.max_id);
        loop {
            let attempt: Result<(), mysql_async::Error> = async {
                conn.query_drop("START TRANSACTION").await?;
                for (sql, params) in &stmts {
                    for t in &tables {
                        conn.exec_drop(sql.replace("{T}", &format!("`{t}`")), params.clone())
                            .await?;
                    }
                }
                conn.query_drop("COMMIT").await
            }
            .await;
            match attempt {
                Ok(()) => break,
                Err(mysql_async::Error::Server(e)) if e.code == 1213 || e.code == 1205 => {
                    conn.query_drop("ROLLBACK").await?;
                }
                Err(e) => return Err(e),
            }
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    conn.disconnect().await
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..args.writers)
        .map(|n| tokio::spawn(writer(args.clone(), n, stop.clone(), done.clone())))
        .collect();
    let limit = Duration::from_secs(args.seconds);
    while started.elapsed() < limit && !args.stop_file.as_ref().is_some_and(|f| f.exists()) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut failed = false;
    for h in handles {
        if let Ok(Err(e)) = h.await {
            eprintln!("loadgen: writer failed: {e}");
            failed = true;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    println!(
        "loadgen: {n} transactions in {secs:.1} s ({:.0}/s) with {} writers",
        n as f64 / secs,
        args.writers
    );
    if failed {
        std::process::exit(1);
    }
}
