//! Completions and the man page in contrib/ are generated from the CLI definition.
//! This test fails when they are stale; `UPDATE_CONTRIB=1 cargo test --test contrib` rewrites them.

use std::path::Path;

use clap_complete::Shell;

fn generated() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    for (shell, file) in [
        (Shell::Bash, "contrib/completions/routevpn.bash"),
        (Shell::Zsh, "contrib/completions/_routevpn"),
        (Shell::Fish, "contrib/completions/routevpn.fish"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut routevpn::cli::command(), "routevpn", &mut buf);
        out.push((file, buf));
    }
    let mut man = Vec::new();
    clap_mangen::Man::new(routevpn::cli::command())
        .section("8")
        .render(&mut man)
        .expect("render man page");
    out.push(("contrib/man/routevpn.8", man));
    out
}

#[test]
fn contrib_files_match_the_cli() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let update = std::env::var_os("UPDATE_CONTRIB").is_some();
    let mut stale = Vec::new();
    for (file, content) in generated() {
        let path = root.join(file);
        if update {
            std::fs::write(&path, &content).expect("write contrib file");
        } else if std::fs::read(&path).ok().as_deref() != Some(content.as_slice()) {
            stale.push(file);
        }
    }
    assert!(
        stale.is_empty(),
        "stale: {stale:?}; run UPDATE_CONTRIB=1 cargo test --test contrib"
    );
}
