//! The live commands an operator sends while the migration runs, one per
//! line (`echo status | nc -U /tmp/shadowcut.sock`). Names follow gh-ost's
//! where gh-ost has the command.

use std::sync::Arc;
use std::time::Instant;

use crate::control::Stop;
use crate::progress::{text_line, Sources, Status};
use crate::throttle::{parse_load_limits, LoadLimit};

/// Largest chunk the `chunk-size=` command accepts.
const MAX_CHUNK_ROWS: u64 = 1_000_000;

/// One live command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Lists the commands.
    Help,
    /// The status, as text.
    Status,
    /// The status, as one JSON object.
    StatusJson,
    /// Holds the copy and the applier back until `no-throttle`.
    Throttle,
    /// Ends `throttle`.
    NoThrottle,
    /// Every chunk from the next one takes this many rows (no adaptation).
    ChunkSize(u64),
    /// Throttle while a replica lags more than this many milliseconds.
    MaxLagMillis(u64),
    /// Throttle while one of these is crossed (empty: never).
    MaxLoad(Vec<LoadLimit>),
    /// Stop the migration when one of these is crossed (empty: never).
    CriticalLoad(Vec<LoadLimit>),
    /// After each chunk, sleep this many times the time it took.
    NiceRatio(f64),
    /// Cut over as soon as the copy and the checks are done.
    Unpostpone,
    /// Abort now; the original table stays untouched.
    Panic,
}

/// What `help` answers.
pub const HELP: &str = "\
status                 the migration's state, progress, throttle and postponement
status json            the same as one JSON object
throttle               hold the copy and the applier back until no-throttle
no-throttle            end the throttle command (other throttle reasons still apply)
chunk-size=N           copy N rows per chunk from the next chunk on (no more adapting)
nice-ratio=F           after each copy or checksum chunk, sleep F times its time (0: no sleep)
max-lag-millis=N       throttle while a watched replica lags more than N ms
max-load=V=N[,V=N]     throttle while a status variable reaches N (empty: never)
critical-load=V=N[,..] stop the migration when a status variable reaches N (empty: never)
unpostpone             cut over as soon as the copy and the checksum are done
panic                  abort now: the original table stays untouched, the new one is dropped
help                   this list
";

/// Reads one command line.
pub fn parse(line: &str) -> Result<Command, String> {
    let line = line.trim();
    let (name, value) = match line.split_once('=') {
        Some((name, value)) => (name.trim(), Some(value.trim())),
        None => (line, None),
    };
    let needs_no_value = |command: Command| match value {
        None => Ok(command),
        Some(_) => Err(format!("{name} takes no value")),
    };
    let number = |what: &str| -> Result<u64, String> {
        value
            .ok_or_else(|| format!("{name} needs a value: {name}=N"))?
            .parse()
            .map_err(|_| format!("{what} must be a whole number"))
    };
    match name.to_ascii_lowercase().as_str() {
        "help" => needs_no_value(Command::Help),
        "status" | "sup" => needs_no_value(Command::Status),
        "status json" => needs_no_value(Command::StatusJson),
        "throttle" => needs_no_value(Command::Throttle),
        "no-throttle" => needs_no_value(Command::NoThrottle),
        "unpostpone" => needs_no_value(Command::Unpostpone),
        "panic" => needs_no_value(Command::Panic),
        "chunk-size" => {
            let rows = number("chunk-size")?;
            if !(1..=MAX_CHUNK_ROWS).contains(&rows) {
                return Err(format!("chunk-size must be between 1 and {MAX_CHUNK_ROWS}"));
            }
            Ok(Command::ChunkSize(rows))
        }
        "max-lag-millis" => {
            let millis = number("max-lag-millis")?;
            if millis < 100 {
                return Err("max-lag-millis must be at least 100".into());
            }
            Ok(Command::MaxLagMillis(millis))
        }
        "nice-ratio" => {
            let ratio: f64 = value
                .ok_or("nice-ratio needs a value: nice-ratio=F")?
                .parse()
                .map_err(|_| "nice-ratio must be a number".to_string())?;
            if !(0.0..=100.0).contains(&ratio) {
                return Err("nice-ratio must be between 0 and 100".into());
            }
            Ok(Command::NiceRatio(ratio))
        }
        "max-load" | "critical-load" => {
            let limits = parse_load_limits(value.ok_or_else(|| {
                format!("{name} needs a value: {name}=Threads_running=25 (empty to clear)")
            })?)
            .map_err(|problem| format!("{name}: {problem}"))?;
            Ok(if name.eq_ignore_ascii_case("max-load") {
                Command::MaxLoad(limits)
            } else {
                Command::CriticalLoad(limits)
            })
        }
        "" => Err("empty command; try help".into()),
        _ => Err(format!("unknown command '{line}'; try help")),
    }
}

/// What the commands act on.
#[derive(Clone)]
pub struct Live {
    /// The table, quoted, for the status header.
    pub table: String,
    /// The run's shared state.
    pub sources: Arc<Sources>,
    /// When the run started.
    pub started: Instant,
    /// The run's stop request.
    pub stop: Stop,
}

impl Live {
    /// Runs one command line; the answer ends with a newline. Errors are
    /// answered too, starting with `ERROR:`.
    pub fn answer(&self, line: &str) -> String {
        let command = match parse(line) {
            Ok(command) => command,
            Err(problem) => return format!("ERROR: {problem}\n"),
        };
        if !matches!(
            command,
            Command::Help | Command::Status | Command::StatusJson
        ) {
            tracing::info!(command = line.trim(), "live command");
        }
        let sources = &self.sources;
        match command {
            Command::Help => HELP.to_string(),
            Command::Status => self.status_text(&sources.status(self.started)),
            Command::StatusJson => match serde_json::to_string(&sources.status(self.started)) {
                Ok(json) => format!("{json}\n"),
                Err(e) => format!("ERROR: the status cannot be written as JSON ({e})\n"),
            },
            Command::Throttle => {
                sources.throttle.hold_by_operator();
                "throttled: the copy and the applier wait until no-throttle\n".into()
            }
            Command::NoThrottle => {
                sources.throttle.release_by_operator();
                match sources.throttle.reason() {
                    Some(reason) => {
                        format!("no longer throttled by the operator; still throttled: {reason}\n")
                    }
                    None => "no longer throttled\n".into(),
                }
            }
            Command::ChunkSize(rows) => {
                sources.pace.set_chunk_size(rows);
                format!("chunk-size={rows} from the next chunk on\n")
            }
            Command::NiceRatio(ratio) => {
                sources.pace.set_nice_ratio(ratio);
                format!("nice-ratio={ratio}\n")
            }
            Command::MaxLagMillis(millis) => {
                sources
                    .throttle
                    .set_limits(|limits| limits.max_lag = std::time::Duration::from_millis(millis));
                format!("max-lag-millis={millis}\n")
            }
            Command::MaxLoad(limits) => {
                let text = crate::throttle::format_load_limits(&limits);
                sources.throttle.set_limits(|l| l.max_load = limits);
                format!("max-load={text}\n")
            }
            Command::CriticalLoad(limits) => {
                let text = crate::throttle::format_load_limits(&limits);
                sources.throttle.set_limits(|l| l.critical_load = limits);
                format!("critical-load={text}\n")
            }
            Command::Unpostpone => match sources.postpone.unpostpone() {
                Some(reason) => format!("unpostponed ({reason}): cutting over\n"),
                None => "unpostponed: the cut-over will not be postponed\n".into(),
            },
            Command::Panic => {
                self.stop.panic("the panic command");
                "panic: aborting; the original table stays untouched\n".into()
            }
        }
    }

    fn status_text(&self, s: &Status) -> String {
        let chunk = if s.chunk_size_adaptive {
            format!("{} (adapting to the chunk time)", s.chunk_size)
        } else {
            s.chunk_size.to_string()
        };
        let or_none = |text: &str| {
            if text.is_empty() {
                "none".to_string()
            } else {
                text.to_string()
            }
        };
        format!(
            "# Migrating {}; stage: {}\n# chunk-size: {chunk}; nice-ratio: {}; max-lag-millis: {}; max-load: {}; critical-load: {}\n# throttled: {}\n# postponed: {}\n{}\n",
            self.table,
            s.stage,
            s.nice_ratio,
            s.max_lag_millis,
            or_none(&s.max_load),
            or_none(&s.critical_load),
            s.throttled.as_deref().unwrap_or("no"),
            match (&s.postponed, s.postponed_s) {
                (Some(reason), Some(secs)) => format!("{reason} (for {secs:.0} s)"),
                _ => "no".into(),
            },
            text_line(s)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_read_like_gh_osts() {
        assert_eq!(parse("status\n"), Ok(Command::Status));
        assert_eq!(parse(" status json "), Ok(Command::StatusJson));
        assert_eq!(parse("chunk-size=500"), Ok(Command::ChunkSize(500)));
        assert_eq!(parse("nice-ratio=0.5"), Ok(Command::NiceRatio(0.5)));
        assert_eq!(
            parse("max-lag-millis=2000"),
            Ok(Command::MaxLagMillis(2000))
        );
        assert_eq!(parse("max-load="), Ok(Command::MaxLoad(vec![])));
        assert_eq!(
            parse("critical-load=Threads_running=80"),
            Ok(Command::CriticalLoad(
                parse_load_limits("Threads_running=80").unwrap()
            ))
        );
        for bad in [
            "chunk-size=0",
            "chunk-size=abc",
            "chunk-size",
            "nice-ratio=-1",
            "max-lag-millis=5",
            "max-load=Threads_running",
            "panic=now",
            "drop table",
            "",
        ] {
            assert!(parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn each_command_changes_what_status_says() {
        let live = Live {
            table: "`db`.`t`".into(),
            sources: Arc::new(Sources::default()),
            started: Instant::now(),
            stop: Stop::default(),
        };
        let json = |live: &Live| -> serde_json::Value {
            serde_json::from_str(&live.answer("status json")).unwrap()
        };
        assert!(live.answer("throttle").starts_with("throttled"));
        assert!(json(&live)["throttled"]
            .as_str()
            .unwrap()
            .contains("operator"));
        assert!(live
            .answer("status")
            .contains("# throttled: throttled by the operator"));
        live.answer("no-throttle");
        assert!(json(&live)["throttled"].is_null());
        live.answer("nice-ratio=0.25");
        assert_eq!(json(&live)["nice_ratio"], 0.25);
        live.answer("max-lag-millis=2500");
        assert_eq!(json(&live)["max_lag_millis"], 2500);
        live.answer("max-load=Threads_running=30");
        assert_eq!(json(&live)["max_load"], "Threads_running=30");
        live.answer("critical-load=Threads_running=90");
        assert_eq!(json(&live)["critical_load"], "Threads_running=90");
        assert!(live.answer("bogus").starts_with("ERROR: unknown command"));
        assert!(live.answer("help").contains("unpostpone"));
        live.answer("panic");
        assert!(live.stop.is_panic());
    }
}
