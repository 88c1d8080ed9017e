//! `tenantctl events`: the outbox's events and how their deliveries went.

use anyhow::Context;
use clap::Subcommand;
use tenant_orchestrator::app::EventError;
use tenant_orchestrator::ports::StoreError;
use tenant_orchestrator::record::{DeliveryState, OutboxEvent};

use super::{Failure, OutputFormat, EXIT_CONFLICT, EXIT_FAILURE, EXIT_INVALID_INPUT, EXIT_NOT_FOUND};

#[derive(Subcommand, Debug)]
pub enum EventsCommand {
    /// List the newest events with their deliveries per sink.
    List {
        /// Only events in this delivery state: pending, delivered or dead.
        #[arg(long, value_parser = parse_state)]
        state: Option<DeliveryState>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Deliver an event again: to --sink, or to every sink that gave it up.
    Redeliver {
        /// The event id (`evt_…`), as `events list` prints it.
        id: String,
        #[arg(long)]
        sink: Option<String>,
    },
}

fn parse_state(s: &str) -> Result<DeliveryState, String> {
    DeliveryState::parse(s)
}

fn failure(e: EventError) -> Failure {
    let code = match &e {
        EventError::BadLimit(_) => EXIT_INVALID_INPUT,
        EventError::NothingToRedeliver { .. } => EXIT_CONFLICT,
        EventError::Store(StoreError::NotFound { .. }) => EXIT_NOT_FOUND,
        EventError::Store(_) => EXIT_FAILURE,
    };
    Failure {
        code,
        error: anyhow::Error::new(e),
    }
}

pub async fn run(table: &str, output: OutputFormat, command: EventsCommand) -> Result<(), Failure> {
    let events = super::connect(table).await.events();
    match command {
        EventsCommand::List { state, limit } => {
            let listed = events.list(state, limit).await.map_err(failure)?;
            print_events(&listed, output)
        }
        EventsCommand::Redeliver { id, sink } => {
            let event = events.redeliver(&id, sink.as_deref()).await.map_err(failure)?;
            match output {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&event_json(&event))?),
                OutputFormat::Table => println!(
                    "event {} is pending again; the dispatchers deliver it on their next pass",
                    event.event.id
                ),
            }
            Ok(())
        }
    }
}

/// An event as `--output json` and the API show it.
fn event_json(e: &OutboxEvent) -> serde_json::Value {
    serde_json::json!({
        "id": e.event.id,
        "type": e.event.event_type,
        "subject": e.event.subject,
        "time": e.event.time,
        "state": e.state.as_str(),
        "deliveries": e.deliveries,
        "event": e.event,
    })
}

fn print_events(events: &[OutboxEvent], output: OutputFormat) -> Result<(), Failure> {
    match output {
        OutputFormat::Json => {
            let list: Vec<_> = events.iter().map(event_json).collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&list).context("printing the events")?
            );
        }
        OutputFormat::Table => {
            println!(
                "{:<36} {:<9} {:<25} {:<40} DELIVERIES",
                "ID", "STATE", "TIME", "TYPE / SUBJECT"
            );
            for e in events {
                let deliveries: Vec<String> = e
                    .deliveries
                    .iter()
                    .map(|(sink, d)| {
                        let state = if d.delivered_at.is_some() {
                            "delivered".to_owned()
                        } else if d.dead {
                            "dead".to_owned()
                        } else {
                            "retrying".to_owned()
                        };
                        match &d.last_error {
                            Some(err) if d.delivered_at.is_none() => {
                                format!("{sink}: {state} after {} attempts ({err})", d.attempts)
                            }
                            _ => format!("{sink}: {state} after {} attempts", d.attempts),
                        }
                    })
                    .collect();
                println!(
                    "{:<36} {:<9} {:<25} {:<40} {}",
                    e.event.id,
                    e.state.as_str(),
                    e.event.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    format!(
                        "{} {}",
                        e.event.event_type.trim_start_matches("io.tenant-orchestrator."),
                        e.event.subject
                    ),
                    if deliveries.is_empty() {
                        "-".to_owned()
                    } else {
                        deliveries.join("; ")
                    }
                );
            }
        }
    }
    Ok(())
}
