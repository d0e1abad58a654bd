//! What the binary writes: with `--output json`, every line on stdout is one
//! JSON object with a schema version, a timestamp and an event name (logs
//! included); in text mode, logs go to stderr without garbling the progress
//! bar (the bar steps aside while a log line is written).

use std::io::Write;
use std::sync::Mutex;
use std::time::SystemTime;

use indicatif::ProgressBar;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use crate::progress::Output;
use crate::shadow::UtcTime;

/// Version of the JSON lines' schema; raised when a field changes meaning
/// or disappears (new fields do not raise it).
pub const SCHEMA_VERSION: u32 = 1;

/// One JSON line: `schema_version`, `ts` (RFC 3339, UTC), `event`, then the
/// fields of `body` (an object).
pub fn json_line(event: &str, body: Value) -> String {
    let mut line = Map::new();
    line.insert("schema_version".into(), SCHEMA_VERSION.into());
    line.insert("ts".into(), UtcTime::of(SystemTime::now()).rfc3339().into());
    line.insert("event".into(), event.into());
    if let Value::Object(fields) = body {
        line.extend(fields);
    }
    Value::Object(line).to_string()
}

/// Sets up logging for `output` (the level from `SHADOWCUT_LOG`).
pub fn init_logging(output: Output) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHADOWCUT_LOG")
        .unwrap_or_else(|_| "shadowcut=info".into());
    match output {
        Output::Json => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .event_format(JsonLogFormat)
            .with_writer(std::io::stdout)
            .init(),
        Output::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(BarAwareStderr)
            .init(),
    }
}

/// Log events as [`json_line`]s: `event` is `log`, with `level`, `target`,
/// `message` and the event's other `fields`.
pub struct JsonLogFormat;

impl<S, N> FormatEvent<S, N> for JsonLogFormat
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut fields = Map::new();
        event.record(&mut FieldsVisitor(&mut fields));
        let message = fields.remove("message").unwrap_or(Value::Null);
        let meta = event.metadata();
        let line = json_line(
            "log",
            serde_json::json!({
                "level": meta.level().as_str(),
                "target": meta.target(),
                "message": message,
                "fields": fields,
            }),
        );
        writeln!(writer, "{line}")
    }
}

struct FieldsVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for FieldsVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
}

/// The progress bar on screen, if any: log lines make it step aside.
static ACTIVE_BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Makes `bar` (or none) the one log lines step around.
pub fn set_active_bar(bar: Option<ProgressBar>) {
    *ACTIVE_BAR.lock().unwrap_or_else(|e| e.into_inner()) = bar;
}

/// Stderr, written a whole log line at a time, around the progress bar.
pub struct BarAwareStderr;

impl<'a> MakeWriter<'a> for BarAwareStderr {
    type Writer = LogLine;
    fn make_writer(&'a self) -> LogLine {
        LogLine(Vec::new())
    }
}

/// One log line, written out when dropped.
pub struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let bar = ACTIVE_BAR.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let write = || {
            let _ = std::io::stderr().write_all(&self.0);
        };
        match bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_carry_the_schema_version_a_timestamp_and_the_event() {
        let line: Value =
            serde_json::from_str(&json_line("status", serde_json::json!({"stage": "copy"})))
                .unwrap();
        assert_eq!(line["schema_version"], SCHEMA_VERSION);
        assert_eq!(line["event"], "status");
        assert_eq!(line["stage"], "copy");
        let ts = line["ts"].as_str().unwrap();
        assert_eq!(ts.len(), "2026-11-29T13:05:09.123Z".len(), "{ts}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
    }

    #[test]
    fn rfc3339_of_a_known_moment() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_764_421_509_123);
        assert_eq!(UtcTime::of(at).rfc3339(), "2025-11-29T13:05:09.123Z");
    }
}
