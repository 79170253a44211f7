//! The `[ike]` section: proposals, authentication, lifetimes, DPD and actions.

use std::ops::Range;
use std::time::Duration;

use super::auth::read_auth;
use super::fields::{choice, duration_key};
use super::reader::{Context, Section, Val};
use super::tunnel::Spans;
use crate::model::{Auth, Dpd, DpdAction, Ike, NatTraversal, StartAction};
use crate::proposal::{self, IkeProposal, ProposalError};

pub(super) const IKE_KEYS: &[&str] = &[
    "proposals",
    "auth",
    "remote_auth",
    "psk_file",
    "private_key",
    "certificate",
    "remote_public_key",
    "ca",
    "crl",
    "send_cert",
    "rekey_time",
    "over_time",
    "rand_time",
    "dpd",
    "nat_traversal",
    "start_action",
    "close_action",
    "remote_port",
    "allow_legacy",
    "keying",
    "manual_keys_file",
];
pub(super) const DPD_KEYS: &[&str] = &["delay", "timeout", "action"];

/// Points a proposal error at the offending keyword inside the quoted string.
pub(super) fn proposal_error(ctx: &Context<'_>, v: &Val<&str>, what: &str, e: ProposalError) {
    let message = format!("{what} proposal \"{}\": {}", v.value, e.message);
    ctx.error(
        keyword_span(ctx, v, e.offset, e.token.len()),
        message,
        e.hint,
    );
}

/// Under `allow_legacy`, each weak keyword accepted still gets a warning pointing at it.
fn warn_legacy(ctx: &Context<'_>, v: &Val<&str>, what: &str, text: &str) {
    for (offset, word, why) in proposal::legacy_keywords(text) {
        ctx.warning(
            keyword_span(ctx, v, offset, word.len()),
            format!("{what} proposal \"{}\": weak algorithm `{word}` accepted under allow_legacy: {why}", v.value),
            Some("replace it once the peer supports a stronger one".into()),
        );
    }
}

/// The span of `len` bytes at `offset` in a string value, past its opening quotes (`"`, `'`,
/// `"""` or `'''`); the whole value when escapes make the source differ from the value.
fn keyword_span(ctx: &Context<'_>, v: &Val<&str>, offset: usize, len: usize) -> Range<usize> {
    let raw = ctx.source.text().get(v.span.clone()).unwrap_or("");
    let quotes = if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
        3
    } else {
        1
    };
    match raw.get(quotes..) {
        Some(body) if body.starts_with(v.value) => {
            let start = v.span.start + quotes + offset;
            start..start + len
        }
        _ => v.span.clone(),
    }
}

pub(super) fn proposals<P>(
    section: &Section<'_>,
    key: &str,
    what: &str,
    defaults: &[&str],
    allow_legacy: bool,
    parse: fn(&str, bool) -> Result<P, ProposalError>,
) -> Option<(Vec<P>, Range<usize>)> {
    let Some(list) = section.strings(key) else {
        if section.contains(key) {
            return None;
        }
        let parsed = defaults
            .iter()
            .map(|d| parse(d, false).ok())
            .collect::<Option<_>>();
        return parsed.map(|p| (p, section.span.clone()));
    };
    if list.is_empty() {
        section.ctx.error(
            section.key_span(key).unwrap_or(section.span.clone()),
            format!("`{key}` in {} is empty", section.name),
            Some("list at least one proposal, or remove the key to use the defaults".into()),
        );
        return None;
    }
    let span = list[0].span.start..list[list.len() - 1].span.end;
    let mut out = Vec::with_capacity(list.len());
    for v in &list {
        // `default` expands to the built-in list, as in swanctl.conf.
        if v.value == "default" {
            out.extend(defaults.iter().filter_map(|d| parse(d, false).ok()));
            continue;
        }
        let text = v.value.strip_suffix('!').unwrap_or(v.value);
        match parse(text, allow_legacy) {
            Ok(p) => {
                warn_legacy(section.ctx, v, what, text);
                out.push(p);
            }
            Err(e) => proposal_error(section.ctx, v, what, e),
        }
    }
    (out.len() == list.len() || list.iter().any(|v| v.value == "default")).then_some((out, span))
}

pub(super) fn read_ike(section: &Section<'_>, spans: &mut Spans) -> Option<Ike> {
    let ctx = section.ctx;
    let allow_legacy = section.boolean("allow_legacy").is_some_and(|v| v.value);
    let proposals: Option<Vec<IkeProposal>> = proposals(
        section,
        "proposals",
        "IKE",
        proposal::DEFAULT_IKE,
        allow_legacy,
        proposal::parse_ike,
    )
    .map(|(p, span)| {
        spans.ike_proposals = span;
        p
    });

    let manual = choice(
        section,
        "keying",
        &[("ike", false), ("manual", true)],
        false,
    )?;
    let auth = if manual {
        section
            .required_string(
                "manual_keys_file",
                Some("keying = \"manual\" takes its SAs from a keys file (see the README)".into()),
            )
            .map(|v| {
                spans.psk_file = v.span;
                Auth::Manual {
                    keys_file: v.value.into(),
                }
            })
    } else {
        read_auth(section, &mut spans.psk_file, &mut spans.auth)
    };

    let rekey_time = duration_key(section, "rekey_time");
    let over_time = duration_key(section, "over_time");
    let rand_time = duration_key(section, "rand_time");
    let rekey = rekey_time
        .as_ref()
        .map_or(crate::model::IKE_REKEY_TIME, |v| v.value);
    // swanctl defaults: over_time is 10 % of rekey_time, rand_time equals over_time.
    let over = over_time.as_ref().map_or(rekey / 10, |v| v.value);
    let rand = rand_time.as_ref().map_or(over, |v| v.value);
    if let Some(v) = &rekey_time {
        if v.value < Duration::from_secs(60) {
            ctx.error(
                v.span.clone(),
                format!("IKE rekey_time {}s is too short", v.value.as_secs()),
                Some("at least 60s; partners usually agree on hours (e.g. 8h or 24h)".into()),
            );
        }
    }
    if let Some(v) = rand_time.as_ref().filter(|v| v.value >= rekey) {
        ctx.error(
            v.span.clone(),
            format!(
                "IKE rand_time {}s must be shorter than rekey_time {}s",
                v.value.as_secs(),
                rekey.as_secs()
            ),
            None,
        );
    }

    let dpd = read_dpd(section);
    let nat_traversal = choice(
        section,
        "nat_traversal",
        &[("auto", NatTraversal::Auto), ("force", NatTraversal::Force)],
        NatTraversal::Auto,
    );
    let actions = [
        ("start", StartAction::Start),
        ("trap", StartAction::Trap),
        ("none", StartAction::None),
    ];
    let start_action = choice(section, "start_action", &actions, StartAction::Start);
    let close_action = choice(section, "close_action", &actions, StartAction::Start);
    let remote_port = match section.integer("remote_port", 1..65536) {
        Some(v) => u16::try_from(v.value).ok(),
        None => (!section.contains("remote_port")).then_some(500),
    };

    Some(Ike {
        proposals: proposals?,
        auth: auth?,
        rekey_time: rekey,
        over_time: over,
        rand_time: rand,
        dpd: dpd?,
        nat_traversal: nat_traversal?,
        start_action: start_action?,
        close_action: close_action?,
        remote_port: remote_port?,
        allow_legacy,
    })
}

pub(super) fn read_dpd(ike: &Section<'_>) -> Option<Dpd> {
    let default = Dpd::default();
    if !ike.contains("dpd") {
        return Some(default);
    }
    let section = ike.table("dpd", "[ike.dpd]".into(), DPD_KEYS)?;
    let delay = duration_key(&section, "delay");
    let timeout = duration_key(&section, "timeout");
    let action = choice(
        &section,
        "action",
        &[
            ("clear", DpdAction::Clear),
            ("restart", DpdAction::Restart),
            ("trap", DpdAction::Trap),
        ],
        default.action,
    )?;
    if (section.contains("delay") && delay.is_none())
        || (section.contains("timeout") && timeout.is_none())
    {
        return None; // already reported; comparing with a default would mislead
    }
    let delay_value = delay.as_ref().map_or(default.delay, |v| v.value);
    let timeout_value = timeout.as_ref().map_or(default.timeout, |v| v.value);
    if !delay_value.is_zero() && timeout_value <= delay_value {
        // The timeout is explicit, or a long explicit delay overtook the default timeout.
        let (span, message) = match (&timeout, &delay) {
            (Some(t), _) => (
                t.span.clone(),
                format!(
                    "DPD timeout {}s must be longer than the delay {}s",
                    t.value.as_secs(),
                    delay_value.as_secs()
                ),
            ),
            (None, d) => (
                d.as_ref().map_or(section.span.clone(), |d| d.span.clone()),
                format!(
                    "DPD delay {}s is not shorter than the default timeout {}s",
                    delay_value.as_secs(),
                    timeout_value.as_secs()
                ),
            ),
        };
        section.ctx.error(
            span,
            message,
            Some("a peer is declared dead only after several unanswered checks".into()),
        );
        return None;
    }
    Some(Dpd {
        delay: delay_value,
        timeout: timeout_value,
        action,
    })
}
