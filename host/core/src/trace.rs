//! How a span says it failed, for every layer that opens one (execution,
//! step, attempt): the OpenTelemetry conventions for span status and
//! errors, in one place.

/// Marks `span` failed: status Error with `message` (already free of
/// secrets), and `error.type` set to the stable `code`. A no-op when spans
/// are not exported.
pub fn mark_failed(span: &tracing::Span, code: &str, message: &str) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    span.set_status(opentelemetry::trace::Status::error(message.to_string()));
    span.set_attribute("error.type", code.to_string());
}
