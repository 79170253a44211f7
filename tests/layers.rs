//! Dependencies run downhill: the IKE engine is configured with its own types, and the
//! layers above it (model, profile, plan) build them. A `use` upwards from `src/ike`
//! brings back the cycle ike -> plan -> profile -> ike.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn ike_imports_no_layer_above_it() {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ike"),
        &mut files,
    );
    assert!(files.len() > 20, "found only {} files", files.len());
    let mut upward = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable source file");
        for (n, line) in text.lines().enumerate() {
            let layers = [
                "crate::model",
                "crate::plan",
                "crate::profile",
                "crate::apply",
            ];
            if layers.iter().any(|layer| line.contains(layer)) {
                upward.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "src/ike imports upwards:\n{}",
        upward.join("\n")
    );
}
