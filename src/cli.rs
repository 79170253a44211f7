//! Command-line interface definition (kept in the library so completions and the man page in
//! `contrib/` are generated from the same source and checked by a test).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "routevpn",
    version,
    about = "Route-based IPsec tunnels (VTI, GRE over IPsec, XFRM interfaces) from declarative profiles",
    long_about = "routevpn turns one declarative profile per tunnel into kernel state: the tunnel \
device, addresses, routes, XFRM policies, nftables SNAT and MSS clamping, and negotiates the \
SAs with its embedded IKEv2 engine.\n\nProfiles live in /etc/routevpn/tunnels/*.toml.",
    after_help = "Examples:\n  routevpn check                 validate every profile\n  \
routevpn plan vti-telecom      show the kernel state one tunnel needs\n  \
routevpn plan --json           the whole plan, for machines"
)]
pub struct Cli {
    /// Directory holding the tunnel profiles (*.toml).
    #[arg(long, global = true, value_name = "DIR", default_value = crate::profile::DEFAULT_DIR)]
    pub config_dir: PathBuf,

    /// Where routevpn keeps what it created and the allocated marks / if_ids
    /// [default: /run/routevpn and /var/lib/routevpn]. For several instances on one host.
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Accept secret files not owned by root or readable by others (test setups only).
    #[arg(long, global = true)]
    pub insecure_secrets: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate profiles; exit non-zero on any error.
    Check {
        /// Profile files or directories to check instead of --config-dir.
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Print the kernel state and IKE configuration the profiles ask for.
    Plan(PlanArgs),
    /// Bring one tunnel up: through the daemon when it runs (apply, then negotiate and
    /// wait for the CHILD SAs), else its dataplane alone (manual keys).
    Up {
        /// Tunnel name (the profile's file name without .toml, or its `name`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        /// Every tunnel: one apply, then every IKE tunnel negotiated at once; waits for
        /// them all (progress on a terminal), at most 60 s.
        #[arg(long)]
        all: bool,
        /// Return once the negotiation has started instead of waiting for its result.
        #[arg(long)]
        no_wait: bool,
    },
    /// Take one tunnel down and remove what routevpn made for it.
    Down {
        /// Tunnel name.
        name: String,
    },
    /// Rekey one tunnel's CHILD SAs now, through the daemon (new SAs are installed before
    /// the old ones go: no packet is lost).
    Rekey {
        /// Tunnel name.
        name: String,
        /// Rekey the IKE SA instead (its CHILD SAs move to the new one untouched).
        #[arg(long)]
        ike: bool,
    },
    /// Make the kernel match every profile: create, update and remove tunnels.
    Apply,
    /// Show every tunnel's devices, routes, policies and SAs against the plan, and the
    /// daemon's IKE and CHILD SAs (like swanctl --list-sas).
    Status {
        /// The IKE and CHILD SAs as JSON (needs the daemon).
        #[arg(long)]
        json: bool,
    },
    /// Diagnose why a tunnel's packets do not get through: kernel support, sysctls,
    /// routes, foreign XFRM policies, nftables drops, MTU, IKE state and counters.
    /// Exit code 0: healthy; 1: an error found; 2: doctor could not run.
    Doctor(DoctorArgs),
    /// Run the IKE engine for every profile: apply the dataplane, negotiate, install SAs,
    /// answer `up`, `down` and `status` on a unix socket.
    Daemon {
        /// UDP port for IKE.
        #[arg(long, default_value_t = 500, value_name = "PORT")]
        ike_port: u16,
        /// UDP port for NAT traversal (IKE and ESP in UDP).
        #[arg(long, default_value_t = 4500, value_name = "PORT")]
        natt_port: u16,
        /// Serve Prometheus metrics at GET /metrics on this TCP address (127.0.0.1:9505)
        /// or unix socket (unix:/run/routevpn/metrics.sock). Off by default.
        #[arg(long, value_name = "ADDRESS")]
        metrics: Option<crate::daemon::metrics::server::Address>,
        /// Log level (error, warn, info, debug, trace), per module too, like RUST_LOG:
        /// "info,ike=debug,apply=warn". Modules: daemon, ike, apply, systemd.
        #[arg(long, value_name = "FILTER", default_value = "info")]
        log_level: crate::daemon::logging::Filter,
        /// strongSwan's VICI socket, for swanctl and VICI tools [default:
        /// /run/routevpn/charon.vici, or charon.vici in --state-dir].
        #[arg(long, value_name = "PATH")]
        vici_socket: Option<PathBuf>,
    },
    /// Show routevpn at work: two sites in network namespaces, a daemon in each, a VTI and a
    /// GRE-over-IPsec tunnel negotiated between them, a ping across each, their SAs; then
    /// everything is removed. Needs root and a kernel with VTI, GRE and ESP.
    Demo {
        /// Leave the sites, tunnels and daemons running to look around.
        #[arg(long)]
        keep: bool,
        /// Remove what `demo --keep` (or an interrupted demo) left behind.
        #[arg(long, conflicts_with = "keep")]
        clean: bool,
    },
    /// Read swanctl.conf files (with their includes, `secrets` and the swanctl/ directory
    /// layout beside them) and write one profile per connection, each pre-shared key into a
    /// 0600 file the profile names. Profiles are validated as `check` does before any is
    /// written; options routevpn cannot carry over are located errors.
    Import(ImportArgs),
    /// Print profiles as swanctl.conf: connections and secrets giving charon the same
    /// negotiation. Pre-shared keys only with --with-secrets.
    Export {
        /// Only these tunnels (default: every profile).
        #[arg(value_name = "NAME")]
        names: Vec<String>,
        /// Write the pre-shared keys into `secrets` (strongSwan reads no key file).
        #[arg(long)]
        with_secrets: bool,
    },
    /// Print our public key for the partner, from the tunnel's `private_key`: PEM
    /// (strongSwan's `pubkeys`) or libreswan's `0s…` form (RSA only), as
    /// `ipsec showhostkey` prints it for `leftrsasigkey=`.
    Pubkey {
        /// Tunnel name.
        name: String,
        /// libreswan's `leftrsasigkey=0s…` line instead of PEM.
        #[arg(long)]
        libreswan: bool,
    },
    /// Print the version.
    Version,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// swanctl.conf files.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Where to write the profiles [default: --config-dir].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Drop options routevpn cannot carry over, with a warning, instead of failing.
    #[arg(long)]
    pub lenient: bool,
    /// Validate and print the profiles; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Replace existing profiles and secret files of the same names.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Only this tunnel.
    pub name: Option<String>,
    /// Machine-readable JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The tunnel to check, up or not (default: every enabled tunnel).
    pub name: Option<String>,
    /// Machine-readable JSON (schema in README.md).
    #[arg(long)]
    pub json: bool,
    /// Seconds between the two counter samples.
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    pub interval: f64,
    /// Where FRR's vty sockets are, for the OSPF and PIM checks.
    #[arg(long, default_value = "/run/frr", value_name = "DIR")]
    pub frr_dir: PathBuf,
}

impl Cli {
    /// The daemon's control socket for this `--state-dir`.
    pub fn control_socket(&self) -> std::path::PathBuf {
        crate::daemon::control::socket_path(self.state_dir.as_deref())
    }

    /// The daemon's VICI socket for this `--state-dir`, unless given.
    pub fn vici_socket(&self, given: Option<&std::path::Path>) -> std::path::PathBuf {
        given.map_or_else(
            || crate::daemon::vici_server::socket_path(self.state_dir.as_deref()),
            std::path::Path::to_path_buf,
        )
    }

    pub fn state_paths(&self) -> crate::apply::state::Paths {
        match &self.state_dir {
            Some(dir) => crate::apply::state::Paths {
                state: dir.join("state.json"),
                allocations: dir.join("allocations.json"),
            },
            None => crate::apply::state::Paths::default(),
        }
    }
}

/// The clap command, for completions and the man page.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}
