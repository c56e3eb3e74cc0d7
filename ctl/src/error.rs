//! Errors of rvsctl: a one-line message (printed as `PROGRAM: message`) and the exit
//! status ovs-vsctl uses for it.

use std::fmt;

/// A failure that ends the invocation without changing anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtlError {
    pub msg: String,
    /// Exit status: 1 for errors, 2 for `br-exists` on a missing bridge (silent).
    pub code: i32,
}

impl CtlError {
    pub fn new(msg: impl Into<String>) -> CtlError {
        CtlError { msg: msg.into(), code: 1 }
    }

    /// Exit with `code` and print nothing (`br-exists`).
    pub fn silent(code: i32) -> CtlError {
        CtlError { msg: String::new(), code }
    }
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl From<String> for CtlError {
    fn from(msg: String) -> CtlError {
        CtlError::new(msg)
    }
}

impl From<rvs_ovsdb::ValueError> for CtlError {
    fn from(e: rvs_ovsdb::ValueError) -> CtlError {
        CtlError::new(e.to_string())
    }
}

impl std::error::Error for CtlError {}

/// Shorthand for command results.
pub type Result<T> = std::result::Result<T, CtlError>;
