//! swanctl.conf import and export: the corpus in tests/swanctl/ (see its README), the round
//! trip of every example profile through export and import, the CLI, and charon itself
//! loading an exported file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use routevpn::model::Tunnel;
use routevpn::profile::{self, Diagnostic, Options};
use routevpn::swanctl::{self, export, import, install};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(root().join("tests/swanctl"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    cases
}

/// Every file below `dir`, by relative path, `{case}` standing for `case`.
fn tree(dir: &Path, case: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, base: &Path, case: &str, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, base, case, out);
            } else {
                let rel = path.strip_prefix(base).unwrap().display().to_string();
                let text = std::fs::read_to_string(&path).unwrap();
                out.insert(rel, text.replace(case, "{case}"));
            }
        }
    }
    let mut out = BTreeMap::new();
    if dir.exists() {
        walk(dir, dir, &case.display().to_string(), &mut out);
    }
    out
}

fn shown(diagnostics: &[Diagnostic], case: &Path) -> String {
    let prefix = format!("{}/", case.display());
    diagnostics
        .iter()
        .map(|d| format!("{}\n", d.to_string().replace(&prefix, "")))
        .collect()
}

/// Compares `actual` with the golden file `path`, or rewrites it under UPDATE_GOLDEN.
fn golden(path: &Path, actual: &str, failures: &mut Vec<String>) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        if actual.is_empty() {
            let _ = std::fs::remove_file(path);
        } else {
            std::fs::write(path, actual).unwrap();
        }
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    if expected != actual {
        failures.push(format!(
            "{}:\n--- expected\n{expected}--- actual\n{actual}",
            path.display()
        ));
    }
}

fn insecure() -> Options {
    Options {
        insecure_secrets: true,
    }
}

/// Imports a corpus case into a new directory: it and the warnings, or every diagnostic.
#[allow(clippy::type_complexity)]
fn import_case(
    case: &Path,
) -> Result<(tempfile::TempDir, Vec<Diagnostic>), (Vec<Diagnostic>, Vec<Diagnostic>)> {
    let lenient = case.join("lenient").exists();
    let parsed = swanctl::parse_file(&case.join("swanctl.conf")).map_err(|d| (vec![d], vec![]))?;
    let imported = import::import(&parsed, case, import::Options { lenient });
    let (errors, warnings): (Vec<_>, Vec<_>) = imported
        .diagnostics
        .into_iter()
        .partition(Diagnostic::is_error);
    if !errors.is_empty() {
        return Err((errors, warnings));
    }
    let out = tempfile::tempdir().unwrap();
    let options = install::Options {
        out: out.path().to_path_buf(),
        force: false,
        dry_run: false,
        profile: insecure(),
    };
    match install::install(&imported.profiles, &options) {
        Ok(_) => Ok((out, warnings)),
        Err(e) => Err((e, warnings)),
    }
}

#[test]
fn corpus_cases_import_to_their_golden_profiles_or_errors() {
    let mut failures = Vec::new();
    for case in cases() {
        let (errors, warnings, written) = match import_case(&case) {
            Ok((out, warnings)) => (Vec::new(), warnings, tree(out.path(), &case)),
            Err((errors, warnings)) => (errors, warnings, BTreeMap::new()),
        };
        golden(
            &case.join("expected-errors"),
            &shown(&errors, &case),
            &mut failures,
        );
        golden(
            &case.join("expected-warnings"),
            &shown(&warnings, &case),
            &mut failures,
        );
        let expected_dir = case.join("expected");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            let _ = std::fs::remove_dir_all(&expected_dir);
            for (rel, text) in &written {
                let path = expected_dir.join(rel);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, text).unwrap();
            }
        } else if tree(&expected_dir, &case) != written {
            failures.push(format!(
                "{}: written files differ from expected/: {written:#?}",
                case.display()
            ));
        }
        // A case is either imported or refused: never both, never neither.
        assert!(
            errors.is_empty() != written.is_empty(),
            "{}: errors {errors:?} and {} files",
            case.display(),
            written.len()
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The example profiles with their key files present (the examples name /etc paths).
fn examples_with_keys(dir: &Path) -> Vec<Tunnel> {
    let keys = dir.join("keys");
    std::fs::create_dir(&keys).unwrap();
    let loaded = profile::load(&[root().join("profiles")], insecure());
    let mut tunnels = loaded.tunnels.expect("the examples load");
    for t in &mut tunnels {
        let routevpn::model::Auth::Ike(auth) = &mut t.ike.auth else {
            continue;
        };
        if let routevpn::model::LocalCredential::Psk { file } = &mut auth.local {
            let name = file.file_name().unwrap().to_owned();
            *file = keys.join(name);
            std::fs::write(&file, format!("key of {}\n", t.name)).unwrap();
        }
        if let routevpn::model::RemoteCredential::Psk { file } = &mut auth.remote {
            *file = keys.join(file.file_name().unwrap());
        }
    }
    // The examples let routevpn allocate marks and if_ids: two with fixed ones as well.
    let fixed = |kind, name: &str| {
        let mut t = tunnels.iter().find(|t| t.kind == kind).unwrap().clone();
        t.name = name.into();
        t.remote = match t.remote {
            std::net::IpAddr::V4(_) => "198.51.100.99".parse().unwrap(),
            std::net::IpAddr::V6(_) => "2001:db8:100::99".parse().unwrap(),
        };
        t.mark = (kind == routevpn::model::TunnelKind::Vti).then_some(42);
        t.if_id = (kind == routevpn::model::TunnelKind::Xfrm).then_some(0x1234);
        t
    };
    let extra = [
        fixed(routevpn::model::TunnelKind::Vti, "vti-mark-42"),
        fixed(routevpn::model::TunnelKind::Xfrm, "xfrm-if-id-4660"),
    ];
    tunnels.extend(extra);
    tunnels.sort_by(|a, b| a.name.cmp(&b.name));
    tunnels
}

/// What the two sides negotiate and how SAs are bound to the device: the fields export
/// carries and import must give back. A GRE tunnel's policies carry neither mark nor
/// if_id, as charon's policy-based children: one with tunnel-mode children comes back as
/// an XFRM interface negotiating the same SAs.
fn negotiation(t: &Tunnel) -> String {
    let mut ike = t.ike.clone();
    ike.auth = routevpn::model::Auth::Manual {
        keys_file: PathBuf::new(),
    };
    let binding = match t.kind {
        routevpn::model::TunnelKind::Vti => format!("mark {:?}", t.mark),
        routevpn::model::TunnelKind::Xfrm | routevpn::model::TunnelKind::Gre => {
            format!("if_id {:?}", t.if_id)
        }
    };
    let local_id = t.local_id.clone().or(match t.local {
        routevpn::model::LocalEndpoint::Address(a) => Some(routevpn::model::Identity::Address(a)),
        routevpn::model::LocalEndpoint::DefaultRoute => None,
    });
    format!(
        "{:?} {:?} {local_id:?} {:?} {ike:?} {:?} {binding}",
        t.local, t.remote, t.remote_id, t.children
    )
}

#[test]
fn every_example_profile_survives_export_and_import() {
    let dir = tempfile::tempdir().unwrap();
    let tunnels = examples_with_keys(dir.path());
    let (text, refused) = export::export(&tunnels, export::Options { with_secrets: true });
    // An inline RFC 3110 key has no swanctl.conf form; every other example exports.
    let refused: Vec<&str> = refused.iter().map(|r| r.tunnel.as_str()).collect();
    assert_eq!(refused, ["gre-behind-nat"]);
    let conf = dir.path().join("swanctl.conf");
    std::fs::write(&conf, &text).unwrap();
    let parsed = swanctl::parse_file(&conf).unwrap();
    let imported = import::import(&parsed, dir.path(), import::Options::default());
    assert!(!imported.has_errors(), "{:#?}", imported.diagnostics);
    let out = dir.path().join("out");
    let options = install::Options {
        out: out.clone(),
        force: false,
        dry_run: false,
        profile: insecure(),
    };
    install::install(&imported.profiles, &options).unwrap();
    let loaded = profile::load(&[out], insecure());
    let back = loaded.tunnels.expect("imported profiles load");
    let exported: Vec<&Tunnel> = tunnels
        .iter()
        .filter(|t| t.name != "gre-behind-nat")
        .collect();
    assert_eq!(back.len(), exported.len());
    for (before, after) in exported.iter().zip(&back) {
        assert_eq!(before.name, after.name);
        assert_eq!(negotiation(before), negotiation(after), "{}", before.name);
        // The same key, in the file the profile names.
        let key = |t: &Tunnel| match &t.ike.auth {
            routevpn::model::Auth::Ike(a) => std::fs::read(a.psk_file().unwrap()).unwrap(),
            _ => unreachable!(),
        };
        assert_eq!(
            String::from_utf8(key(after)).unwrap().trim_end(),
            String::from_utf8(key(before)).unwrap().trim_end()
        );
    }
}

fn routevpn(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_routevpn"))
        .args(args)
        .output()
        .expect("run routevpn")
}

#[test]
fn cli_import_writes_secrets_0600_never_overwrites_and_never_prints_keys() {
    use std::os::unix::fs::PermissionsExt;
    let out = tempfile::tempdir().unwrap();
    let conf = root().join("tests/swanctl/vti-mark/swanctl.conf");
    let (conf, out_dir) = (conf.to_str().unwrap(), out.path().to_str().unwrap());
    let args = ["--insecure-secrets", "import", conf, "--out", out_dir];

    let dry = routevpn(&[&args[..], &["--dry-run"]].concat());
    assert_eq!(dry.status.code(), Some(0), "{dry:?}");
    assert!(std::fs::read_dir(out.path()).unwrap().next().is_none());

    let first = routevpn(&args);
    assert_eq!(first.status.code(), Some(0), "{first:?}");
    let stdout = String::from_utf8(first.stdout).unwrap();
    assert!(
        stdout.contains("connection aws-tunnel1: wrote "),
        "{stdout}"
    );
    let secret = out.path().join("secrets/aws-tunnel1.psk");
    let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(std::fs::read(&secret).unwrap(), b"Tunnel1 \"shared\" key");

    let again = routevpn(&args);
    assert_eq!(again.status.code(), Some(1));
    let stderr = String::from_utf8(again.stderr).unwrap();
    assert!(
        stderr.contains("aws-tunnel1.toml: error: exists already (--force replaces it)"),
        "{stderr}"
    );
    let forced = routevpn(&[&args[..], &["--force"]].concat());
    assert_eq!(forced.status.code(), Some(0), "{forced:?}");

    // A profile already there is validated with the imported ones: the same VTI endpoints
    // are refused, naming both files, and nothing is written.
    let other = out.path().join("other.toml");
    std::fs::write(&other, "kind = \"vti\"\nlocal = \"198.51.100.4\"\nremote = \"203.0.113.17\"\n[ike]\npsk_file = \"k\"\n").unwrap();
    let clash = routevpn(&[&args[..], &["--force"]].concat());
    assert_eq!(clash.status.code(), Some(1), "{clash:?}");
    let stderr = String::from_utf8(clash.stderr).unwrap();
    let expected = format!("{out_dir}/other.toml:3:10: error: VTI tunnel \"other\" has the same outer endpoints as VTI tunnel \"aws-tunnel1\" ({out_dir}/aws-tunnel1.toml:");
    assert!(stderr.contains(&expected), "{stderr}");
    std::fs::remove_file(&other).unwrap();

    // `check` accepts what import wrote; export prints the key only when asked.
    let check = routevpn(&["--insecure-secrets", "check", out_dir]);
    assert_eq!(check.status.code(), Some(0), "{check:?}");
    let export = |extra: &[&str]| {
        let o = routevpn(
            &[
                &["--insecure-secrets", "--config-dir", out_dir, "export"],
                extra,
            ]
            .concat(),
        );
        assert_eq!(o.status.code(), Some(0), "{o:?}");
        String::from_utf8(o.stdout).unwrap() + &String::from_utf8(o.stderr).unwrap()
    };
    let plain = export(&[]);
    assert!(!plain.contains("Tunnel1"), "{plain}");
    assert!(
        plain.contains("# ike-aws-tunnel1: the pre-shared key is in "),
        "{plain}"
    );
    assert!(export(&["--with-secrets"]).contains(r#"secret = "Tunnel1 \"shared\" key""#));

    // The same connection from two files is refused, not half written.
    let twice = routevpn(&[&args[..], &[conf, "--force"]].concat());
    assert_eq!(twice.status.code(), Some(1), "{twice:?}");
    let stderr = String::from_utf8(twice.stderr).unwrap();
    let expected =
        format!("{out_dir}/aws-tunnel1.toml: error: connection `aws-tunnel1` is imported twice");
    assert!(stderr.contains(&expected), "{stderr}");

    // Every output of a failed import, too, is free of keys.
    let bad = routevpn(&[
        "import",
        "--out",
        out_dir,
        root()
            .join("tests/swanctl/err-unsupported/swanctl.conf")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(1));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&bad.stdout),
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(
        !all.contains("Ar3etTnp") && !all.contains("Sup3rSecr3t"),
        "{all}"
    );
    assert!(
        all.contains(":7:7: error: `psk`: not supported by routevpn"),
        "{all}"
    );
    assert!(all.contains("nothing written"), "{all}");
}

const CHARON: &str = "/usr/lib/ipsec/charon";

/// A charon in a network namespace of its own, with its own strongswan.conf, VICI socket
/// and (private tmpfs) /run; killed and its namespace deleted on drop.
struct Charon {
    netns: String,
    dir: PathBuf,
    process: std::process::Child,
}

impl Charon {
    fn start(dir: &Path) -> Charon {
        assert!(
            Path::new(CHARON).exists() && Path::new("/usr/sbin/swanctl").exists(),
            "charon and swanctl are needed: apt-get install strongswan-charon strongswan-swanctl \
             (integration/test installs them)"
        );
        let netns = format!("rv-swanctl-{}", std::process::id());
        let ip = |args: &[&str]| {
            let ok = Command::new("ip").args(args).status().unwrap().success();
            assert!(ok, "ip {args:?}");
        };
        ip(&["netns", "add", &netns]);
        ip(&["-n", &netns, "link", "set", "lo", "up"]);
        let conf = format!(
            "charon {{\n  load_modular = no\n  load = random nonce aes sha1 sha2 hmac kdf gcm gmp \
             openssl pem pkcs1 x509 pubkey kernel-netlink socket-default vici\n  \
             install_routes = no\n  plugins {{\n    vici {{ socket = unix://{d}/charon.vici }}\n  }}\n  \
             filelog {{\n    log {{\n      path = {d}/charon.log\n      flush_line = yes\n      \
             default = 1\n      cfg = 2\n    }}\n  }}\n}}\nswanctl {{\n  load = pem pkcs1 x509 \
             pubkey random nonce openssl\n}}\n",
            d = dir.display()
        );
        std::fs::write(dir.join("strongswan.conf"), conf).unwrap();
        // ip, unshare, sh and env all exec: the child is charon itself.
        let process = Command::new("ip")
            .args([
                "netns",
                "exec",
                &netns,
                "unshare",
                "-m",
                "--propagation",
                "private",
            ])
            .args([
                "sh",
                "-c",
                "mount -t tmpfs -o mode=0755 tmpfs /run && exec env STRONGSWAN_CONF=\"$1\" \"$2\"",
            ])
            .arg("charon")
            .arg(dir.join("strongswan.conf"))
            .arg(CHARON)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let charon = Charon {
            netns,
            dir: dir.to_path_buf(),
            process,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !charon.swanctl(&["--stats"]).status.success() {
            assert!(
                std::time::Instant::now() < deadline,
                "charon did not come up"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        charon
    }

    fn swanctl(&self, args: &[&str]) -> std::process::Output {
        let uri = format!("unix://{}/charon.vici", self.dir.display());
        Command::new("ip")
            .args(["netns", "exec", &self.netns, "swanctl"])
            .args(args)
            .args(["--uri", &uri])
            .env("STRONGSWAN_CONF", self.dir.join("strongswan.conf"))
            .output()
            .unwrap()
    }
}

impl Drop for Charon {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
    }
}

/// What charon logged (at cfg level 2) while loading connection `name`.
fn charon_parsed(log: &str, name: &str) -> String {
    let start = log
        .rfind(&format!(" conn {name}:\n"))
        .unwrap_or_else(|| panic!("charon logged no conn {name}"));
    let rest = &log[start..];
    let end = rest.find("configured proposals:").unwrap_or(rest.len());
    rest[..end].to_string()
}

/// Exports `tunnels` (all exportable) with their keys, loads the file into `charon` and
/// checks what charon parsed for each connection against the tunnel.
fn load_into_charon(charon: &Charon, tunnels: &[Tunnel], name: &str) {
    let (text, refused) = export::export(tunnels, export::Options { with_secrets: true });
    let conf = charon.dir.join(name);
    std::fs::write(&conf, &text).unwrap();
    let load = charon.swanctl(&["--load-all", "--file", conf.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&load.stdout);
    assert!(load.status.success(), "{load:?}\n{text}");
    let exported: Vec<&Tunnel> = (tunnels.iter())
        .filter(|t| !refused.iter().any(|r| r.tunnel == t.name))
        .collect();
    let loaded = format!("successfully loaded {} connections", exported.len());
    assert!(stdout.contains(&loaded), "{stdout}");
    let listed = String::from_utf8(charon.swanctl(&["--list-conns"]).stdout).unwrap();
    let log = std::fs::read_to_string(charon.dir.join("charon.log")).unwrap();
    for t in exported {
        assert!(listed.contains(&format!("{}: IKEv2", t.name)), "{listed}");
        let parsed = charon_parsed(&log, &t.name);
        for line in charon_expected(t) {
            assert!(
                parsed.contains(&line),
                "{}: no {line:?} in\n{parsed}",
                t.name
            );
        }
    }
}

/// Lines charon logs (cfg level 2) when it parsed `t`'s connection as routevpn has it.
fn charon_expected(t: &Tunnel) -> Vec<String> {
    let mut expected = vec![
        format!("  rekey_time = {}\n", t.ike.rekey_time.as_secs()),
        format!("  over_time = {}\n", t.ike.over_time.as_secs()),
        format!("  rand_time = {}\n", t.ike.rand_time.as_secs()),
        format!("  dpd_delay = {}\n", t.ike.dpd.delay.as_secs()),
        format!("  id = {}\n", t.remote_id),
    ];
    expected.extend(t.ike.proposals.iter().map(|p| format!("IKE:{p}")));
    for child in &t.children {
        for (key, list) in [
            ("local_ts", &child.local_ts),
            ("remote_ts", &child.remote_ts),
        ] {
            let shown: Vec<String> = list.iter().map(ToString::to_string).collect();
            if list.iter().all(|ts| ts.ports.is_none()) {
                expected.push(format!("  {key} = {}\n", shown.join(" ")));
            } else {
                // charon names well-known ports (`[tcp/https]`): compare up to the port.
                let cut = |s: &String| {
                    s.split_once('/').map_or(s.clone(), |(net, rest)| {
                        format!("{net}/{}", rest.split('/').next().unwrap_or_default())
                    })
                };
                expected.extend(shown.iter().map(cut));
            }
        }
        expected.push(format!("  life_time = {}\n", child.life_time.as_secs()));
        for p in &child.esp_proposals {
            // charon writes ESN choices as EXT_SEQ / NO_EXT_SEQ, in the order offered.
            let base = p.to_string().replace("/ESN", "");
            let esn: Vec<&str> = (p.esn.iter())
                .map(|&e| if e { "EXT_SEQ" } else { "NO_EXT_SEQ" })
                .collect();
            expected.push(format!("ESP:{base}/{}", esn.join("/")));
        }
    }
    const UNIQUE: u32 = u32::MAX;
    match t.kind {
        routevpn::model::TunnelKind::Vti => {
            let mark = t.mark.unwrap_or(UNIQUE);
            expected.push(format!("  mark_in = {mark}/{UNIQUE}\n"));
            expected.push(format!("  mark_out = {mark}/{UNIQUE}\n"));
        }
        routevpn::model::TunnelKind::Xfrm => {
            expected.push(format!("  if_id_in = {}\n", t.if_id.unwrap_or(UNIQUE)));
        }
        routevpn::model::TunnelKind::Gre => {}
    }
    expected
}

#[test]
fn charon_accepts_every_exported_connection_as_routevpn_negotiates_it() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("note: charon_accepts_every_exported_connection… needs root (network namespace)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tunnels = examples_with_keys(dir.path());
    let charon = Charon::start(dir.path());
    load_into_charon(&charon, &tunnels, "examples.conf");
    // The corpus's imported profiles too: certificates, raw keys, GRE in transport mode.
    for case in cases() {
        let Ok((out, _)) = import_case(&case) else {
            continue;
        };
        let loaded = profile::load(&[out.path().to_path_buf()], insecure());
        let name = format!("{}.conf", case.file_name().unwrap().to_string_lossy());
        // charon 5.9 predates ML-KEM (RFC 9370): such cases are checked by import only.
        let post_quantum = |t: &Tunnel| {
            (t.ike.proposals.iter().map(ToString::to_string))
                .chain(
                    t.children
                        .iter()
                        .flat_map(|c| c.esp_proposals.iter().map(ToString::to_string)),
                )
                .any(|p| p.contains("ML_KEM"))
        };
        let tunnels: Vec<Tunnel> = (loaded.tunnels.unwrap().into_iter())
            .filter(|t| !post_quantum(t))
            .collect();
        if !tunnels.is_empty() {
            load_into_charon(&charon, &tunnels, &name);
        }
    }
}
