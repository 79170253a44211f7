//! XFRM netlink: the policies that route traffic into SAs (and drop it without them), and
//! manually keyed SAs.

mod algorithms;
pub mod policy;
pub mod state;

use std::io;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_xfrm::policy::DelGetMessage;
use netlink_packet_xfrm::state::GetDumpMessage;
use netlink_packet_xfrm::XfrmMessage;

use super::socket::Socket;
use super::Backend;
use crate::apply::diff::Change;
use crate::apply::kernel::{KernelError, Scope};
use crate::apply::objects::Object;
use crate::apply::status::SaStatus;

pub struct Xfrm {
    socket: Socket<XfrmMessage>,
}

impl Xfrm {
    pub fn open() -> io::Result<Xfrm> {
        Ok(Xfrm {
            socket: Socket::open(netlink_sys::protocols::NETLINK_XFRM)?,
        })
    }

    fn dump_states(&mut self) -> Result<Vec<XfrmMessage>, KernelError> {
        self.socket
            .dump(XfrmMessage::GetDumpSa(GetDumpMessage::default()))
            .map_err(|e| KernelError::io(None, "reading XFRM states", &e))
    }

    /// Every ESP SA with its counters, whoever installed it.
    pub fn sa_status(&mut self) -> Result<Vec<SaStatus>, KernelError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(self
            .dump_states()?
            .iter()
            .filter_map(|m| match m {
                XfrmMessage::AddSa(sa) | XfrmMessage::UpdateSa(sa) => state::status(sa, now),
                _ => None,
            })
            .collect())
    }
}

fn error(change: &Change, e: io::Error) -> KernelError {
    KernelError::io(Some(change.key()), "", &e)
}

impl Backend for Xfrm {
    fn read(&mut self, _scope: &Scope, out: &mut Vec<Object>) -> Result<(), KernelError> {
        let answers = self
            .socket
            .dump(XfrmMessage::GetPolicy(DelGetMessage::default()))
            .map_err(|e| KernelError::io(None, "reading XFRM policies", &e))?;
        out.extend(answers.iter().filter_map(|m| match m {
            XfrmMessage::AddPolicy(p) | XfrmMessage::UpdatePolicy(p) => {
                policy::decode(p).map(Object::Policy)
            }
            _ => None,
        }));
        out.extend(self.dump_states()?.iter().filter_map(|m| match m {
            XfrmMessage::AddSa(sa) | XfrmMessage::UpdateSa(sa) => state::decode(sa).map(Object::Sa),
            _ => None,
        }));
        Ok(())
    }

    fn execute(&mut self, changes: &[&Change]) -> Vec<Result<(), KernelError>> {
        let requests = changes
            .iter()
            .map(|change| match change {
                Change::Create(o) => match &o.object {
                    Object::Policy(p) => (
                        NLM_F_CREATE | NLM_F_EXCL,
                        XfrmMessage::AddPolicy(policy::modify_message(p)),
                    ),
                    Object::Sa(sa) => (
                        NLM_F_CREATE | NLM_F_EXCL,
                        XfrmMessage::AddSa(state::add_message(sa)),
                    ),
                    _ => unreachable!("routed by family"),
                },
                Change::Update { to, .. } => match &to.object {
                    Object::Policy(p) => (0, XfrmMessage::UpdatePolicy(policy::modify_message(p))),
                    _ => unreachable!("routed by family"),
                },
                Change::Delete {
                    object: Object::Policy(p),
                    ..
                } => (0, XfrmMessage::DeletePolicy(policy::delete_message(p))),
                Change::Delete {
                    object: Object::Sa(sa),
                    ..
                } => (0, XfrmMessage::DeleteSa(state::delete_message(sa))),
                Change::Delete { .. } => unreachable!("routed by family"),
            })
            .collect();
        self.socket
            .batch(requests)
            .into_iter()
            .zip(changes)
            .map(|(result, change)| result.map_err(|e| error(change, e)))
            .collect()
    }
}
