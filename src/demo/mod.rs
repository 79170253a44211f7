//! `routevpn demo`: two sites in network namespaces joined by a veth, a routevpn daemon in
//! each, a VTI and a GRE-over-IPsec tunnel negotiated between them, a ping across each,
//! the daemons' status, then everything removed again (or kept with `--keep`).

mod links;
mod netns;
pub mod ping;
mod profiles;

use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::daemon::control::{self, Request, Response};
use crate::daemon::report;
use links::Rtnl;
use netns::Namespace;
use profiles::{host, net, Site, SITES, TUNNELS};

/// Everything the demo writes: profiles, keys, state, daemon logs, and its record.
pub const WORK_DIR: &str = "/run/routevpn-demo";
const RECORD: &str = "demo.json";
const PINGS: u16 = 5;

pub struct DemoOptions {
    /// Leave the sites, tunnels and daemons running for a look around.
    pub keep: bool,
    /// Remove what an earlier `--keep` (or an interrupted demo) left.
    pub clean: bool,
}

/// What exists, saved as it is made, so `--clean` can remove it even after a crash.
#[derive(Default, Serialize, Deserialize)]
struct Record {
    namespaces: Vec<String>,
    daemons: Vec<u32>,
}

fn namespace_name(site: &Site) -> String {
    format!("routevpn-demo-{}", site.name)
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Ctrl-C ends the demo between steps, through the normal clean-up.
fn catch_interrupts() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(
                signal,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            )
        };
    }
}

fn step() -> Result<(), String> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err("interrupted".to_string())
    } else {
        Ok(())
    }
}

pub fn run(options: DemoOptions) -> Result<(), String> {
    let work = PathBuf::from(WORK_DIR);
    if options.clean {
        return clean(&work);
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err("the demo creates network namespaces and tunnels: run it as root".into());
    }
    if work.join(RECORD).exists()
        || SITES
            .iter()
            .any(|s| netns::path_of(&namespace_name(s)).exists())
    {
        return Err(format!(
            "an earlier demo is still set up ({WORK_DIR}); `routevpn demo --clean` removes it"
        ));
    }
    catch_interrupts();
    let binary = std::env::current_exe().map_err(|e| format!("finding routevpn itself: {e}"))?;
    let mut demo = Demo {
        work,
        record: Record::default(),
        namespaces: Vec::new(),
        daemons: Vec::new(),
        keep: false,
    };
    std::fs::create_dir_all(&demo.work).map_err(|e| format!("creating {WORK_DIR}: {e}"))?;
    demo.save()?;
    demo.build_sites()?;
    demo.start_daemons(&binary)?;
    demo.bring_up()?;
    demo.ping_across()?;
    demo.show_status()?;
    if options.keep {
        demo.keep = true;
        demo.explain_kept(&binary);
    } else {
        println!("\ncleaning up: stopping the daemons, deleting both namespaces");
    }
    Ok(())
}

struct Demo {
    work: PathBuf,
    record: Record,
    namespaces: Vec<Namespace>,
    daemons: Vec<Child>,
    keep: bool,
}

impl Demo {
    fn save(&self) -> Result<(), String> {
        let path = self.work.join(RECORD);
        let text = serde_json::to_string_pretty(&self.record).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))
    }

    fn site_dir(&self, site: &Site) -> PathBuf {
        self.work.join(site.name)
    }

    fn build_sites(&mut self) -> Result<(), String> {
        println!("routevpn demo: two sites in network namespaces, joined by a veth (\"wan\"),");
        println!("each with a LAN (a dummy device) and a routevpn daemon.\n");
        let psk: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        for site in &SITES {
            let name = namespace_name(site);
            let namespace = Namespace::create(&name)
                .map_err(|e| format!("creating the network namespace {name}: {e}"))?;
            self.namespaces.push(namespace);
            self.record.namespaces.push(name);
            self.save()?;
            profiles::write(&self.site_dir(site), site, &format!("0x{psk}"))
                .map_err(|e| format!("writing site {}'s profiles: {e}", site.name))?;
        }
        let (a, b) = (&self.namespaces[0], &self.namespaces[1]);
        let peer = b.fd();
        a.run(|| Rtnl::open()?.add_veth("wan", "wan", peer))
            .map_err(|e| explain_missing_support(&e))?;
        for (site, namespace) in SITES.iter().zip(&self.namespaces) {
            namespace
                .run(|| wire_site(site))
                .map_err(|e| explain_missing_support(&e))?;
            println!(
                "  site {} (netns {}): wan {}, {}; lan {}, {}",
                site.name, namespace.name, site.wan[0], site.wan[1], site.lan[0], site.lan[1]
            );
        }
        step()
    }

    fn start_daemons(&mut self, binary: &Path) -> Result<(), String> {
        println!();
        for (index, site) in SITES.iter().enumerate() {
            let dir = self.site_dir(site);
            let log = File::create(dir.join("daemon.log")).map_err(|e| e.to_string())?;
            let fd = self.namespaces[index].fd();
            let mut command = Command::new(binary);
            command
                .arg("--config-dir")
                .arg(dir.join("tunnels"))
                .arg("--state-dir")
                .arg(dir.join("state"))
                .arg("daemon")
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(|e| e.to_string())?)
                .stderr(log)
                // Its own process group: Ctrl-C reaches the demo, which stops it in order.
                .process_group(0);
            // SAFETY: setns is async-signal-safe, and `fd` stays open until after the spawn.
            unsafe {
                command.pre_exec(move || {
                    if libc::setns(fd, libc::CLONE_NEWNET) == 0 {
                        Ok(())
                    } else {
                        Err(io::Error::last_os_error())
                    }
                });
            }
            let child = command
                .spawn()
                .map_err(|e| format!("starting the daemon of site {}: {e}", site.name))?;
            self.record.daemons.push(child.id());
            self.daemons.push(child);
            self.save()?;
            self.wait_ready(site)?;
            println!(
                "  daemon of site {} running (pid {}, log {})",
                site.name,
                self.record.daemons.last().copied().unwrap_or_default(),
                dir.join("daemon.log").display()
            );
        }
        step()
    }

    fn socket(&self, site: &Site) -> PathBuf {
        control::socket_path(Some(&self.site_dir(site).join("state")))
    }

    fn wait_ready(&mut self, site: &Site) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        let index = self.daemons.len() - 1;
        loop {
            if control::request(&self.socket(site), &Request::Status, Duration::from_secs(5))
                .is_ok()
            {
                return Ok(());
            }
            if let Ok(Some(status)) = self.daemons[index].try_wait() {
                return Err(format!(
                    "the daemon of site {} exited ({status}):\n{}",
                    site.name,
                    self.log_tail(site)
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the daemon of site {} did not answer within 15 s:\n{}",
                    site.name,
                    self.log_tail(site)
                ));
            }
            step()?;
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_tail(&self, site: &Site) -> String {
        let text =
            std::fs::read_to_string(self.site_dir(site).join("daemon.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(15)..];
        tail.iter().map(|l| format!("    | {l}\n")).collect()
    }

    fn ask(&self, site: &Site, request: Request) -> Result<Response, String> {
        control::request(&self.socket(site), &request, Duration::from_secs(40))
            .map_err(|e| format!("site {}: {e}", site.name))
    }

    fn bring_up(&self) -> Result<(), String> {
        println!("\nsite a initiates both tunnels (routevpn up NAME, through its daemon):");
        let site = &SITES[0];
        for name in TUNNELS {
            let response = self.ask(
                site,
                Request::Up {
                    name: name.to_string(),
                    wait: true,
                },
            )?;
            if !response.ok {
                return Err(format!(
                    "up {name}: {}\nsite a's daemon:\n{}site b's daemon:\n{}",
                    response.message,
                    self.log_tail(&SITES[0]),
                    self.log_tail(&SITES[1])
                ));
            }
            println!("  up {name}: {}", response.message);
            step()?;
        }
        Ok(())
    }

    fn ping_across(&self) -> Result<(), String> {
        println!("\nping from site a's LAN to site b's LAN, through each tunnel:");
        let (a, b) = (&SITES[0], &SITES[1]);
        for (index, tunnel) in TUNNELS.iter().enumerate() {
            let (source, destination) = (host(a.lan[index]), host(b.lan[index]));
            let outcome = self.namespaces[0]
                .run(|| ping::ping(source, destination, PINGS, Duration::from_secs(2)))
                .map_err(|e| format!("ping {destination}: {e}"))?;
            println!(
                "  {source} -> {destination} via {tunnel}: {}/{} replies, slowest {:.1} ms",
                outcome.received,
                outcome.sent,
                outcome.worst.as_secs_f64() * 1e3
            );
            if outcome.received == 0 {
                return Err(format!("no reply through {tunnel}"));
            }
            step()?;
        }
        Ok(())
    }

    /// Both daemons' SAs; the ESP counters show the pings went through the SAs.
    fn show_status(&self) -> Result<(), String> {
        for site in &SITES {
            let response = self.ask(site, Request::Status)?;
            println!(
                "\nstatus on site {} (as routevpn status shows it):",
                site.name
            );
            print!("{}", report::render(&response.ike_sas));
            let encrypted = |name: &str| {
                response
                    .ike_sas
                    .iter()
                    .filter(|sa| sa.name == name)
                    .flat_map(|sa| &sa.children)
                    .any(|c| c.packets_out > 0 && c.packets_in > 0)
            };
            if let Some(bare) = TUNNELS.iter().find(|t| !encrypted(t)) {
                return Err(format!(
                    "site {}: {bare}'s ESP SAs counted no packets",
                    site.name
                ));
            }
        }
        Ok(())
    }

    fn explain_kept(&self, binary: &Path) {
        let a = &SITES[0];
        let dir = self.site_dir(a);
        println!("\nkept running (routevpn demo --clean removes it all). Try:");
        println!(
            "  ip netns exec {} ping -I {} {}",
            namespace_name(a),
            host(a.lan[0]),
            host(a.other().lan[0])
        );
        println!(
            "  ip netns exec {} {} --config-dir {} --state-dir {} status",
            namespace_name(a),
            binary.display(),
            dir.join("tunnels").display(),
            dir.join("state").display()
        );
        println!("  ip -n {} xfrm state", namespace_name(a));
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if self.keep {
            for namespace in self.namespaces.drain(..) {
                namespace.leak();
            }
            return;
        }
        for child in &mut self.daemons {
            stop(child.id());
            let _ = child.wait();
        }
        // Dropping the handles unmounts the namespaces; the daemons were their last users.
        self.namespaces.clear();
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

/// SIGTERM (the daemon removes its SAs), then SIGKILL if it takes more than 5 s.
fn stop(pid: u32) {
    let pid = pid as libc::pid_t;
    // SAFETY: signalling a process we started (or recorded as ours, see `clean`).
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        // Reap it if it is our child; harmless otherwise.
        // SAFETY: waitpid with WNOHANG on a pid, no memory involved.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

fn wire_site(site: &Site) -> io::Result<()> {
    let mut rtnl = Rtnl::open()?;
    rtnl.set_up("lo")?;
    rtnl.add_dummy("lan")?;
    for address in site.wan {
        rtnl.add_address("wan", net(address))?;
    }
    for address in site.lan {
        rtnl.add_address("lan", net(address))?;
    }
    rtnl.set_up("wan")?;
    rtnl.set_up("lan")
}

fn explain_missing_support(error: &io::Error) -> String {
    if matches!(error.raw_os_error(), Some(libc::EOPNOTSUPP))
        || error.to_string().contains("Operation not supported")
        || error.to_string().contains("Unknown device type")
    {
        format!(
            "{error}: this kernel lacks a device type the demo needs \
             (integration/demo runs the demo in a VM with Debian's kernel)"
        )
    } else {
        error.to_string()
    }
}

/// `--clean`: stops the recorded daemons and deletes the recorded namespaces.
fn clean(work: &Path) -> Result<(), String> {
    let path = work.join(RECORD);
    let record: Record = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            println!("no demo to clean up ({} does not exist)", path.display());
            return Ok(());
        }
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    for pid in record.daemons {
        // Only a process that is still a routevpn daemon: the pid may have been reused.
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains("routevpn") {
            stop(pid);
        }
    }
    for name in &record.namespaces {
        netns::remove(name).map_err(|e| format!("deleting namespace {name}: {e}"))?;
    }
    std::fs::remove_dir_all(work).map_err(|e| format!("removing {}: {e}", work.display()))?;
    println!(
        "demo removed: daemons stopped, namespaces deleted, {} gone",
        work.display()
    );
    Ok(())
}
