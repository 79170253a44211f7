//! Profile files: TOML, one tunnel per file, read into the validated [`crate::model`].

mod auth;
mod child;
mod credentials;
mod cross;
mod diagnostic;
mod fields;
pub use crate::file;
mod ike;
mod interface;
pub mod keys;
mod reader;
mod routing;
mod secrets;
mod semantics;
mod tunnel;
mod values;

use std::path::{Path, PathBuf};

pub(crate) use auth::rfc3110_text;
pub use diagnostic::{escaped, Diagnostic, Severity, SourceFile};
pub use secrets::shown_path as shown_secret_path;
pub use semantics::policy_children;
pub use tunnel::TOP_KEYS;

use crate::model::Tunnel;

/// The directory `routevpn` reads when none is given.
pub const DEFAULT_DIR: &str = "/etc/routevpn/tunnels";

#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Accept secret files that are not root-owned mode 0600 (test setups only).
    pub insecure_secrets: bool,
}

/// What loading produced: the tunnels if there was no error, and every diagnostic.
#[derive(Debug)]
pub struct Loaded {
    pub tunnels: Option<Vec<Tunnel>>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }
}

/// Profile files named by `paths`: files as given, directories' `*.toml` (not recursive,
/// hidden files skipped), sorted by path so allocation and diagnostics are stable.
///
/// Every entry named like a profile is listed whatever it is (a FIFO, a dangling symlink, a
/// directory): skipping it would make its tunnel disappear; reading it reports why it is no
/// profile.
pub fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Diagnostic> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    for path in paths {
        let unreadable = |e: std::io::Error| file_error(path, format!("cannot read: {e}"));
        if path.is_dir() {
            for entry in std::fs::read_dir(path).map_err(unreadable)? {
                let p = entry.map_err(unreadable)?.path();
                let hidden = p.file_name().is_none_or(|n| n.as_bytes().starts_with(b"."));
                if !hidden && p.extension().is_some_and(|e| e == "toml") {
                    out.push(p);
                }
            }
        } else if path.symlink_metadata().is_ok() {
            out.push(path.clone());
        } else {
            return Err(file_error(path, "no such file or directory".into()));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn file_error(path: &Path, message: String) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        message,
        hint: None,
    }
}

/// Loads and validates the profiles under `paths`.
pub fn load(paths: &[PathBuf], options: Options) -> Loaded {
    let files = match files(paths) {
        Ok(files) => files,
        Err(d) => {
            return Loaded {
                tunnels: None,
                diagnostics: vec![d],
            }
        }
    };
    let mut sources = Vec::with_capacity(files.len());
    let mut diagnostics = Vec::new();
    for path in files {
        match read_source(path) {
            Ok(source) => sources.push(source),
            Err(d) => diagnostics.push(d),
        }
    }
    load_sources(sources, options, diagnostics)
}

/// One profile's text; a file that is no readable UTF-8 text is an error, never skipped.
fn read_source(path: PathBuf) -> Result<SourceFile, Diagnostic> {
    let bytes = file::read(&path).map_err(|e| file_error(&path, format!("cannot read: {e}")))?;
    String::from_utf8(bytes)
        .map(|text| SourceFile::new(path.clone(), text))
        .map_err(|e| {
            let valid = e.utf8_error().valid_up_to();
            let mut bytes = e.into_bytes();
            bytes.truncate(valid);
            let before = SourceFile::new(&path, String::from_utf8(bytes).unwrap_or_default());
            before.diagnostic(
                Severity::Error,
                valid..valid,
                "invalid UTF-8: profiles are UTF-8 text",
                Some("save the file as UTF-8".into()),
            )
        })
}

/// Validates profiles already in memory (the loader and the tests share this).
pub fn load_sources(
    sources: Vec<SourceFile>,
    options: Options,
    mut diagnostics: Vec<Diagnostic>,
) -> Loaded {
    let mut parsed = Vec::with_capacity(sources.len());
    for source in &sources {
        let (tunnel, found) = tunnel::parse_source(source);
        diagnostics.extend(found);
        if let Some(mut p) = tunnel {
            diagnostics.extend(credentials::check(source, &mut p, options.insecure_secrets));
            parsed.push((source, p));
        }
    }
    let all_parsed = parsed.len() == sources.len();
    let entries: Vec<cross::Entry<'_>> = parsed
        .iter()
        .map(|(source, parsed)| cross::Entry { source, parsed })
        .collect();
    diagnostics.extend(cross::check(&entries));
    let ok = all_parsed && !diagnostics.iter().any(Diagnostic::is_error);
    Loaded {
        tunnels: ok.then(|| parsed.into_iter().map(|(_, p)| p.tunnel).collect()),
        diagnostics,
    }
}

/// Parses one IKE identity in swanctl.conf's syntax (`@vpn.example.com`, a DN, `keyid:#…`).
pub fn parse_identity(text: &str) -> Result<crate::model::Identity, String> {
    values::identity(text).map_err(|e| e.message)
}

/// Whether `text` is a usable Linux interface name.
pub fn check_interface_name(text: &str) -> Result<(), String> {
    values::interface_name(text).map_err(|e| e.message)
}

/// Whether `text` is a usable tunnel or child name.
pub fn check_object_name(text: &str) -> Result<(), String> {
    values::object_name(text).map_err(|e| e.message)
}

/// Parses one traffic selector in strongSwan's syntax (`10.0.0.0/24`, `dynamic[gre]`).
pub fn parse_traffic_selector(text: &str) -> Result<crate::model::TrafficSelector, String> {
    values::traffic_selector(text).map_err(|e| e.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `line:column: message` of every error in one in-memory profile.
    fn errors(text: &str) -> Vec<String> {
        let source = SourceFile::new("/nonexistent/t.toml", text.to_string());
        let loaded = load_sources(vec![source], Options::default(), Vec::new());
        loaded.errors().map(Diagnostic::located_message).collect()
    }

    const HEAD: &str = "kind = \"vti\"\nremote = \"198.51.100.7\"\n";

    #[test]
    fn an_empty_child_array_is_reported() {
        let e = errors(&format!("{HEAD}child = []\n[ike]\npsk_file = \"k\"\n"));
        assert_eq!(e, ["3:1: `child` in the profile is empty"]);
    }

    #[test]
    fn an_ike_of_the_wrong_type_is_not_also_missing() {
        let e = errors(&format!("{HEAD}ike = \"psk\"\n"));
        assert_eq!(
            e,
            ["3:7: `ike` in the profile must be a table, found a string"]
        );
    }

    #[test]
    fn a_long_dpd_delay_is_checked_against_the_default_timeout() {
        let e = errors(&format!(
            "{HEAD}[ike]\npsk_file = \"k\"\ndpd = {{ delay = \"5m\" }}\n"
        ));
        assert_eq!(
            e,
            ["5:17: DPD delay 300s is not shorter than the default timeout 150s"]
        );
        let e = errors(&format!(
            "{HEAD}[ike]\npsk_file = \"k\"\ndpd = {{ delay = \"5\", timeout = \"20s\" }}\n"
        ));
        assert_eq!(e, ["5:17: duration \"5\" has no unit"]);
    }

    #[test]
    fn proposal_keywords_are_located_in_every_string_form() {
        let e = errors(&format!(
            "{HEAD}[ike]\npsk_file = \"k\"\nproposals = [\"\"\"aes256-md5-modp2048\"\"\", 'aes256-sha256-modp768']\n"
        ));
        assert_eq!(e.len(), 2);
        assert!(
            e[0].starts_with("5:24: IKE proposal \"aes256-md5-modp2048\": weak algorithm `md5`")
        );
        assert!(e[1].starts_with("5:56: IKE proposal \"aes256-sha256-modp768\": weak algorithm"));
    }

    #[test]
    fn every_bad_interface_address_is_reported() {
        let e = errors(&format!(
            "{HEAD}[ike]\npsk_file = \"k\"\n[interface]\naddresses = [\"10.0.0.1\", \"10.0.0.1/30 via 10.0.0.2\"]\n"
        ));
        assert_eq!(
            e,
            [
                "6:14: interface address \"10.0.0.1\" has no prefix length",
                "6:26: invalid interface address \"10.0.0.1/30 via 10.0.0.2\"",
            ]
        );
    }

    #[test]
    fn withdrawing_routes_does_not_fit_a_trap_or_manual_keys() {
        let withdraw = format!("{HEAD}on_sa_loss = \"withdraw\"\n");
        assert!(errors(&format!("{withdraw}[ike]\npsk_file = \"k\"\n")).is_empty());
        let trap = errors(&format!(
            "{withdraw}[ike]\npsk_file = \"k\"\nstart_action = \"trap\"\n"
        ));
        assert_eq!(
            trap,
            ["3:14: on_sa_loss = \"withdraw\" does not fit this tunnel: a trap waits for traffic that the withdrawn routes no longer send into the tunnel"]
        );
        let dpd_trap =
            format!("{withdraw}[ike]\npsk_file = \"k\"\ndpd = {{ action = \"trap\" }}\n");
        assert_eq!(errors(&dpd_trap).len(), 1);
        let manual = errors(&format!(
            "{withdraw}[ike]\nkeying = \"manual\"\nmanual_keys_file = \"k.keys\"\n"
        ));
        assert!(
            manual[0].contains("manually keyed SAs are never lost"),
            "{manual:?}"
        );
        let unknown = errors(&format!(
            "{HEAD}on_sa_loss = \"drop\"\n[ike]\npsk_file = \"k\"\n"
        ));
        assert!(
            unknown[0].starts_with("3:14: invalid on_sa_loss \"drop\""),
            "{unknown:?}"
        );
    }

    const GOOD: &str = "kind = \"vti\"\nremote = \"198.51.100.7\"\n[ike]\npsk_file = \"k\"\n";

    /// `file: message` of every error loading `dir`, which must then give no tunnels.
    fn load_errors(dir: &Path) -> Vec<String> {
        let loaded = load(&[dir.to_path_buf()], Options::default());
        assert!(loaded.tunnels.is_none(), "{:?}", loaded.diagnostics);
        let name = |d: &Diagnostic| d.file.file_name().unwrap().to_string_lossy().into_owned();
        loaded
            .errors()
            .map(|d| format!("{}: {}", name(d), d.located_message()))
            .collect()
    }

    #[test]
    fn a_profile_that_cannot_be_read_stops_the_load() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name);
        std::fs::write(at("good.toml"), GOOD).unwrap();
        std::fs::write(at(".hidden.toml"), "not a profile").unwrap();
        std::fs::write(at("notes.txt"), "not a profile").unwrap();
        std::os::unix::fs::symlink(at("gone.toml"), at("dangling.toml")).unwrap();
        std::fs::create_dir(at("dir.toml")).unwrap();
        file::mkfifo(&at("fifo.toml"));
        assert_eq!(
            load_errors(dir.path()),
            [
                "dangling.toml: 0:0: cannot read: dangling symlink",
                "dir.toml: 0:0: cannot read: is a directory, not a regular file",
                "fifo.toml: 0:0: cannot read: is a FIFO, not a regular file",
            ]
        );
    }

    #[test]
    fn invalid_utf8_is_located_at_its_first_bad_byte() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = GOOD.as_bytes().to_vec();
        text.extend_from_slice(b"# caf\xc3\xa9 \xff\xfe\n");
        std::fs::write(dir.path().join("t.toml"), text).unwrap();
        assert_eq!(
            load_errors(dir.path()),
            ["t.toml: 5:8: invalid UTF-8: profiles are UTF-8 text"]
        );
    }

    #[test]
    fn errors_beyond_the_cap_are_counted_not_shown() {
        let junk: String = (0..reader::MAX_SHOWN_PER_FILE + 7)
            .map(|i| format!("junk_{i} = 1\n"))
            .collect();
        let e = errors(&format!("{junk}{GOOD}"));
        assert_eq!(e.len(), reader::MAX_SHOWN_PER_FILE + 1);
        let shown = &e[..reader::MAX_SHOWN_PER_FILE];
        assert!(
            shown.iter().all(|l| l.contains(": unknown key `junk_")),
            "{e:#?}"
        );
        assert_eq!(e[50], "0:0: 7 more errors not shown");
    }

    #[test]
    fn an_invalid_gre_address_does_not_count_as_missing() {
        let text = "kind = \"gre\"\nremote = \"198.51.100.7\"\n[ike]\npsk_file = \"k\"\n\
[gre]\nlocal = \"10.0.0.300\"\nremote = \"10.0.1.1\"\n";
        assert_eq!(errors(text), ["6:9: invalid IP address \"10.0.0.300\""]);
    }
}
