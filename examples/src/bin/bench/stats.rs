//! Timing harness: run an operation on N threads for a fixed time and summarise the latencies.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::BoxError;

/// The outcome of one measurement.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub(crate) threads: usize,
    pub(crate) calls: u64,
    pub(crate) seconds: f64,
    /// Latency percentiles in microseconds.
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
}

impl Sample {
    pub(crate) fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.calls as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// Builds a sample from raw latencies (nanoseconds) and the wall time they took.
    pub(crate) fn from_latencies(threads: usize, mut nanos: Vec<u64>, wall: Duration) -> Self {
        nanos.sort_unstable();
        Self {
            threads,
            calls: nanos.len() as u64,
            seconds: wall.as_secs_f64(),
            p50_us: percentile(&nanos, 0.50),
            p99_us: percentile(&nanos, 0.99),
        }
    }
}

/// The sample of `samples` taken with `threads` threads, if any.
pub(crate) fn at(samples: &[Sample], threads: usize) -> Option<&Sample> {
    samples.iter().find(|s| s.threads == threads)
}

/// The `q` quantile (nearest rank) of sorted nanoseconds, in microseconds.
pub(crate) fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    sorted[index] as f64 / 1000.0
}

/// Runs `make(thread)`'s operation on `threads` threads: first for `warmup` unrecorded, then,
/// all threads released together, for `time`, recording each call's latency. Returns the raw
/// latencies and the wall time of the measured phase.
pub(crate) fn run<F>(
    threads: usize,
    warmup: Duration,
    time: Duration,
    make: impl Fn(usize) -> Result<F, BoxError> + Sync,
) -> Result<(Vec<u64>, Duration), BoxError>
where
    F: FnMut() -> Result<(), BoxError>,
{
    let start = Barrier::new(threads + 1);
    let stop = Barrier::new(threads + 1);
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (make, start, stop) = (&make, &start, &stop);
                scope.spawn(move || -> Result<Vec<u64>, BoxError> {
                    let prepared = make(i).and_then(|mut op| {
                        let until = Instant::now() + warmup;
                        while Instant::now() < until {
                            op()?;
                        }
                        Ok(op)
                    });
                    start.wait();
                    let mut op = match prepared {
                        Ok(op) => op,
                        Err(error) => {
                            stop.wait();
                            return Err(error);
                        }
                    };
                    let until = Instant::now() + time;
                    let mut nanos = Vec::with_capacity(1 << 16);
                    let mut result = Ok(());
                    loop {
                        let begin = Instant::now();
                        if begin >= until {
                            break;
                        }
                        if let Err(error) = op() {
                            result = Err(error);
                            break;
                        }
                        nanos.push(begin.elapsed().as_nanos() as u64);
                    }
                    stop.wait();
                    result.map(|()| nanos)
                })
            })
            .collect();
        start.wait();
        let begin = Instant::now();
        stop.wait();
        let wall = begin.elapsed();
        let mut all = Vec::new();
        for handle in handles {
            match handle.join() {
                Ok(nanos) => all.extend(nanos?),
                Err(_) => return Err::<_, BoxError>("a benchmark thread panicked".into()),
            }
        }
        Ok((all, wall))
    })?;
    Ok(results)
}
