//! Stateless cookies (RFC 7296 section 2.6). Under load the responder answers IKE_SA_INIT
//! with N(COOKIE) instead of computing a key exchange and keeping state; only an initiator
//! that receives datagrams at its source address can echo the cookie, so a flood from
//! spoofed addresses costs one HMAC per datagram and leaves nothing behind, while a real
//! peer gets through one round trip later.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::ike::codec::{Message, Notify, NotifyType, Payload};
use crate::ike::crypto::{prf, random, CryptoError, Secret};
use crate::proposal::Prf;

use super::events::Event;
use super::sa::Phase;
use super::Engine;

/// A fresh secret this often; cookies made with the previous one stay valid, so a cookie
/// is honoured for between one and two periods.
const SECRET_LIFETIME: Duration = Duration::from_secs(120);

/// Cookie = version octet | HMAC-SHA2-256(secret, Ni | IPi | SPIi).
const COOKIE_LEN: usize = 33;

/// When the responder starts asking for cookies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CookieConfig {
    /// Half-open IKE SAs (IKE_SA_INIT answered, IKE_AUTH not yet) at which cookies engage.
    pub half_open_threshold: usize,
    /// IKE_SA_INIT requests per second, from any source, at which cookies engage: a flood
    /// of requests for peers we have no connection for creates no state but still costs
    /// decoding, and tells us someone is probing.
    pub rate_threshold: u32,
}

impl Default for CookieConfig {
    fn default() -> Self {
        CookieConfig {
            half_open_threshold: 30,
            rate_threshold: 100,
        }
    }
}

struct Versioned {
    version: u8,
    secret: Secret,
}

/// The responder's cookie secrets and its IKE_SA_INIT request rate.
pub struct CookieJar {
    current: Versioned,
    previous: Option<Versioned>,
    rotated_at: Instant,
    /// Requests counted in the current one-second window and in the one before.
    window_start: Instant,
    in_window: u32,
    in_previous_window: u32,
    engaged: bool,
}

impl std::fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieJar")
            .field("version", &self.current.version)
            .field("engaged", &self.engaged)
            .finish_non_exhaustive()
    }
}

fn fresh_secret() -> Result<Secret, CryptoError> {
    let mut bytes = [0u8; 32];
    random::fill(&mut bytes)?;
    Ok(Secret::from_slice(&bytes))
}

fn mac(secret: &Secret, nonce_i: &[u8], ip_i: IpAddr, spi_i: u64) -> Result<Secret, CryptoError> {
    let mut data = nonce_i.to_vec();
    match ip_i {
        IpAddr::V4(a) => data.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => data.extend_from_slice(&a.octets()),
    }
    data.extend_from_slice(&spi_i.to_be_bytes());
    prf(Prf::HmacSha256, secret.expose(), &data)
}

impl CookieJar {
    pub fn new(now: Instant) -> Result<Self, CryptoError> {
        Ok(CookieJar {
            current: Versioned {
                version: 0,
                secret: fresh_secret()?,
            },
            previous: None,
            rotated_at: now,
            window_start: now,
            in_window: 0,
            in_previous_window: 0,
            engaged: false,
        })
    }

    /// Counts one IKE_SA_INIT request (before any other check, so unknown peers count).
    pub fn count_request(&mut self, now: Instant) {
        self.roll(now);
        self.in_window = self.in_window.saturating_add(1);
    }

    /// Moves the one-second counting windows on to `now`, so a rate decays without traffic.
    pub fn roll(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= Duration::from_secs(1) {
            self.in_previous_window = if elapsed < Duration::from_secs(2) {
                self.in_window
            } else {
                0
            };
            self.in_window = 0;
            self.window_start = now;
        }
    }

    /// While cookies are asked for, when the rate is to be looked at again (the window
    /// rolls), so they stop once the load is gone even if no request comes.
    pub fn next_review(&self) -> Option<Instant> {
        self.engaged
            .then(|| self.window_start + Duration::from_secs(1))
    }

    /// Whether cookies are asked for now.
    pub fn engaged(&self) -> bool {
        self.engaged
    }

    /// The request rate the decision uses: the busier of this second and the last.
    pub fn rate(&self) -> u32 {
        self.in_window.max(self.in_previous_window)
    }

    /// Whether new IKE_SA_INIT requests must carry a cookie, and whether that just changed.
    pub fn decide(&mut self, config: &CookieConfig, half_open: usize) -> (bool, bool) {
        let required =
            half_open >= config.half_open_threshold || self.rate() >= config.rate_threshold;
        let changed = required != self.engaged;
        self.engaged = required;
        (required, changed)
    }

    pub fn make(
        &mut self,
        now: Instant,
        nonce_i: &[u8],
        ip_i: IpAddr,
        spi_i: u64,
    ) -> Result<Vec<u8>, CryptoError> {
        if now.saturating_duration_since(self.rotated_at) >= SECRET_LIFETIME {
            let next = Versioned {
                version: self.current.version.wrapping_add(1),
                secret: fresh_secret()?,
            };
            self.previous = Some(std::mem::replace(&mut self.current, next));
            self.rotated_at = now;
        }
        let mut cookie = vec![self.current.version];
        cookie.extend_from_slice(mac(&self.current.secret, nonce_i, ip_i, spi_i)?.expose());
        Ok(cookie)
    }

    /// Whether `cookie` is one we made for this initiator with a secret still valid.
    pub fn verify(&self, cookie: &[u8], nonce_i: &[u8], ip_i: IpAddr, spi_i: u64) -> bool {
        let Some((&version, tag)) = cookie.split_first() else {
            return false;
        };
        if cookie.len() != COOKIE_LEN {
            return false;
        }
        let secret = [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|v| v.version == version);
        secret.is_some_and(|v| {
            // A MAC that cannot be computed admits nothing.
            mac(&v.secret, nonce_i, ip_i, spi_i).is_ok_and(|expected| expected.ct_eq(tag))
        })
    }
}

impl Engine {
    /// Under load, admits only requests that echo a cookie we made for this initiator; the
    /// others are answered with a fresh cookie and leave no state (RFC 7296 section 2.6).
    pub(super) fn cookie_admits(
        &mut self,
        now: Instant,
        message: &Message,
        nonce_i: &[u8],
        (local, remote): (SocketAddr, SocketAddr),
        spi_i: u64,
    ) -> bool {
        if !self.review_cookies(now) {
            return true;
        }
        let Some(jar) = self.cookies.as_mut() else {
            return true;
        };
        // The cookie must be the first payload of the retried request.
        let echoed = match message.payloads.first() {
            Some(Payload::Notify(n)) if n.notify_type == NotifyType::Cookie => Some(&n.data),
            _ => None,
        };
        if echoed.is_some_and(|c| jar.verify(c, nonce_i, remote.ip(), spi_i)) {
            return true;
        }
        if let Ok(cookie) = jar.make(now, nonce_i, remote.ip(), spi_i) {
            self.refuse_init(
                local,
                remote,
                spi_i,
                Notify::new(NotifyType::Cookie, cookie),
            );
        }
        false
    }

    /// Decides from the current load whether IKE_SA_INIT needs a cookie, telling the
    /// operator when that changes; true while cookies are required.
    pub(super) fn review_cookies(&mut self, now: Instant) -> bool {
        let config = self.config.cookies;
        let Some(jar) = self.cookies.as_mut() else {
            return false;
        };
        jar.roll(now);
        // During a flood nothing changes: spare counting the half-open SAs per datagram.
        if jar.engaged() && jar.rate() >= config.rate_threshold {
            return true;
        }
        let half_open = (self.sas.values())
            .filter(|sa| !sa.initiator && sa.phase() == Phase::Auth)
            .count();
        let Some(jar) = self.cookies.as_mut() else {
            return false;
        };
        let (required, changed) = jar.decide(&config, half_open);
        if changed {
            let requests_per_second = jar.rate();
            self.events.push_back(Event::CookiesRequired {
                engaged: required,
                half_open,
                requests_per_second,
            });
        }
        required
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: &str = "192.0.2.7";

    #[test]
    fn a_cookie_verifies_only_for_its_initiator() {
        let now = Instant::now();
        let mut jar = CookieJar::new(now).unwrap();
        let ip: IpAddr = IP.parse().unwrap();
        let cookie = jar.make(now, b"nonce-1", ip, 7).unwrap();
        assert_eq!(cookie.len(), COOKIE_LEN);
        assert!(jar.verify(&cookie, b"nonce-1", ip, 7));
        assert!(!jar.verify(&cookie, b"nonce-2", ip, 7));
        assert!(!jar.verify(&cookie, b"nonce-1", "192.0.2.8".parse().unwrap(), 7));
        assert!(!jar.verify(&cookie, b"nonce-1", ip, 8));
        assert!(!jar.verify(&cookie[..COOKIE_LEN - 1], b"nonce-1", ip, 7));
        assert!(!jar.verify(&[], b"nonce-1", ip, 7));
        let mut forged = cookie.clone();
        forged[5] ^= 1;
        assert!(!jar.verify(&forged, b"nonce-1", ip, 7));
    }

    #[test]
    fn cookies_survive_one_rotation_but_not_two() {
        let t0 = Instant::now();
        let mut jar = CookieJar::new(t0).unwrap();
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let old = jar.make(t0, b"n", ip, 1).unwrap();
        let t1 = t0 + SECRET_LIFETIME;
        let newer = jar.make(t1, b"n", ip, 1).unwrap();
        assert_ne!(old, newer);
        assert!(jar.verify(&old, b"n", ip, 1) && jar.verify(&newer, b"n", ip, 1));
        jar.make(t1 + SECRET_LIFETIME, b"n", ip, 1).unwrap();
        assert!(!jar.verify(&old, b"n", ip, 1));
        assert!(jar.verify(&newer, b"n", ip, 1));
    }

    #[test]
    fn engages_on_half_open_sas_or_request_rate_and_releases() {
        let config = CookieConfig {
            half_open_threshold: 3,
            rate_threshold: 5,
        };
        let t0 = Instant::now();
        let mut jar = CookieJar::new(t0).unwrap();
        assert_eq!(jar.decide(&config, 2), (false, false));
        assert_eq!(jar.decide(&config, 3), (true, true));
        assert_eq!(jar.decide(&config, 3), (true, false));
        assert_eq!(jar.decide(&config, 0), (false, true));
        for _ in 0..5 {
            jar.count_request(t0);
        }
        assert_eq!(jar.decide(&config, 0), (true, true));
        // The next second still remembers the busy one; two quiet seconds later it is over.
        jar.count_request(t0 + Duration::from_millis(1500));
        assert_eq!(jar.rate(), 5);
        jar.count_request(t0 + Duration::from_secs(4));
        assert_eq!(jar.rate(), 1);
        assert_eq!(jar.decide(&config, 0), (false, true));
    }
}
