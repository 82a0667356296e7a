//! Host-side bindings to the `orchestr8:agent` world, generated from `wit/`.
//!
//! `wasi:*` interfaces come from wasmtime-wasi and wasmtime-wasi-http, so the
//! generated code only covers orchestr8's own `types`, `host` and `handler`.

#![allow(missing_docs)]

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

/// The export every agent must provide, as named in the component.
pub(crate) const HANDLER_EXPORT: &str = "orchestr8:agent/handler@0.1.0";
