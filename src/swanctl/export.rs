//! Profiles as swanctl.conf: the connections and secrets that give charon the same
//! negotiation (proposals, lifetimes, identities, selectors, marks / if_ids, DPD, start
//! and close actions).
//!
//! strongSwan cannot read a pre-shared key from a file, so a PSK is written into `secrets`
//! only when asked (`with_secrets`); otherwise a comment names the file that holds it.
//! Private keys are referenced by path (`secrets.private-<name>.file`), never inlined.

use std::fmt::Write;

use zeroize::Zeroizing;

use super::import::duration_text;
use crate::file;
use crate::model::{
    Auth, DpdAction, LocalCredential, LocalEndpoint, Mode, NatTraversal, PeerKey, RemoteCredential,
    SendCert, StartAction, Tunnel, TunnelKind,
};

#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Write pre-shared keys into `secrets` (read from their files).
    pub with_secrets: bool,
}

/// Why a tunnel cannot be exported.
#[derive(Debug, PartialEq, Eq)]
pub struct Unexportable {
    pub tunnel: String,
    pub reason: String,
}

/// The swanctl.conf for `tunnels`; tunnels swanctl cannot express are returned apart.
pub fn export(tunnels: &[Tunnel], options: Options) -> (String, Vec<Unexportable>) {
    let mut connections = String::new();
    let mut secrets = String::new();
    let mut refused = Vec::new();
    for tunnel in tunnels {
        match connection(tunnel, options) {
            Ok((conn, secret)) => {
                connections.push_str(&conn);
                secrets.push_str(&secret);
            }
            Err(reason) => refused.push(Unexportable {
                tunnel: tunnel.name.clone(),
                reason,
            }),
        }
    }
    let mut out = String::from("# Written by `routevpn export`.\n\nconnections {\n");
    out.push_str(&connections);
    out.push_str("}\n\nsecrets {\n");
    out.push_str(&secrets);
    out.push_str("}\n");
    (out, refused)
}

/// A value as swanctl.conf reads it back: quoted unless it is one plain word.
fn value(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:/@%-+,*[]=!".contains(c));
    if plain {
        return text.to_string();
    }
    let mut quoted = String::from("\"");
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                quoted.push('\\');
                quoted.push(c);
            }
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            '\r' => quoted.push_str("\\r"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

fn list<T>(items: &[T], show: impl Fn(&T) -> String) -> String {
    items.iter().map(show).collect::<Vec<_>>().join(", ")
}

fn action(a: StartAction) -> &'static str {
    match a {
        StartAction::Start => "start",
        StartAction::Trap => "trap",
        StartAction::None => "none",
    }
}

struct Writer {
    out: String,
    depth: usize,
}

impl Writer {
    fn open(&mut self, name: &str) {
        let _ = writeln!(self.out, "{:w$}{name} {{", "", w = self.depth * 4);
        self.depth += 1;
    }

    fn close(&mut self) {
        self.depth -= 1;
        let _ = writeln!(self.out, "{:w$}}}", "", w = self.depth * 4);
    }

    fn set(&mut self, key: &str, text: impl AsRef<str>) {
        let _ = writeln!(
            self.out,
            "{:w$}{key} = {}",
            "",
            text.as_ref(),
            w = self.depth * 4
        );
    }

    fn comment(&mut self, text: &str) {
        let _ = writeln!(self.out, "{:w$}# {text}", "", w = self.depth * 4);
    }
}

fn connection(t: &Tunnel, options: Options) -> Result<(String, String), String> {
    let Auth::Ike(auth) = &t.ike.auth else {
        return Err("manual keying has no swanctl.conf equivalent".into());
    };
    let mut w = Writer {
        out: String::new(),
        depth: 1,
    };
    w.open(&t.name);
    w.set("version", "2");
    if let LocalEndpoint::Address(addr) = t.local {
        w.set("local_addrs", addr.to_string());
    }
    w.set("remote_addrs", t.remote.to_string());
    if t.ike.remote_port != 500 {
        w.set("remote_port", t.ike.remote_port.to_string());
    }
    w.set("proposals", list(&t.ike.proposals, |p| p.keywords()));
    w.set("rekey_time", duration_text(t.ike.rekey_time));
    w.set("over_time", duration_text(t.ike.over_time));
    w.set("rand_time", duration_text(t.ike.rand_time));
    w.set("dpd_delay", duration_text(t.ike.dpd.delay));
    w.set("dpd_timeout", duration_text(t.ike.dpd.timeout));
    let encap = t.ike.nat_traversal == NatTraversal::Force;
    w.set("encap", if encap { "yes" } else { "no" });
    // What routevpn does and charon does not by default: no MOBIKE, endless retries.
    w.set("mobike", "no");
    w.set("keyingtries", "0");
    let mut secrets = Writer {
        out: String::new(),
        depth: 1,
    };
    let signs = matches!(auth.local, LocalCredential::PublicKey { .. });
    if let LocalCredential::PublicKey { certificate, .. } = &auth.local {
        if certificate.is_some() {
            let send = match auth.send_cert {
                SendCert::Always => "always",
                SendCert::IfAsked => "ifasked",
                SendCert::Never => "never",
            };
            w.set("send_cert", send);
        }
    }
    let local_id = t
        .local_id
        .as_ref()
        .map(ToString::to_string)
        .or(match t.local {
            LocalEndpoint::Address(a) => Some(a.to_string()),
            LocalEndpoint::DefaultRoute => None,
        });
    w.open("local");
    w.set("auth", if signs { "pubkey" } else { "psk" });
    if let Some(id) = &t.local_id {
        w.set("id", value(&id.to_string()));
    }
    match &auth.local {
        LocalCredential::PublicKey {
            private_key,
            certificate,
        } => {
            if let Some(cert) = certificate {
                w.set("certs", value(&cert.to_string_lossy()));
            }
            secrets.open(&format!("private-{}", t.name));
            secrets.set("file", value(&private_key.to_string_lossy()));
            secrets.close();
        }
        LocalCredential::Psk { .. } => {}
    }
    w.close();
    w.open("remote");
    let remote_id = t.remote_id.to_string();
    match &auth.remote {
        RemoteCredential::Psk { .. } => w.set("auth", "psk"),
        RemoteCredential::PublicKey { key } => {
            w.set("auth", "pubkey");
            match key {
                PeerKey::File(path) => w.set("pubkeys", value(&path.to_string_lossy())),
                PeerKey::Rfc3110(_) => {
                    return Err("remote_public_key is inline (0s…): swanctl.conf references public keys by file; save it in a PEM file".into())
                }
            }
        }
        RemoteCredential::Certificate { ca, crl } => {
            w.set("auth", "pubkey");
            w.set("cacerts", list(ca, |p| value(&p.to_string_lossy())));
            if !crl.is_empty() {
                w.comment(&format!(
                    "CRLs: charon loads them from swanctl/x509crl/: {}",
                    list(crl, |p| p.display().to_string())
                ));
            }
        }
    }
    w.set("id", value(&remote_id));
    w.close();
    children(&mut w, t);
    w.close();
    if let Some(psk) = auth.psk_file() {
        psk_secret(
            &mut secrets,
            t,
            psk,
            local_id.as_deref(),
            &remote_id,
            options,
        )?;
    }
    Ok((w.out, secrets.out))
}

fn children(w: &mut Writer, t: &Tunnel) {
    let dpd_action = match t.ike.dpd.action {
        DpdAction::Clear => "clear",
        DpdAction::Restart => "restart",
        DpdAction::Trap => "trap",
    };
    w.open("children");
    for child in &t.children {
        w.open(&child.name);
        w.set("local_ts", list(&child.local_ts, ToString::to_string));
        w.set("remote_ts", list(&child.remote_ts, ToString::to_string));
        w.set(
            "esp_proposals",
            list(&child.esp_proposals, |p| p.keywords()),
        );
        let mode = match child.mode {
            Mode::Tunnel => "tunnel",
            Mode::Transport => "transport",
        };
        w.set("mode", mode);
        w.set("rekey_time", duration_text(child.rekey_time));
        w.set("life_time", duration_text(child.life_time));
        w.set("rand_time", duration_text(child.rand_time));
        for (key, n) in [
            ("rekey_bytes", child.rekey_bytes),
            ("life_bytes", child.life_bytes),
            ("rekey_packets", child.rekey_packets),
            ("life_packets", child.life_packets),
        ] {
            if n != 0 {
                w.set(key, n.to_string());
            }
        }
        w.set("replay_window", child.replay_window.to_string());
        w.set("start_action", action(t.ike.start_action));
        w.set("close_action", action(t.ike.close_action));
        w.set("dpd_action", dpd_action);
        let unique = |n: Option<u32>| n.map_or("%unique".to_string(), |n| n.to_string());
        match t.kind {
            TunnelKind::Vti => {
                w.set("mark_in", unique(t.mark));
                w.set("mark_out", unique(t.mark));
            }
            TunnelKind::Xfrm => {
                w.set("if_id_in", unique(t.if_id));
                w.set("if_id_out", unique(t.if_id));
            }
            TunnelKind::Gre => {}
        }
        w.close();
    }
    w.close();
}

/// `secrets.ike-<name>` for the tunnel's PSK: the key itself only with `with_secrets`.
fn psk_secret(
    w: &mut Writer,
    t: &Tunnel,
    file: &std::path::Path,
    local_id: Option<&str>,
    remote_id: &str,
    options: Options,
) -> Result<(), String> {
    let section = format!("ike-{}", t.name);
    if !options.with_secrets {
        w.comment(&format!(
            "{section}: the pre-shared key is in {} (strongSwan reads no key file: `routevpn export --with-secrets` writes it here)",
            crate::profile::shown_secret_path(file)
        ));
        return Ok(());
    }
    let content = Zeroizing::new(file::read(file).map_err(|e| {
        format!(
            "pre-shared key {}: {e}",
            crate::profile::shown_secret_path(file)
        )
    })?);
    let mut key: &[u8] = &content;
    key = key.strip_suffix(b"\n").unwrap_or(key);
    key = key.strip_suffix(b"\r").unwrap_or(key);
    let text = match std::str::from_utf8(key) {
        // strongSwan would decode a text key starting with `0s` as base64: write it as hex.
        Ok(text) if !text.chars().any(char::is_control) && !text.starts_with("0s") => {
            Zeroizing::new(value(text))
        }
        _ => {
            let mut hex = Zeroizing::new(String::from("0x"));
            key.iter().for_each(|b| {
                let _ = write!(hex, "{b:02x}");
            });
            hex
        }
    };
    w.open(&section);
    if let Some(local) = local_id {
        w.set("id-local", value(local));
    }
    w.set("id-remote", value(remote_id));
    w.set("secret", text.as_str());
    w.close();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{load_sources, SourceFile};

    /// The `secret = …` line export writes for a key file holding `key`.
    fn secret_line(key: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let psk = dir.path().join("k.psk");
        std::fs::write(&psk, key).unwrap();
        let text = format!(
            "kind = \"vti\"\nremote = \"198.51.100.7\"\n[ike]\npsk_file = \"{}\"\n",
            psk.display()
        );
        let source = SourceFile::new(dir.path().join("t.toml"), text);
        let options = crate::profile::Options {
            insecure_secrets: true,
        };
        let tunnels = load_sources(vec![source], options, Vec::new())
            .tunnels
            .unwrap();
        let (plain, _) = export(&tunnels, Options::default());
        assert!(
            plain.contains("# ike-t: the pre-shared key is in "),
            "{plain}"
        );
        assert!(!plain.contains("secret ="), "{plain}");
        let (text, refused) = export(&tunnels, Options { with_secrets: true });
        assert!(refused.is_empty());
        let line = text.lines().find(|l| l.contains("secret =")).unwrap();
        line.trim().to_string()
    }

    #[test]
    fn psks_are_written_in_the_form_strongswan_reads_the_same() {
        assert_eq!(
            secret_line(b"simple-key-0123456\n"),
            "secret = simple-key-0123456"
        );
        assert_eq!(
            secret_line(b"with \"quotes\" # and \\\n"),
            r#"secret = "with \"quotes\" # and \\""#
        );
        assert_eq!(
            secret_line(b"0xdeadbeefdeadbeef"),
            "secret = 0xdeadbeefdeadbeef"
        );
        // Literal text that strongSwan would decode as base64, and bytes that are no text.
        assert_eq!(
            secret_line(b"0sAAAAAAAAAAAAAAAA"),
            "secret = 0x307341414141414141414141414141414141"
        );
        assert_eq!(
            secret_line(b"\xff\x00key-bytes-long\n"),
            "secret = 0xff006b65792d62797465732d6c6f6e67"
        );
    }
}
