//! Writing imported profiles: staged in a private directory beside the destination,
//! validated there exactly as `routevpn check` would, then moved into place. Nothing is
//! overwritten without `force`; secrets are created 0600 with `O_EXCL`, never another mode.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::import::ImportedProfile;
use crate::profile::{self, Diagnostic, Severity};

#[derive(Clone, Debug)]
pub struct Options {
    pub out: PathBuf,
    /// Replace existing profiles and secrets of the same names.
    pub force: bool,
    /// Validate only; write nothing into `out`.
    pub dry_run: bool,
    pub profile: profile::Options,
}

/// What was (or, dry, would be) written.
#[derive(Debug, Default)]
pub struct Written {
    pub profiles: Vec<PathBuf>,
    pub secrets: Vec<PathBuf>,
    /// Warnings of the validation.
    pub warnings: Vec<Diagnostic>,
}

/// Removes the staging directory whatever happens.
struct Stage(PathBuf);

impl Drop for Stage {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn io_error(path: &Path, what: &str, e: std::io::Error) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        message: format!("cannot {what}: {e}"),
        hint: None,
    }
}

/// Creates `path` with `mode`, failing if it exists.
fn create(path: &Path, mode: u32, content: &[u8]) -> Result<(), Diagnostic> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| io_error(path, "create", e))?;
    file.write_all(content)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(path, "write", e))
}

/// Stages, validates and (unless dry) installs `profiles` into `options.out`.
pub fn install(
    profiles: &[ImportedProfile],
    options: &Options,
) -> Result<Written, Vec<Diagnostic>> {
    let duplicates: Vec<Diagnostic> = (profiles.iter().enumerate())
        .filter(|(i, p)| profiles[..*i].iter().any(|q| q.name == p.name))
        .map(|(_, p)| Diagnostic {
            severity: Severity::Error,
            file: options.out.join(format!("{}.toml", p.name)),
            line: 0,
            column: 0,
            message: format!(
                "connection `{}` is imported twice (two files define it)",
                p.name
            ),
            hint: None,
        })
        .collect();
    if !duplicates.is_empty() {
        return Err(duplicates);
    }
    let parent = if options.dry_run {
        std::env::temp_dir()
    } else {
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&options.out)
            .map_err(|e| vec![io_error(&options.out, "create the directory", e)])?;
        options.out.clone()
    };
    let nonce: u64 = rand::random();
    let stage = Stage(parent.join(format!(".routevpn-import-{}-{nonce:x}", std::process::id())));
    DirBuilder::new()
        .mode(0o700)
        .create(&stage.0)
        .map_err(|e| vec![io_error(&stage.0, "create the directory", e)])?;

    let mut files = Vec::new(); // (relative path, is a secret)
    for p in profiles {
        let name = PathBuf::from(format!("{}.toml", p.name));
        create(&stage.0.join(&name), 0o644, p.text.as_bytes()).map_err(|d| vec![d])?;
        files.push((name, false));
        for secret in &p.secrets {
            let path = stage.0.join(&secret.path);
            if let Some(dir) = path.parent() {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|e| vec![io_error(dir, "create the directory", e)])?;
            }
            create(&path, 0o600, &secret.content).map_err(|d| vec![d])?;
            files.push((secret.path.clone(), true));
        }
    }

    // The same validation as `routevpn check` of the destination once written: with the
    // profiles already there (but those the import replaces), shown at the final paths.
    let mut paths = vec![stage.0.clone()];
    if options.out.is_dir() {
        let existing = profile::files(std::slice::from_ref(&options.out)).map_err(|d| vec![d])?;
        let replaced = |p: &PathBuf| files.iter().any(|(rel, _)| options.out.join(rel) == *p);
        paths.extend(existing.into_iter().filter(|p| !replaced(p)));
    }
    let loaded = profile::load(&paths, options.profile);
    let (staged, out) = (
        stage.0.display().to_string(),
        options.out.display().to_string(),
    );
    let shown = |mut d: Diagnostic| {
        if let Ok(rest) = d.file.strip_prefix(&stage.0) {
            d.file = options.out.join(rest);
        }
        // A cross-file message names the other profile by its staged path too.
        d.message = d.message.replace(&staged, &out);
        d
    };
    let (errors, warnings): (Vec<Diagnostic>, Vec<Diagnostic>) = loaded
        .diagnostics
        .into_iter()
        .map(shown)
        .partition(Diagnostic::is_error);
    if !errors.is_empty() || loaded.tunnels.is_none() {
        return Err(errors);
    }

    let mut written = Written {
        warnings,
        ..Written::default()
    };
    for (rel, secret) in &files {
        let target = options.out.join(rel);
        if *secret {
            written.secrets.push(target);
        } else {
            written.profiles.push(target);
        }
    }
    if options.dry_run {
        return Ok(written);
    }
    let taken: Vec<Diagnostic> = (files.iter())
        .map(|(rel, _)| options.out.join(rel))
        .filter(|target| !options.force && target.symlink_metadata().is_ok())
        .map(|target| Diagnostic {
            severity: Severity::Error,
            file: target,
            line: 0,
            column: 0,
            message: "exists already (--force replaces it)".into(),
            hint: None,
        })
        .collect();
    if !taken.is_empty() {
        return Err(taken);
    }
    // Secrets first, so that no profile is ever in place without its key.
    let mut order: Vec<&(PathBuf, bool)> = files.iter().collect();
    order.sort_by_key(|(_, secret)| !secret);
    for (rel, _) in order {
        let (from, to) = (stage.0.join(rel), options.out.join(rel));
        if let Some(dir) = to.parent() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| vec![io_error(dir, "create the directory", e)])?;
        }
        let moved = if options.force {
            std::fs::rename(&from, &to)
        } else {
            // A link fails if the target appeared meanwhile: never overwrite.
            std::fs::hard_link(&from, &to)
        };
        moved.map_err(|e| vec![io_error(&to, "install", e)])?;
    }
    Ok(written)
}
