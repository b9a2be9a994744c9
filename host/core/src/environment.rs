//! A hospital's two environments. A client registration has a client id in
//! each; an organization a FHIR base URL in each, approved on its own; a
//! token reaches only URLs of its client's environment.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Test,
    /// What everything declared before environments existed is.
    #[default]
    Production,
}

impl Environment {
    pub const ALL: [Environment; 2] = [Environment::Test, Environment::Production];

    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Test => "test",
            Environment::Production => "production",
        }
    }

    /// `test` or `production`.
    pub fn parse(s: &str) -> Option<Environment> {
        match s {
            "test" => Some(Environment::Test),
            "production" => Some(Environment::Production),
            _ => None,
        }
    }
}

impl std::fmt::Display for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
