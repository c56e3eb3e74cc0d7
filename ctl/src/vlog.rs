//! ovs-vsctl's console log: which messages reach stderr, and how they look. The
//! `-v`/`--verbose` option takes OVS's vlog specs — words (separated by `:`, `,` or
//! spaces) naming modules, destinations (`console`, `syslog`, `file`, `any`) and a
//! level (`off`, `emer`, `err`, `warn`, `info`, `dbg`), or `PATTERN:DEST:FORMAT` — and
//! a bare `-v` turns every module up to `dbg`. rvsctl logs only warnings, so a level
//! below `warn` for a module on the console silences that module's lines. FORMAT takes
//! OVS's conversions: `%c` module, `%p` level, `%m` message, `%N` sequence number,
//! `%d`/`%D` time stamp (local/UTC; a `{strftime}` argument is accepted and the
//! ISO 8601 form printed), `%A` program, `%P` pid, `%t`/`%T` thread, `%E` host, `%r`
//! milliseconds since start, `%n` newline, `%%`; each with an optional `-` (left
//! justify), `0` (zero pad) and width.

use std::collections::HashMap;

/// OVS's default console format.
const DEFAULT_PATTERN: &str = "%D{%Y-%m-%dT%H:%M:%SZ}|%05N|%c%T|%p|%m";
const LEVELS: &[&str] = &["off", "emer", "err", "warn", "info", "dbg"];
const WARN: usize = 3;

/// The console's settings.
#[derive(Debug, Clone)]
pub struct Vlog {
    pattern: String,
    /// Console level per module; `None` key: every module.
    levels: HashMap<Option<String>, usize>,
}

impl Default for Vlog {
    fn default() -> Self {
        Vlog { pattern: DEFAULT_PATTERN.into(), levels: HashMap::from([(None, WARN)]) }
    }
}

impl Vlog {
    /// Applies one `-v` argument (`None`: a bare `-v`).
    pub fn apply(&mut self, spec: Option<&str>) {
        let Some(spec) = spec.filter(|s| !s.is_empty()) else {
            self.levels = HashMap::from([(None, LEVELS.len() - 1)]);
            return;
        };
        if let Some((kw, rest)) = spec.split_once(':').filter(|(kw, _)| kw.eq_ignore_ascii_case("pattern")) {
            let _ = kw;
            if let Some((dest, fmt)) = rest.split_once(':')
                && (dest.eq_ignore_ascii_case("console") || dest.eq_ignore_ascii_case("any"))
            {
                self.pattern = fmt.into();
            }
            return;
        }
        let (mut module, mut console, mut level) = (None, true, None);
        for w in spec.split([':', ',', ' ']).filter(|w| !w.is_empty()) {
            let lw = w.to_ascii_lowercase();
            if let Some(l) = LEVELS.iter().position(|&l| l == lw) {
                level = Some(l);
            } else if matches!(lw.as_str(), "console" | "any") {
                console = true;
            } else if matches!(lw.as_str(), "syslog" | "file") {
                console = false;
            } else if lw != "any" {
                module = Some(lw);
            }
        }
        let level = level.unwrap_or(LEVELS.len() - 1);
        if console {
            match module {
                None => self.levels = HashMap::from([(None, level)]),
                m => {
                    self.levels.insert(m, level);
                }
            }
        }
    }

    fn level(&self, module: &str) -> usize {
        self.levels.get(&Some(module.to_ascii_lowercase())).or_else(|| self.levels.get(&None)).copied().unwrap_or(WARN)
    }

    /// The console line for warning `msg` of `module`, the `seq`th message of the
    /// process at `now` (seconds since the epoch), or `None` if the module is silenced.
    pub fn warning(&self, seq: u32, module: &str, msg: &str, now: u64) -> Option<String> {
        (self.level(module) >= WARN).then(|| self.format(seq, module, "WARN", msg, now) + "\n")
    }

    fn format(&self, seq: u32, module: &str, level: &str, msg: &str, now: u64) -> String {
        let mut out = String::new();
        let mut it = self.pattern.chars().peekable();
        while let Some(c) = it.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            let left = it.next_if_eq(&'-').is_some();
            let zero = it.next_if_eq(&'0').is_some();
            let mut width = 0usize;
            while let Some(d) = it.next_if(char::is_ascii_digit) {
                width = width * 10 + d.to_digit(10).unwrap_or(0) as usize;
            }
            let Some(conv) = it.next() else { break };
            if matches!(conv, 'd' | 'D') && it.peek() == Some(&'{') {
                for x in it.by_ref() {
                    if x == '}' {
                        break;
                    }
                }
            }
            let text = match conv {
                'c' => module.to_string(),
                'p' => level.to_string(),
                'm' => msg.to_string(),
                'N' => seq.to_string(),
                'd' | 'D' => crate::watchdog::vlog_time(now),
                'A' => "ovs-vsctl".to_string(),
                'P' => std::process::id().to_string(),
                't' => "main".to_string(),
                'T' | 'r' | 'E' | 'B' => String::new(),
                'n' => "\n".to_string(),
                '%' => "%".to_string(),
                other => format!("%{other}"),
            };
            let pad = width.saturating_sub(text.chars().count());
            let fill = if zero && !left { '0' } else { ' ' };
            if left {
                out += &text;
                out.extend(std::iter::repeat_n(' ', pad));
            } else {
                out.extend(std::iter::repeat_n(fill, pad));
                out += &text;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Vlog;

    #[test]
    fn default_pattern_and_custom_ones() {
        let v = Vlog::default();
        assert_eq!(v.warning(2, "vsctl", "x", 0).unwrap(), "1970-01-01T00:00:00Z|00002|vsctl|WARN|x\n");
        let mut v = Vlog::default();
        v.apply(Some("PATTERN:console:%c|%p|%m"));
        assert_eq!(v.warning(2, "db_ctl_base", "m", 0).unwrap(), "db_ctl_base|WARN|m\n");
        v.apply(Some("PATTERN:any:[%-6p] %5N%%%n"));
        assert_eq!(v.warning(7, "vsctl", "m", 0).unwrap(), "[WARN  ]     7%\n\n");
        // A pattern for another destination leaves the console's alone.
        v.apply(Some("PATTERN:syslog:%m"));
        assert_eq!(v.warning(7, "vsctl", "m", 0).unwrap(), "[WARN  ]     7%\n\n");
    }

    #[test]
    fn levels_silence_modules() {
        let mut v = Vlog::default();
        v.apply(Some("reconnect:emer"));
        assert!(v.warning(2, "vsctl", "m", 0).is_some());
        v.apply(Some("vsctl:console:err"));
        assert!(v.warning(2, "vsctl", "m", 0).is_none());
        assert!(v.warning(2, "db_ctl_base", "m", 0).is_some());
        v.apply(Some("syslog:off"));
        assert!(v.warning(2, "db_ctl_base", "m", 0).is_some(), "syslog only");
        v.apply(Some("console:off"));
        assert!(v.warning(2, "db_ctl_base", "m", 0).is_none());
        v.apply(None);
        assert!(v.warning(2, "vsctl", "m", 0).is_some(), "bare -v: everything to dbg");
    }
}
