//! One place that sets up logging: `EnvFilter` from `RUST_LOG` (falling back to the configured
//! default), JSON for machines or pretty for people. Spans carry dotted field names
//! (`http.method`, `tenant.id`, `request.id`); nothing here ever formats PII, tokens or secrets.

use tracing_subscriber::{EnvFilter, fmt, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::{LogFormat, TelemetryConfig};

/// Installs the global subscriber. Call once, at start-up; a second call is a no-op error
/// that is ignored, so tests that build several apps in one process are fine.
pub fn init(config: &TelemetryConfig) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(&config.default_filter));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match config.format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().compact()).try_init(),
    };
    // Already initialised (tests): keep the first subscriber.
    drop(result);
}
