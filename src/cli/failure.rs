//! How a command fails: one line for the user, and the exit code SPEC 2 gives it (1 a
//! runtime failure, 2 a usage or config error).

use crate::config::ConfigError;
use crate::pipeline::live::SettingsError;
use crate::server::ServeError;

/// A failure reported to the user: one line, and the exit code SPEC 2 gives it.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
    pub fn runtime(message: impl Into<String>) -> Self {
        Failure {
            code: 1,
            message: message.into(),
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure::usage(e.to_string())
    }
}

impl From<SettingsError> for Failure {
    fn from(e: SettingsError) -> Self {
        Failure::usage(e.to_string())
    }
}

impl From<ServeError> for Failure {
    fn from(e: ServeError) -> Self {
        match e {
            // A setting the engines refuse is a config error, like any other.
            ServeError::Settings(e) => e.into(),
            e => Failure::runtime(e.to_string()),
        }
    }
}
