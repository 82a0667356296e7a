//! Logs and traces: `tracing` to stderr (pretty or JSON lines), and
//! OpenTelemetry trace export over OTLP/HTTP when the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//! is set. `OTEL_EXPORTER_OTLP_PROTOCOL` picks `http/protobuf` (default) or
//! `http/json`; `OTEL_SERVICE_NAME` names the service (default
//! `orchestr8`); the `OTEL_BSP_*` variables tune batching.
//!
//! Spans: `request` (HTTP), `execution`, `step` and `attempt`, each
//! carrying the execution id, nested in that order whichever command runs
//! the execution; an incoming W3C `traceparent` header becomes the parent
//! of the request span. A failed execution, step or attempt has the
//! OpenTelemetry status Error with its message and an `error.type`
//! attribute holding the stable code (`TIMEOUT`, …), as the semantic
//! conventions for errors say; a successful one leaves the status unset.

use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// For people.
    #[default]
    Pretty,
    /// One JSON object per line, with the span fields (execution id, …).
    Json,
}

/// Telemetry that could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built.
    #[error("cannot set up OTLP trace export: {0}")]
    Exporter(String),
    /// A global subscriber was already installed.
    #[error("logging is already set up: {0}")]
    AlreadySet(String),
}

/// The running telemetry; [`Telemetry::shutdown`] flushes pending spans.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Sends what is still buffered and stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("warning: trace export did not finish: {e}");
        }
    }
}

fn otlp_configured() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty()))
}

fn tracer_provider() -> Result<SdkTracerProvider, TelemetryError> {
    let protocol = match std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref() {
        Ok("http/json") => Protocol::HttpJson,
        Ok("grpc") => {
            eprintln!("warning: OTLP over gRPC is not built in; exporting over http/protobuf");
            Protocol::HttpBinary
        }
        _ => Protocol::HttpBinary,
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("orchestr8");
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// Installs the global subscriber: `filter` (an `EnvFilter` directive such
/// as `info` or `orchestr8_host=debug`), log lines on stderr in `format`,
/// and OTLP export when configured. Call it before starting a tokio runtime
/// (the exporter's HTTP client is blocking).
pub fn init(filter: &str, format: LogFormat, ansi: bool) -> Result<Telemetry, TelemetryError> {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("warn"));
    let fmt = match format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let provider = if otlp_configured() {
        Some(tracer_provider()?)
    } else {
        None
    };
    let otel = provider.as_ref().map(|p| {
        opentelemetry::global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
            Box::new(TraceContextPropagator::new()),
        ]));
        // Spans go to the collector whatever the log filter says.
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("orchestr8"))
            .with_filter(EnvFilter::new("info"))
    });
    // Spans are kept whatever the level of events: a warning logged inside
    // a request or an attempt carries its execution id from them.
    let spans = filter_fn(|meta| meta.is_span() && *meta.level() <= tracing::Level::INFO);
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter.or(spans)))
        .with(otel)
        .try_init()
        .map_err(|e| TelemetryError::AlreadySet(e.to_string()))?;
    Ok(Telemetry { provider })
}
