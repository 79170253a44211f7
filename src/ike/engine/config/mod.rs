//! What the engine is configured with: one [`EngineConnection`] per tunnel, plus engine-wide
//! timers. The driver resolves addresses and reads the PSK; the engine never does I/O.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::ike::codec::Identity as WireIdentity;
use crate::ike::crypto::Secret;
use crate::ike::ts::{TrafficSelector, TsRange};

use super::authenticators::{LocalAuth, RemoteAuth};
use super::cookie::CookieConfig;

mod choices;
mod connection;

pub(crate) use choices::secs;
pub use choices::{
    Dn, Dpd, DpdAction, Identity, KeyId, Mode, NatTraversal, StartAction, CHILD_REKEY_TIME,
    IKE_REKEY_TIME, MAX_REPLAY_WINDOW, REPLAY_WINDOW,
};
pub(crate) use connection::display_list;
pub use connection::{ChildConfig, IkeConfig};

/// Engine-wide settings.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub retransmit: RetransmitConfig,
    /// A responder forgets an IKE SA whose IKE_AUTH request does not arrive in this time.
    pub half_open_timeout: Duration,
    pub cookies: CookieConfig,
    /// Our IKE and NAT-T ports (the driver's sockets).
    pub ike_port: u16,
    pub natt_port: u16,
    /// RFC 7427: announce SIGNATURE_HASH_ALGORITHMS and sign with method 14 when the peer
    /// announces them too (strongSwan's `charon.signature_authentication`). Off: only
    /// the classic signature methods, as for peers that predate RFC 7427.
    pub signature_authentication: bool,
    /// The largest IP packet an IKE fragment may fill (RFC 7383; strongSwan's
    /// `charon.fragment_size`). 1280, the IPv6 minimum MTU, for both families as
    /// strongSwan does: IPv4 paths below it are rare, and RFC 7383 section 2.5.1's 576 would
    /// split a typical certificate IKE_AUTH into four or more fragments.
    pub fragment_size: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            retransmit: RetransmitConfig::default(),
            half_open_timeout: Duration::from_secs(30),
            cookies: CookieConfig::default(),
            ike_port: crate::ike::engine::IKE_PORT,
            natt_port: crate::ike::engine::NATT_PORT,
            signature_authentication: true,
            fragment_size: 1280,
        }
    }
}

/// Retransmission of our outstanding request (strongSwan's `retransmit_*` settings): the
/// n-th retransmit (n = 1..=tries) happens `timeout * base^(n-1)` after the previous
/// send, and the exchange is given up `timeout * base^tries` after the last retransmit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetransmitConfig {
    pub timeout: Duration,
    pub base: f64,
    pub tries: u32,
}

impl Default for RetransmitConfig {
    fn default() -> Self {
        RetransmitConfig {
            timeout: Duration::from_secs(4),
            base: 1.8,
            tries: 5,
        }
    }
}

impl RetransmitConfig {
    /// Time to wait after send number `sent` (0 = the first transmission).
    pub fn interval(&self, sent: u32) -> Duration {
        let exponent = i32::try_from(sent).unwrap_or(i32::MAX);
        self.timeout.mul_f64(self.base.powi(exponent))
    }
}

/// One tunnel as the engine runs it.
#[derive(Clone)]
pub struct EngineConnection {
    pub config: IkeConfig,
    /// The local outer address (the plan's `local`, resolved by the driver).
    pub local_addr: IpAddr,
    /// How we prove our identity, and how the peer must prove its own: chosen apart.
    pub local_auth: LocalAuth,
    pub remote_auth: RemoteAuth,
}

impl fmt::Debug for EngineConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineConnection")
            .field("name", &self.config.name)
            .field("local_addr", &self.local_addr)
            .field("remote", &self.config.remote)
            .field("local_auth", &self.local_auth)
            .field("remote_auth", &self.remote_auth)
            .finish_non_exhaustive()
    }
}

impl EngineConnection {
    /// Both sides authenticate with the same pre-shared key.
    pub fn with_psk(config: IkeConfig, local_addr: IpAddr, psk: Secret) -> Self {
        EngineConnection {
            config,
            local_addr,
            local_auth: LocalAuth::Psk(psk.clone()),
            remote_auth: RemoteAuth::Psk(psk),
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Our identity: the configured one, else the local outer address.
    pub fn local_identity(&self) -> Identity {
        self.config
            .local_id
            .clone()
            .unwrap_or(Identity::Address(self.local_addr))
    }

    pub fn remote_identity(&self) -> Identity {
        self.config.remote_id.clone()
    }

    pub fn proposal_strings(&self) -> Vec<String> {
        self.config
            .proposals
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// The child's local selectors, `dynamic` resolved to our outer address.
    pub fn local_ts(&self, child: &ChildConfig) -> Vec<TsRange> {
        resolve(&child.local_ts, self.local_addr)
    }

    /// The child's remote selectors, `dynamic` resolved to the peer's outer address.
    pub fn remote_ts(&self, child: &ChildConfig) -> Vec<TsRange> {
        resolve(&child.remote_ts, self.config.remote)
    }
}

fn resolve(selectors: &[TrafficSelector], dynamic: IpAddr) -> Vec<TsRange> {
    selectors
        .iter()
        .map(|ts| TsRange::from_selector(ts, dynamic))
        .collect()
}

/// The configured identity as an ID payload carries it.
pub fn wire_identity(id: &Identity) -> WireIdentity {
    match id {
        Identity::Address(a) => WireIdentity::Address(*a),
        Identity::Fqdn(name) => WireIdentity::Fqdn(name.clone()),
        Identity::Email(address) => WireIdentity::Rfc822(address.clone()),
        Identity::Dn(dn) => WireIdentity::DerAsn1Dn(dn.der().to_vec()),
        Identity::KeyId(id) => WireIdentity::KeyId(id.0.clone()),
    }
}

/// Whether a received ID payload names the configured identity: DNs as names (see
/// [`Dn::matches_der`]), the others octet for octet.
pub fn names_identity(received: &WireIdentity, configured: &Identity) -> bool {
    match (received, configured) {
        (WireIdentity::DerAsn1Dn(der), Identity::Dn(dn)) => dn.matches_der(der),
        _ => *received == wire_identity(configured),
    }
}

/// A received identity, for logs.
pub fn show_identity(id: &WireIdentity) -> String {
    match id {
        WireIdentity::Address(a) => a.to_string(),
        WireIdentity::Fqdn(s) | WireIdentity::Rfc822(s) => s.clone(),
        WireIdentity::DerAsn1Dn(_) => crate::ike::auth::x509::describe(id),
        WireIdentity::KeyId(k) => format!("<key id of {} octets>", k.len()),
        WireIdentity::Other { id_type, .. } => format!("<ID type {id_type}>"),
    }
}

/// How long after its creation an SA is rekeyed: `rekey_time` minus a random jitter of up to
/// `rand_time` (seconds, as swanctl.conf), zero for never. In milliseconds: whole seconds
/// would make both peers' timers fire together (and their rekeys collide) one time in
/// rand_time + 1.
pub(super) fn rekey_after(rekey_time: u64, rand_time: u64) -> Duration {
    use rand::Rng;
    let jitter_ms = match rand_time.saturating_mul(1000) {
        0 => 0,
        max => rand::rngs::OsRng.gen_range(0..=max),
    };
    Duration::from_millis(rekey_time.saturating_mul(1000).saturating_sub(jitter_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_schedule_is_strongswans() {
        let r = RetransmitConfig::default();
        let ms: Vec<u128> = (0..=5).map(|n| r.interval(n).as_micros()).collect();
        assert_eq!(
            ms,
            [4_000_000, 7_200_000, 12_960_000, 23_328_000, 41_990_400, 75_582_720]
        );
    }

    /// libreswan sends `rightid="O=Test, CN=site-a"` as PrintableStrings; our certificate's
    /// subject (OpenSSL) has UTF8Strings: the same name.
    #[test]
    fn a_dn_is_named_whatever_its_string_types() {
        use openssl::asn1::Asn1Type;
        use openssl::nid::Nid;
        let ours = Identity::Dn(Dn::parse("O=Test, CN=site-a").unwrap());
        let mut name = openssl::x509::X509Name::builder().unwrap();
        for (nid, value) in [(Nid::ORGANIZATIONNAME, "Test"), (Nid::COMMONNAME, "site-a")] {
            (name.append_entry_by_nid_with_type(nid, value, Asn1Type::PRINTABLESTRING)).unwrap();
        }
        let printable = WireIdentity::DerAsn1Dn(name.build().to_der().unwrap());
        assert_ne!(printable, wire_identity(&ours), "other octets");
        assert!(names_identity(&printable, &ours));
        let other = Identity::Dn(Dn::parse("O=Test, CN=site-b").unwrap());
        assert!(!names_identity(&printable, &other));
        let fqdn = Identity::Fqdn("site-a".into());
        assert!(!names_identity(&printable, &fqdn));
        assert!(names_identity(&wire_identity(&fqdn), &fqdn));
    }

    #[test]
    fn identities_map_to_id_types() {
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            wire_identity(&Identity::Address(a)),
            WireIdentity::Address(a)
        );
        assert_eq!(
            wire_identity(&Identity::Email("a@b.example".into())),
            WireIdentity::Rfc822("a@b.example".into())
        );
        let dn = Dn::parse("C=CH, O=Bank, CN=vpn.bank.ch").unwrap();
        let WireIdentity::DerAsn1Dn(der) = wire_identity(&Identity::Dn(dn.clone())) else {
            panic!("a DN is ID_DER_ASN1_DN");
        };
        assert_eq!(Dn::from_der(&der), Some(dn));
        assert_eq!(
            wire_identity(&Identity::KeyId(KeyId(vec![0xab, 1]))),
            WireIdentity::KeyId(vec![0xab, 1])
        );
        assert_eq!(
            show_identity(&WireIdentity::Fqdn("x.example".into())),
            "x.example"
        );
        // A DN reads as its text, so a refused peer is named in failure messages.
        let mut name = openssl::x509::X509Name::builder().unwrap();
        name.append_entry_by_text("CN", "vpn.bank.ch").unwrap();
        let der = name.build().to_der().unwrap();
        assert_eq!(
            show_identity(&WireIdentity::DerAsn1Dn(der)),
            "\"CN=vpn.bank.ch\""
        );
    }
}
