//! Ids as types: an execution, a workflow step and an agent are each named
//! by their own kind of id, so one cannot be passed where another is meant.
//! Each is a string on the wire (serde transparent) and reads as one
//! (`Deref<Target = str>`).
//!
//! One minting rule: [`ExecutionId::new`] (a UUIDv7, time-ordered so the
//! journal's rows of executions running together sit side by side, and ids
//! sort by age). Every execution, and every single agent call outside one
//! (`agent call`, `/process`, an MCP tool call), gets its id from it.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
            schemars::JsonSchema,
        )]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                $name(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                $name(id.to_string())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

id!(
    /// An execution: one run of a workflow, or one agent call outside any.
    ExecutionId
);
id!(
    /// A workflow step, unique within its workflow (`[A-Za-z0-9_-]+`).
    StepId
);
id!(
    /// An agent, `@scope/name`.
    AgentId
);

impl ExecutionId {
    /// A fresh id: a UUIDv7, ordered by the time it was made.
    #[allow(clippy::new_without_default)] // a default id would not be fresh
    pub fn new() -> Self {
        ExecutionId(uuid::Uuid::now_v7().to_string())
    }
}

impl StepId {
    /// No step: a call outside any workflow.
    pub fn none() -> Self {
        StepId(String::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_strings_on_the_wire_and_fresh_execution_ids_sort_by_age() {
        let a = ExecutionId::new();
        let b = ExecutionId::new();
        assert!(a < b, "{a} then {b}");
        assert_eq!(serde_json::to_string(&a).unwrap(), format!("\"{a}\""));
        let step: StepId = serde_json::from_str("\"fetch\"").unwrap();
        assert_eq!(step, "fetch");
        assert_eq!(AgentId::from("@a/b").len(), 4);
    }
}
