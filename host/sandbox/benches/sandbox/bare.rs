//! Bare wasmtime: the least a host must do to call an agent once, the
//! baseline the sandbox is measured against.
//!
//! Per call: a fresh store with an empty WASI context, fuel and an epoch
//! deadline (the engine has both turned on), instantiate the pre-linked
//! component, call `process` with the JSON input, parse the JSON output. No
//! policy, no limiter, no capability checks, no log capture, no output
//! schema, no deadline race, no slot accounting beyond what keeps the pool
//! from running out: those are what the sandbox adds. Outbound HTTP is
//! linked but refuses every request (the agents measured never make one).

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Semaphore;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{
    Error as HttpError, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks,
    WasiHttpView,
};

mod bindings {
    wasmtime::component::bindgen!({
        world: "agent",
        path: "wit",
        exports: { default: async },
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
        require_store_data_send: true,
    });
}

use bindings::AgentPre;
use bindings::orchestr8::agent::{host, types};

pub struct State {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: NoRequests,
    table: ResourceTable,
}

/// Refuses every outbound request: the agents measured never make one.
struct NoRequests;

type Response = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
);

impl WasiHttpHooks for NoRequests {
    fn send_request(
        &mut self,
        _: http::Request<WasiBody>,
        _: Option<RequestOptions>,
        _: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = Result<Response, HttpError>> + Send> {
        Box::new(std::future::ready(Err(HttpError::HttpRequestDenied)))
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl types::Host for State {}

impl host::Host for State {
    fn log(&mut self, _: host::LogLevel, _: String, _: Vec<(String, String)>) {}

    fn emit_event(&mut self, _: String, _: String) {}

    fn get_secret(&mut self, _: String) -> Result<String, host::SecretError> {
        Err(host::SecretError::NotGranted)
    }

    fn is_cancelled(&mut self) -> bool {
        false
    }
}

/// One agent, pre-linked on a given engine.
#[derive(Clone)]
pub struct Bare {
    engine: Engine,
    pre: AgentPre<State>,
    /// The pool has a fixed number of slots: callers past it wait here.
    slots: Arc<Semaphore>,
}

impl Bare {
    pub fn new(engine: &Engine, component: &Component, slots: usize) -> wasmtime::Result<Self> {
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        host::add_to_linker::<_, HasSelf<State>>(&mut linker, |s| s)?;
        types::add_to_linker::<_, HasSelf<State>>(&mut linker, |s| s)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        Ok(Bare {
            engine: engine.clone(),
            pre: AgentPre::new(linker.instantiate_pre(component)?)?,
            slots: Arc::new(Semaphore::new(slots)),
        })
    }

    pub async fn call(&self, input: &Value) -> wasmtime::Result<Value> {
        let _slot = self.slots.acquire().await?;
        let state = State {
            wasi: WasiCtx::builder().build(),
            http: WasiHttpCtx::new(),
            hooks: NoRequests,
            table: ResourceTable::new(),
        };
        let mut store = Store::new(&self.engine, state);
        store.set_fuel(u64::MAX)?;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));
        let agent = self.pre.instantiate_async(&mut store).await?;
        let invocation = types::Invocation {
            execution_id: String::new(),
            step_id: String::new(),
            attempt: 1,
            deadline_unix_ms: 0,
            config: "{}".into(),
            input: input.to_string(),
        };
        match agent
            .orchestr8_agent_handler()
            .call_process(&mut store, &invocation)
            .await?
        {
            Ok(text) => Ok(serde_json::from_str(&text)?),
            Err(e) => Err(wasmtime::format_err!("the agent failed: {e:?}")),
        }
    }
}
