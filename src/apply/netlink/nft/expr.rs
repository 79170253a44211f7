//! nf_tables expressions that `nftnl` 0.9 lacks or fixes differently than `nft` does:
//! raw payload loads, bitwise masks of any length, `rt`, `byteorder`, TCP-option `exthdr`
//! and `nat` with the attributes the kernel reports back.

use std::ffi::c_void;
use std::ptr::NonNull;

use nftnl::expr::Expression;
use nftnl::nftnl_sys as sys;
use nftnl::Rule;

/// Every expression routevpn builds works in register 1, as `nft` does for these rules.
const REG_1: u32 = libc::NFT_REG_1 as u32;

/// uapi values the libc crate does not carry (linux/netfilter/nf_tables.h, nf_nat.h).
const NFT_RT_TCPMSS: u32 = 3;
const NFT_EXTHDR_OP_TCPOPT: u32 = 1;
const NF_NAT_RANGE_MAP_IPS: u32 = 1;

/// Allocates an expression by kernel name. Allocation only fails when memory is exhausted,
/// where aborting is what the standard library does too.
fn alloc(name: &'static std::ffi::CStr) -> NonNull<sys::nftnl_expr> {
    match NonNull::new(unsafe { sys::nftnl_expr_alloc(name.as_ptr()) }) {
        Some(expr) => expr,
        None => std::process::abort(),
    }
}

fn set_u32(expr: NonNull<sys::nftnl_expr>, attr: u32, value: u32) {
    // SAFETY: `expr` is a live expression and `attr` a u32 attribute of its type.
    unsafe { sys::nftnl_expr_set_u32(expr.as_ptr(), attr as u16, value) };
}

fn set_bytes(expr: NonNull<sys::nftnl_expr>, attr: u32, bytes: &[u8]) {
    // SAFETY: libnftnl copies `bytes.len()` bytes from the slice.
    unsafe {
        sys::nftnl_expr_set(
            expr.as_ptr(),
            attr as u16,
            bytes.as_ptr().cast::<c_void>(),
            bytes.len() as u32,
        )
    };
}

/// Where a payload load starts.
#[derive(Clone, Copy, Debug)]
pub enum Base {
    Network,
    Transport,
}

/// `payload load LENb @ BASE header + OFFSET => reg 1`.
pub struct Load {
    pub base: Base,
    pub offset: u32,
    pub len: u32,
}

impl Expression for Load {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        let expr = alloc(c"payload");
        let base = match self.base {
            Base::Network => libc::NFT_PAYLOAD_NETWORK_HEADER,
            Base::Transport => libc::NFT_PAYLOAD_TRANSPORT_HEADER,
        };
        set_u32(expr, sys::NFTNL_EXPR_PAYLOAD_DREG, REG_1);
        set_u32(expr, sys::NFTNL_EXPR_PAYLOAD_BASE, base as u32);
        set_u32(expr, sys::NFTNL_EXPR_PAYLOAD_OFFSET, self.offset);
        set_u32(expr, sys::NFTNL_EXPR_PAYLOAD_LEN, self.len);
        expr
    }
}

/// `bitwise reg 1 = (reg 1 & MASK) ^ 0`: prefixes and flag masks of any length.
pub struct Mask(pub Vec<u8>);

impl Expression for Mask {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        let expr = alloc(c"bitwise");
        set_u32(expr, sys::NFTNL_EXPR_BITWISE_SREG, REG_1);
        set_u32(expr, sys::NFTNL_EXPR_BITWISE_DREG, REG_1);
        set_u32(expr, sys::NFTNL_EXPR_BITWISE_LEN, self.0.len() as u32);
        set_bytes(expr, sys::NFTNL_EXPR_BITWISE_MASK, &self.0);
        set_bytes(expr, sys::NFTNL_EXPR_BITWISE_XOR, &vec![0; self.0.len()]);
        expr
    }
}

/// `rt load tcpmss => reg 1`: the MSS the packet's route allows (route MTU minus headers).
pub struct RouteMss;

impl Expression for RouteMss {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        let expr = alloc(c"rt");
        set_u32(expr, sys::NFTNL_EXPR_RT_DREG, REG_1);
        set_u32(expr, sys::NFTNL_EXPR_RT_KEY, NFT_RT_TCPMSS);
        expr
    }
}

/// `byteorder reg 1 = hton(reg 1, 2, 2)`: `rt` yields host order, TCP options are big-endian.
pub struct Hton16;

impl Expression for Hton16 {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        let expr = alloc(c"byteorder");
        set_u32(expr, sys::NFTNL_EXPR_BYTEORDER_SREG, REG_1);
        set_u32(expr, sys::NFTNL_EXPR_BYTEORDER_DREG, REG_1);
        set_u32(
            expr,
            sys::NFTNL_EXPR_BYTEORDER_OP,
            libc::NFT_BYTEORDER_HTON as u32,
        );
        set_u32(expr, sys::NFTNL_EXPR_BYTEORDER_LEN, 2);
        set_u32(expr, sys::NFTNL_EXPR_BYTEORDER_SIZE, 2);
        expr
    }
}

/// The TCP maximum segment size option: kind 2, its 16-bit value at offset 2.
const TCPOPT_MAXSEG: u8 = 2;

/// `exthdr load tcpopt 2b @ 2 + 2 => reg 1` (`write`: `exthdr write tcpopt reg 1 => ...`).
pub struct MaxSeg {
    pub write: bool,
}

impl Expression for MaxSeg {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        let expr = alloc(c"exthdr");
        let register = if self.write {
            sys::NFTNL_EXPR_EXTHDR_SREG
        } else {
            sys::NFTNL_EXPR_EXTHDR_DREG
        };
        set_u32(expr, register, REG_1);
        // SAFETY: the type attribute is a u8.
        unsafe {
            sys::nftnl_expr_set_u8(
                expr.as_ptr(),
                sys::NFTNL_EXPR_EXTHDR_TYPE as u16,
                TCPOPT_MAXSEG,
            )
        };
        set_u32(expr, sys::NFTNL_EXPR_EXTHDR_OFFSET, 2);
        set_u32(expr, sys::NFTNL_EXPR_EXTHDR_LEN, 2);
        set_u32(expr, sys::NFTNL_EXPR_EXTHDR_OP, NFT_EXTHDR_OP_TCPOPT);
        expr
    }
}

/// `nat snat ip|ip6 addr_min reg 1`. `nft` sends only the minimum address; the kernel
/// reports the single address as a range with flags, so `as_dumped` builds that form for
/// comparing against what is read back.
pub struct Snat {
    pub ipv6: bool,
    pub as_dumped: bool,
}

impl Expression for Snat {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        let expr = alloc(c"nat");
        let family = if self.ipv6 {
            libc::NFPROTO_IPV6
        } else {
            libc::NFPROTO_IPV4
        };
        set_u32(expr, sys::NFTNL_EXPR_NAT_TYPE, libc::NFT_NAT_SNAT as u32);
        set_u32(expr, sys::NFTNL_EXPR_NAT_FAMILY, family as u32);
        set_u32(expr, sys::NFTNL_EXPR_NAT_REG_ADDR_MIN, REG_1);
        if self.as_dumped {
            set_u32(expr, sys::NFTNL_EXPR_NAT_REG_ADDR_MAX, REG_1);
            set_u32(expr, sys::NFTNL_EXPR_NAT_FLAGS, NF_NAT_RANGE_MAP_IPS);
        }
        expr
    }
}
