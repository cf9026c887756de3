//! Step timers, in-progress timers and TIMED_OUT, on the virtual clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a panic fails the test"
)]

mod common;

use std::time::Duration;

use common::*;
use jobs_core::model::{ExecutionReply, UpdateReply};
use jobs_core::{JobStatus, RejectCode};
use jobs_mock::service::{Clock, JobsService};

fn minutes(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

fn status(service: &JobsService, id: &str) -> JobStatus {
    service
        .execution(&thing("pump-07"), &job(id))
        .unwrap()
        .status
}

#[test]
fn a_step_timer_from_start_next_times_the_execution_out_when_it_expires() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    call(
        &mut service,
        "pump-07",
        "start-next",
        r#"{"stepTimeoutInMinutes":20}"#,
    )
    .accepted::<ExecutionReply>();
    let out = service.advance_clock(minutes(20) - Duration::from_secs(1));
    assert!(out.is_empty());
    assert_eq!(status(&service, "a"), JobStatus::InProgress);
    let out = service.advance_clock(Duration::from_secs(1));
    assert_eq!(status(&service, "a"), JobStatus::TimedOut);
    let notify: serde_json::Value = notifies_raw(&out, "notify");
    assert_eq!(
        notify,
        serde_json::json!({"timestamp": T0 + 1200, "jobs": {}})
    );
    let next: serde_json::Value = notifies_raw(&out, "notify-next");
    assert_eq!(next, serde_json::json!({"timestamp": T0 + 1200}));
    let state = service.execution(&thing("pump-07"), &job("a")).unwrap();
    assert_eq!(state.last_updated_at, T0 + 1200);
    assert_eq!(
        state.version_number, 2,
        "service changes do not bump the version"
    );
    assert_eq!(state.step_deadline_ms, None);
}

fn notifies_raw(out: &[jobs_mock::service::Outgoing], event: &str) -> serde_json::Value {
    let topic = format!("$aws/things/pump-07/jobs/{event}");
    let message = out.iter().find(|m| m.topic == topic).expect(event);
    message.decode().unwrap()
}

#[test]
fn a_timed_out_head_hands_the_queue_to_the_next_execution() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    create(&mut service, "b", &["pump-07"]);
    call(
        &mut service,
        "pump-07",
        "start-next",
        r#"{"stepTimeoutInMinutes":1}"#,
    )
    .accepted::<ExecutionReply>();
    let out = service.advance_clock(minutes(5));
    let next = next_events(&out, "pump-07").remove(0);
    assert_eq!(next.execution.unwrap().job_id.as_str(), "b");
    assert_eq!(ids(&notifies(&out, "pump-07")[0].jobs.queued), ["b"]);
}

#[test]
fn approximate_seconds_before_timed_out_counts_down_with_the_clock() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    call(
        &mut service,
        "pump-07",
        "start-next",
        r#"{"stepTimeoutInMinutes":10}"#,
    )
    .accepted::<ExecutionReply>();
    service.advance_clock(Duration::from_secs(150));
    let reply: ExecutionReply = call(&mut service, "pump-07", "a/get", "{}").accepted();
    assert_eq!(
        reply
            .execution
            .unwrap()
            .approximate_seconds_before_timed_out,
        Some(450)
    );
}

#[test]
fn the_in_progress_timer_starts_when_the_execution_starts_not_when_queued() {
    let mut service = service();
    service
        .create_job(spec("a", &["pump-07"]).in_progress_timeout_minutes(30))
        .unwrap();
    service.advance_clock(minutes(60));
    assert_eq!(status(&service, "a"), JobStatus::Queued);
    let reply = start_next(&mut service, "pump-07");
    assert_eq!(
        reply
            .execution
            .unwrap()
            .approximate_seconds_before_timed_out,
        Some(1800)
    );
    service.advance_clock(minutes(29));
    assert_eq!(status(&service, "a"), JobStatus::InProgress);
    service.advance_clock(minutes(1));
    assert_eq!(status(&service, "a"), JobStatus::TimedOut);
}

#[test]
fn a_step_timer_never_runs_past_the_in_progress_deadline() {
    let mut service = service();
    service
        .create_job(spec("a", &["pump-07"]).in_progress_timeout_minutes(10))
        .unwrap();
    let reply: ExecutionReply = call(
        &mut service,
        "pump-07",
        "start-next",
        r#"{"stepTimeoutInMinutes":60}"#,
    )
    .accepted();
    assert_eq!(
        reply
            .execution
            .unwrap()
            .approximate_seconds_before_timed_out,
        Some(600)
    );
    let state = service.execution(&thing("pump-07"), &job("a")).unwrap();
    assert_eq!(state.step_deadline_ms, Some((T0 + 600) * 1000));
    assert_eq!(state.in_progress_deadline_ms, Some((T0 + 600) * 1000));
}

#[test]
fn a_new_step_timer_on_update_replaces_the_old_one_without_touching_the_in_progress_timer() {
    let mut service = service();
    service
        .create_job(spec("a", &["pump-07"]).in_progress_timeout_minutes(60))
        .unwrap();
    call(
        &mut service,
        "pump-07",
        "start-next",
        r#"{"stepTimeoutInMinutes":5}"#,
    )
    .accepted::<ExecutionReply>();
    service.advance_clock(minutes(4));
    update(
        &mut service,
        "pump-07",
        "a",
        r#"{"status":"IN_PROGRESS","stepTimeoutInMinutes":5}"#,
    )
    .accepted::<UpdateReply>();
    service.advance_clock(minutes(4));
    assert_eq!(
        status(&service, "a"),
        JobStatus::InProgress,
        "old timer replaced"
    );
    let state = service.execution(&thing("pump-07"), &job("a")).unwrap();
    assert_eq!(state.step_deadline_ms, Some((T0 + 540) * 1000));
    assert_eq!(state.in_progress_deadline_ms, Some((T0 + 3600) * 1000));
    service.advance_clock(minutes(1));
    assert_eq!(status(&service, "a"), JobStatus::TimedOut);
}

#[test]
fn a_step_timeout_of_minus_one_cancels_the_step_timer() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    call(
        &mut service,
        "pump-07",
        "start-next",
        r#"{"stepTimeoutInMinutes":5}"#,
    )
    .accepted::<ExecutionReply>();
    update(
        &mut service,
        "pump-07",
        "a",
        r#"{"status":"IN_PROGRESS","stepTimeoutInMinutes":-1}"#,
    )
    .accepted::<UpdateReply>();
    service.advance_clock(minutes(600));
    assert_eq!(status(&service, "a"), JobStatus::InProgress);
    let reply: ExecutionReply = call(&mut service, "pump-07", "a/get", "{}").accepted();
    assert_eq!(
        reply
            .execution
            .unwrap()
            .approximate_seconds_before_timed_out,
        None
    );
}

#[test]
fn updating_a_timed_out_execution_is_rejected_with_invalid_state_transition() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    call(
        &mut service,
        "pump-07",
        "start-next",
        r#"{"stepTimeoutInMinutes":1}"#,
    )
    .accepted::<ExecutionReply>();
    service.advance_clock(minutes(1));
    let error = update(&mut service, "pump-07", "a", r#"{"status":"SUCCEEDED"}"#).rejected();
    assert_eq!(error.code, RejectCode::InvalidStateTransition);
    assert_eq!(
        error.execution_state.unwrap().status,
        Some(JobStatus::TimedOut)
    );
}

#[test]
fn finishing_before_the_deadline_stops_the_timers() {
    let mut service = service();
    service
        .create_job(spec("a", &["pump-07"]).in_progress_timeout_minutes(5))
        .unwrap();
    call(
        &mut service,
        "pump-07",
        "start-next",
        r#"{"stepTimeoutInMinutes":1}"#,
    )
    .accepted::<ExecutionReply>();
    assert_eq!(service.next_timer_deadline(), Some((T0 + 60) * 1000));
    update(&mut service, "pump-07", "a", r#"{"status":"SUCCEEDED"}"#).accepted::<UpdateReply>();
    assert_eq!(service.next_timer_deadline(), None);
    assert!(service.advance_clock(minutes(10)).is_empty());
    assert_eq!(status(&service, "a"), JobStatus::Succeeded);
}

#[test]
fn the_system_clock_fires_nothing_early() {
    let mut service = JobsService::new(Clock::system());
    create(&mut service, "a", &["pump-07"]);
    call(
        &mut service,
        "pump-07",
        "start-next",
        r#"{"stepTimeoutInMinutes":60}"#,
    )
    .accepted::<ExecutionReply>();
    assert!(service.fire_timers().is_empty());
    assert_eq!(status(&service, "a"), JobStatus::InProgress);
}

#[test]
fn timers_keep_sub_second_deadlines_and_fire_on_time_not_early() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    service.advance_clock(Duration::from_millis(500));
    call(
        &mut service,
        "pump-07",
        "start-next",
        r#"{"stepTimeoutInMinutes":1}"#,
    )
    .accepted::<ExecutionReply>();
    // Started at T0 + 0.5 s (reported as T0): the deadline is T0 + 60.5 s.
    assert_eq!(service.next_timer_deadline(), Some(T0 * 1000 + 60_500));
    assert!(
        service
            .advance_clock(Duration::from_millis(59_999))
            .is_empty()
    );
    assert_eq!(
        status(&service, "a"),
        JobStatus::InProgress,
        "at T0 + 60.499 s"
    );
    let out = service.advance_clock(Duration::from_millis(1));
    assert_eq!(status(&service, "a"), JobStatus::TimedOut, "at T0 + 60.5 s");
    let notify: serde_json::Value = notifies_raw(&out, "notify");
    assert_eq!(
        notify["timestamp"],
        T0 + 60,
        "wire timestamps are whole seconds"
    );
}

#[test]
fn events_of_timers_that_expired_before_a_request_come_before_its_reply() {
    // A clock 60 000 times faster than real time: a 1-minute timer is due after 1 ms.
    let factor = std::num::NonZeroU32::new(60_000).unwrap();
    let mut service = JobsService::new(Clock::scaled(factor));
    create(&mut service, "a", &["pump-07"]);
    call(
        &mut service,
        "pump-07",
        "start-next",
        r#"{"stepTimeoutInMinutes":1}"#,
    )
    .accepted::<ExecutionReply>();
    let deadline = service.next_timer_deadline().unwrap();
    let give_up = std::time::Instant::now() + Duration::from_secs(5);
    while service.clock().now_millis() < deadline {
        assert!(
            std::time::Instant::now() < give_up,
            "the clock did not move"
        );
        std::hint::spin_loop();
    }
    let answer = call(&mut service, "pump-07", "get", "{}");
    assert_eq!(
        answer.events_before_reply, 2,
        "notify and notify-next first"
    );
    let pending: jobs_core::model::PendingJobs = answer.accepted();
    assert!(pending.in_progress_jobs.is_empty());
    assert_eq!(status(&service, "a"), JobStatus::TimedOut);
}
