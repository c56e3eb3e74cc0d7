//! Logging through `tracing`, with the level adjustable at run time by `vlog/set`
//! (ovs-appctl's vocabulary mapped onto tracing's levels).
//!
//! rvs has one log level for the whole process (OVS has one per module and per
//! destination); `vlog/set` accepts OVS's spec forms and applies the level it names,
//! `vlog/list` shows it in OVS's table layout.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::reload;

type Handle = reload::Handle<EnvFilter, tracing_subscriber::Registry>;

static HANDLE: OnceLock<Handle> = OnceLock::new();
static LEVEL: Mutex<&'static str> = Mutex::new("INFO");

/// OVS level names → tracing filter directives.
const LEVELS: &[(&str, &str)] = &[("off", "off"), ("emer", "error"), ("err", "error"), ("warn", "warn"), ("info", "info"), ("dbg", "debug")];

/// Installs the global subscriber: to `file` when given (appending), else stderr.
/// `RVS_LOG` (an EnvFilter spec) overrides the initial level.
pub fn init(file: Option<&Path>) -> std::io::Result<()> {
    let initial = std::env::var("RVS_LOG").unwrap_or_else(|_| "info".into());
    let (filter, handle) = reload::Layer::new(EnvFilter::try_new(&initial).unwrap_or_else(|_| EnvFilter::new("info")));
    let fmt = tracing_subscriber::fmt::layer().with_target(false).with_ansi(false);
    match file {
        Some(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            use std::os::unix::fs::OpenOptionsExt;
            // Readable by root and the adm-like group only: it names VMs and ports.
            let f = OpenOptions::new().create(true).append(true).mode(0o640).open(path)?;
            let _ = tracing_subscriber::registry().with(filter).with(fmt.with_writer(Mutex::new(f))).try_init();
        }
        None => {
            let _ = tracing_subscriber::registry().with(filter).with(fmt.with_writer(std::io::stderr)).try_init();
        }
    }
    let _ = HANDLE.set(handle);
    Ok(())
}

/// Why `vlog/set` refused its specs (the text is the appctl error reply).
#[derive(Debug, thiserror::Error)]
pub enum VlogError {
    /// A word that is neither a level, rvs's one module nor a destination.
    #[error("unknown module or destination \"{0}\" (rvs has one module, \"rvs\")")]
    UnknownWord(String),
    /// The specs named no level.
    #[error("no log level given (one of off, emer, err, warn, info, dbg)")]
    NoLevel,
    /// The subscriber's filter could not be replaced.
    #[error(transparent)]
    Reload(#[from] reload::Error),
}

/// `vlog/set SPEC…`: each SPEC is `[module[:destination]]:level` or just a level.
pub fn vlog_set(specs: &[String]) -> Result<(), VlogError> {
    let mut chosen = None;
    for spec in specs {
        for word in spec.split([':', ' ']).filter(|w| !w.is_empty()) {
            let w = word.to_ascii_lowercase();
            if let Some(&(name, directive)) = LEVELS.iter().find(|(n, _)| *n == w) {
                chosen = Some((name, directive));
            } else if !matches!(w.as_str(), "any" | "rvs" | "console" | "file" | "syslog") {
                return Err(VlogError::UnknownWord(word.to_string()));
            }
        }
    }
    let Some((name, directive)) = chosen else {
        return Err(VlogError::NoLevel);
    };
    if let Some(h) = HANDLE.get() {
        h.modify(|f| *f = EnvFilter::new(directive))?;
    }
    *LEVEL.lock().unwrap_or_else(|e| e.into_inner()) = match name {
        "off" => "OFF",
        "emer" => "EMER",
        "err" => "ERR",
        "warn" => "WARN",
        "info" => "INFO",
        _ => "DBG",
    };
    Ok(())
}

/// `vlog/list` in OVS's layout.
pub fn vlog_list() -> String {
    let level = *LEVEL.lock().unwrap_or_else(|e| e.into_inner());
    format!(
        "                 console    syslog    file\n                 -------    ------    ------\n{:<16} {:>7}    {:>6}    {:>6}\n",
        "rvs", level, "OFF", level
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert!(vlog_set(&["ANY:console:dbg".into()]).is_ok());
        assert!(vlog_list().contains("DBG"));
        assert!(vlog_set(&["info".into()]).is_ok());
        let e = vlog_set(&["bogus:info".into()]).unwrap_err();
        assert_eq!(e.to_string(), "unknown module or destination \"bogus\" (rvs has one module, \"rvs\")");
        let e = vlog_set(&[]).unwrap_err();
        assert_eq!(e.to_string(), "no log level given (one of off, emer, err, warn, info, dbg)");
    }
}
