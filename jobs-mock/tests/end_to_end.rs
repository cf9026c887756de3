//! The `jobs-core` client against the simulator on the `MockBroker`: the classic device loop,
//! many threads on one `Jobs`, many things on one `Client`, rejections, events and timers as
//! a device sees them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a panic fails the test"
)]

mod common;

use jobs_core::Version;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use jobs_core::{
    Client, Event, JobStatus, Jobs, RejectCode, StartNext, StatusDetails, StepTimeout,
};
use jobs_mock::MockBroker;
use jobs_mock::service::Simulator;

/// Every call in these tests waits at most this long.
const TIMEOUT: Duration = Duration::from_secs(5);

fn setup() -> (MockBroker, Simulator) {
    let broker = MockBroker::new();
    let simulator = Simulator::start(Arc::new(broker.connect("jobs-service")), service()).unwrap();
    (broker, simulator)
}

fn device(broker: &MockBroker, thing: &str) -> Jobs {
    let client = Client::new(broker.connect(thing)).unwrap();
    Jobs::builder(&client, thing)
        .timeout(TIMEOUT)
        .build()
        .unwrap()
}

fn details(pairs: &[(&str, &str)]) -> StatusDetails {
    StatusDetails::from_pairs(pairs.iter().copied()).unwrap()
}

#[test]
fn the_seed_device_loop_runs_a_job_to_success() {
    let (broker, simulator) = setup();
    let jobs = device(&broker, "pump-07");
    assert!(jobs.changed(), "true at start-up");
    assert!(jobs.list().unwrap().is_empty());
    assert!(!jobs.changed());

    simulator
        .create_job(spec("calibrate", &["pump-07"]))
        .unwrap();
    assert!(
        jobs.changed(),
        "the notify arrived before create_job returned"
    );
    let mut pending = jobs.list().unwrap();
    assert_eq!(pending.len(), 1);
    let mut job = pending.remove(0);
    job.describe().unwrap();
    assert_eq!(
        job.document().unwrap().to_value(),
        serde_json::json!({"action": "calibrate"})
    );
    job.update(JobStatus::InProgress, Some(&details(&[("step", "1")])))
        .unwrap();
    job.update(JobStatus::Succeeded, Some(&details(&[("result", "ok")])))
        .unwrap();
    // The service replies first, then sends the notify the update caused: wait for it.
    let emptied = std::iter::from_fn(|| jobs.with_timeout(Duration::from_secs(5)).next_event().unwrap())
        .find(|e| matches!(e, Event::JobsChanged(c) if c.jobs.queued.is_empty() && c.jobs.in_progress.is_empty()));
    assert!(emptied.is_some(), "the notify of the finished job came");
    assert!(jobs.changed());
    assert!(jobs.list().unwrap().is_empty());

    let state = simulator
        .execution(&thing("pump-07"), &common::job("calibrate"))
        .unwrap();
    assert_eq!(state.status, JobStatus::Succeeded);
    assert_eq!(state.version_number, 3);
    assert_eq!(state.status_details.unwrap().get("result"), Some("ok"));
}

#[test]
fn start_next_and_describe_next_return_none_when_nothing_is_pending() {
    let (broker, _simulator) = setup();
    let jobs = device(&broker, "pump-07");
    assert!(jobs.start_next().unwrap().is_none());
    assert!(jobs.describe_next().unwrap().is_none());
}

#[test]
fn start_next_with_a_step_timer_reports_the_time_left_and_times_out() {
    let (broker, simulator) = setup();
    let jobs = device(&broker, "pump-07");
    simulator.create_job(spec("a", &["pump-07"])).unwrap();
    let mut job = jobs
        .start_next_with(StartNext::new().step_timeout(StepTimeout::minutes(2).unwrap()))
        .unwrap()
        .unwrap();
    assert_eq!(job.status(), Some(&JobStatus::InProgress));
    assert_eq!(
        job.execution().approximate_seconds_before_timed_out,
        Some(120)
    );
    while jobs.try_next_event().is_some() {}

    simulator.advance_clock(Duration::from_secs(120));
    let events: Vec<Event> = std::iter::from_fn(|| jobs.try_next_event()).collect();
    assert!(events.iter().any(|e| matches!(e, Event::JobsChanged(c) if c.jobs.queued.is_empty() && c.jobs.in_progress.is_empty())));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::NextJobChanged(n) if n.execution.is_none()))
    );
    let error = job.describe().unwrap_err();
    assert_eq!(
        error.rejection().unwrap().code,
        RejectCode::TerminalStateReached
    );
    let error = job.update(JobStatus::Succeeded, None).unwrap_err();
    let rejection = error.rejection().unwrap();
    assert_eq!(rejection.code, RejectCode::InvalidStateTransition);
    assert_eq!(
        job.status(),
        Some(&JobStatus::TimedOut),
        "state taken from the rejection"
    );
}

#[test]
fn events_reach_the_device_before_the_control_call_returns() {
    let (broker, simulator) = setup();
    let jobs = device(&broker, "pump-07");
    simulator.create_job(spec("a", &["pump-07"])).unwrap();
    match jobs.try_next_event() {
        Some(Event::JobsChanged(event)) => assert_eq!(ids(&event.jobs.queued), ["a"]),
        other => panic!("expected notify, got {other:?}"),
    }
    match jobs.try_next_event() {
        Some(Event::NextJobChanged(event)) => {
            assert_eq!(event.execution.unwrap().job_id.as_str(), "a");
        }
        other => panic!("expected notify-next, got {other:?}"),
    }
    assert!(jobs.try_next_event().is_none());
    simulator.cancel_job(&job("a")).unwrap();
    assert!(matches!(jobs.try_next_event(), Some(Event::JobsChanged(_))));
    assert!(
        matches!(jobs.try_next_event(), Some(Event::NextJobChanged(n)) if n.execution.is_none())
    );
}

#[test]
fn a_stale_expected_version_surfaces_as_version_mismatch_with_the_current_state() {
    let (broker, simulator) = setup();
    let jobs = device(&broker, "pump-07");
    simulator.create_job(spec("a", &["pump-07"])).unwrap();
    let mut first = jobs.list().unwrap().remove(0);
    let mut second = first.clone();
    second.set_expected_version(true);
    first.update(JobStatus::InProgress, None).unwrap();
    let error = second.update(JobStatus::Succeeded, None).unwrap_err();
    let rejection = error.rejection().unwrap();
    assert_eq!(rejection.code, RejectCode::VersionMismatch);
    assert_eq!(
        rejection.execution_state.as_ref().unwrap().version_number,
        Some(Version::new(2))
    );
    second.update(JobStatus::Succeeded, None).unwrap();
    assert_eq!(
        second.version(),
        Some(Version::new(3)),
        "the retry used the reported version"
    );
}

#[test]
fn throttling_and_internal_errors_are_retryable_and_a_retry_succeeds() {
    let (broker, simulator) = setup();
    let jobs = device(&broker, "pump-07");
    simulator.throttle_next_requests(1);
    simulator.fail_next_requests(1);
    let throttled = jobs.list().unwrap_err();
    assert_eq!(
        throttled.rejection().unwrap().code,
        RejectCode::RequestThrottled
    );
    assert!(throttled.is_retryable());
    let failed = jobs.list().unwrap_err();
    assert_eq!(failed.rejection().unwrap().code, RejectCode::InternalError);
    assert!(failed.is_retryable());
    assert!(jobs.list().unwrap().is_empty());
}

#[test]
fn describing_an_unknown_job_is_resource_not_found() {
    let (broker, _simulator) = setup();
    let jobs = device(&broker, "pump-07");
    let mut job = jobs.job("nope").unwrap();
    let error = job.describe().unwrap_err();
    assert_eq!(
        error.rejection().unwrap().code,
        RejectCode::ResourceNotFound
    );
    assert!(!error.is_retryable());
}

#[test]
fn several_threads_on_one_jobs_update_their_own_jobs_concurrently() {
    let (broker, simulator) = setup();
    let jobs = device(&broker, "pump-07");
    let ids: Vec<String> = (0..8).map(|n| format!("job-{n}")).collect();
    for id in &ids {
        simulator.create_job(spec(id, &["pump-07"])).unwrap();
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = ids
            .iter()
            .map(|id| {
                let jobs = jobs.clone();
                scope.spawn(move || {
                    let mut job = jobs.job(id).unwrap();
                    job.describe().unwrap();
                    assert_eq!(
                        job.document().unwrap().to_value(),
                        serde_json::json!({ "action": id })
                    );
                    job.update(JobStatus::InProgress, None).unwrap();
                    job.update(JobStatus::Succeeded, None).unwrap();
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
    });
    for id in &ids {
        let state = simulator.execution(&thing("pump-07"), &job(id)).unwrap();
        assert_eq!(state.status, JobStatus::Succeeded, "{id}");
        assert_eq!(state.version_number, 3, "{id}");
    }
    assert!(jobs.list().unwrap().is_empty());
}

#[test]
fn several_things_on_one_client_each_run_their_own_executions() {
    let (broker, simulator) = setup();
    let client = Client::new(broker.connect("gateway")).unwrap();
    let things = ["pump-07", "pump-08", "pump-09"];
    let fleet: Vec<Jobs> = things
        .iter()
        .map(|t| Jobs::builder(&client, t).timeout(TIMEOUT).build().unwrap())
        .collect();
    simulator.create_job(spec("fleet-update", &things)).unwrap();
    simulator
        .create_job(spec("pump-08-only", &["pump-08"]))
        .unwrap();
    std::thread::scope(|scope| {
        let handles: Vec<_> = fleet
            .iter()
            .map(|jobs| {
                scope.spawn(move || {
                    let mut done = Vec::new();
                    while let Some(mut job) = jobs.start_next().unwrap() {
                        job.update(JobStatus::Succeeded, None).unwrap();
                        done.push(job.id().to_string());
                        assert!(done.len() <= 2, "no job is started twice");
                    }
                    done
                })
            })
            .collect();
        let done: Vec<Vec<String>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(done[0], ["fleet-update"]);
        assert_eq!(done[1], ["fleet-update", "pump-08-only"]);
        assert_eq!(done[2], ["fleet-update"]);
    });
    assert!(
        simulator
            .executions()
            .iter()
            .all(|e| e.status == JobStatus::Succeeded)
    );
}

#[test]
fn a_removed_execution_is_terminal_for_describe_and_refuses_updates() {
    let (broker, simulator) = setup();
    let jobs = device(&broker, "pump-07");
    simulator.create_job(spec("a", &["pump-07"])).unwrap();
    let mut job = jobs.start_next().unwrap().unwrap();
    simulator
        .remove_thing(&common::job("a"), &thing("pump-07"))
        .unwrap();
    assert!(jobs.changed());
    let error = job.describe().unwrap_err();
    assert_eq!(
        error.rejection().unwrap().code,
        RejectCode::TerminalStateReached
    );
    let error = job.update(JobStatus::Succeeded, None).unwrap_err();
    assert_eq!(
        error.rejection().unwrap().code,
        RejectCode::InvalidStateTransition
    );
}
