//! Write orchestr8 agents in Rust.
//!
//! An agent is a WebAssembly component (target `wasm32-wasip2`) that
//! implements the `orchestr8:agent` WIT world. This crate hides the WIT
//! plumbing behind a typed [`Agent`] trait: you describe your input and
//! output as serde types, implement [`Agent::process`], and export it with
//! [`export_agent!`]. The JSON Schemas the host shows for your agent are
//! derived from the same types.
//!
//! ```
//! use orchestr8_agent_sdk::{export_agent, log, Agent, AgentError, Context, JsonSchema};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Input { name: String }
//!
//! #[derive(Serialize, JsonSchema)]
//! struct Output { greeting: String }
//!
//! struct Greeter;
//!
//! impl Agent for Greeter {
//!     const ID: &'static str = "@example/greeter";
//!     const VERSION: &'static str = "0.1.0";
//!     const DESCRIPTION: &'static str = "Greets whoever it is given.";
//!     type Input = Input;
//!     type Output = Output;
//!
//!     fn process(input: Input, _ctx: &Context) -> Result<Output, AgentError> {
//!         if input.name.is_empty() {
//!             return Err(AgentError::invalid_input("name must not be empty"));
//!         }
//!         log::info("greeting someone");
//!         Ok(Output { greeting: format!("Hello, {}!", input.name) })
//!     }
//! }
//!
//! export_agent!(Greeter);
//! ```
//!
//! Build it with `cargo build --target wasm32-wasip2 --release` and run it
//! with `orchestr8 agent call target/wasm32-wasip2/release/greeter.wasm
//! --input '{"name":"Ada"}'`.
//!
//! What an agent may touch is decided by the host, not the agent: files,
//! environment variables, secrets and outbound hosts must be granted, and
//! every invocation runs in a fresh sandbox with a deadline, a fuel budget
//! and a memory cap.

extern crate self as orchestr8_agent_sdk;

mod context;
mod error;
pub mod http;
pub mod llm;
pub mod log;
pub mod prompt;

pub use context::{Context, SecretError};
pub use error::AgentError;
pub use schemars::JsonSchema;

/// Raw bindings generated from `wit/orchestr8.wit`. Prefer the typed API.
#[doc(hidden)]
#[allow(missing_docs, unsafe_code, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "agent",
        path: "wit",
        with: {
            "wasi:http/types@0.2.12": wasip2::http::types,
            "wasi:http/outgoing-handler@0.2.12": wasip2::http::outgoing_handler,
            "wasi:io/poll@0.2.12": wasip2::io::poll,
            "wasi:io/error@0.2.12": wasip2::io::error,
            "wasi:io/streams@0.2.12": wasip2::io::streams,
            "wasi:clocks/monotonic-clock@0.2.12": wasip2::clocks::monotonic_clock,
        },
        pub_export_macro: true,
        export_macro_name: "__export_agent_world",
        default_bindings_module: "orchestr8_agent_sdk::bindings",
        runtime_path: "orchestr8_agent_sdk::__private::wit_bindgen::rt",
    });
}

/// An orchestr8 agent.
///
/// The host calls [`Agent::process`] once per invocation, each time in a
/// fresh sandbox: keep no state between calls.
pub trait Agent {
    /// Identifier in `@scope/name` form.
    const ID: &'static str;
    /// Semantic version; `env!("CARGO_PKG_VERSION")` is a good choice.
    const VERSION: &'static str;
    /// One or two sentences on what the agent does.
    const DESCRIPTION: &'static str;
    /// The input, deserialized from JSON. Its schema is published in `info`.
    type Input: serde::de::DeserializeOwned + JsonSchema;
    /// The output, serialized to JSON. Its schema is published in `info`.
    type Output: serde::Serialize + JsonSchema;

    /// Handles one invocation.
    fn process(input: Self::Input, ctx: &Context) -> Result<Self::Output, AgentError>;
}

/// Exports a type implementing [`Agent`] as the component's
/// `orchestr8:agent/handler`. Use it once per agent crate.
#[macro_export]
macro_rules! export_agent {
    ($agent:ty) => {
        #[doc(hidden)]
        pub struct __Orchestr8AgentExport;

        impl $crate::bindings::exports::orchestr8::agent::handler::Guest for __Orchestr8AgentExport {
            fn info() -> $crate::bindings::orchestr8::agent::types::AgentInfo {
                $crate::__private::info::<$agent>()
            }

            fn process(
                invocation: $crate::bindings::orchestr8::agent::types::Invocation,
            ) -> ::core::result::Result<
                ::std::string::String,
                $crate::bindings::orchestr8::agent::types::AgentError,
            > {
                $crate::__private::process::<$agent>(invocation)
            }
        }

        $crate::bindings::__export_agent_world!(__Orchestr8AgentExport with_types_in $crate::bindings);
    };
}

/// Glue used by [`export_agent!`]; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    use crate::bindings::orchestr8::agent::types as wit;
    use crate::{Agent, AgentError, Context};

    /// The schema of `T` as it is read (input) or as it is written
    /// (output). The two differ: a field skipped when empty
    /// (`skip_serializing_if`) may be absent from an output, so it must not
    /// be `required` there, whereas reading it may still need it.
    fn schema_text<T: schemars::JsonSchema>(written: bool) -> String {
        let settings = schemars::generate::SchemaSettings::draft2020_12();
        let settings = if written {
            settings.for_serialize()
        } else {
            settings.for_deserialize()
        };
        let schema = settings.into_generator().into_root_schema_for::<T>();
        serde_json::to_string(&schema).unwrap_or_else(|_| "true".into())
    }

    pub fn info<A: Agent>() -> wit::AgentInfo {
        wit::AgentInfo {
            id: A::ID.into(),
            version: A::VERSION.into(),
            description: A::DESCRIPTION.into(),
            input_schema: schema_text::<A::Input>(false),
            output_schema: schema_text::<A::Output>(true),
        }
    }

    /// A serde error as a person reads it: no position in JSON they never
    /// wrote, no Rust type names.
    fn plain(e: &serde_json::Error) -> String {
        let text = e.to_string();
        let text = text.split(" at line ").next().unwrap_or(&text);
        [
            ("expected u8", "expected a whole number from 0 to 255"),
            ("expected u16", "expected a whole number from 0 to 65535"),
            ("expected u32", "expected a whole number of 0 or more"),
            ("expected u64", "expected a whole number of 0 or more"),
            ("expected usize", "expected a whole number of 0 or more"),
            ("expected i8", "expected a whole number"),
            ("expected i16", "expected a whole number"),
            ("expected i32", "expected a whole number"),
            ("expected i64", "expected a whole number"),
            ("expected f32", "expected a number"),
            ("expected f64", "expected a number"),
            ("expected a sequence", "expected an array"),
            ("expected a map", "expected an object"),
            ("expected struct ", "expected an object "),
        ]
        .iter()
        .fold(text.to_string(), |t, (rust, words)| t.replace(rust, words))
    }

    pub fn process<A: Agent>(invocation: wit::Invocation) -> Result<String, wit::AgentError> {
        let input: A::Input = serde_json::from_str(&invocation.input).map_err(|e| {
            wit::AgentError::from(AgentError::invalid_input(format!(
                "input does not match {}'s input schema: {}",
                A::ID,
                plain(&e)
            )))
        })?;
        let ctx = Context::from_invocation(&invocation)?;
        let output = A::process(input, &ctx).map_err(wit::AgentError::from)?;
        serde_json::to_string(&output).map_err(|e| {
            wit::AgentError::from(AgentError::fatal(format!(
                "cannot serialize the output: {e}"
            )))
        })
    }

    #[cfg(test)]
    mod tests {
        use super::plain;

        #[test]
        fn input_errors_leave_out_positions_and_rust_types() {
            let e = serde_json::from_str::<u32>("\"three\"").unwrap_err();
            assert_eq!(
                plain(&e),
                "invalid type: string \"three\", expected a whole number of 0 or more"
            );
        }
    }
}
