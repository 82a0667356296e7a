//! One agent as a microservice: `POST /process` runs it once, with the same
//! limits, grants and resilience chain as in a workflow; `GET /health` says
//! what it is and whether its circuit is open.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;

use super::extract::JsonBody;
use super::metrics::metrics_response;
use super::model::AgentHealth;
use super::{ApiError, HttpOptions, Metrics, harden, openapi};
use orchestr8_host::call::{AgentCall, Invoker, RegisteredAgent};
use orchestr8_host::error::Coded;
use orchestr8_host::resilience::{BreakerState, ResilienceEvent, ResiliencePolicy};

/// One agent behind HTTP.
pub struct AgentService {
    invoker: Invoker,
    agent: RegisteredAgent,
    resilience: ResiliencePolicy,
    queue_timeout: Duration,
    metrics: Arc<Metrics>,
}

impl AgentService {
    /// Serves `agent` through `invoker` under `resilience`; a call that
    /// cannot start within `queue_timeout` (the agent's bulkhead, the
    /// sandbox slots or the memory budget taken) is answered `503`.
    pub fn new(
        invoker: Invoker,
        agent: RegisteredAgent,
        resilience: ResiliencePolicy,
        queue_timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(AgentService {
            invoker,
            agent,
            resilience,
            queue_timeout,
            metrics,
        })
    }

    /// The routes, with the shared hardening of `http`.
    pub fn router(self: &Arc<Self>, http: &HttpOptions) -> Router {
        let document = Arc::new(openapi::agent_document(
            self.agent.agent.info(),
            http.token.is_some(),
        ));
        let router =
            Router::new()
                .route("/process", post(process))
                .route("/health", get(health))
                .route(
                    "/metrics",
                    get(|State(s): State<Arc<AgentService>>| async move {
                        metrics_response(&s.metrics)
                    }),
                )
                .route(
                    "/openapi.json",
                    get(move || async move { Json(document.as_ref().clone()) }),
                )
                .with_state(self.clone());
        harden(router, http)
    }

    fn breaker(&self) -> BreakerState {
        let key = self
            .resilience
            .circuit_breaker
            .key(&self.agent.agent.info().id, None);
        self.invoker.resilience().breakers().state(&key)
    }
}

async fn process(
    State(service): State<Arc<AgentService>>,
    JsonBody(input): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    let mut call = AgentCall::new(&service.agent, input);
    call.resilience = service.resilience.clone();
    call.queue_timeout = service.queue_timeout;
    call.cancel_grace = Duration::from_secs(2);
    // Log lines of this request carry the call's id, like an execution's.
    tracing::Span::current().record("execution_id", call.execution_id.as_str());
    // A client that hangs up drops this future, and with it the sandbox call.
    let outcome = service
        .invoker
        .call(&service.agent, call, &|event: ResilienceEvent| {
            service.metrics.observe_resilience(&event)
        })
        .await;
    match outcome.result {
        Ok(output) => {
            service.metrics.count_call("ok");
            Ok(Json(output))
        }
        Err(e) => {
            service.metrics.count_call(e.code().as_str());
            Err(ApiError::from(&e))
        }
    }
}

async fn health(State(service): State<Arc<AgentService>>) -> Json<AgentHealth> {
    let breaker = service.breaker();
    let info = service.agent.agent.info();
    Json(AgentHealth {
        status: if breaker == BreakerState::Open {
            "degraded".into()
        } else {
            "ok".into()
        },
        agent_id: info.id.clone(),
        version: info.version.clone(),
        breaker: breaker.as_str().into(),
    })
}
