//! The daemon's log: one line per record on stderr, each with a level and the module it
//! is about, filtered like `RUST_LOG` (`--log-level info,ike=debug,apply=warn`). When
//! stderr is the journal (`$JOURNAL_STREAM` names stderr's device and inode) every line
//! starts with its syslog priority, `<3>` to `<7>`, which journald stores as PRIORITY=
//! and strips (sd-daemon(3)); the journal adds the identifier, so "routevpn:" is left
//! out there. Records are written with one write(2) each. Secrets never get here: keys
//! travel as `Secret`s, whose `Debug` shows lengths only.

use std::fmt::Display;
use std::io::Write;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

const LEVELS: [(&str, Level); 5] = [
    ("error", Level::Error),
    ("warn", Level::Warn),
    ("info", Level::Info),
    ("debug", Level::Debug),
    ("trace", Level::Trace),
];

impl Level {
    /// The syslog priority journald files the record under.
    fn priority(self) -> u8 {
        match self {
            Level::Error => 3,
            Level::Warn => 4,
            Level::Info => 6,
            Level::Debug | Level::Trace => 7,
        }
    }

    fn name(self) -> &'static str {
        LEVELS
            .iter()
            .find(|(_, l)| *l == self)
            .map_or("", |(n, _)| n)
    }
}

impl FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Level, String> {
        (LEVELS.iter())
            .find(|(name, _)| *name == s)
            .map(|(_, level)| *level)
            .ok_or_else(|| format!("unknown level {s:?} (error, warn, info, debug, trace)"))
    }
}

/// What the records are about, the names a filter can use.
pub const DAEMON: &str = "daemon";
pub const IKE: &str = "ike";
pub const APPLY: &str = "apply";
pub const SYSTEMD: &str = "systemd";
const MODULES: [&str; 4] = [DAEMON, IKE, APPLY, SYSTEMD];

/// `LEVEL`, `MODULE=LEVEL` or both, separated by commas: the last word for a module wins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    default: Level,
    modules: Vec<(&'static str, Level)>,
}

impl Default for Filter {
    fn default() -> Self {
        Filter {
            default: Level::Info,
            modules: Vec::new(),
        }
    }
}

impl FromStr for Filter {
    type Err = String;
    fn from_str(s: &str) -> Result<Filter, String> {
        let mut filter = Filter::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item.split_once('=') {
                None => filter.default = item.parse()?,
                Some((module, level)) => {
                    let module = (MODULES.iter().find(|m| **m == module)).ok_or_else(|| {
                        format!("unknown module {module:?} ({})", MODULES.join(", "))
                    })?;
                    filter.modules.push((module, level.parse()?));
                }
            }
        }
        Ok(filter)
    }
}

impl Filter {
    pub fn enabled(&self, module: &str, level: Level) -> bool {
        let limit = (self.modules.iter().rev())
            .find(|(m, _)| *m == module)
            .map_or(self.default, |(_, l)| *l);
        level <= limit
    }
}

/// Where records go: stderr, or memory (tests).
#[derive(Clone, Debug)]
pub enum Sink {
    Stderr,
    Memory(Arc<Mutex<Vec<u8>>>),
}

struct Logger {
    filter: Filter,
    journal: bool,
    sink: Sink,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Sets the filter and the sink, once per process; before it, records at info and above
/// go to stderr as plain lines.
pub fn init(filter: Filter, sink: Sink) -> Result<(), String> {
    let journal = matches!(sink, Sink::Stderr) && stderr_is_journal();
    let logger = Logger {
        filter,
        journal,
        sink,
    };
    LOGGER
        .set(logger)
        .map_err(|_| "the log is already set up".to_string())
}

fn logger() -> &'static Logger {
    LOGGER.get_or_init(|| Logger {
        filter: Filter::default(),
        journal: false,
        sink: Sink::Stderr,
    })
}

/// `$JOURNAL_STREAM` is "DEVICE:INODE" of the journal's stream; stderr is the journal
/// only if it is still that file (not redirected since).
fn stderr_is_journal() -> bool {
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.split_once(':') else {
        return false;
    };
    // SAFETY: fstat writes only the stat buffer it is given.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(2, &mut stat) } != 0 {
        return false;
    }
    dev.parse() == Ok(stat.st_dev) && ino.parse() == Ok(stat.st_ino)
}

pub fn enabled(module: &str, level: Level) -> bool {
    logger().filter.enabled(module, level)
}

/// The bytes of one record as written: `routevpn: LEVEL module: message`, or with the
/// priority prefix on each of its lines for the journal.
fn format(journal: bool, module: &str, level: Level, message: &str) -> String {
    if journal {
        let prefix = format!("<{}>", level.priority());
        let mut out = String::new();
        for line in message.lines() {
            out += &format!("{prefix}{module}: {line}\n");
        }
        out
    } else {
        format!(
            "routevpn: {} {module}: {message}\n",
            level.name().to_uppercase()
        )
    }
}

pub fn write(module: &str, level: Level, message: impl Display) {
    let logger = logger();
    if !logger.filter.enabled(module, level) {
        return;
    }
    let text = format(logger.journal, module, level, &message.to_string());
    match &logger.sink {
        Sink::Stderr => {
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
        }
        Sink::Memory(buffer) => {
            if let Ok(mut buffer) = buffer.lock() {
                buffer.extend_from_slice(text.as_bytes());
            }
        }
    }
}

pub fn error(module: &str, message: impl Display) {
    write(module, Level::Error, message);
}

pub fn warn(module: &str, message: impl Display) {
    write(module, Level::Warn, message);
}

pub fn info(module: &str, message: impl Display) {
    write(module, Level::Info, message);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_read_like_rust_log() {
        let f: Filter = "warn,ike=debug,apply=error".parse().unwrap();
        assert!(f.enabled(IKE, Level::Debug) && !f.enabled(IKE, Level::Trace));
        assert!(f.enabled(APPLY, Level::Error) && !f.enabled(APPLY, Level::Warn));
        assert!(f.enabled(DAEMON, Level::Warn) && !f.enabled(DAEMON, Level::Info));
        let plain: Filter = "trace".parse().unwrap();
        assert!(plain.enabled(SYSTEMD, Level::Trace));
        assert_eq!("".parse::<Filter>(), Ok(Filter::default()));
        let e = "ike=loud".parse::<Filter>().unwrap_err();
        assert!(e.contains("unknown level \"loud\""), "{e}");
        let e = "kernel=debug".parse::<Filter>().unwrap_err();
        assert!(
            e.contains("unknown module \"kernel\" (daemon, ike, apply, systemd)"),
            "{e}"
        );
    }

    #[test]
    fn journal_lines_carry_their_priority_and_others_their_level() {
        assert_eq!(
            format(true, IKE, Level::Warn, "a: failed\n  detail"),
            "<4>ike: a: failed\n<4>ike:   detail\n"
        );
        assert_eq!(format(true, DAEMON, Level::Trace, "x"), "<7>daemon: x\n");
        assert_eq!(
            format(false, APPLY, Level::Info, "3 changes"),
            "routevpn: INFO apply: 3 changes\n"
        );
    }

    #[test]
    fn stderr_is_the_journal_only_with_its_device_and_inode() {
        // SAFETY: fstat writes only the stat buffer it is given.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::fstat(2, &mut stat) }, 0);
        // The environment is process-wide: one test sets it, and puts it back.
        let before = std::env::var_os("JOURNAL_STREAM");
        std::env::set_var("JOURNAL_STREAM", format!("{}:{}", stat.st_dev, stat.st_ino));
        let matching = stderr_is_journal();
        std::env::set_var(
            "JOURNAL_STREAM",
            format!("{}:{}", stat.st_dev, stat.st_ino + 1),
        );
        let other = stderr_is_journal();
        match before {
            Some(v) => std::env::set_var("JOURNAL_STREAM", v),
            None => std::env::remove_var("JOURNAL_STREAM"),
        }
        assert!(matching && !other);
    }
}
