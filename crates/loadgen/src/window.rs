//! The timeline of a run, the same for every kind of load: the workers start together, what
//! they start in the first `warmup` is tallied apart, the measured window follows, and the CPU
//! time of this process (and of the server) is read around the measured window.
//!
//! Every worker keeps its own tallies ([`Phases`]); they are merged once at the end
//! ([`Window::collect`]), so there are no shared counters on the hot path.

use std::time::Duration;

use anyhow::Context as _;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long and how hard to drive the target.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Concurrent workers, each with at most one request in flight.
    pub concurrency: usize,
    /// Requests before this long after the start are not measured.
    pub warmup: Duration,
    /// The measured window after the warmup.
    pub duration: Duration,
}

/// What one phase of one worker tallied, and how two such tallies combine.
pub trait Merge: Default {
    /// Adds `other` to `self`.
    fn merge(&mut self, other: Self);
}

/// When the measured window begins and when the run ends.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// The end of the warmup: the start of the measured window.
    pub measure_from: Instant,
    /// No request starts at or after this.
    pub end: Instant,
}

impl Window {
    /// A run of `load` that starts now.
    #[must_use]
    pub fn starting_now(load: &Load) -> Self {
        let measure_from = Instant::now() + load.warmup;
        Self {
            measure_from,
            end: measure_from + load.duration,
        }
    }

    /// A worker's empty tallies for this run.
    #[must_use]
    pub fn phases<T: Default>(self) -> Phases<T> {
        Phases {
            window: self,
            warmup: T::default(),
            measured: T::default(),
        }
    }

    /// Waits for the measured window, meters the CPU time of this process and of the server
    /// (`server_pid`) over it, and merges what the `workers` tallied once they have all
    /// finished.
    ///
    /// # Errors
    /// When a worker task died.
    pub async fn collect<T: Merge>(
        self,
        workers: Vec<JoinHandle<Phases<T>>>,
        server_pid: Option<u32>,
    ) -> anyhow::Result<Measured<T>> {
        tokio::time::sleep_until(self.measure_from).await;
        let meter = crate::cpu::Meter::start(server_pid);
        let mut warmup = T::default();
        let mut measured = T::default();
        for handle in workers {
            let phases = handle.await.context("a worker task died")?;
            warmup.merge(phases.warmup);
            measured.merge(phases.measured);
        }
        let window = self.measure_from.elapsed();
        Ok(Measured {
            warmup,
            measured,
            window,
            cpu: meter.stop(),
        })
    }
}

/// One worker's tallies: one for the warmup, one for the measured window.
#[derive(Debug)]
pub struct Phases<T> {
    window: Window,
    warmup: T,
    measured: T,
}

impl<T> Phases<T> {
    /// The tally for a request (or flow) starting now, and the instant it starts; `None` once
    /// the run is over.
    pub fn next(&mut self) -> Option<(&mut T, Instant)> {
        let started = Instant::now();
        if started >= self.window.end {
            None
        } else if started < self.window.measure_from {
            Some((&mut self.warmup, started))
        } else {
            Some((&mut self.measured, started))
        }
    }
}

/// What the workers tallied, and the measured window's length and CPU use.
#[derive(Debug)]
pub struct Measured<T> {
    /// The warmup phase.
    pub warmup: T,
    /// The measured phase.
    pub measured: T,
    /// From the end of the warmup until the last worker stopped.
    pub window: Duration,
    /// CPU time of this process, the server and the machine during the window.
    pub cpu: crate::cpu::Usage,
}
