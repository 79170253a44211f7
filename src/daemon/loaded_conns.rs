//! The daemon's side of connections loaded over VICI: their profiles are written to a
//! private directory under the runtime state, which the daemon loads beside the profile
//! directory, so that they are validated, planned and applied exactly like profiles. The
//! directory is emptied when the daemon starts: loaded connections are run-time only.

use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::logging::{self, APPLY};
use super::Daemon;
use crate::profile::{self, Diagnostic};
use crate::swanctl::import::ImportedProfile;
use crate::swanctl::install;

impl Daemon {
    /// Where the loaded connections' profiles and keys are (tmpfs in `/run/routevpn`).
    pub(super) fn loaded_dir(&self) -> PathBuf {
        self.options.paths.state.with_file_name("vici-conns")
    }

    /// The directories the daemon loads profiles from.
    pub(super) fn profile_dirs(&self) -> [PathBuf; 2] {
        [self.options.config_dir.clone(), self.loaded_dir()]
    }

    /// Empties the loaded connections' directory: a restart forgets them, as charon does.
    pub(super) fn forget_loaded(&self) -> Result<(), String> {
        let dir = self.loaded_dir();
        remove(&dir)?;
        create(&dir)
    }

    /// Unloads the loaded connections that a profile defines now (one added since they
    /// were loaded): profiles win, as a load of their name is refused.
    pub(super) fn yield_to_profiles(&mut self) -> Result<(), String> {
        if self.vici_loaded.conn_names().next().is_none() {
            return Ok(());
        }
        let dirs = std::slice::from_ref(&self.options.config_dir);
        // Profiles with errors: the reload reports them.
        let Some(tunnels) = profile::load(dirs, self.options.profile).tunnels else {
            return Ok(());
        };
        let taken: Vec<String> = (tunnels.into_iter())
            .map(|t| t.name)
            .filter(|name| self.vici_loaded.has_conn(name))
            .collect();
        if taken.is_empty() {
            return Ok(());
        }
        let mut next = self.vici_loaded.clone();
        for name in &taken {
            logging::warn(
                APPLY,
                format_args!("{name}: unloading the connection loaded over VICI: a profile defines it now (profiles win)"),
            );
            self.drop_connection(name);
            next = next.without(name);
        }
        let dir = self.loaded_dir();
        remove(&dir)?;
        let options = install::Options {
            out: dir,
            force: false,
            dry_run: false,
            profile: self.options.profile,
        };
        install::install(&next.mapped().profiles, &options).map_err(|e| errors(&e))?;
        self.vici_loaded = next;
        Ok(())
    }

    /// Whether `profiles`, as the loaded connections, pass the profiles' checks beside
    /// the profile directory; nothing changes.
    pub(super) fn check_loaded(&self, profiles: &[ImportedProfile]) -> Result<(), String> {
        let staged = self.stage(profiles)?;
        remove(&staged)
    }

    /// `profiles` written to a staging directory beside the loaded connections' and
    /// checked with the profiles; errors name the files where they would have been.
    fn stage(&self, profiles: &[ImportedProfile]) -> Result<PathBuf, String> {
        let dir = self.loaded_dir();
        let staged = dir.with_file_name("vici-conns.new");
        remove(&staged)?;
        let options = install::Options {
            out: staged.clone(),
            force: false,
            dry_run: false,
            profile: self.options.profile,
        };
        let checked = install::install(profiles, &options)
            .map_err(|e| errors(&e))
            .and_then(|_| {
                let dirs = [self.options.config_dir.clone(), staged.clone()];
                let loaded = profile::load(&dirs, self.options.profile);
                match loaded.tunnels {
                    Some(_) => Ok(()),
                    None => Err(errors(&loaded.diagnostics)),
                }
            });
        if let Err(e) = checked {
            remove(&staged)?;
            // Named where the profiles would have been, not in the gone staging directory.
            let (staged, dir) = (staged.display().to_string(), dir.display().to_string());
            return Err(e.replace(&staged, &dir));
        }
        Ok(staged)
    }

    /// Validates `profiles` beside the profile directory, makes them the loaded
    /// connections and applies; anything failing leaves the previous ones in place.
    pub(super) fn configure_loaded(
        &mut self,
        profiles: Vec<ImportedProfile>,
        unloaded: &[String],
    ) -> Result<(), String> {
        let dir = self.loaded_dir();
        let previous = dir.with_file_name("vici-conns.old");
        remove(&previous)?;
        let staged = self.stage(&profiles)?;
        rename(&dir, &previous)?;
        rename(&staged, &dir)?;
        for profile in &profiles {
            // Said once, when the connection is first applied.
            if !self.tunnels.iter().any(|t| t.name == profile.name) {
                for note in &profile.notes {
                    logging::info(APPLY, format_args!("{}: {note}", profile.name));
                }
            }
            self.enabled.insert(profile.name.clone());
        }
        for name in unloaded {
            self.drop_connection(name);
            self.enabled.remove(name);
        }
        if let Err(e) = self.reload(false) {
            remove(&dir)?;
            rename(&previous, &dir)?;
            if let Err(again) = self.reload(false) {
                logging::error(
                    APPLY,
                    format_args!("restoring the loaded connections: {again}"),
                );
            }
            return Err(e);
        }
        remove(&previous)?;
        for profile in &profiles {
            self.start_tunnel(&profile.name);
        }
        Ok(())
    }
}

/// The errors among `diagnostics`, located, in one message.
fn errors(diagnostics: &[Diagnostic]) -> String {
    let located: Vec<String> = (diagnostics.iter())
        .filter(|d| d.is_error())
        .map(|d| format!("{}:{}", d.file.display(), d.located_message()))
        .collect();
    located.join("; ")
}

fn remove(dir: &Path) -> Result<(), String> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("removing {}: {e}", dir.display()))
        }
        _ => Ok(()),
    }
}

fn create(dir: &Path) -> Result<(), String> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("creating {}: {e}", dir.display()))
}

fn rename(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::rename(from, to)
        .map_err(|e| format!("moving {} to {}: {e}", from.display(), to.display()))
}
