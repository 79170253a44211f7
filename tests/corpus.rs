//! The profile corpus: bad profiles that state the exact diagnostics they must produce, good
//! profiles that must load cleanly, and the CLI run end to end on both.
//!
//! A bad case is one file `tests/corpus/bad/<case>.toml`, or a directory
//! `tests/corpus/bad/<case>/` whose files are loaded together (cross-file checks). Each file
//! opens with comment lines:
//!
//! ```text
//! # expect: LINE:COLUMN: MESSAGE          an ERROR, in the order the loader emits them
//! # hint: TEXT                            the hint of the preceding expect (optional)
//! # expect-warning: LINE:COLUMN: MESSAGE  if present, the file's warnings are checked too
//! # setup: secret NAME MODE [uid=N]       create NAME (holding a key) with MODE, owned by N
//! # setup: empty NAME                     create NAME empty (mode 0600)
//! # setup: dir NAME                       create the directory NAME
//! ```
//!
//! In a directory case the expectations go in the file that receives each diagnostic (for
//! cross-file checks, the later file in name order). `{dir}` in an expectation or a hint stands
//! for the directory the case's files are loaded from. A case with setup lines is copied to a
//! temporary directory first (git keeps no modes or owners); cases with `setup: secret` need
//! root-owned files (the owner is checked before the mode) and are skipped, with a note, when
//! the test does not run as root.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use routevpn::profile::{self, Diagnostic, Loaded, Options, Severity};

/// What the setup writes into secret files: it must never appear in a diagnostic.
const SECRET_TEXT: &str = "corpus-psk-Zq81wVx3";

/// Whether a key holds a secret that someone wrote into a profile by mistake.
fn is_secret_key(key: &str) -> bool {
    let key = key.trim().to_ascii_lowercase().replace('-', "_");
    key == "psk"
        || [
            "secret",
            "password",
            "passphrase",
            "pre_shared",
            "preshared",
        ]
        .iter()
        .any(|s| key.contains(s))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn corpus(kind: &str) -> PathBuf {
    root().join("tests/corpus").join(kind)
}

#[derive(Debug, Default)]
struct Expected {
    located: String,
    hint: Option<String>,
}

#[derive(Debug)]
enum Setup {
    Secret {
        name: String,
        mode: u32,
        uid: Option<u32>,
    },
    Empty(String),
    Dir(String),
}

/// The directives of one file.
#[derive(Debug, Default)]
struct FileSpec {
    errors: Vec<Expected>,
    warnings: Option<Vec<Expected>>,
    setup: Vec<Setup>,
    secrets: Vec<String>,
}

#[derive(Debug)]
struct Case {
    name: String,
    /// The file, or the directory, as it lies in the corpus.
    path: PathBuf,
    /// File names (not paths) in load order, with their directives.
    files: BTreeMap<String, FileSpec>,
}

impl Case {
    fn is_dir(&self) -> bool {
        self.path.is_dir()
    }

    fn setup(&self) -> impl Iterator<Item = &Setup> {
        self.files.values().flat_map(|f| f.setup.iter())
    }
}

/// Reads the directives of one corpus file; `Err` when the corpus itself is wrong.
fn parse_spec(path: &Path) -> Result<FileSpec, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut spec = FileSpec::default();
    let mut in_header = true;
    // Whether the last expectation was a warning (`None`: no expectation yet).
    let mut last_warning: Option<bool> = None;
    for (n, line) in text.lines().enumerate() {
        let at = |msg: &str| format!("{}:{}: {msg}", path.display(), n + 1);
        let trimmed = line.trim();
        if let Some((key, value)) = trimmed
            .split_once('=')
            .filter(|_| !trimmed.starts_with('#'))
        {
            if is_secret_key(key) {
                let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
                if value.len() >= 4 {
                    spec.secrets.push(value.to_string());
                }
            }
        }
        if !(trimmed.is_empty() || trimmed.starts_with('#')) {
            in_header = false;
        }
        let Some(comment) = trimmed.strip_prefix('#') else {
            continue;
        };
        let comment = comment.trim_start();
        let directive = ["expect", "hint", "setup"]
            .iter()
            .any(|d| comment.starts_with(d));
        if !directive {
            continue;
        }
        if !in_header {
            return Err(at("directive after the leading comment block"));
        }
        if let Some(rest) = comment.strip_prefix("expect: ") {
            last_warning = Some(false);
            spec.errors.push(Expected {
                located: rest.to_string(),
                hint: None,
            });
        } else if let Some(rest) = comment.strip_prefix("expect-warning: ") {
            last_warning = Some(true);
            spec.warnings.get_or_insert_with(Vec::new).push(Expected {
                located: rest.to_string(),
                hint: None,
            });
        } else if let Some(rest) = comment.strip_prefix("hint: ") {
            // The hint belongs to the expectation on the line above it.
            let last = match last_warning {
                Some(true) => spec.warnings.as_mut().and_then(|w| w.last_mut()),
                Some(false) => spec.errors.last_mut(),
                None => None,
            };
            match last {
                Some(e) if e.hint.is_none() => e.hint = Some(rest.to_string()),
                _ => return Err(at("`# hint:` must follow an `# expect:` line")),
            }
        } else if let Some(rest) = comment.strip_prefix("setup: ") {
            spec.setup.push(parse_setup(rest).map_err(|e| at(&e))?);
        } else {
            return Err(at(&format!("malformed directive `{trimmed}`")));
        }
    }
    Ok(spec)
}

fn parse_setup(text: &str) -> Result<Setup, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        ["secret", name, mode, rest @ ..] => {
            let mode = u32::from_str_radix(mode, 8).map_err(|_| format!("bad mode {mode}"))?;
            let uid = match rest {
                [] => None,
                [uid] => Some(
                    uid.strip_prefix("uid=")
                        .and_then(|u| u.parse().ok())
                        .ok_or(format!("bad uid {uid}"))?,
                ),
                _ => return Err(format!("bad setup `{text}`")),
            };
            Ok(Setup::Secret {
                name: name.to_string(),
                mode,
                uid,
            })
        }
        ["empty", name] => Ok(Setup::Empty(name.to_string())),
        ["dir", name] => Ok(Setup::Dir(name.to_string())),
        _ => Err(format!("bad setup `{text}`")),
    }
}

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// Every bad case, or the problems of the corpus itself.
fn bad_cases() -> Result<Vec<Case>, Vec<String>> {
    let dir = corpus("bad");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/corpus/bad")
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    let mut cases = Vec::new();
    let mut problems = Vec::new();
    for path in entries {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let files = if path.is_dir() {
            toml_files(&path)
        } else if path.extension().is_some_and(|e| e == "toml") {
            vec![path.clone()]
        } else {
            problems.push(format!(
                "{}: not a .toml file or a case directory",
                path.display()
            ));
            continue;
        };
        if path.is_dir() && files.len() < 2 {
            problems.push(format!(
                "{}: a directory case needs 2+ files",
                path.display()
            ));
        }
        let mut specs = BTreeMap::new();
        for file in &files {
            match parse_spec(file) {
                Ok(spec) => {
                    specs.insert(file_name(file), spec);
                }
                Err(e) => problems.push(e),
            }
        }
        if !specs.values().any(|s| !s.errors.is_empty()) {
            problems.push(format!(
                "{}: no `# expect:` line, so the case could pass silently",
                path.display()
            ));
        }
        cases.push(Case {
            name,
            path,
            files: specs,
        });
    }
    if problems.is_empty() {
        Ok(cases)
    } else {
        Err(problems)
    }
}

/// Whether files this test creates are owned by root, as the secret-mode cases need.
fn creates_root_owned_files() -> bool {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::os::unix::fs::MetadataExt::uid(&file.as_file().metadata().unwrap()) == 0
}

/// Copies a case with setup lines into `tmp` and creates its secret files there.
fn materialize(case: &Case, tmp: &Path) -> PathBuf {
    let files: Vec<PathBuf> = if case.is_dir() {
        toml_files(&case.path)
    } else {
        vec![case.path.clone()]
    };
    for file in &files {
        std::fs::copy(file, tmp.join(file_name(file))).unwrap();
    }
    for setup in case.setup() {
        match setup {
            Setup::Secret { name, mode, uid } => {
                let path = tmp.join(name);
                std::fs::write(&path, format!("{SECRET_TEXT}\n")).unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).unwrap();
                if let Some(uid) = uid {
                    std::os::unix::fs::chown(&path, Some(*uid), None).unwrap();
                }
            }
            Setup::Empty(name) => {
                let path = tmp.join(name);
                std::fs::write(&path, "").unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            }
            Setup::Dir(name) => std::fs::create_dir(tmp.join(name)).unwrap(),
        }
    }
    if case.is_dir() {
        tmp.to_path_buf()
    } else {
        tmp.join(file_name(&case.path))
    }
}

/// A line diff (longest common subsequence): `  ` in both, `- ` expected only, `+ ` actual only.
fn diff(out: &mut String, expected: &[String], actual: &[String]) {
    let (n, m) = (expected.len(), actual.len());
    let mut common = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            common[i][j] = if expected[i] == actual[j] {
                common[i + 1][j + 1] + 1
            } else {
                common[i + 1][j].max(common[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && expected[i] == actual[j] {
            writeln!(out, "      {}", expected[i]).unwrap();
            (i, j) = (i + 1, j + 1);
        } else if i < n && (j == m || common[i + 1][j] >= common[i][j + 1]) {
            writeln!(out, "    - {}", expected[i]).unwrap();
            i += 1;
        } else {
            writeln!(out, "    + {}", actual[j]).unwrap();
            j += 1;
        }
    }
}

fn check_list(
    out: &mut String,
    what: &str,
    file: &str,
    expected: &[Expected],
    actual: &[&Diagnostic],
    dir: &str,
) {
    let expected_lines: Vec<String> = expected
        .iter()
        .map(|e| e.located.replace("{dir}", dir))
        .collect();
    let actual_lines: Vec<String> = actual.iter().map(|d| d.located_message()).collect();
    if expected_lines != actual_lines {
        writeln!(out, "  {file}: {what} differ (- expected, + actual):").unwrap();
        diff(out, &expected_lines, &actual_lines);
        // What the file would state to match (after review!), `{dir}` left expanded.
        let directive = if what == "errors" {
            "expect"
        } else {
            "expect-warning"
        };
        writeln!(out, "  {file}: actual {what} as directives:").unwrap();
        for d in actual {
            writeln!(out, "    # {directive}: {}", d.located_message()).unwrap();
            if let Some(hint) = &d.hint {
                writeln!(out, "    # hint: {hint}").unwrap();
            }
        }
        return;
    }
    for (e, d) in expected.iter().zip(actual) {
        if let Some(hint) = &e.hint {
            let hint = hint.replace("{dir}", dir);
            if d.hint.as_deref() != Some(hint.as_str()) {
                writeln!(
                    out,
                    "  {file}: hint of `{}`\n    - {hint}\n    + {}",
                    d.located_message(),
                    d.hint.as_deref().unwrap_or("(none)")
                )
                .unwrap();
            }
        }
    }
}

/// Problems of one case, empty when it behaves as stated.
fn run_case(case: &Case) -> String {
    let mut out = String::new();
    let tmp;
    let (target, load_dir) = if case.setup().next().is_some() {
        // Owner and mode are checked after emptiness: an owner other than root comes first.
        let needs_root = case.setup().any(|s| matches!(s, Setup::Secret { .. }));
        if needs_root && !creates_root_owned_files() {
            eprintln!("skipping {}: its secret-file checks need root", case.name);
            return out;
        }
        tmp = tempfile::tempdir().unwrap();
        let target = materialize(case, tmp.path());
        (target, tmp.path().to_path_buf())
    } else {
        let dir = if case.is_dir() {
            case.path.clone()
        } else {
            case.path.parent().unwrap().to_path_buf()
        };
        (case.path.clone(), dir)
    };
    let dir = load_dir.display().to_string();
    let loaded: Loaded = profile::load(std::slice::from_ref(&target), Options::default());

    if loaded.tunnels.is_some() {
        writeln!(out, "  loaded tunnels despite expected errors").unwrap();
    }
    for d in &loaded.diagnostics {
        let known = d.file.parent() == Some(load_dir.as_path())
            && case.files.contains_key(&file_name(&d.file));
        if !known {
            writeln!(out, "  diagnostic for a file outside the case: {d}").unwrap();
        }
    }
    for (name, spec) in &case.files {
        let of_file = |severity: Severity| -> Vec<&Diagnostic> {
            loaded
                .diagnostics
                .iter()
                .filter(|d| d.severity == severity && file_name(&d.file) == *name)
                .collect()
        };
        check_list(
            &mut out,
            "errors",
            name,
            &spec.errors,
            &of_file(Severity::Error),
            &dir,
        );
        if let Some(warnings) = &spec.warnings {
            check_list(
                &mut out,
                "warnings",
                name,
                warnings,
                &of_file(Severity::Warning),
                &dir,
            );
        }
    }

    let mut secrets: Vec<String> = case
        .files
        .values()
        .flat_map(|s| s.secrets.iter().cloned())
        .collect();
    secrets.push(SECRET_TEXT.to_string());
    for d in &loaded.diagnostics {
        let shown = d.to_string();
        for secret in &secrets {
            if shown.contains(secret.as_str()) {
                writeln!(out, "  a secret reached a diagnostic: {shown}").unwrap();
            }
        }
        if d.message.starts_with("TOML syntax") {
            let text = std::fs::read_to_string(&d.file).unwrap();
            let line = text
                .lines()
                .nth(d.line.saturating_sub(1))
                .unwrap_or("")
                .trim();
            if !line.is_empty() && shown.contains(line) {
                writeln!(out, "  a syntax error echoes its source line: {shown}").unwrap();
            }
        }
    }
    out
}

#[test]
fn bad_profiles_produce_exactly_the_stated_diagnostics() {
    let cases = bad_cases()
        .unwrap_or_else(|problems| panic!("the corpus itself is wrong:\n{}", problems.join("\n")));
    assert!(
        cases.len() >= 45,
        "the corpus should hold at least 45 bad cases, found {}",
        cases.len()
    );
    let mut report = String::new();
    for case in &cases {
        let problems = run_case(case);
        if !problems.is_empty() {
            let shown = case.path.strip_prefix(root()).unwrap_or(&case.path);
            writeln!(
                report,
                "case {} ({}):\n{problems}",
                case.name,
                shown.display()
            )
            .unwrap();
        }
    }
    assert!(report.is_empty(), "\n{report}");
}

fn assert_clean(loaded: &Loaded, what: &str) {
    let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "{what}:\n{}", errors.join("\n"));
    assert!(loaded.tunnels.is_some(), "{what}: no tunnels");
}

#[test]
fn good_profiles_load_without_errors() {
    let files = toml_files(&corpus("good"));
    assert!(files.len() >= 6, "too few good cases: {}", files.len());
    for file in &files {
        let spec = parse_spec(file).unwrap();
        assert!(
            spec.errors.is_empty(),
            "{}: a good case expects no error",
            file.display()
        );
        let loaded = profile::load(std::slice::from_ref(file), Options::default());
        assert_clean(&loaded, &file.display().to_string());
    }
    // Together too: the good cases do not clash with each other.
    let loaded = profile::load(&[corpus("good")], Options::default());
    assert_clean(&loaded, "tests/corpus/good as one directory");
    assert_eq!(loaded.tunnels.unwrap().len(), files.len());
}

#[test]
fn example_profiles_load_without_errors() {
    let dir = root().join("profiles");
    let loaded = profile::load(std::slice::from_ref(&dir), Options::default());
    assert_clean(&loaded, "profiles/");
    assert_eq!(loaded.tunnels.unwrap().len(), toml_files(&dir).len());
}

fn routevpn(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_routevpn"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run routevpn")
}

#[test]
fn cli_check_fails_on_a_bad_profile_with_located_errors() {
    let path = "tests/corpus/bad/ike-weak-3des.toml";
    let spec = parse_spec(&root().join(path)).unwrap();
    let out = routevpn(&["check", path]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    let (location, message) = spec.errors[0].located.split_once(": ").unwrap();
    let expected = format!("{path}:{location}: error: {message}");
    assert!(
        stderr.lines().any(|l| l == expected),
        "no `{expected}` in:\n{stderr}"
    );

    // A directory whose files clash with each other, and a path that does not exist.
    let out = routevpn(&["check", "tests/corpus/bad/dup-mark"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("tests/corpus/bad/dup-mark/munich.toml:6:8: error: mark 0x2a"),
        "{stderr}"
    );
    let out = routevpn(&["check", "tests/corpus/no-such-profile.toml"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn cli_check_and_plan_succeed_on_the_examples() {
    let out = routevpn(&["check", "profiles"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = routevpn(&["check", "tests/corpus/good"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = routevpn(&["plan", "--config-dir", "profiles"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(!out.stdout.is_empty());

    let out = routevpn(&["plan", "--config-dir", "profiles", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("plan --json");
    let mut names: Vec<&str> = plan["tunnels"]
        .as_array()
        .expect("a tunnels array")
        .iter()
        .map(|t| t["name"].as_str().expect("a tunnel name"))
        .collect();
    names.sort_unstable();
    // One entry per example tunnel, under the names the loader gives them.
    let loaded = profile::load(&[root().join("profiles")], Options::default());
    let mut expected: Vec<String> = loaded
        .tunnels
        .expect("the examples load")
        .into_iter()
        .map(|t| t.name)
        .collect();
    expected.sort();
    assert_eq!(expected.len(), toml_files(&root().join("profiles")).len());
    assert_eq!(names, expected);
}

#[test]
fn cli_plan_fails_on_a_bad_directory() {
    let out = routevpn(&["plan", "--config-dir", "tests/corpus/bad/dup-tunnel-name"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains(": error: "), "{stderr}");
}

/// `routevpn check PATH`, killed (and the test failed) if it has not ended within a minute.
fn check_ends(path: &Path) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_routevpn"))
        .arg("check")
        .arg(path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run routevpn");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("routevpn check {} did not end", path.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn cli_check_refuses_a_fifo_and_a_device_without_reading_them() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.toml");
    let c_path = std::ffi::CString::new(fifo.clone().into_os_string().into_encoded_bytes());
    assert_eq!(unsafe { libc::mkfifo(c_path.unwrap().as_ptr(), 0o600) }, 0);
    for (path, why) in [
        (fifo.as_path(), "is a FIFO, not a regular file"),
        (
            Path::new("/dev/zero"),
            "is a character device, not a regular file",
        ),
    ] {
        let out = check_ends(path);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        let expected = format!("{}: error: cannot read: {why}", path.display());
        assert!(stderr.lines().any(|l| l == expected), "{stderr}");
    }
}

#[test]
fn cli_check_prints_control_characters_escaped() {
    let path = "tests/corpus/bad/name-control-forges-a-line.toml";
    let out = routevpn(&["check", path]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr
            .lines()
            .all(|l| !l.starts_with("/etc/routevpn/tunnels/a.toml")),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"invalid name "x\n/etc/routevpn"#),
        "{stderr}"
    );
    let out = routevpn(&["check", "tests/corpus/bad/identity-control.toml"]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
}

#[test]
fn cli_plan_refuses_a_directory_with_a_profile_it_cannot_read() {
    // Skipping the dangling profile would plan (and apply) without its tunnel.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("tests/corpus/good/default-keyword.toml"),
        dir.path().join("default-keyword.toml"),
    )
    .unwrap();
    let gone = dir.path().join("partner.toml");
    std::os::unix::fs::symlink(dir.path().join("moved-away.toml"), &gone).unwrap();
    let config_dir = dir.path().to_str().unwrap();
    let out = routevpn(&["plan", "--config-dir", config_dir]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    let expected = format!("{}: error: cannot read: dangling symlink", gone.display());
    assert!(stderr.lines().any(|l| l == expected), "{stderr}");
    assert!(out.stdout.is_empty(), "{:?}", out.stdout);
}
