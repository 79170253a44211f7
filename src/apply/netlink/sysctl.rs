//! Sysctls through /proc/sys, as the sysctl tool itself does.

use super::Backend;
use crate::apply::diff::Change;
use crate::apply::kernel::{KernelError, Scope};
use crate::apply::objects::{Object, Sysctl};

#[derive(Debug, Default)]
pub struct Sysctls;

impl Backend for Sysctls {
    fn read(&mut self, scope: &Scope, out: &mut Vec<Object>) -> Result<(), KernelError> {
        for key in &scope.sysctls {
            let probe = Sysctl {
                key: key.clone(),
                value: String::new(),
            };
            // Absent: the device it belongs to does not exist (yet).
            if let Ok(value) = std::fs::read_to_string(probe.proc_path()) {
                out.push(Object::Sysctl(Sysctl {
                    key: key.clone(),
                    value: value.trim().to_string(),
                }));
            }
        }
        Ok(())
    }

    fn execute(&mut self, changes: &[&Change]) -> Vec<Result<(), KernelError>> {
        changes
            .iter()
            .map(|change| {
                let (Change::Create(o) | Change::Update { to: o, .. }) = change else {
                    // Sysctls are restored through updates, never deleted.
                    return Ok(());
                };
                let Object::Sysctl(s) = &o.object else {
                    unreachable!("routed by family")
                };
                std::fs::write(s.proc_path(), &s.value)
                    .map_err(|e| KernelError::io(Some(change.key()), "", &e))
            })
            .collect()
    }
}
