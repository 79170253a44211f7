//! Tunnel MTU from the real encapsulation overhead.
//!
//! An ESP packet on the wire is
//!
//! ```text
//! outer IP header (20 IPv4 / 40 IPv6)
//! [UDP header 8, when NAT-T encapsulates ESP]
//! ESP header 8 (SPI + sequence number)
//! IV (16 for AES-CBC, 8 for AES-GCM)
//! payload: [prefix] + inner packet, then padding, pad length (1) and next header (1),
//!          padded so payload + 2 is a multiple of the block (16 for AES-CBC, 4 for GCM)
//! ICV (HMAC truncation length, or 16 for AES-GCM-16)
//! ```
//!
//! The prefix is what sits between the ESP header and the packet the device sends: nothing for
//! a VTI or XFRM interface (tunnel mode, the inner packet carries its own IP header); the GRE
//! header (4, +4 with a key) for GRE protected in transport mode; the GRE endpoints' IP header
//! plus the GRE header when GRE runs inside a tunnel-mode SA.
//!
//! So the largest inner packet is `floor((M - H - U - 8 - IV - ICV) / B) * B - 2 - prefix`.
//! With several proposals the worst one counts, so the MTU holds whichever is negotiated.

use serde::Serialize;

use crate::proposal::{Encryption, EspProposal, Integrity};

pub const ESP_HEADER: u32 = 8;
pub const ESP_TRAILER: u32 = 2;
pub const UDP_HEADER: u32 = 8;
pub const GRE_HEADER: u32 = 4;
pub const GRE_KEY: u32 = 4;

pub fn ip_header(ipv6: bool) -> u32 {
    if ipv6 {
        40
    } else {
        20
    }
}

/// The shape of one encapsulation, independent of the cipher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encapsulation {
    pub outer_ipv6: bool,
    pub udp: bool,
    /// Bytes between the ESP header and the device's packet (see module docs).
    pub prefix: u32,
}

/// The arithmetic behind one tunnel's MTU, kept so `plan` can show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MtuBreakdown {
    pub outer_mtu: u32,
    pub outer_header: u32,
    pub udp: u32,
    pub esp_header: u32,
    pub iv: u32,
    pub icv: u32,
    pub block: u32,
    pub trailer: u32,
    pub prefix: u32,
    /// The cipher suite that gave the worst case.
    pub transform: String,
    pub mtu: u32,
}

impl std::fmt::Display for MtuBreakdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} = floor(({} outer - {} IP",
            self.mtu, self.outer_mtu, self.outer_header
        )?;
        if self.udp > 0 {
            write!(f, " - {} UDP", self.udp)?;
        }
        write!(
            f,
            " - {} ESP - {} IV - {} ICV) / {}) * {} - {} trailer",
            self.esp_header, self.iv, self.icv, self.block, self.block, self.trailer
        )?;
        if self.prefix > 0 {
            write!(f, " - {} GRE", self.prefix)?;
        }
        write!(f, "  [{}]", self.transform)
    }
}

/// The largest inner packet for one cipher suite.
pub fn inner_mtu(
    outer_mtu: u32,
    encap: Encapsulation,
    encryption: Encryption,
    integrity: Option<Integrity>,
) -> MtuBreakdown {
    let iv = encryption.iv_len() as u32;
    let block = encryption.pad_block() as u32;
    let icv = if encryption.is_aead() {
        encryption.aead_icv_len() as u32
    } else {
        integrity.map_or(0, |i| i.icv_len() as u32)
    };
    let outer_header = ip_header(encap.outer_ipv6);
    let udp = if encap.udp { UDP_HEADER } else { 0 };
    let room = outer_mtu.saturating_sub(outer_header + udp + ESP_HEADER + iv + icv);
    let mtu = (room / block * block).saturating_sub(ESP_TRAILER + encap.prefix);
    let transform = match integrity.filter(|_| !encryption.is_aead()) {
        Some(i) => format!("{encryption}/{i}"),
        None => encryption.to_string(),
    };
    MtuBreakdown {
        outer_mtu,
        outer_header,
        udp,
        esp_header: ESP_HEADER,
        iv,
        icv,
        block,
        trailer: ESP_TRAILER,
        prefix: encap.prefix,
        transform,
        mtu,
    }
}

/// The MTU every listed proposal can carry: the minimum over all cipher combinations.
pub fn worst_case<'a>(
    outer_mtu: u32,
    encap: Encapsulation,
    proposals: impl IntoIterator<Item = &'a EspProposal>,
) -> Option<MtuBreakdown> {
    let mut worst: Option<MtuBreakdown> = None;
    for proposal in proposals {
        for &encryption in &proposal.encryption {
            let integrities: Vec<Option<Integrity>> = if encryption.is_aead() {
                vec![None]
            } else {
                proposal.integrity.iter().copied().map(Some).collect()
            };
            for integrity in integrities {
                let candidate = inner_mtu(outer_mtu, encap, encryption, integrity);
                if worst.as_ref().is_none_or(|w| candidate.mtu < w.mtu) {
                    worst = Some(candidate);
                }
            }
        }
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    const CBC256: Encryption = Encryption::AesCbc(256);
    const GCM128: Encryption = Encryption::AesGcm16(128);
    const SHA256: Option<Integrity> = Some(Integrity::HmacSha256_128);

    fn encap(outer_ipv6: bool, udp: bool, prefix: u32) -> Encapsulation {
        Encapsulation {
            outer_ipv6,
            udp,
            prefix,
        }
    }

    // Each expected value was worked out by hand from the layout in the module docs.

    #[test]
    fn cbc_sha256_tunnel_mode() {
        // 1500-20-8-16-16 = 1440 = 90 blocks of 16; 1440-2 = 1438
        assert_eq!(
            inner_mtu(1500, encap(false, false, 0), CBC256, SHA256).mtu,
            1438
        );
        // 1500-20-8-8-16-16 = 1432 -> 89 blocks = 1424; 1424-2 = 1422
        assert_eq!(
            inner_mtu(1500, encap(false, true, 0), CBC256, SHA256).mtu,
            1422
        );
        // IPv6 outer: 1500-40-8-16-16 = 1420 -> 88 blocks = 1408; 1406
        assert_eq!(
            inner_mtu(1500, encap(true, false, 0), CBC256, SHA256).mtu,
            1406
        );
        // IPv6 + UDP: 1412 -> 88 blocks = 1408; 1406
        assert_eq!(
            inner_mtu(1500, encap(true, true, 0), CBC256, SHA256).mtu,
            1406
        );
    }

    #[test]
    fn gcm16_tunnel_mode() {
        // 1500-20-8-8-16 = 1448, multiple of 4; 1446
        assert_eq!(
            inner_mtu(1500, encap(false, false, 0), GCM128, None).mtu,
            1446
        );
        // 1500-20-8-8-8-16 = 1440; 1438
        assert_eq!(
            inner_mtu(1500, encap(false, true, 0), GCM128, None).mtu,
            1438
        );
        // 1500-40-8-8-16 = 1428; 1426
        assert_eq!(
            inner_mtu(1500, encap(true, false, 0), GCM128, None).mtu,
            1426
        );
    }

    #[test]
    fn gre_in_transport_mode() {
        // GRE without key: 1440 room -> 1440 - 2 - 4 = 1434
        assert_eq!(
            inner_mtu(1500, encap(false, false, GRE_HEADER), CBC256, SHA256).mtu,
            1434
        );
        // with key: 1430; with UDP: 1424 - 2 - 8 = 1414
        let keyed = GRE_HEADER + GRE_KEY;
        assert_eq!(
            inner_mtu(1500, encap(false, false, keyed), CBC256, SHA256).mtu,
            1430
        );
        assert_eq!(
            inner_mtu(1500, encap(false, true, keyed), CBC256, SHA256).mtu,
            1414
        );
        // GCM: 1448 - 2 - 4 = 1442
        assert_eq!(
            inner_mtu(1500, encap(false, false, GRE_HEADER), GCM128, None).mtu,
            1442
        );
    }

    #[test]
    fn gre_inside_tunnel_mode() {
        // GRE endpoints' IPv4 header (20) + GRE (4): 1440 - 2 - 24 = 1414
        assert_eq!(
            inner_mtu(1500, encap(false, false, 24), CBC256, SHA256).mtu,
            1414
        );
        // GCM + UDP: 1440 - 2 - 24 = 1414
        assert_eq!(
            inner_mtu(1500, encap(false, true, 24), GCM128, None).mtu,
            1414
        );
    }

    #[test]
    fn sha1_and_sha512_icv_lengths() {
        // SHA1-96: 1500-20-8-16-12 = 1444 -> 90 blocks = 1440; 1438
        let sha1 = Some(Integrity::HmacSha1_96);
        assert_eq!(
            inner_mtu(1500, encap(false, false, 0), CBC256, sha1).mtu,
            1438
        );
        // SHA512-256: 1500-20-8-16-32 = 1424 -> 89 blocks; 1422
        let sha512 = Some(Integrity::HmacSha512_256);
        assert_eq!(
            inner_mtu(1500, encap(false, false, 0), CBC256, sha512).mtu,
            1422
        );
    }

    #[test]
    fn pppoe_outer_mtu() {
        // 1492-20-8-16-16 = 1432 -> 89 blocks = 1424; 1422
        assert_eq!(
            inner_mtu(1492, encap(false, false, 0), CBC256, SHA256).mtu,
            1422
        );
    }

    #[test]
    fn worst_case_takes_the_smallest() {
        let proposals = [
            crate::proposal::parse_esp("aes128gcm16", false).unwrap(),
            crate::proposal::parse_esp("aes256-sha256-sha512", false).unwrap(),
        ];
        let w = worst_case(1500, encap(false, false, 0), &proposals).unwrap();
        assert_eq!(w.mtu, 1422);
        assert_eq!(w.transform, "AES_CBC_256/HMAC_SHA2_512_256");
        assert_eq!(
            w.to_string(),
            "1422 = floor((1500 outer - 20 IP - 8 ESP - 16 IV - 32 ICV) / 16) * 16 - 2 trailer  [AES_CBC_256/HMAC_SHA2_512_256]"
        );
    }

    #[test]
    fn tiny_outer_mtu_does_not_underflow() {
        assert_eq!(inner_mtu(40, encap(true, true, 24), CBC256, SHA256).mtu, 0);
    }
}
