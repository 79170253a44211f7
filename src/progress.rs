//! Progress of long operations (an apply of thousands of tunnels) on stderr, when stderr
//! is a terminal; nothing otherwise, so logs and pipes stay clean. One line, redrawn in
//! place at most every 100 ms and at the end, then erased.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const REDRAW_EVERY: Duration = Duration::from_millis(100);

/// "\rapply: writing 1200/5000 changes (24%)" and an erase to the end of the line.
pub fn render(what: &str, done: usize, total: usize) -> String {
    let percent = (done.min(total) * 100).checked_div(total).unwrap_or(100);
    format!("\r{what} {done}/{total} ({percent}%)\x1b[K")
}

pub struct Progress {
    /// `None` when not on a terminal.
    out: Option<Box<dyn Write>>,
    what: String,
    drawn_at: Option<Instant>,
}

impl Progress {
    /// On stderr if it is a terminal.
    pub fn on_stderr(what: &str) -> Progress {
        let stderr = std::io::stderr();
        let terminal = stderr.is_terminal();
        Progress::new(Box::new(stderr), terminal, what)
    }

    pub fn new(out: Box<dyn Write>, terminal: bool, what: &str) -> Progress {
        Progress {
            out: terminal.then_some(out),
            what: what.to_owned(),
            drawn_at: None,
        }
    }

    pub fn update(&mut self, done: usize, total: usize) {
        let Some(out) = &mut self.out else {
            return;
        };
        let due = self.drawn_at.is_none_or(|at| at.elapsed() >= REDRAW_EVERY);
        if due || done >= total {
            let _ = out.write_all(render(&self.what, done, total).as_bytes());
            let _ = out.flush();
            self.drawn_at = Some(Instant::now());
        }
    }

    /// Erases the line, if one was drawn.
    pub fn finish(&mut self) {
        if let (Some(out), Some(_)) = (&mut self.out, self.drawn_at.take()) {
            let _ = out.write_all(b"\r\x1b[K");
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Screen(Arc<Mutex<Vec<u8>>>);

    impl Write for Screen {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn renders_counts_and_percent_on_one_line() {
        assert_eq!(
            render("apply: writing changes", 1200, 5000),
            "\rapply: writing changes 1200/5000 (24%)\x1b[K"
        );
        assert_eq!(render("x", 0, 0), "\rx 0/0 (100%)\x1b[K");
        assert_eq!(render("x", 7, 5), "\rx 7/5 (100%)\x1b[K");
    }

    #[test]
    fn draws_on_a_terminal_only_throttled_and_always_the_end() {
        let screen = Screen::default();
        let mut p = Progress::new(Box::new(screen.clone()), true, "up");
        for done in 1..=1000 {
            p.update(done, 1000);
        }
        p.finish();
        let text = String::from_utf8(screen.0.lock().unwrap().clone()).unwrap();
        // The first, the last, and few in between (a fast loop is within 100 ms).
        assert!(text.starts_with("\rup 1/1000 (0%)\x1b[K"), "{text:?}");
        assert!(
            text.ends_with("\rup 1000/1000 (100%)\x1b[K\r\x1b[K"),
            "{text:?}"
        );
        assert!(text.matches('\r').count() < 100, "{text:?}");

        let pipe = Screen::default();
        let mut p = Progress::new(Box::new(pipe.clone()), false, "up");
        p.update(1, 2);
        p.update(2, 2);
        p.finish();
        assert!(pipe.0.lock().unwrap().is_empty());
    }
}
