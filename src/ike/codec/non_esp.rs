//! UDP encapsulation on port 4500 (RFC 3948, RFC 7296 section 2.23): IKE messages there
//! start with four zero octets, the non-ESP marker, which no ESP SPI can be.

/// Prefix of IKE messages sent on UDP port 4500.
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];

/// What a datagram received on UDP port 4500 carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Udp4500<'a> {
    /// An IKE message, marker removed.
    Ike(&'a [u8]),
    /// An ESP packet (non-zero SPI), for the kernel, not the IKE engine.
    Esp(&'a [u8]),
    /// A NAT-keepalive: one 0xFF octet (RFC 3948 section 2.3).
    Keepalive,
    /// Too short for any of the above.
    Malformed,
}

/// Classifies a datagram received on UDP port 4500.
pub fn classify_udp_4500(datagram: &[u8]) -> Udp4500<'_> {
    match datagram {
        [0xff] => Udp4500::Keepalive,
        _ => match strip_non_esp_marker(datagram) {
            Some(message) => Udp4500::Ike(message),
            // An ESP header is at least SPI and sequence number.
            None if datagram.len() >= 8 => Udp4500::Esp(datagram),
            None => Udp4500::Malformed,
        },
    }
}

/// The IKE message after the non-ESP marker, or `None` if the datagram does not start with it.
pub fn strip_non_esp_marker(datagram: &[u8]) -> Option<&[u8]> {
    datagram.strip_prefix(&NON_ESP_MARKER[..])
}

/// Prefixes an encoded IKE message with the non-ESP marker for sending on port 4500.
pub fn add_non_esp_marker(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len().saturating_add(NON_ESP_MARKER.len()));
    out.extend_from_slice(&NON_ESP_MARKER);
    out.extend_from_slice(message);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_then_strip() {
        let message = [1, 2, 3];
        let datagram = add_non_esp_marker(&message);
        assert_eq!(datagram, [0, 0, 0, 0, 1, 2, 3]);
        assert_eq!(strip_non_esp_marker(&datagram), Some(&message[..]));
        assert_eq!(classify_udp_4500(&datagram), Udp4500::Ike(&message));
    }

    #[test]
    fn esp_keepalive_and_short_datagrams() {
        let esp = [0, 0, 0, 1, 0, 0, 0, 1, 0xaa];
        assert_eq!(strip_non_esp_marker(&esp), None);
        assert_eq!(classify_udp_4500(&esp), Udp4500::Esp(&esp));
        assert_eq!(classify_udp_4500(&[0xff]), Udp4500::Keepalive);
        assert_eq!(classify_udp_4500(&[0, 0, 0]), Udp4500::Malformed);
        assert_eq!(classify_udp_4500(&[]), Udp4500::Malformed);
    }
}
