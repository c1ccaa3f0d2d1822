//! The simulation's record of what happened: every log event of every host (HTTP
//! requests and answers included) and every fault, stamped with simulated time, and
//! the front-end's rebalance lines for the documented-logs check.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The target of the front-end's documented rebalance lines.
pub const REBALANCE_TARGET: &str = "memring::rebalance";

/// The target on which a service reports a broken protocol invariant (after
/// FoundationDB's `SevError`): any such event fails the run.
pub const INVARIANT_TARGET: &str = memring::INVARIANT_TARGET;

#[derive(Default)]
struct Lines {
    trace: Vec<String>,
    rebalance: Vec<String>,
    /// Invariant breaches the services reported, with their host.
    breaches: Vec<String>,
}

/// Shared, append-only record of one run.
#[derive(Clone, Default)]
pub struct Recorder {
    lines: Arc<Mutex<Lines>>,
}

fn now_ms() -> u128 {
    turmoil::sim_elapsed().map_or(0, |elapsed| elapsed.as_millis())
}

impl Recorder {
    fn lines(&self) -> MutexGuard<'_, Lines> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a line at the current simulated time.
    pub fn note(&self, host: &str, text: &str) {
        let line = format!("{:>9}ms {host} {text}", now_ms());
        self.lines().trace.push(line);
    }

    /// Adds a line at a given simulated time (from outside the simulation's hosts).
    pub fn note_at(&self, elapsed_ms: u128, host: &str, text: &str) {
        let line = format!("{elapsed_ms:>9}ms {host} {text}");
        self.lines().trace.push(line);
    }

    /// The whole trace, one line each.
    pub fn trace(&self) -> Vec<String> {
        self.lines().trace.clone()
    }

    /// The rebalance lines logged so far, without prefix.
    pub fn rebalance_lines(&self) -> Vec<String> {
        self.lines().rebalance.clone()
    }

    /// Invariant breaches the services reported.
    pub fn breaches(&self) -> Vec<String> {
        self.lines().breaches.clone()
    }

    /// Forgets the rebalance lines logged so far.
    pub fn clear_rebalance_lines(&self) {
        self.lines().rebalance.clear();
    }

    /// A tracing layer that feeds this recorder.
    pub fn layer(&self) -> RecordLayer {
        RecordLayer {
            recorder: self.clone(),
        }
    }
}

/// The host a span stands for (`host{name=...}`).
struct HostName(String);

/// Collects an event's message and fields in their written order.
#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
    host: Option<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            "name" => self.host = Some(format!("{value:?}")),
            name => {
                let _ = write!(self.rest, " {name}={value:?}");
            }
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message.push_str(value),
            "name" => self.host = Some(value.to_owned()),
            name => {
                let _ = write!(self.rest, " {name}={value}");
            }
        }
    }
}

/// The tracing layer of a [`Recorder`].
pub struct RecordLayer {
    recorder: Recorder,
}

impl<S> Layer<S> for RecordLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "host" {
            return;
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let (Some(host), Some(span)) = (fields.host, ctx.span(id)) {
            span.extensions_mut().insert(HostName(host));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let host = ctx
            .event_scope(event)
            .and_then(|scope| {
                scope
                    .from_root()
                    .find_map(|span| span.extensions().get::<HostName>().map(|h| h.0.clone()))
            })
            .unwrap_or_else(|| "sim".to_owned());
        let mut fields = Fields::default();
        event.record(&mut fields);
        let metadata = event.metadata();
        if metadata.target() == REBALANCE_TARGET {
            self.recorder.lines().rebalance.push(fields.message.clone());
        }
        if metadata.target() == INVARIANT_TARGET {
            self.recorder
                .lines()
                .breaches
                .push(format!("{host}: {}{}", fields.message, fields.rest));
        }
        let text = format!(
            "{} {}: {}{}",
            metadata.level(),
            metadata.target(),
            fields.message,
            fields.rest
        );
        self.recorder.note(&host, &text);
    }
}
