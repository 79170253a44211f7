//! What the daemon answers to each VICI command, and the events it raises, from its
//! engine and the kernel's SA counters. Written against [`Backend`] so that tests drive
//! the same code with an engine of their own.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::logging::{self, APPLY};
use super::vici_config::{Loaded, Mapped};
use super::vici_server::{Answer, Call};
use crate::apply::status::SaStatus;
use crate::ike::auth::x509::{certificate_named_by, certificate_subject};
use crate::ike::engine::{wire_identity, Engine, EngineConnection, Event};
use crate::swanctl::import::ImportedProfile;
use crate::vici::codec::{Element, Message};
use crate::vici::messages::{self, Filter, Stats};

/// What the handler needs of the daemon.
pub trait Backend {
    fn engine(&mut self) -> &mut Engine;
    /// The engine's IKE port, which its connections listen on.
    fn ike_port(&self) -> u16;
    /// The kernel's SAs with their counters; an error when they cannot be read.
    fn kernel_sas(&mut self) -> Result<Vec<SaStatus>, String>;
    fn stats(&self) -> Stats;
    fn initiations(&mut self) -> &mut Initiations;
    /// The connections and keys loaded over VICI.
    fn loaded(&mut self) -> &mut Loaded;
    /// Whether a profile defines tunnel `name`: profiles win over loaded connections.
    fn profile_defines(&self, name: &str) -> bool;
    /// Whether `profiles` as the loaded connections pass the profiles' checks beside the
    /// profiles; nothing is applied.
    fn check(&mut self, profiles: &[ImportedProfile]) -> Result<(), String>;
    /// Makes `profiles` the loaded connections: validated beside the profiles and applied
    /// like them (`unloaded`, removed, torn down); on error nothing changed.
    fn configure(
        &mut self,
        profiles: Vec<ImportedProfile>,
        unloaded: &[String],
    ) -> Result<(), String>;
    fn deferred(&mut self) -> &mut Deferred;
}

/// Changes to the loaded connections and credentials, checked and answered but not yet
/// applied. `swanctl --load-all` sends one request per certificate, key, secret and
/// connection, each as soon as the previous one is answered; applying after each would
/// reconfigure the dataplane and the engine N times for one file. So a configuring request
/// is checked (its answer still carries any validation error) and its change applied
/// with the whole burst: once [`QUIET`] passes without another, or before any request
/// that reads or acts on the result (`list-conns`, `initiate`, `list-sas`, ...), so that
/// no client sees a state that is not applied. A quiet time, not the client's
/// disconnection, ends the burst: VICI tools that stay connected configure too.
#[derive(Debug, Default)]
pub struct Deferred(Option<Pending>);

#[derive(Debug)]
struct Pending {
    /// What was loaded when it was last applied: restored if applying fails.
    applied: Loaded,
    unloaded: BTreeSet<String>,
    last: Instant,
}

/// How long a burst of configuring requests may pause before it is applied.
pub const QUIET: Duration = Duration::from_millis(200);

impl Deferred {
    /// When the pending changes are to be applied, if any are.
    pub fn due(&self) -> Option<Instant> {
        self.0.as_ref().map(|p| p.last + QUIET)
    }
}

/// Requests that change or list what is loaded (not what is applied): they join a burst.
const CONFIGURING: &[&str] = &[
    "load-conn",
    "unload-conn",
    "get-conns",
    "load-shared",
    "unload-shared",
    "get-shared",
    "load-key",
    "unload-key",
    "get-keys",
    "load-cert",
    "clear-creds",
    "get-authorities",
    "get-pools",
];

/// Applies the pending changes of a burst, if any; on failure the loaded connections
/// and credentials go back to those last applied (their requests were answered already,
/// so the error is logged).
pub fn apply_deferred(backend: &mut impl Backend) {
    let Some(pending) = backend.deferred().0.take() else {
        return;
    };
    let Mapped { profiles, .. } = backend.loaded().mapped();
    let unloaded: Vec<String> = (pending.unloaded.into_iter())
        .filter(|name| !profiles.iter().any(|p| p.name == *name))
        .collect();
    if let Err(e) = backend.configure(profiles, &unloaded) {
        logging::error(
            APPLY,
            format_args!(
                "applying what was loaded over VICI: {e}; back to what was applied before"
            ),
        );
        *backend.loaded() = pending.applied;
    }
}

/// `initiate` calls waiting for their CHILD SA, by connection.
#[derive(Debug, Default)]
pub struct Initiations(BTreeMap<String, Initiation>);

#[derive(Debug, Default)]
struct Initiation {
    replies: Vec<oneshot::Sender<Answer>>,
    /// The connection's log lines since, sent as `control-log` before the answer.
    log: Vec<Message>,
}

impl Initiations {
    fn wait(&mut self, name: String, reply: oneshot::Sender<Answer>) {
        self.0.entry(name).or_default().replies.push(reply);
    }

    /// Logs the event for the calls waiting on its connection; answers them when it
    /// concludes their initiation.
    pub fn on_event(&mut self, event: &Event) {
        let Some(waiting) = event.connection().and_then(|name| self.0.get_mut(name)) else {
            return;
        };
        waiting.log.push(log_message(event));
        let result = match event {
            Event::ChildInstalled { .. } => Ok(()),
            Event::Failed { reason, .. } => Err(reason.to_string()),
            _ => return,
        };
        let Some((_, done)) = event
            .connection()
            .and_then(|name| self.0.remove_entry(name))
        else {
            return;
        };
        for reply in done.replies {
            let _ = reply.send(Answer::Reply {
                events: (done.log.iter())
                    .map(|m| ("control-log".to_owned(), m.clone()))
                    .collect(),
                response: messages::outcome(result.clone()),
            });
        }
    }
}

/// The `log` event of an engine event (`swanctl --log`).
pub fn log_event(event: &Event) -> (String, Message) {
    ("log".to_owned(), log_message(event))
}

/// An event as charon's `log` and `control-log` messages carry a log line.
fn log_message(event: &Event) -> Message {
    Message::new()
        .kv("group", "IKE")
        .kv("level", 1)
        .kv("thread", 0)
        .kv("msg", event)
}

fn response(response: Message) -> Answer {
    Answer::Reply {
        events: Vec::new(),
        response,
    }
}

fn streamed(event: &str, messages: Vec<Message>) -> Answer {
    Answer::Reply {
        events: messages
            .into_iter()
            .map(|m| (event.to_owned(), m))
            .collect(),
        response: Message::new(),
    }
}

/// Configuring commands for what routevpn has no use for: smartcards, a cache of fetched
/// certificates, address pools.
const UNSUPPORTED: &[&str] = &["load-token", "flush-certs", "load-pool", "unload-pool"];

/// Answers `call` now, or (an `initiate`) once its CHILD SA is up or failed.
pub fn handle(backend: &mut impl Backend, call: Call, now: Instant) {
    let Call {
        command,
        message,
        reply,
    } = call;
    if !CONFIGURING.contains(&command.as_str()) {
        apply_deferred(backend);
    }
    let answer = match command.as_str() {
        "version" => response(messages::version()),
        "stats" => {
            let sas = backend.engine().status();
            response(messages::stats(&backend.stats(), &sas))
        }
        "list-sas" => list_sas(backend, &message, now),
        "list-conns" => {
            let port = backend.ike_port();
            let engine = backend.engine();
            let connections: Vec<&EngineConnection> = engine.connections().collect();
            let conns = messages::list_conns(&connections, message.str("ike"), port);
            streamed("list-conn", conns)
        }
        // As charon's lists only the connections loaded over VICI (not those of its other
        // backends): `swanctl --load-all` unloads those it lists and its file lacks.
        "get-conns" => {
            let names: Vec<String> = backend.loaded().conn_names().cloned().collect();
            response(Message::new().list("conns", names))
        }
        "list-certs" => match list_certs(backend.loaded(), &message) {
            Ok(certs) => streamed("list-cert", certs),
            Err(e) => response(messages::outcome(Err(e))),
        },
        "list-authorities" => streamed(
            "list-authority",
            list_authorities(backend.loaded(), message.str("name")),
        ),
        "initiate" => match initiate(backend, &message, now) {
            Ok(name) => {
                backend.initiations().wait(name, reply);
                return;
            }
            Err(e) => response(messages::outcome(Err(e))),
        },
        "terminate" => response(terminate(backend, &message, now)),
        "rekey" => response(rekey(backend, &message, now)),
        "redirect" => response(messages::outcome(Err(
            "not supported by routevpn: redirect (routevpn is no redirecting gateway)".into(),
        ))),
        "load-conn" => response(messages::outcome(load_conn(backend, &message, now))),
        "unload-conn" => {
            let result = (backend.loaded().without_conn(&message))
                .and_then(|(name, next)| commit(backend, next, Some(&name), None, now));
            response(messages::outcome(result))
        }
        "load-shared" => {
            let next = backend.loaded().with_shared(&message);
            credentials_changed(backend, next, now)
        }
        "unload-shared" => {
            let next = backend.loaded().without_shared(&message);
            credentials_changed(backend, next, now)
        }
        "get-shared" => response(Message::new().list("keys", backend.loaded().shared_ids())),
        "load-key" => match backend.loaded().with_key(&message) {
            Ok((id, next)) => {
                let result = commit(backend, next, None, None, now);
                let done = result.is_ok();
                let answer = messages::outcome(result);
                response(if done { answer.kv("id", id) } else { answer })
            }
            Err(e) => response(messages::outcome(Err(e))),
        },
        "unload-key" => {
            let next = backend.loaded().without_key(&message);
            credentials_changed(backend, next, now)
        }
        "get-keys" => response(Message::new().list("keys", backend.loaded().key_ids())),
        "load-cert" => {
            let next = backend.loaded().with_cert(&message);
            credentials_changed(backend, next, now)
        }
        "clear-creds" => {
            let next = backend.loaded().without_creds();
            credentials_changed(backend, Ok(next), now)
        }
        "get-authorities" => {
            response(Message::new().list("authorities", backend.loaded().authority_names()))
        }
        "load-authority" => {
            let next = backend.loaded().with_authority(&message);
            credentials_changed(backend, next, now)
        }
        "unload-authority" => {
            let next = backend.loaded().without_authority(&message);
            credentials_changed(backend, next, now)
        }
        "get-pools" => response(Message::new()),
        other if UNSUPPORTED.contains(&other) => response(messages::outcome(Err(format!(
            "not supported by routevpn over VICI: {other}"
        )))),
        _ => Answer::Unknown,
    };
    let _ = reply.send(answer);
}

/// The answer to a change of credentials (keys, certificates, authorities): `next` kept if
/// it could be made and the daemon accepts it.
fn credentials_changed(
    backend: &mut impl Backend,
    next: Result<Loaded, String>,
    now: Instant,
) -> Answer {
    let result = next.and_then(|next| commit(backend, next, None, None, now));
    response(messages::outcome(result))
}

/// `list-cert` events for the loaded certificates the request's `type` and `flag` select,
/// as charon's: the DER certificate and whether its private key is loaded, never the key.
fn list_certs(loaded: &Loaded, request: &Message) -> Result<Vec<Message>, String> {
    // As charon: the subject DN or a subjectAltName, in swanctl's identity syntax.
    let subject = (request.str("subject"))
        .map(|text| crate::profile::parse_identity(text).map(|id| wire_identity(&id)))
        .transpose()
        .map_err(|e| format!("list-certs: subject: {e}"))?;
    let any = |filter: Option<&str>, value: &str| {
        filter.is_none_or(|f| f.eq_ignore_ascii_case("ANY") || f.eq_ignore_ascii_case(value))
    };
    if !any(request.str("type"), "X509") {
        return Ok(Vec::new());
    }
    let listed = (loaded.certs().into_iter())
        .filter(|cert| any(request.str("flag"), cert.flag.name()))
        .filter(|cert| (subject.as_ref()).is_none_or(|id| certificate_named_by(&cert.der, id)))
        .map(|cert| {
            let has_key = if loaded.has_private_key(cert) {
                "yes"
            } else {
                "no"
            };
            let mut message = (Message::new().kv("type", "X509"))
                .kv("flag", cert.flag.name())
                .kv("has_privkey", has_key);
            message
                .0
                .push(Element::KeyValue("data".into(), cert.der.clone()));
            message
        })
        .collect();
    Ok(listed)
}

/// `list-authority` events as charon's: the CA certificate by its subject; routevpn holds
/// no URIs (`load-authority` refuses them).
fn list_authorities(loaded: &Loaded, name: Option<&str>) -> Vec<Message> {
    (loaded.authorities(name).into_iter())
        .map(|(name, cert)| {
            let subject = certificate_subject(&cert.der).unwrap_or_default();
            let body = (Message::new().kv("cacert", &subject))
                .list("crl_uris", Vec::<String>::new())
                .list("ocsp_uris", Vec::<String>::new());
            Message::new().section(name, body)
        })
        .collect()
}

fn load_conn(backend: &mut impl Backend, message: &Message, now: Instant) -> Result<(), String> {
    let (name, next) = backend.loaded().with_conn(message)?;
    if backend.profile_defines(&name) {
        return Err(format!(
            "connection '{name}': a profile defines tunnel '{name}' (profiles win over \
             loaded connections)"
        ));
    }
    commit(backend, next, None, Some(&name), now)
}

/// Checks `next`'s connections as the daemon would take them, keeps `next` and leaves
/// the change to be applied with its burst ([`Deferred`]). The connection being
/// `loading` must map; another that no longer does (its key was unloaded) is left out
/// until its key is loaded again: charon keeps such a connection but cannot
/// authenticate it, and swanctl unloads keys before the connections that used them.
fn commit(
    backend: &mut impl Backend,
    next: Loaded,
    unloaded: Option<&str>,
    loading: Option<&str>,
    now: Instant,
) -> Result<(), String> {
    let unchanged_conns = next.conn_names().eq(backend.loaded().conn_names());
    let Mapped { profiles, unusable } = next.mapped();
    for (name, why) in &unusable {
        if Some(name.as_str()) == loading {
            return Err(why.clone());
        }
        logging::warn(
            APPLY,
            format_args!("{name}: left out until a key for it is loaded: {why}"),
        );
    }
    // A key alone changes nothing applied until a connection uses it.
    if !(unchanged_conns && profiles.is_empty() && unusable.is_empty()) {
        backend.check(&profiles)?;
        let applied = backend.loaded().clone();
        let pending = backend.deferred().0.get_or_insert_with(|| Pending {
            applied,
            unloaded: BTreeSet::new(),
            last: now,
        });
        pending.last = now;
        pending.unloaded.extend(unloaded.map(str::to_owned));
    }
    *backend.loaded() = next;
    Ok(())
}

fn list_sas(backend: &mut impl Backend, message: &Message, now: Instant) -> Answer {
    let filter = match Filter::from_request(message) {
        Ok(filter) => filter,
        Err(e) => return response(messages::outcome(Err(e))),
    };
    // Counters that cannot be read are an error, not SAs without traffic.
    let kernel = match backend.kernel_sas() {
        Ok(kernel) => kernel,
        Err(e) => return response(messages::outcome(Err(format!("reading the SAs: {e}")))),
    };
    let engine = backend.engine();
    let sas = engine.status();
    let connections: Vec<&EngineConnection> = engine.connections().collect();
    streamed(
        "list-sa",
        messages::list_sas(&sas, &connections, &kernel, &filter, now),
    )
}

/// The connection an `initiate` names: by `ike`, or the one with the child `child`.
fn initiate(backend: &mut impl Backend, message: &Message, now: Instant) -> Result<String, String> {
    let engine = backend.engine();
    let name = match (message.str("ike"), message.str("child")) {
        (Some(ike), _) => ike.to_owned(),
        (None, Some(child)) => (engine.connections())
            .find(|c| c.config.children.iter().any(|ch| ch.name == child))
            .map(|c| c.name().to_owned())
            .ok_or_else(|| format!("CHILD_SA config '{child}' not found"))?,
        (None, None) => return Err("missing configuration name".into()),
    };
    engine.initiate(now, &name).map_err(|e| e.to_string())?;
    Ok(name)
}

/// The connections whose IKE SAs the request's filter selects.
fn selected(backend: &mut impl Backend, message: &Message) -> Result<Vec<String>, String> {
    let filter = Filter::from_request(message)?;
    let mut names: Vec<String> = (backend.engine().status().iter())
        .filter(|sa| filter.ike_matches(sa))
        .filter(|sa| {
            (filter.child.is_none() && filter.child_id.is_none())
                || sa.children.iter().any(|c| filter.child_matches(c))
        })
        .map(|sa| sa.name.clone())
        .collect();
    names.dedup();
    Ok(names)
}

fn terminate(backend: &mut impl Backend, message: &Message, now: Instant) -> Message {
    if message.str("child").is_some() || message.str("child-id").is_some() {
        // The engine deletes a tunnel's CHILD SAs only with its IKE SA.
        return messages::outcome(Err(
            "not supported by routevpn: terminating a single CHILD_SA; terminate its IKE_SA".into(),
        ));
    }
    let names = match selected(backend, message) {
        Ok(names) if names.is_empty() => {
            return messages::outcome(Err("no matching SAs to terminate found".into()))
        }
        Ok(names) => names,
        Err(e) => return messages::outcome(Err(e)),
    };
    let mut failed = Vec::new();
    for name in &names {
        if let Err(e) = backend.engine().terminate(now, name) {
            failed.push(format!("{name}: {e}"));
        }
    }
    let result = all_done(&failed);
    messages::outcome(result)
        .kv("matches", names.len())
        .kv("terminated", names.len() - failed.len())
}

fn rekey(backend: &mut impl Backend, message: &Message, now: Instant) -> Message {
    let ike = message.str("child").is_none() && message.str("child-id").is_none();
    let names = match selected(backend, message) {
        Ok(names) if names.is_empty() => {
            return messages::outcome(Err("no matching SAs to rekey found".into()))
        }
        Ok(names) => names,
        Err(e) => return messages::outcome(Err(e)),
    };
    let mut failed = Vec::new();
    for name in &names {
        let engine = backend.engine();
        let done = if ike {
            engine.rekey_ike(now, name)
        } else {
            engine.rekey_children(now, name)
        };
        if let Err(e) = done {
            failed.push(format!("{name}: {e}"));
        }
    }
    let result = all_done(&failed);
    messages::outcome(result).kv("matches", names.len())
}

/// `Ok` when nothing failed, else every failure in one error.
fn all_done(failed: &[String]) -> Result<(), String> {
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

/// The VICI events an engine event raises: always a `log` line, and the up/down and rekey
/// events charon raises for it.
pub fn raised(
    event: &Event,
    engine: &Engine,
    kernel: &[SaStatus],
    now: Instant,
) -> Vec<(String, Message)> {
    let sas = engine.status();
    let connections: Vec<&EngineConnection> = engine.connections().collect();
    let mut out = vec![log_event(event)];
    out.extend(messages::sa_events(event, &sas, &connections, kernel, now));
    out
}
