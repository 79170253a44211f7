//! The engine's IKE SAs by our SPI, with their next deadlines kept in order. The driver
//! asks for the next timeout after every event: computing it from every SA each time made
//! each datagram cost in proportion to the number of tunnels. SAs are boxed so that the
//! table's spare capacity costs a pointer per slot, not a whole SA.
//!
//! There is no `get_mut`: an SA is taken out, changed and put back with its new deadline,
//! which is how the engine works on SAs anyway.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use super::sa::IkeSa;

#[derive(Debug, Default)]
pub struct SaTable {
    sas: HashMap<u64, Entry>,
    /// (deadline, SPI) of every SA that has one.
    timers: BTreeSet<(Instant, u64)>,
}

#[derive(Debug)]
struct Entry {
    sa: Box<IkeSa>,
    deadline: Option<Instant>,
}

impl SaTable {
    /// Stores `sa` under its SPI with its next deadline, replacing one stored there.
    pub fn insert(&mut self, sa: Box<IkeSa>, deadline: Option<Instant>) {
        let spi = sa.local_spi();
        self.remove(&spi);
        if let Some(at) = deadline {
            self.timers.insert((at, spi));
        }
        self.sas.insert(spi, Entry { sa, deadline });
    }

    pub fn remove(&mut self, spi: &u64) -> Option<Box<IkeSa>> {
        let entry = self.sas.remove(spi)?;
        if let Some(at) = entry.deadline {
            self.timers.remove(&(at, *spi));
        }
        Some(entry.sa)
    }

    pub fn contains_key(&self, spi: &u64) -> bool {
        self.sas.contains_key(spi)
    }

    pub fn len(&self) -> usize {
        self.sas.len()
    }

    pub fn values(&self) -> impl Iterator<Item = &IkeSa> {
        self.sas.values().map(|e| &*e.sa)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&u64, &IkeSa)> {
        self.sas.iter().map(|(spi, e)| (spi, &*e.sa))
    }

    /// Every SA with the deadline stored for it (for checking them in debug builds).
    #[cfg(debug_assertions)]
    pub fn deadlines(&self) -> impl Iterator<Item = (&IkeSa, Option<Instant>)> {
        self.sas.values().map(|e| (&*e.sa, e.deadline))
    }

    /// The earliest deadline of any SA.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// The SPIs of the SAs whose deadline is `now` or earlier, earliest first.
    pub fn due(&self, now: Instant) -> Vec<u64> {
        (self.timers.iter())
            .take_while(|(at, _)| *at <= now)
            .map(|(_, spi)| *spi)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::engine::sa::State;
    use std::time::Duration;

    fn sa(spi: u64) -> Box<IkeSa> {
        let addr = "192.0.2.1:500".parse().unwrap();
        let mut sa = IkeSa::new("t".into(), true, State::Established, (addr, addr));
        sa.spi_i = spi;
        Box::new(sa)
    }

    #[test]
    fn deadlines_follow_every_insert_and_remove() {
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        let mut table = SaTable::default();
        table.insert(sa(1), Some(at(30)));
        table.insert(sa(2), Some(at(10)));
        table.insert(sa(3), None);
        assert_eq!(table.next_deadline(), Some(at(10)));
        assert_eq!(table.due(at(30)), vec![2, 1]);
        // Re-inserting replaces the SA's deadline; removing drops it.
        table.insert(sa(2), Some(at(40)));
        assert_eq!(table.next_deadline(), Some(at(30)));
        assert_eq!(table.len(), 3);
        assert!(table.remove(&1).is_some());
        assert_eq!(table.due(at(35)), Vec::<u64>::new());
        assert_eq!(table.next_deadline(), Some(at(40)));
        assert!(table.remove(&2).is_some() && table.remove(&2).is_none());
        assert_eq!(table.next_deadline(), None);
        assert!(table.contains_key(&3));
    }
}
