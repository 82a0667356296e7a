//! orchestr8's servers: the HTTP interfaces ([`api`]: the REST API and one
//! agent as a microservice, with their OpenAPI documents and metrics) and
//! the MCP server Claude Code talks to ([`mcp`]).
//!
//! They exist apart from `orchestr8-host` so that the front door (a project's
//! agents, executions, installs) has no web framework in it: a server is a
//! thin translation of a protocol onto that library, and the CLI's other
//! commands build without axum or rmcp.

pub mod api;
pub mod mcp;
