use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use routevpn::apply;
use routevpn::apply::netlink::LinuxKernel;
use routevpn::apply::state::{lock, Paths};
use routevpn::cli::{Cli, Command, DoctorArgs, ImportArgs, PlanArgs};
use routevpn::daemon::{self, control, control::ClientError, control::Request, DaemonOptions};
use routevpn::demo::{self, DemoOptions};
use routevpn::model;
use routevpn::plan;
use routevpn::profile::{self, Diagnostic, Loaded, Options};
use routevpn::progress::Progress;
use routevpn::swanctl;

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
        Command::Import(ref args) => import_command(&cli, args, options),
        Command::Export {
            ref names,
            with_secrets,
        } => export_command(&cli.config_dir, names, with_secrets, options),
        Command::Pubkey {
            ref name,
            libreswan,
        } => pubkey_command(&cli.config_dir, name, libreswan, options),
        Command::Version => {
            println!("routevpn {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Apply => apply_command(&cli, options),
        Command::Up {
            name: Some(ref name),
            no_wait,
            ..
        } => {
            let request = Request::Up {
                name: name.clone(),
                wait: !no_wait,
            };
            through_daemon(&cli, options, request, Selection::Up(name))
        }
        Command::Up {
            name: None,
            no_wait,
            ..
        } => up_all(&cli, options, no_wait),
        Command::Down { ref name } => {
            let request = Request::Down { name: name.clone() };
            through_daemon(&cli, options, request, Selection::Down(name))
        }
        Command::Status { json } => status(&cli, options, json),
        Command::Doctor(ref args) => doctor(&cli, options, args),
        Command::Rekey { ref name, ike } => {
            let request = Request::Rekey {
                name: name.clone(),
                ike,
            };
            match control::request(&cli.control_socket(), &request, Duration::from_secs(10)) {
                Ok(response) if response.ok => {
                    println!("{}", response.message);
                    ExitCode::SUCCESS
                }
                Ok(response) => {
                    eprintln!("routevpn: {}", response.message);
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("routevpn: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Demo { keep, clean } => match demo::run(DemoOptions { keep, clean }) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("routevpn: demo: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Daemon {
            ike_port,
            natt_port,
            ref metrics,
            ref log_level,
            ref vici_socket,
        } => {
            let daemon_options = DaemonOptions {
                config_dir: cli.config_dir.clone(),
                paths: cli.state_paths(),
                socket: cli.control_socket(),
                vici_socket: cli.vici_socket(vici_socket.as_deref()),
                profile: options,
                ike_port,
                natt_port,
                metrics: metrics.clone(),
                log: log_level.clone(),
            };
            match daemon::run(daemon_options) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("routevpn: daemon: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `up` and `down` go through the daemon when it runs (it negotiates and keeps the SAs).
/// Without it, tunnels keyed by hand are handled here; IKE tunnels need the daemon.
fn through_daemon(
    cli: &Cli,
    options: Options,
    request: Request,
    fallback: Selection<'_>,
) -> ExitCode {
    // `up` waits up to 30 s on the daemon's side; leave room for its answer.
    match control::request(&cli.control_socket(), &request, Duration::from_secs(40)) {
        Ok(response) => {
            if response.ok {
                println!("{}", response.message);
                ExitCode::SUCCESS
            } else {
                eprintln!("routevpn: {}", response.message);
                ExitCode::FAILURE
            }
        }
        Err(ClientError::NotRunning(path)) => {
            // A daemon without its socket (starting, or stuck) still owns the dataplane.
            let paths = cli.state_paths();
            match daemon_holder(&paths) {
                Ok(None) => {}
                Ok(Some(holder)) => {
                    let why = format!("no control socket at {}", path.display());
                    daemon_unreachable(&paths, &holder, &why);
                    return ExitCode::FAILURE;
                }
                Err(code) => return code,
            }
            let Some(loaded) = load_or_report(&cli.config_dir, options) else {
                return ExitCode::FAILURE;
            };
            let name = match &fallback {
                Selection::Up(name) | Selection::Down(name) => *name,
                Selection::All => "",
            };
            let all = matches!(fallback, Selection::All);
            let negotiated = (loaded.tunnels.iter().flatten()).any(|t| {
                (all || t.name == name) && matches!(t.ike.auth, routevpn::model::Auth::Ike(_))
            });
            if negotiated && !matches!(fallback, Selection::Down(_)) {
                let which = if all { "a tunnel" } else { name };
                eprintln!(
                    "routevpn: {which} is negotiated by IKE: routevpn daemon is not running (no socket at {})",
                    path.display()
                );
                return ExitCode::FAILURE;
            }
            dataplane(cli, options, fallback)
        }
        Err(e) => {
            eprintln!("routevpn: {e}");
            ExitCode::FAILURE
        }
    }
}

/// How long `up --all` waits for the IKE tunnels.
const UP_ALL_WAIT: Duration = Duration::from_secs(60);

/// `up --all`: one request for every tunnel, then the IKE tunnels awaited together.
fn up_all(cli: &Cli, options: Options, no_wait: bool) -> ExitCode {
    let socket = cli.control_socket();
    let response = match control::request(&socket, &Request::UpAll, Duration::from_secs(40)) {
        Ok(response) => response,
        // Without the daemon: the dataplane alone, refused if a tunnel needs IKE.
        Err(ClientError::NotRunning(_)) => {
            return through_daemon(cli, options, Request::UpAll, Selection::All)
        }
        Err(e) => {
            eprintln!("routevpn: {e}");
            return ExitCode::FAILURE;
        }
    };
    if response.ok {
        println!("{}", response.message);
    } else {
        eprintln!("routevpn: {}", response.message);
    }
    let names = &response.negotiating;
    if no_wait || names.is_empty() {
        return if response.ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let mut progress = Progress::on_stderr("up: established");
    let deadline = std::time::Instant::now() + UP_ALL_WAIT;
    let poll = Duration::from_millis(200);
    let missing = control::wait_established(&socket, names, deadline, poll, &mut |d, t| {
        progress.update(d, t)
    });
    progress.finish();
    match missing {
        Ok(missing) if missing.is_empty() => {
            println!("up: {} tunnel(s) established", names.len());
            if response.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Ok(missing) => {
            eprintln!(
                "routevpn: up: not established after {} s: {} (routevpn status, the daemon's log)",
                UP_ALL_WAIT.as_secs(),
                missing.join(", ")
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("routevpn: {e}");
            ExitCode::FAILURE
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
    let (state, previous) = match paths.load() {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("routevpn: warning: ignoring unreadable state: {e}");
            Default::default()
        }
    };
    let context = plan::Context {
        previous,
        // The tunnels the daemon last saw without SAs (on_sa_loss = "withdraw").
        without_sas: state.without_sas,
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

/// Which tunnels a dataplane command leaves enabled.
enum Selection<'a> {
    All,
    Up(&'a str),
    Down(&'a str),
}

fn open_kernel(paths: &apply::state::Paths) -> Option<LinuxKernel> {
    match LinuxKernel::open_with_memo(&paths.nft_memo()) {
        Ok(kernel) => Some(kernel),
        Err(e) => {
            eprintln!(
                "routevpn: cannot open netlink sockets: {e} (root or CAP_NET_ADMIN is needed)"
            );
            None
        }
    }
}

/// The tunnels a local `up`/`down`/`apply` leaves enabled, given the recorded ones.
fn select(
    selection: &Selection<'_>,
    tunnels: &[routevpn::model::Tunnel],
    recorded: &BTreeSet<String>,
    config_dir: &std::path::Path,
) -> Result<BTreeSet<String>, String> {
    let known = |name: &str| tunnels.iter().any(|t| t.name == name);
    let mut enabled = recorded.clone();
    match selection {
        Selection::All => enabled = tunnels.iter().map(|t| t.name.clone()).collect(),
        Selection::Up(name) => {
            if !known(name) {
                return Err(format!(
                    "no profile defines tunnel \"{name}\" in {}",
                    config_dir.display()
                ));
            }
            enabled.insert(name.to_string());
        }
        Selection::Down(name) => {
            if !enabled.remove(*name) && !known(name) {
                return Err(format!("tunnel \"{name}\" is neither up nor defined"));
            }
        }
    }
    // Tunnels whose profile is gone are taken down by omission.
    enabled.retain(|name| known(name));
    Ok(enabled)
}

/// `apply` while a daemon runs asks it to reload: applying behind its back would undo
/// what it negotiated.
fn apply_command(cli: &Cli, options: Options) -> ExitCode {
    let paths = cli.state_paths();
    match daemon_holder(&paths) {
        Ok(None) => dataplane(cli, options, Selection::All),
        Ok(Some(holder)) => {
            match control::request(
                &cli.control_socket(),
                &Request::Reload,
                Duration::from_secs(40),
            ) {
                Ok(response) if response.ok => {
                    println!(
                        "apply: the routevpn daemon ({holder}) runs; it reloaded the profiles \
                         and applied them: {}",
                        response.message
                    );
                    ExitCode::SUCCESS
                }
                Ok(response) => {
                    eprintln!(
                        "routevpn: apply: the routevpn daemon ({holder}) could not reload: {}",
                        response.message
                    );
                    ExitCode::FAILURE
                }
                Err(e) => {
                    daemon_unreachable(&paths, &holder, &e);
                    ExitCode::FAILURE
                }
            }
        }
        Err(code) => code,
    }
}

/// Who holds the daemon's lock, if a daemon runs; an unreadable lock is reported.
fn daemon_holder(paths: &Paths) -> Result<Option<String>, ExitCode> {
    lock::holder_of(&paths.daemon_lock()).map_err(|e| {
        eprintln!("routevpn: {e}");
        ExitCode::FAILURE
    })
}

fn daemon_unreachable(paths: &Paths, holder: &str, error: &dyn std::fmt::Display) {
    eprintln!(
        "routevpn: a routevpn daemon ({holder}) holds {} but does not answer ({error}); \
         not changing the dataplane behind its back (stop it, or retry once it listens)",
        paths.daemon_lock().display()
    );
}

fn dataplane(cli: &Cli, options: Options, selection: Selection<'_>) -> ExitCode {
    let started = std::time::Instant::now();
    let Some(loaded) = load_or_report(&cli.config_dir, options) else {
        return ExitCode::FAILURE;
    };
    let load_time = started.elapsed();
    let tunnels = loaded.tunnels.unwrap_or_default();
    let paths = cli.state_paths();
    let verb = match selection {
        Selection::All => "apply",
        Selection::Up(_) => "up",
        Selection::Down(_) => "down",
    };
    let _lock = match lock::exclusive(&paths.apply_lock(), verb, |waiting| {
        eprintln!("routevpn: {waiting}")
    }) {
        Ok(held) => held,
        Err(e) => {
            eprintln!("routevpn: {verb}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(mut kernel) = open_kernel(&paths) else {
        return ExitCode::FAILURE;
    };
    let choose =
        |state: &apply::state::State| select(&selection, &tunnels, &state.enabled, &cli.config_dir);
    let mut progress = Progress::on_stderr(&format!("{verb}: writing changes"));
    let applied = apply::apply_reporting(&mut kernel, &tunnels, &paths, choose, &mut |d, t| {
        progress.update(d, t)
    });
    progress.finish();
    match applied {
        Ok((outcome, plan)) => {
            for warning in &outcome.warnings {
                eprintln!("routevpn: warning: {warning}");
            }
            for line in &outcome.log {
                println!("  {line}");
            }
            for warning in &plan.warnings {
                eprintln!("routevpn: warning: {warning}");
            }
            println!(
                "{verb}: {} changes ({} created, {} updated, {} deleted)",
                outcome.writes, outcome.created, outcome.updated, outcome.deleted
            );
            if std::env::var_os("ROUTEVPN_TIMINGS").is_some() {
                let phases: Vec<String> = std::iter::once(("load", load_time))
                    .chain(outcome.timings.iter().copied())
                    .chain([("total", started.elapsed())])
                    .map(|(phase, d)| format!("{phase} {:.3}s", d.as_secs_f64()))
                    .collect();
                eprintln!("timings: {}", phases.join(", "));
            }
            ExitCode::SUCCESS
        }
        Err(apply::ApplyError::Selection(e)) => {
            eprintln!("routevpn: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("routevpn: {verb} failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn status(cli: &Cli, options: Options, json: bool) -> ExitCode {
    let ike = control::request(
        &cli.control_socket(),
        &Request::Status,
        Duration::from_secs(10),
    );
    if json {
        return match ike {
            Ok(response) => match serde_json::to_string_pretty(&response) {
                Ok(text) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("routevpn: {e}");
                    ExitCode::FAILURE
                }
            },
            Err(e) => {
                eprintln!("routevpn: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let dataplane = dataplane_status(cli, options);
    match ike {
        Ok(response) => {
            println!("IKE SAs (routevpn daemon):");
            print!("{}", daemon::report::render(&response.ike_sas));
            print!("{}", daemon::report::render_failures(&response.failures));
            print!("{}", daemon::report::render_standby(&response.standby));
            print!(
                "{}",
                daemon::report::render_runtime(&response.runtime_conns)
            );
        }
        Err(ClientError::NotRunning(_)) => {}
        Err(e) => eprintln!("routevpn: {e}"),
    }
    dataplane
}

fn dataplane_status(cli: &Cli, options: Options) -> ExitCode {
    let Some(loaded) = load_or_report(&cli.config_dir, options) else {
        return ExitCode::FAILURE;
    };
    let tunnels = loaded.tunnels.unwrap_or_default();
    let paths = cli.state_paths();
    let Some(mut kernel) = open_kernel(&paths) else {
        return ExitCode::FAILURE;
    };
    match apply::status(&mut kernel, &tunnels, &paths) {
        Ok(report) if report.is_empty() => {
            println!("no tunnel is up (routevpn apply, or routevpn up NAME)");
            ExitCode::SUCCESS
        }
        Ok(report) => {
            print!("{}", apply::status::render(&report));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("routevpn: status: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `routevpn import`: every file parsed and mapped before anything is written.
fn import_command(cli: &Cli, args: &ImportArgs, options: Options) -> ExitCode {
    let mut profiles = Vec::new();
    let mut failed = false;
    for file in &args.files {
        let root = match swanctl::parse_file(file) {
            Ok(root) => root,
            Err(d) => {
                eprintln!("{d}");
                failed = true;
                continue;
            }
        };
        let dir = std::path::absolute(file)
            .ok()
            .and_then(|p| p.parent().map(PathBuf::from))
            .unwrap_or_default();
        let lenient = swanctl::import::Options {
            lenient: args.lenient,
        };
        let imported = swanctl::import::import(&root, &dir, lenient);
        print_diagnostics(&imported.diagnostics);
        failed |= imported.has_errors();
        profiles.extend(imported.profiles);
    }
    if failed {
        eprintln!("routevpn: import: nothing written");
        return ExitCode::FAILURE;
    }
    let install = swanctl::install::Options {
        out: args.out.clone().unwrap_or_else(|| cli.config_dir.clone()),
        force: args.force,
        dry_run: args.dry_run,
        profile: options,
    };
    let written = match swanctl::install::install(&profiles, &install) {
        Ok(written) => written,
        Err(errors) => {
            print_diagnostics(&errors);
            eprintln!("routevpn: import: nothing written");
            return ExitCode::FAILURE;
        }
    };
    print_diagnostics(&written.warnings);
    let verb = if args.dry_run { "would write" } else { "wrote" };
    for (p, path) in profiles.iter().zip(&written.profiles) {
        if args.dry_run {
            println!("# {}\n{}", path.display(), p.text);
        }
        println!("connection {}: {verb} {}", p.name, path.display());
        for secret in &p.secrets {
            println!(
                "  {verb} secret {} (mode 0600)",
                install.out.join(&secret.path).display()
            );
        }
        for note in &p.notes {
            println!("  note: {note}");
        }
    }
    ExitCode::SUCCESS
}

/// `routevpn export`: the chosen profiles (all by default) as swanctl.conf on stdout.
fn export_command(
    config_dir: &std::path::Path,
    names: &[String],
    with_secrets: bool,
    options: Options,
) -> ExitCode {
    let Some(tunnels) = load_or_report(config_dir, options).and_then(|l| l.tunnels) else {
        return ExitCode::FAILURE;
    };
    let unknown: Vec<&String> = names
        .iter()
        .filter(|n| !tunnels.iter().any(|t| &t.name == *n))
        .collect();
    if !unknown.is_empty() {
        for name in unknown {
            eprintln!("routevpn: export: no tunnel named `{name}`");
        }
        return ExitCode::FAILURE;
    }
    let chosen: Vec<_> = tunnels
        .into_iter()
        .filter(|t| names.is_empty() || names.contains(&t.name))
        .collect();
    let (text, refused) =
        swanctl::export::export(&chosen, swanctl::export::Options { with_secrets });
    for r in &refused {
        eprintln!("routevpn: export: {}: {}", r.tunnel, r.reason);
    }
    print!("{text}");
    if refused.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn pubkey_command(
    config_dir: &std::path::Path,
    name: &str,
    libreswan: bool,
    options: Options,
) -> ExitCode {
    let Some(tunnels) = load_or_report(config_dir, options).and_then(|l| l.tunnels) else {
        return ExitCode::FAILURE;
    };
    let fail = |why: &dyn std::fmt::Display| {
        eprintln!("routevpn: pubkey: {why}");
        ExitCode::FAILURE
    };
    let Some(tunnel) = tunnels.iter().find(|t| t.name == name) else {
        return fail(&format_args!("no tunnel named `{name}`"));
    };
    let private_key = match &tunnel.ike.auth {
        model::Auth::Ike(model::IkeAuth {
            local: model::LocalCredential::PublicKey { private_key, .. },
            ..
        }) => private_key,
        _ => {
            return fail(&format_args!(
                "`{name}` authenticates without a private key"
            ))
        }
    };
    let public = match routevpn::daemon::credentials::private_key_at(private_key) {
        Ok(key) => key.public_key(),
        Err(e) => return fail(&e),
    };
    if !libreswan {
        print!("{}", public.to_pem());
        return ExitCode::SUCCESS;
    }
    match public.to_rfc3110() {
        Some(text) => {
            println!("leftrsasigkey={text}");
            ExitCode::SUCCESS
        }
        None => fail(&format_args!(
            "`{name}` has a {} key; libreswan's 0s form is for RSA keys (give the partner the PEM)",
            public.kind()
        )),
    }
}

/// Exit 2 when doctor cannot run: no tunnel to check, unreadable profiles or kernel state.
fn doctor(cli: &Cli, options: Options, args: &DoctorArgs) -> ExitCode {
    let cannot = |why: &dyn std::fmt::Display| {
        eprintln!("routevpn: doctor: {why}");
        ExitCode::from(2)
    };
    let Some(loaded) = load_or_report(&cli.config_dir, options) else {
        return ExitCode::from(2);
    };
    let tunnels = loaded.tunnels.unwrap_or_default();
    let (state, previous) = match cli.state_paths().load() {
        Ok(loaded) => loaded,
        Err(e) => return cannot(&format!("state: {e}")),
    };
    let context = plan::Context {
        previous,
        // A route withdrawn for lack of SAs is not missing.
        without_sas: state.without_sas.clone(),
        ..Default::default()
    };
    let mut plan = plan::build(&tunnels, &context);
    // A named tunnel is checked whether or not it is up; otherwise the enabled ones.
    match &args.name {
        Some(name) => {
            plan.tunnels.retain(|t| &t.name == name);
            if plan.tunnels.is_empty() {
                return cannot(&format!("no tunnel named \"{name}\""));
            }
        }
        None => plan.tunnels.retain(|t| state.enabled.contains(&t.name)),
    }
    if plan.tunnels.is_empty() {
        return cannot(&"no tunnel is enabled: name the one to check (routevpn doctor NAME)");
    }
    let interval = match Duration::try_from_secs_f64(args.interval) {
        Ok(d) => d,
        Err(e) => return cannot(&format!("--interval: {e}")),
    };
    let gather = routevpn::doctor::gather::Options {
        interval,
        control_socket: cli.control_socket(),
        frr_dir: args.frr_dir.clone(),
    };
    let facts = match routevpn::doctor::gather::gather(&plan.tunnels, &gather) {
        Ok(facts) => facts,
        Err(e) => return cannot(&e),
    };
    let findings = routevpn::doctor::diagnose(&facts, &plan.tunnels);
    let names = plan.tunnels.iter().map(|t| t.name.as_str()).collect();
    let report = routevpn::doctor::output::Report::new(names, facts.interval_secs, &findings);
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => return cannot(&e),
        }
    } else {
        print!("{}", report.text());
    }
    ExitCode::from(routevpn::doctor::exit_code(&findings))
}
