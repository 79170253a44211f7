//! Stopping the daemon, deterministically: no new IKE SA (connections are removed first,
//! so neither a restart nor a peer's IKE_SA_INIT finds one), a DELETE to every peer, their
//! answers awaited for a while, then every SA the daemon installed removed, including any
//! an exchange still in flight installed meanwhile. The dataplane stays, so traffic for the
//! tunnels stays dropped (fail closed) until the daemon is back.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::control::Response;
use super::sockets::Inbound;
use super::{log, logging, Daemon};

/// How long the peers have to answer the DELETEs (the engine retransmits meanwhile).
const DELETE_WAIT: Duration = Duration::from_secs(3);

impl Daemon {
    pub(super) async fn shutdown(&mut self, rx: &mut mpsc::Receiver<Inbound>) {
        let now = Instant::now();
        let names: BTreeSet<String> = (self.engine.status().iter())
            .map(|s| s.name.clone())
            .chain(self.tunnels.iter().map(|t| t.name.clone()))
            .collect();
        for name in &names {
            let _ = self.engine.remove_connection(now, name);
        }
        self.drain();
        let deadline = tokio::time::Instant::now() + DELETE_WAIT;
        while !self.engine.status().is_empty() && tokio::time::Instant::now() < deadline {
            let timer = (self.engine.next_timeout()).map_or(deadline, |at| {
                tokio::time::Instant::from_std(at).min(deadline)
            });
            tokio::select! {
                message = rx.recv() => match message {
                    Some(Inbound::Datagram { local, remote, bytes }) => {
                        super::ike_log::received(local, remote, &bytes);
                        self.engine.handle_datagram(Instant::now(), local, remote, &bytes);
                    }
                    Some(Inbound::Control { reply, .. }) => {
                        let _ = reply.send(Response::error("the daemon is stopping"));
                    }
                    Some(Inbound::Metrics { reply }) => {
                        let _ = reply.send(Err("the daemon is stopping".into()));
                    }
                    Some(Inbound::Vici(call)) => {
                        let stopping = crate::vici::messages::outcome(Err("routevpn is stopping".into()));
                        let _ = call.reply.send(super::vici_server::Answer::Reply {
                            events: Vec::new(),
                            response: stopping,
                        });
                    }
                    // Expiries and acquires: every SA goes anyway, none is negotiated.
                    Some(
                        Inbound::Expired { .. }
                        | Inbound::Acquired { .. }
                        | Inbound::LocalAddresses(_)
                        | Inbound::Stopped { .. },
                    ) => {}
                    None => break,
                },
                () = tokio::time::sleep_until(timer) => self.engine.handle_timeout(Instant::now()),
            }
            self.drain();
        }
        let unanswered = self.engine.status().len();
        for connection in self.installed.connections() {
            for e in (self.installed).remove_connection(&mut self.kernel, &connection) {
                logging::error(
                    logging::IKE,
                    format_args!("{connection}: removing its SAs: {e}"),
                );
            }
        }
        let _ = std::fs::remove_file(&self.options.socket);
        if let Some(super::metrics::server::Address::Unix(path)) = &self.options.metrics {
            let _ = std::fs::remove_file(path);
        }
        let _ = std::fs::remove_file(&self.options.vici_socket);
        if unanswered > 0 {
            log(format_args!(
                "stopped ({unanswered} IKE SA(s) without the peer's answer to the DELETE)"
            ));
        } else {
            log("stopped");
        }
    }
}
