//! Tables, chains and rules as the kernel dumps them, parsed by libnftnl.

use std::ffi::{c_char, CStr};
use std::ptr::NonNull;

use nftnl::nftnl_sys as sys;

use super::message::Message;

/// Copies a C string libnftnl owns; `None` for a null pointer (attribute not set).
fn string(ptr: *const c_char) -> Option<String> {
    // SAFETY: libnftnl returns null or a NUL-terminated string it keeps alive while the
    // object lives, and the object outlives this call.
    (!ptr.is_null()).then(|| {
        unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned()
    })
}

/// Defines an owning wrapper around one libnftnl object type.
macro_rules! object {
    ($name:ident, $raw:ident, $alloc:ident, $free:ident, $parse:ident) => {
        pub struct $name(NonNull<sys::$raw>);

        impl $name {
            /// Parses `message`; `None` if it is not a valid message of this type.
            pub fn parse(message: &Message) -> Option<Self> {
                // SAFETY: alloc returns an owned object or null; parse reads a complete,
                // aligned netlink message.
                let object = $name(NonNull::new(unsafe { sys::$alloc() })?);
                let ok = unsafe { sys::$parse(message.header(), object.0.as_ptr()) } >= 0;
                ok.then_some(object)
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                // SAFETY: owned since alloc and freed once.
                unsafe { sys::$free(self.0.as_ptr()) };
            }
        }
    };
}

object!(
    Table,
    nftnl_table,
    nftnl_table_alloc,
    nftnl_table_free,
    nftnl_table_nlmsg_parse
);
object!(
    Chain,
    nftnl_chain,
    nftnl_chain_alloc,
    nftnl_chain_free,
    nftnl_chain_nlmsg_parse
);
object!(
    Rule,
    nftnl_rule,
    nftnl_rule_alloc,
    nftnl_rule_free,
    nftnl_rule_nlmsg_parse
);

impl Table {
    pub fn name(&self) -> Option<String> {
        string(unsafe { sys::nftnl_table_get_str(self.0.as_ptr(), sys::NFTNL_TABLE_NAME as u16) })
    }

    /// Dormant or owned tables carry flags; routevpn's never does.
    pub fn flags(&self) -> u32 {
        unsafe { sys::nftnl_table_get_u32(self.0.as_ptr(), sys::NFTNL_TABLE_FLAGS as u16) }
    }
}

/// A chain's identity and, for base chains, where it hooks in.
#[derive(Debug, PartialEq, Eq)]
pub struct ChainInfo {
    pub table: Option<String>,
    pub name: Option<String>,
    pub chain_type: Option<String>,
    pub hook: Option<u32>,
    pub priority: i32,
    pub policy: Option<u32>,
}

impl Chain {
    pub fn info(&self) -> ChainInfo {
        let c = self.0.as_ptr();
        let set = |attr: u32| unsafe { sys::nftnl_chain_is_set(c, attr as u16) };
        let u32_of =
            |attr: u32| set(attr).then(|| unsafe { sys::nftnl_chain_get_u32(c, attr as u16) });
        let str_of = |attr: u32| string(unsafe { sys::nftnl_chain_get_str(c, attr as u16) });
        ChainInfo {
            table: str_of(sys::NFTNL_CHAIN_TABLE),
            name: str_of(sys::NFTNL_CHAIN_NAME),
            chain_type: str_of(sys::NFTNL_CHAIN_TYPE),
            hook: u32_of(sys::NFTNL_CHAIN_HOOKNUM),
            priority: unsafe { sys::nftnl_chain_get_s32(c, sys::NFTNL_CHAIN_PRIO as u16) },
            policy: u32_of(sys::NFTNL_CHAIN_POLICY),
        }
    }
}

impl Rule {
    pub fn table(&self) -> Option<String> {
        string(unsafe { sys::nftnl_rule_get_str(self.0.as_ptr(), sys::NFTNL_RULE_TABLE as u16) })
    }

    pub fn chain(&self) -> Option<String> {
        string(unsafe { sys::nftnl_rule_get_str(self.0.as_ptr(), sys::NFTNL_RULE_CHAIN as u16) })
    }

    pub fn userdata(&self) -> Option<Vec<u8>> {
        let mut len = 0u32;
        // SAFETY: returns null or `len` bytes owned by the rule.
        let data = unsafe {
            sys::nftnl_rule_get_data(self.0.as_ptr(), sys::NFTNL_RULE_USERDATA as u16, &mut len)
        };
        (!data.is_null()).then(|| {
            unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len as usize) }.to_vec()
        })
    }

    /// Each expression as libnftnl prints it (`nft --debug=netlink`), name first.
    pub fn expressions(&self) -> Vec<String> {
        let mut out = Vec::new();
        // SAFETY: the iterator and the expressions it yields belong to this rule and are
        // only used while it lives; the iterator is destroyed once.
        unsafe {
            let iter = sys::nftnl_expr_iter_create(self.0.as_ptr());
            if iter.is_null() {
                return out;
            }
            loop {
                let expr = sys::nftnl_expr_iter_next(iter);
                if expr.is_null() {
                    break;
                }
                out.push(describe(expr));
            }
            sys::nftnl_expr_iter_destroy(iter);
        }
        out
    }
}

/// # Safety
/// `expr` must point to a live expression.
unsafe fn describe(expr: *mut sys::nftnl_expr) -> String {
    let name = string(unsafe { sys::nftnl_expr_get_str(expr, sys::NFTNL_EXPR_NAME as u16) });
    let mut buffer = vec![0u8; 4096];
    let n = unsafe {
        sys::nftnl_expr_snprintf(
            buffer.as_mut_ptr().cast::<c_char>(),
            buffer.len(),
            expr,
            sys::NFTNL_OUTPUT_DEFAULT,
            0,
        )
    };
    buffer.truncate(usize::try_from(n).unwrap_or(0).min(buffer.len() - 1));
    format!(
        "{} {}",
        name.unwrap_or_default(),
        String::from_utf8_lossy(&buffer).trim()
    )
}
