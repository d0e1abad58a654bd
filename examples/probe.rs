//! A latency probe for the benchmarks: one client that changes one row of a
//! table every few milliseconds (`UPDATE t SET k = k + 1 WHERE id = <random>`,
//! autocommit) and records how long each statement took. Its longest
//! statement is the stall an application writing at that pace feels while a
//! migration runs.
//!
//! Bounded in count and time: it stops by itself after `--seconds` or
//! `--max-count` statements, or as soon as the stop file appears. A
//! statement is never waited for longer than `--statement-timeout-seconds`
//! (the connection is then dropped and a new one made). Errors do not stop
//! it: they are recorded, and a lost connection is made again.
//!
//! Output (`--out`): one line per statement,
//! `START_UNIX_S LATENCY_MS CODE`, CODE 0 for success, the server's error
//! code, -1 for a client or connection error, -2 for a statement that timed
//! out on the client side. A summary line goes to stderr.
//!
//! ```text
//! cargo run --release --example probe -- --host 127.0.0.1 --port 3306 \
//!   --user u --password p --database sbtest --table sbtest1 --max-id 200000 \
//!   --interval-ms 5 --seconds 120 --out probe.txt
//! ```

use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use mysql_async::prelude::*;
use mysql_async::Conn;

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
    /// Integer column incremented by each statement.
    #[arg(long, default_value = "k")]
    column: String,
    /// Key column; keys are drawn from 1..=max-id.
    #[arg(long, default_value = "id")]
    key: String,
    #[arg(long)]
    max_id: u64,
    /// Pause between the starts of two statements (a statement that takes
    /// longer is followed at once by the next, without catching up).
    #[arg(long, default_value_t = 5)]
    interval_ms: u64,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Stop after this many statements (default: seconds * 1000 / interval).
    #[arg(long)]
    max_count: Option<u64>,
    /// Stop early when this file exists.
    #[arg(long)]
    stop_file: Option<std::path::PathBuf>,
    /// The client gives up on a statement after this long.
    #[arg(long, default_value_t = 30)]
    statement_timeout_seconds: u64,
    /// Where the samples go.
    #[arg(long)]
    out: std::path::PathBuf,
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

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

async fn connect(args: &Args) -> Result<Conn, mysql_async::Error> {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(args.host.clone())
        .tcp_port(args.port)
        .user(Some(args.user.clone()))
        .pass(args.password.clone())
        .db_name(Some(args.database.clone()))
        .prefer_socket(false)
        .stmt_cache_size(0);
    let mut conn = Conn::new(opts).await?;
    // Lock waits end on the server before the client gives up.
    let wait = args.statement_timeout_seconds.saturating_sub(1).max(1);
    conn.query_drop(format!(
        "SET SESSION innodb_lock_wait_timeout = {wait}, lock_wait_timeout = {wait}"
    ))
    .await?;
    Ok(conn)
}

fn quoted(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    let period = Duration::from_millis(args.interval_ms.max(1));
    let max_count = args
        .max_count
        .unwrap_or(args.seconds * 1000 / args.interval_ms.max(1));
    let limit = Duration::from_secs(args.seconds);
    let statement_timeout = Duration::from_secs(args.statement_timeout_seconds.max(1));
    let out = match std::fs::File::create(&args.out) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("probe: cannot create {}: {e}", args.out.display());
            std::process::exit(1);
        }
    };
    let mut out = std::io::BufWriter::new(out);
    let sql_prefix = format!(
        "UPDATE {} SET {c} = {c} + 1 WHERE {} = ",
        quoted(&args.table),
        quoted(&args.key),
        c = quoted(&args.column)
    );
    let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ u64::from(std::process::id()));
    let started = Instant::now();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut conn: Option<Conn> = None;
    let (mut count, mut errors, mut max_ms) = (0u64, 0u64, 0f64);
    let mut first_error: Option<String> = None;
    while count < max_count
        && started.elapsed() < limit
        && !args.stop_file.as_ref().is_some_and(|f| f.exists())
    {
        tick.tick().await;
        let at = now_unix();
        let t0 = Instant::now();
        let result: Result<(), (i64, String)> = async {
            if conn.is_none() {
                match tokio::time::timeout(statement_timeout, connect(&args)).await {
                    Ok(Ok(c)) => conn = Some(c),
                    Ok(Err(e)) => return Err((-1, format!("connect: {e}"))),
                    Err(_) => return Err((-2, "connect: timed out".to_string())),
                }
            }
            let c = conn.as_mut().expect("connected above");
            let sql = format!("{sql_prefix}{}", 1 + rng.below(args.max_id));
            match tokio::time::timeout(statement_timeout, c.query_drop(sql)).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(mysql_async::Error::Server(e))) => {
                    Err((i64::from(e.code), format!("{} {}", e.code, e.message)))
                }
                Ok(Err(e)) => {
                    conn = None;
                    Err((-1, e.to_string()))
                }
                Err(_) => {
                    conn = None;
                    Err((-2, "statement timed out on the client".to_string()))
                }
            }
        }
        .await;
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        let code = match result {
            Ok(()) => 0,
            Err((code, message)) => {
                errors += 1;
                first_error.get_or_insert(message);
                code
            }
        };
        count += 1;
        max_ms = max_ms.max(ms);
        if let Err(e) = writeln!(out, "{at:.6} {ms:.3} {code}") {
            eprintln!("probe: writing {}: {e}", args.out.display());
            std::process::exit(1);
        }
    }
    if let Err(e) = out.flush() {
        eprintln!("probe: writing {}: {e}", args.out.display());
        std::process::exit(1);
    }
    if let Some(c) = conn {
        let _ = c.disconnect().await;
    }
    eprintln!(
        "probe: {count} statements in {:.1} s, {errors} errors{}, longest {max_ms:.1} ms",
        started.elapsed().as_secs_f64(),
        first_error
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
}
