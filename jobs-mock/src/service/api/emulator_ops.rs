//! The emulator's own operations: AdvanceClock and Reset.

use std::time::Duration;

use jobs_core::ThingName;
use serde::{Deserialize, Serialize};

use super::super::jobs_service::{JobsService, Outgoing};
use super::super::state::seconds;
use super::shapes::Empty;
use super::{ApiError, ControlOperation, Operation, sealed};

/// AdvanceClock: moves the service's clock forward by `seconds` (fractions allowed, down to
/// the millisecond) and fires every timer that expires by then; those executions become
/// TIMED_OUT with the usual events. Works on every clock; a real one keeps running from there.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct AdvanceClock {
    /// How far, in seconds (≥ 0).
    pub seconds: f64,
}

impl AdvanceClock {
    /// A request to move the clock by `by`.
    pub fn new(by: Duration) -> Self {
        Self {
            seconds: by.as_secs_f64(),
        }
    }
}

/// The output of AdvanceClock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AdvanceClockOutput {
    /// The new time, in whole seconds since the epoch.
    pub timestamp: i64,
}

impl sealed::Sealed for AdvanceClock {}

impl ControlOperation for AdvanceClock {
    const OPERATION: Operation = Operation::AdvanceClock;
    type Output = AdvanceClockOutput;

    fn run(
        self,
        service: &mut JobsService,
        _now_ms: i64,
        events: &mut Vec<Outgoing>,
    ) -> Result<AdvanceClockOutput, ApiError> {
        let by = Duration::try_from_secs_f64(self.seconds).map_err(|_| {
            ApiError::invalid(format!(
                "seconds must be a finite number ≥ 0, not {}",
                self.seconds
            ))
        })?;
        events.extend(service.advance_clock(by));
        Ok(AdvanceClockOutput {
            timestamp: seconds(service.clock.now_millis()),
        })
    }
}

/// Reset: forgets everything — jobs, executions, registered things and thing groups, pending
/// fault injections — or, with `thingName`, only that thing's executions (its jobs and its
/// registration stay), without sending any event. For test suites that share one service. The
/// clock, the quirks and the URL signer stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct Reset {
    /// Only this thing.
    #[serde(default)]
    pub thing_name: Option<ThingName>,
}

impl sealed::Sealed for Reset {}

impl ControlOperation for Reset {
    const OPERATION: Operation = Operation::Reset;
    type Output = Empty;

    fn run(
        self,
        service: &mut JobsService,
        _now_ms: i64,
        _events: &mut Vec<Outgoing>,
    ) -> Result<Empty, ApiError> {
        match self.thing_name {
            Some(thing) => service.forget_thing(&thing),
            None => service.forget_everything(),
        }
        Ok(Empty {})
    }
}
