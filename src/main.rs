use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use routevpn::apply::state::Paths;
use routevpn::cli::{Cli, Command, PlanArgs};
use routevpn::plan;
use routevpn::profile::{self, Diagnostic, Loaded, Options};

/// Exit status for commands whose subsystem is not built yet: distinct from failure (1).
const NOT_IMPLEMENTED: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let options = Options {
        insecure_secrets: cli.insecure_secrets,
    };
    match cli.command {
        Command::Check { paths } => {
            let paths = if paths.is_empty() {
                vec![cli.config_dir]
            } else {
                paths
            };
            check(&paths, options)
        }
        Command::Plan(ref args) => plan_command(&cli.config_dir, &cli.state_paths(), options, args),
        Command::Version => {
            println!("routevpn {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Up { .. } | Command::Down { .. } | Command::Apply | Command::Status => {
            eprintln!(
                "routevpn: this command needs the kernel dataplane, which is not implemented yet; nothing was changed"
            );
            ExitCode::from(NOT_IMPLEMENTED)
        }
    }
}

fn print_diagnostics(diagnostics: &[Diagnostic]) {
    for d in diagnostics {
        eprintln!("{d}");
    }
}

fn check(paths: &[PathBuf], options: Options) -> ExitCode {
    let loaded = profile::load(paths, options);
    print_diagnostics(&loaded.diagnostics);
    let errors = loaded.errors().count();
    let warnings = loaded.diagnostics.len() - errors;
    match &loaded.tunnels {
        Some(tunnels) => {
            println!("{} profile(s) OK, {warnings} warning(s)", tunnels.len());
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("{errors} error(s), {warnings} warning(s)");
            ExitCode::FAILURE
        }
    }
}

fn load_or_report(dir: &std::path::Path, options: Options) -> Option<Loaded> {
    let loaded = profile::load(&[dir.to_path_buf()], options);
    print_diagnostics(&loaded.diagnostics);
    if loaded.tunnels.is_none() {
        eprintln!("routevpn: fix the errors above first (routevpn check)");
        return None;
    }
    Some(loaded)
}

fn plan_command(
    dir: &std::path::Path,
    paths: &Paths,
    options: Options,
    args: &PlanArgs,
) -> ExitCode {
    let Some(loaded) = load_or_report(dir, options) else {
        return ExitCode::FAILURE;
    };
    let tunnels = loaded.tunnels.unwrap_or_default();
    // Show the values this host already uses, so the plan matches what apply would do.
    let previous = match paths.load() {
        Ok((_, allocations)) => allocations,
        Err(e) => {
            eprintln!("routevpn: warning: ignoring unreadable state: {e}");
            plan::Allocations::default()
        }
    };
    let context = plan::Context {
        previous,
        ..Default::default()
    };
    let mut plan = plan::build(&tunnels, &context);
    if let Some(name) = &args.name {
        if !plan.tunnels.iter().any(|t| &t.name == name) {
            let names: Vec<&str> = plan.tunnels.iter().map(|t| t.name.as_str()).collect();
            eprintln!(
                "routevpn: no tunnel named \"{name}\"; known: {}",
                names.join(", ")
            );
            return ExitCode::FAILURE;
        }
        plan.tunnels.retain(|t| &t.name == name);
    }
    if args.json {
        match serde_json::to_string_pretty(&plan) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("routevpn: cannot encode the plan: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", plan::render_text(&plan));
    }
    ExitCode::SUCCESS
}
