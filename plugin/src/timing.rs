//! Per-step timings at debug level (`"logLevel": "debug"` or `VBRIDGE_LOG=debug`), so
//! a slow ADD or DEL shows where its time went.

use std::time::Instant;

pub struct Laps {
    verb: &'static str,
    start: Instant,
    last: Instant,
}

impl Laps {
    pub fn start(verb: &'static str) -> Laps {
        let now = Instant::now();
        Laps {
            verb,
            start: now,
            last: now,
        }
    }

    pub fn lap(&mut self, step: &str) {
        if log::log_enabled!(log::Level::Debug) {
            let now = Instant::now();
            log::debug!(
                "{} {step}: {:.2} ms (total {:.2} ms)",
                self.verb,
                (now - self.last).as_secs_f64() * 1e3,
                (now - self.start).as_secs_f64() * 1e3
            );
            self.last = now;
        }
    }
}
