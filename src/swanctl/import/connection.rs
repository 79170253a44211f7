//! One `connections.<name>` section as one profile.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::credentials::{self, Store};
use super::render::{Profile, Table};
use super::values;
use super::{ImportedProfile, Report, SecretFile};
use crate::model::TrafficSelector;
use crate::profile;
use crate::swanctl::tree::{Location, Section, Value};

/// IP protocol number of GRE.
const GRE: u8 = 47;
/// Linux interface names hold at most 15 bytes.
const IFNAMSIZ: usize = 15;

/// swanctl options whose values are settings, never secrets: messages may show them.
const PLAIN_OPTIONS: &[&str] = &[
    "mobike",
    "fragmentation",
    "unique",
    "reauth_time",
    "local_port",
    "send_certreq",
    "aggressive",
    "pull",
    "childless",
    "ipcomp",
    "policies",
    "policies_fwd_out",
    "hostaccess",
    "mode",
    "priority",
    "reqid",
    "inactivity",
    "hw_offload",
    "copy_df",
    "copy_ecn",
    "copy_dscp",
    "revocation",
    "certs",
    "cacerts",
    "eap_id",
    "xauth_id",
    "aaa_id",
];

/// `key = value` for a setting, the key alone for an unknown option: its value may be a
/// secret written in the wrong place.
fn shown_option(key: &str, value: &str) -> String {
    if PLAIN_OPTIONS.contains(&key) {
        format!("{key} = {value}")
    } else {
        format!("`{key}`")
    }
}

/// `prefix` and the connection's name; one too long for IFNAMSIZ keeps its beginning and
/// ends in `-` and 4 hex digits of a hash of the whole name, so that connections whose
/// names share a beginning get different devices, the same on every import.
fn device_name(prefix: &str, name: &str) -> String {
    let full = format!("{prefix}{name}");
    if full.len() <= IFNAMSIZ {
        return full;
    }
    // FNV-1a: small, stable across versions and platforms.
    let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let keep: String = name.chars().take(IFNAMSIZ - prefix.len() - 5).collect();
    format!("{prefix}{keep}-{:04x}", hash & 0xffff)
}

/// One auth round (`local` or `remote`).
#[derive(Default)]
struct Round<'a> {
    /// `psk` or `pubkey`; swanctl's default is `pubkey`.
    auth: Option<&'static str>,
    id: Option<&'a Value>,
    certs: Vec<PathBuf>,
    pubkeys: Vec<PathBuf>,
    cacerts: Vec<PathBuf>,
    at: Option<&'a Location>,
}

/// One setting that must be the same for every child, as routevpn has it per tunnel.
struct Shared<'a, T> {
    what: &'static str,
    value: Option<(T, &'a Location)>,
}

impl<'a, T: PartialEq + Copy + std::fmt::Debug> Shared<'a, T> {
    fn new(what: &'static str) -> Self {
        Shared { what, value: None }
    }

    fn set(&mut self, value: T, at: &'a Location, report: &mut Report) {
        match &self.value {
            Some((first, _)) if *first != value => report.unsupported(
                at,
                format!(
                    "{} differing between children (routevpn has one per tunnel)",
                    self.what
                ),
            ),
            Some(_) => {}
            None => self.value = Some((value, at)),
        }
    }

    fn get(&self) -> Option<T> {
        self.value.map(|(v, _)| v)
    }
}

struct Mapper<'a> {
    conn: &'a Section,
    store: &'a Store,
    report: &'a mut Report,
    profile: Profile,
    notes: Vec<String>,
    allow_legacy: bool,
}

pub fn map(conn: &Section, store: &Store, report: &mut Report) -> Option<ImportedProfile> {
    let errors_before = report.diagnostics.iter().filter(|d| d.is_error()).count();
    let name = conn.name.clone();
    if let Err(why) = profile::check_object_name(&name) {
        report.error(&conn.at, format!("connection `{name}`: {why}"));
        return None;
    }
    let mut m = Mapper {
        conn,
        store,
        report,
        profile: Profile::default(),
        notes: Vec::new(),
        allow_legacy: false,
    };
    let secrets = m.connection();
    let errors_after = m.report.diagnostics.iter().filter(|d| d.is_error()).count();
    if errors_after > errors_before {
        return None;
    }
    let Mapper {
        mut profile, notes, ..
    } = m;
    profile.comments.push(format!(
        "Imported by `routevpn import` from connection `{name}` of {}:{}.",
        conn.at.file.display(),
        conn.at.line
    ));
    profile.comments.extend(notes.iter().cloned());
    Some(ImportedProfile {
        text: profile.text(),
        name,
        secrets,
        notes,
    })
}

impl<'a> Mapper<'a> {
    fn connection(&mut self) -> Vec<SecretFile> {
        let conn = self.conn;
        let mut ike = Table::default();
        let mut remote: Option<IpAddr> = None;
        let mut local: Option<IpAddr> = None;
        let mut dpd_delay = None;
        let mut dpd_timeout = None;
        let mut send_cert = None;
        for (key, value) in &conn.values {
            let v = value.text.as_str();
            let at = &value.at;
            match key.as_str() {
                "local_addrs" => local = self.local_addr(value),
                "remote_addrs" => match value.items().as_slice() {
                    [one] => match one.parse::<IpAddr>() {
                        Ok(addr) => remote = Some(addr),
                        Err(_) => self.report.unsupported(at, format!("remote_addrs \"{one}\": routevpn takes one IP address (names are not resolved)")),
                    },
                    _ => self.report.unsupported(at, format!("remote_addrs \"{v}\": routevpn takes exactly one peer address")),
                },
                "local_port" if v == "500" => {}
                "remote_port" => match v.parse::<u16>() {
                    Ok(port) if port != 0 => ike.raw("remote_port", port.to_string()),
                    _ => self.report.error(at, format!("remote_port \"{v}\" is no port")),
                },
                "version" if v == "0" || v == "2" => {}
                "version" => self.report.unsupported(at, format!("version = {v} (routevpn speaks IKEv2 only)")),
                "proposals" => {
                    let items = self.proposals(value, true);
                    ike.strings("proposals", &items);
                }
                "rekey_time" | "over_time" | "rand_time" => {
                    if let Some(d) = self.duration(value, key) {
                        ike.duration(key, d);
                    }
                }
                "reauth_time" if self.duration(value, key).is_some_and(|d| d.is_zero()) => {}
                "dpd_delay" => dpd_delay = self.duration(value, key),
                "dpd_timeout" => dpd_timeout = self.duration(value, key),
                "encap" => match values::boolean(v) {
                    Ok(true) => ike.string("nat_traversal", "force"),
                    Ok(false) => {}
                    Err(why) => self.report.error(at, format!("encap: {why}")),
                },
                "mobike" if values::boolean(v) == Ok(false) => {}
                "fragmentation" if matches!(v, "yes" | "accept") => {}
                "keyingtries" if v == "0" => {}
                "keyingtries" => self.report.unsupported(at, format!("keyingtries = {v} (routevpn retries without limit, keyingtries = 0)")),
                "unique" if v == "no" => {}
                "send_certreq" if values::boolean(v) == Ok(true) => {}
                "send_cert" => match v {
                    "always" | "ifasked" | "never" => send_cert = Some(v),
                    _ => self.report.unsupported(at, format!("send_cert = {v}")),
                },
                _ => self.report.unsupported(at, shown_option(key, v)),
            }
        }
        // Without a peer address the profile is refused, but the rest is still checked so
        // that one run reports every problem.
        let remote = remote.unwrap_or_else(|| {
            let why = format!(
                "connection `{}` has no usable remote_addrs: routevpn needs the peer's address",
                conn.name
            );
            self.report.error(&conn.at, why);
            IpAddr::from([0, 0, 0, 0])
        });
        let (local_round, remote_round) = (self.round("local"), self.round("remote"));
        let secrets = self.authentication(
            &mut ike,
            &local_round,
            &remote_round,
            local,
            remote,
            send_cert,
        );
        let actions = self.children(remote);
        if self.allow_legacy {
            ike.raw("allow_legacy", "true");
            self.notes
                .push("allow_legacy = true: a proposal uses SHA-1 or MODP-1024".into());
        }
        let mut dpd = Table::default();
        let delay = dpd_delay.unwrap_or_default();
        dpd.duration("delay", delay);
        // charon's IKEv2 gives up on a peer by its retransmissions, not dpd_timeout; routevpn
        // needs a timeout beyond the delay (150 s by default).
        let timeout = dpd_timeout.or_else(|| {
            let long = (delay >= crate::model::Dpd::default().timeout).then_some(delay * 5);
            if let Some(t) = long {
                let t = super::render::duration_text(t);
                self.notes
                    .push(format!("dpd timeout {t}: five times dpd_delay"));
            }
            long
        });
        if let Some(timeout) = timeout {
            dpd.duration("timeout", timeout);
        }
        dpd.string("action", actions.dpd);
        ike.raw("dpd", dpd.inline());
        ike.string("start_action", actions.start);
        ike.string("close_action", actions.close);
        self.profile.ike = ike;
        self.profile
            .top
            .raw("remote", super::render::quoted(&remote.to_string()));
        secrets
    }

    fn local_addr(&mut self, value: &Value) -> Option<IpAddr> {
        match value.items().as_slice() {
            [] | ["%any"] => None,
            [one] => match one.parse::<IpAddr>() {
                Ok(addr) => {
                    self.profile.top.string("local", &addr.to_string());
                    Some(addr)
                }
                Err(_) => {
                    self.report.unsupported(
                        &value.at,
                        format!("local_addrs \"{one}\": routevpn takes one IP address"),
                    );
                    None
                }
            },
            _ => {
                self.report.unsupported(
                    &value.at,
                    format!("local_addrs \"{}\": routevpn takes one address", value.text),
                );
                None
            }
        }
    }

    fn duration(&mut self, value: &Value, key: &str) -> Option<std::time::Duration> {
        values::duration(&value.text)
            .map_err(|why| self.report.error(&value.at, format!("{key}: {why}")))
            .ok()
    }

    /// Proposals checked here, so that a bad one is located in the swanctl.conf.
    fn proposals(&mut self, value: &Value, ike: bool) -> Vec<String> {
        let items: Vec<String> = value.items().iter().map(|s| s.to_string()).collect();
        for item in &items {
            if item == "default" {
                continue;
            }
            let parse = |legacy| {
                if ike {
                    crate::proposal::parse_ike(item, legacy).map(drop)
                } else {
                    crate::proposal::parse_esp(item, legacy).map(drop)
                }
            };
            match (parse(false), parse(true)) {
                (Ok(()), _) => {}
                (Err(_), Ok(())) => self.allow_legacy = true,
                (Err(e), Err(_)) => {
                    let key = if ike { "proposals" } else { "esp_proposals" };
                    self.report
                        .unsupported(&value.at, format!("{key} \"{item}\": {}", e.message));
                }
            }
        }
        items
    }

    /// The `local*` or `remote*` section: one round only.
    fn round(&mut self, side: &'static str) -> Round<'a> {
        let conn = self.conn;
        let mut sections = conn.sections.iter().filter(|s| s.name.starts_with(side));
        let mut round = Round::default();
        let Some(section) = sections.next() else {
            return round;
        };
        for extra in sections {
            self.report.unsupported(
                &extra.at,
                format!("{}: a second authentication round", extra.name),
            );
        }
        round.at = Some(&section.at);
        let dir = |sub: &str| self.store.dir.join(sub);
        for (key, value) in &section.values {
            let v = value.text.as_str();
            let files = |sub: &str| {
                value
                    .items()
                    .iter()
                    .map(|f| dir(sub).join(f))
                    .collect::<Vec<_>>()
            };
            match (key.as_str(), side) {
                ("auth", _) => match v {
                    "psk" => round.auth = Some("psk"),
                    _ if ["pubkey", "rsa", "ecdsa", "ed25519"]
                        .iter()
                        .any(|p| v.starts_with(p)) =>
                    {
                        round.auth = Some("pubkey")
                    }
                    _ => {
                        // Neither method: no follow-on complaint about missing keys.
                        round.auth = Some("");
                        let what = format!("{}.auth = {v}", section.name);
                        self.report.unsupported(&value.at, what)
                    }
                },
                ("id", _) => round.id = Some(value),
                ("certs", "local") => round.certs = files("x509"),
                ("pubkeys", _) => round.pubkeys = files("pubkey"),
                ("cacerts", "remote") => round.cacerts = files("x509ca"),
                ("revocation", "remote") if v == "relaxed" => {}
                _ => self.report.unsupported(
                    &value.at,
                    format!("{}.{}", section.name, shown_option(key, v)),
                ),
            }
        }
        for sub in &section.sections {
            self.report
                .unsupported(&sub.at, format!("{}.{}", section.name, sub.name));
        }
        round
    }

    fn identity(&mut self, round: &Round<'_>, key: &str) -> Option<String> {
        let value = round.id?;
        if value.text == "%any" {
            if key == "remote_id" {
                self.report.unsupported(
                    &value.at,
                    "remote id %any (routevpn pins the peer's identity)",
                );
            }
            return None;
        }
        match profile::parse_identity(&value.text) {
            Ok(_) => {
                self.profile.top.string(key, &value.text);
                Some(value.text.clone())
            }
            Err(why) => {
                self.report.error(&value.at, why);
                None
            }
        }
    }

    fn authentication(
        &mut self,
        ike: &mut Table,
        local: &Round<'_>,
        remote: &Round<'_>,
        local_addr: Option<IpAddr>,
        remote_addr: IpAddr,
        send_cert: Option<&str>,
    ) -> Vec<SecretFile> {
        let local_id = self.identity(local, "local_id");
        let remote_id = self.identity(remote, "remote_id");
        let (ours, theirs) = (
            local.auth.unwrap_or("pubkey"),
            remote.auth.unwrap_or("pubkey"),
        );
        ike.string("auth", ours);
        ike.string("remote_auth", theirs);
        let mut secrets = Vec::new();
        if ours == "psk" || theirs == "psk" {
            let local_key = local_id
                .clone()
                .or(local_addr.map(|a| a.to_string()))
                .unwrap_or_else(|| "%any".into());
            let remote_key = remote_id.clone().unwrap_or_else(|| remote_addr.to_string());
            match self.store.psk_for(&local_key, &remote_key) {
                Some(psk) => {
                    let path = PathBuf::from(format!("secrets/{}.psk", self.conn.name));
                    ike.string("psk_file", &path.to_string_lossy());
                    secrets.push(SecretFile {
                        path,
                        content: psk.content.clone(),
                    });
                }
                None => self.report.error(
                    &self.conn.at,
                    format!("no secrets.ike-* for identities {local_key} and {remote_key}"),
                ),
            }
        }
        if ours == "pubkey" {
            self.our_key(ike, local);
            if let Some(send_cert) = send_cert {
                ike.string("send_cert", send_cert);
            }
        }
        if theirs == "pubkey" {
            self.their_key(ike, remote, remote_id.is_some());
        }
        if remote_id.is_none() && remote.id.is_none() {
            self.notes.push(format!(
                "remote.id unset: the peer must identify as its address {remote_addr}"
            ));
        }
        secrets
    }

    fn our_key(&mut self, ike: &mut Table, local: &Round<'_>) {
        let at = local.at.unwrap_or(&self.conn.at).clone();
        if local.certs.len() > 1 || local.pubkeys.len() > 1 {
            self.report
                .unsupported(&at, "local: more than one certificate or public key");
            return;
        }
        let wanted = match (local.certs.first(), local.pubkeys.first()) {
            (Some(cert), _) => Some(credentials::certificate_key(cert)),
            (None, Some(key)) => Some(credentials::public_key(key)),
            (None, None) => None,
        };
        let private_key = match wanted {
            Some(Ok(public)) => self.store.private_key_for(&public).map(Path::to_path_buf),
            Some(Err(why)) => {
                self.report.error(&at, why);
                return;
            }
            None if self.store.private_keys.len() == 1 => self.store.private_keys.first().cloned(),
            None => None,
        };
        let Some(private_key) = private_key else {
            self.report.error(&at, "local: no private key for our certificate or public key (private/, rsa/, ecdsa/, pkcs8/ or secrets.private-*)");
            return;
        };
        ike.string("private_key", &private_key.to_string_lossy());
        if let Some(cert) = local.certs.first() {
            ike.string("certificate", &cert.to_string_lossy());
        }
    }

    fn their_key(&mut self, ike: &mut Table, remote: &Round<'_>, has_id: bool) {
        let at = remote.at.unwrap_or(&self.conn.at).clone();
        match remote.pubkeys.as_slice() {
            [one] => return ike.string("remote_public_key", &one.to_string_lossy()),
            [] => {}
            _ => {
                return self
                    .report
                    .unsupported(&at, "remote: more than one public key")
            }
        }
        let cas = if remote.cacerts.is_empty() {
            &self.store.cas
        } else {
            &remote.cacerts
        };
        if cas.is_empty() {
            return self.report.error(
                &at,
                "remote: pubkey authentication with neither pubkeys nor a CA (x509ca/ or cacerts)",
            );
        }
        if !has_id {
            return self.report.error(&at, "remote: no id: routevpn needs the identity of the peer whose certificate it accepts");
        }
        let paths: Vec<String> = cas
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        ike.strings("ca", &paths);
        if !self.store.crls.is_empty() {
            let crls: Vec<String> = self
                .store
                .crls
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            ike.strings("crl", &crls);
        }
    }
}

/// The per-tunnel actions gathered from the children, as profile values.
struct Actions {
    start: &'static str,
    close: &'static str,
    dpd: &'static str,
}

impl Mapper<'_> {
    fn children(&mut self, remote: IpAddr) -> Actions {
        let conn = self.conn;
        let mut start = Shared::new("start_action");
        let mut close = Shared::new("close_action");
        let mut dpd = Shared::new("dpd_action");
        let mut mark = Shared::new("mark_in / mark_out");
        let mut if_id = Shared::new("if_id_in / if_id_out");
        let mut remote_ts: Vec<TrafficSelector> = Vec::new();
        let mut transport_gre = true;
        let mut any_child = false;
        for section in &conn.sections {
            if section.name.starts_with("local") || section.name.starts_with("remote") {
                continue;
            }
            if section.name != "children" {
                self.report
                    .unsupported(&section.at, format!("section `{}`", section.name));
                continue;
            }
            for (key, value) in &section.values {
                self.report.error(
                    &value.at,
                    format!("children.{key}: a child must be a section"),
                );
            }
            for child in &section.sections {
                any_child = true;
                let mut table = Table::default();
                if let Err(why) = profile::check_object_name(&child.name) {
                    self.report
                        .error(&child.at, format!("child `{}`: {why}", child.name));
                }
                table.string("name", &child.name);
                let mut mode = "tunnel";
                let mut gre_ts = false;
                let mut marks = [None, None];
                let mut if_ids = [None, None];
                let (mut has_local_ts, mut has_remote_ts) = (false, false);
                for (key, value) in &child.values {
                    let v = value.text.as_str();
                    let at = &value.at;
                    match key.as_str() {
                        "local_ts" | "remote_ts" => {
                            let parsed = self.selectors(value, key);
                            gre_ts |= parsed.iter().any(|ts| ts.protocol == Some(GRE));
                            if key == "remote_ts" {
                                has_remote_ts = true;
                                remote_ts.extend(parsed);
                            } else {
                                has_local_ts = true;
                            }
                            table.strings(key, &value.items());
                        }
                        "esp_proposals" => {
                            let items = self.proposals(value, false);
                            table.strings(key, &items);
                        }
                        "mode" if v == "tunnel" || v == "transport" => {
                            mode = if v == "tunnel" { "tunnel" } else { "transport" };
                            table.string("mode", mode);
                        }
                        "start_action" | "close_action" | "dpd_action" => match values::action(v) {
                            Ok(action) => {
                                let shared = match key.as_str() {
                                    "start_action" => &mut start,
                                    "close_action" => &mut close,
                                    _ => &mut dpd,
                                };
                                shared.set(action, at, self.report);
                            }
                            Err(why) => self.report.unsupported(at, format!("{key}: {why}")),
                        },
                        "mark_in" | "mark_out" | "if_id_in" | "if_id_out" => match values::mark(v) {
                            Ok(n) => {
                                let slot = match key.as_str() {
                                    "mark_in" => &mut marks[0],
                                    "mark_out" => &mut marks[1],
                                    "if_id_in" => &mut if_ids[0],
                                    _ => &mut if_ids[1],
                                };
                                *slot = Some((n, at));
                            }
                            Err(why) => self.report.unsupported(at, format!("{key}: {why}")),
                        },
                        "rekey_time" | "life_time" | "rand_time" => {
                            if let Some(d) = self.duration(value, key) {
                                table.duration(key, d);
                            }
                        }
                        "rekey_bytes" | "life_bytes" | "rekey_packets" | "life_packets" => {
                            match values::volume(v) {
                                Ok(n) => table.raw(key, n.to_string()),
                                Err(why) => self.report.error(at, format!("{key}: {why}")),
                            }
                        }
                        "replay_window" => match v.parse::<u32>() {
                            Ok(n) => table.raw(key, n.to_string()),
                            Err(_) => self.report.error(at, format!("replay_window \"{v}\" is no number")),
                        },
                        "updown" => self.report.unsupported(at, "updown (routevpn runs no updown script: routes and addresses are in the profile)"),
                        "ipcomp" | "hostaccess" if values::boolean(v) == Ok(false) => {}
                        "policies" if values::boolean(v) == Ok(true) => {}
                        _ => self.report.unsupported(at, shown_option(key, v)),
                    }
                }
                // swanctl's selectors default to `dynamic`, routevpn's to everything.
                if !has_local_ts {
                    table.strings("local_ts", &["dynamic"]);
                }
                if !has_remote_ts {
                    table.strings("remote_ts", &["dynamic"]);
                    remote_ts.push(TrafficSelector {
                        net: None,
                        protocol: None,
                        ports: None,
                    });
                }
                transport_gre &= mode == "transport" && gre_ts;
                if mode == "transport" && !gre_ts {
                    self.report.unsupported(&child.at, format!("child `{}`: transport mode without [gre] selectors (routevpn carries transport mode for GRE only)", child.name));
                }
                self.pair(&mut mark, marks);
                self.pair(&mut if_id, if_ids);
                self.profile.children.push(table);
            }
        }
        if !any_child {
            self.report.error(
                &conn.at,
                format!("connection `{}` has no children", conn.name),
            );
        }
        self.kind(mark.get(), if_id.get(), transport_gre, &remote_ts, remote);
        Actions {
            start: start.get().unwrap_or("none"),
            close: close.get().unwrap_or("none"),
            dpd: match dpd.get().unwrap_or("none") {
                "start" => "restart",
                "trap" => "trap",
                _ => "clear",
            },
        }
    }

    fn selectors(&mut self, value: &Value, key: &str) -> Vec<TrafficSelector> {
        let mut out = Vec::new();
        for item in value.items() {
            match profile::parse_traffic_selector(item) {
                Ok(ts) => out.push(ts),
                Err(why) => self
                    .report
                    .unsupported(&value.at, format!("{key} \"{item}\": {why}")),
            }
        }
        out
    }

    /// `*_in` and `*_out` of one child: routevpn uses one value both ways.
    fn pair<'l>(
        &mut self,
        shared: &mut Shared<'l, Option<u32>>,
        [inbound, outbound]: [Option<(Option<u32>, &'l Location)>; 2],
    ) {
        match (inbound, outbound) {
            (None, None) => {}
            (Some((a, at)), Some((b, _))) if a == b => shared.set(a, at, self.report),
            (Some((_, at)), _) | (None, Some((_, at))) => self.report.unsupported(
                at,
                format!(
                    "{}: in and out differ (routevpn uses one value both ways)",
                    shared.what
                ),
            ),
        }
    }

    fn kind(
        &mut self,
        mark: Option<Option<u32>>,
        if_id: Option<Option<u32>>,
        transport_gre: bool,
        remote_ts: &[TrafficSelector],
        remote: IpAddr,
    ) {
        let name = &self.conn.name;
        let (kind, prefix) = match (mark, if_id) {
            (Some(_), Some(_)) => {
                self.report.unsupported(&self.conn.at, "both marks and if_ids (routevpn: a VTI has a mark, an XFRM interface an if_id)");
                return;
            }
            (Some(mark), None) => {
                self.fixed_or_allocated("mark", mark, "the VTI's mark");
                ("vti", "vti-")
            }
            (None, Some(if_id)) => {
                self.fixed_or_allocated("if_id", if_id, "the XFRM interface's if_id");
                ("xfrm", "xfrm-")
            }
            (None, None) if transport_gre => ("gre", "gre-"),
            (None, None) => {
                self.notes.push(
                    "policy-based in swanctl.conf (no mark, no if_id): imported as a route-based XFRM interface whose routes are the remote traffic selectors".into(),
                );
                self.routes(remote_ts, remote);
                ("xfrm", "xfrm-")
            }
        };
        let device = device_name(prefix, name);
        let top = &mut self.profile.top;
        top.string("kind", kind);
        self.profile.interface.string("name", &device);
        self.notes
            .push(format!("device {device}, no inner addresses"));
    }

    /// `key = n`, or nothing for `%unique`: routevpn allocates one.
    fn fixed_or_allocated(&mut self, key: &str, value: Option<u32>, what: &str) {
        match value {
            Some(n) => self.profile.top.raw(key, n.to_string()),
            None => self
                .notes
                .push(format!("{key} %unique: routevpn allocates {what}")),
        }
    }

    fn routes(&mut self, remote_ts: &[TrafficSelector], remote: IpAddr) {
        let mut seen = Vec::new();
        for ts in remote_ts {
            let Some(net) = ts.net else {
                self.notes
                    .push("remote_ts dynamic (the peer's own address): no route".into());
                continue;
            };
            if ts.protocol.is_some() || ts.ports.is_some() {
                self.notes.push(format!(
                    "remote_ts {ts} limits protocol or ports: no route, add one if wanted"
                ));
                continue;
            }
            if net.contains(&remote) {
                self.notes.push(format!("remote_ts {net} covers the peer's address {remote}: no route (IKE would enter the tunnel)"));
                continue;
            }
            if !seen.contains(&net) {
                seen.push(net);
                let mut route = Table::default();
                route.string("to", &net.to_string());
                self.profile.routes.push(route);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_fit_and_long_ones_stay_apart() {
        assert_eq!(device_name("vti-", "aws-tunnel1"), "vti-aws-tunnel1");
        let a = device_name("xfrm-", "datacenter-frankfurt");
        let b = device_name("xfrm-", "datacenter-zurich");
        assert_eq!((a.len(), b.len()), (IFNAMSIZ, IFNAMSIZ));
        assert!(a.starts_with("xfrm-data") && b.starts_with("xfrm-data"));
        assert_ne!(a, b);
        assert_eq!(a, device_name("xfrm-", "datacenter-frankfurt"));
    }
}
