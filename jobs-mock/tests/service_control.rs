//! The control plane: creating and cancelling jobs, removing things, reading state.

mod common;

use common::*;
use jobs_core::model::UpdateReply;
use jobs_core::{Document, JobStatus};
use jobs_mock::service::{ControlError, JobSpec};

#[test]
fn created_jobs_are_queued_per_thing_in_creation_order_with_version_and_execution_number_one() {
    let mut service = service();
    create(&mut service, "a", &["pump-07", "pump-08"]);
    create(&mut service, "b", &["pump-07"]);
    let all = service.executions();
    let summary: Vec<(String, String, i64, i64)> = all
        .iter()
        .map(|e| {
            (
                e.thing_name.to_string(),
                e.job_id.to_string(),
                e.execution_number,
                e.version_number,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("pump-07".into(), "a".into(), 1, 1),
            ("pump-07".into(), "b".into(), 1, 1),
            ("pump-08".into(), "a".into(), 1, 1),
        ]
    );
    let a = &all[0];
    assert_eq!(a.status, JobStatus::Queued);
    assert_eq!(a.queued_at, T0);
    assert_eq!(a.last_updated_at, T0);
    assert_eq!(a.started_at, None);
    assert_eq!(a.status_details, None);
    assert_eq!(a.document, document("a"));
}

#[test]
fn creating_a_job_with_an_existing_id_is_refused_and_changes_nothing() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    assert_eq!(
        service.create_job(spec("a", &["pump-08"])),
        Err(ControlError::JobExists(job("a")))
    );
    assert_eq!(service.executions().len(), 1);
    service.cancel_job(&job("a")).unwrap();
    assert_eq!(
        service.create_job(spec("a", &["pump-07"])),
        Err(ControlError::JobExists(job("a"))),
        "job IDs stay taken after cancellation"
    );
}

#[test]
fn creating_a_job_without_targets_or_with_a_bad_timeout_is_refused() {
    let mut service = service();
    assert_eq!(
        service.create_job(JobSpec::new(job("a"), document("a"))),
        Err(ControlError::NoTargets(job("a")))
    );
    for minutes in [0, -1, 10_081] {
        assert_eq!(
            service.create_job(spec("a", &["pump-07"]).in_progress_timeout_minutes(minutes)),
            Err(ControlError::InvalidTimeout { minutes })
        );
    }
    assert!(service.executions().is_empty());
}

#[test]
fn a_thing_named_twice_gets_one_execution() {
    let mut service = service();
    let out = create(&mut service, "a", &["pump-07", "pump-07"]);
    assert_eq!(service.executions().len(), 1);
    assert_eq!(notifies(&out, "pump-07").len(), 1);
}

#[test]
fn a_job_document_may_be_any_json_value() {
    let mut service = service();
    service
        .create_job(
            JobSpec::new(
                job("url"),
                Document::from_json(r#""https://example.com/fw""#).unwrap(),
            )
            .thing(thing("pump-07")),
        )
        .unwrap();
    let reply = start_next(&mut service, "pump-07");
    assert_eq!(
        reply.execution.unwrap().job_document.unwrap().as_json(),
        r#""https://example.com/fw""#
    );
}

#[test]
fn cancelling_a_job_cancels_its_pending_executions_and_sends_events() {
    let mut service = service();
    create(&mut service, "a", &["pump-07", "pump-08", "pump-09"]);
    create(&mut service, "b", &["pump-07"]);
    start_next(&mut service, "pump-08");
    update(&mut service, "pump-09", "a", r#"{"status":"SUCCEEDED"}"#).accepted::<UpdateReply>();
    let out = service.cancel_job(&job("a")).unwrap();
    let status = |t: &str| service.execution(&thing(t), &job("a")).unwrap().status;
    assert_eq!(status("pump-07"), JobStatus::Canceled);
    assert_eq!(status("pump-08"), JobStatus::Canceled);
    assert_eq!(status("pump-09"), JobStatus::Succeeded, "terminal stays");
    assert_eq!(ids(&notifies(&out, "pump-07")[0].jobs.queued), ["b"]);
    let next = next_events(&out, "pump-07").remove(0);
    assert_eq!(next.execution.unwrap().job_id.as_str(), "b");
    assert_eq!(notifies(&out, "pump-08").len(), 1);
    assert!(next_events(&out, "pump-08")[0].execution.is_none());
    assert!(notifies(&out, "pump-09").is_empty());
    assert!(
        service.cancel_job(&job("a")).unwrap().is_empty(),
        "again: no change"
    );
    let error = update(&mut service, "pump-07", "a", r#"{"status":"IN_PROGRESS"}"#).rejected();
    assert_eq!(
        error.execution_state.unwrap().status,
        Some(JobStatus::Canceled)
    );
}

#[test]
fn cancelling_an_unknown_job_is_refused() {
    let mut service = service();
    assert_eq!(
        service.cancel_job(&job("nope")),
        Err(ControlError::UnknownJob(job("nope")))
    );
}

#[test]
fn removing_a_thing_from_a_job_marks_its_execution_removed_and_sends_events() {
    let mut service = service();
    create(&mut service, "a", &["pump-07", "pump-08"]);
    let out = service.remove_thing(&job("a"), &thing("pump-07")).unwrap();
    assert_eq!(
        service
            .execution(&thing("pump-07"), &job("a"))
            .unwrap()
            .status,
        JobStatus::Removed
    );
    assert_eq!(
        service
            .execution(&thing("pump-08"), &job("a"))
            .unwrap()
            .status,
        JobStatus::Queued
    );
    let notify: serde_json::Value = out
        .iter()
        .find(|m| m.topic == "$aws/things/pump-07/jobs/notify")
        .unwrap()
        .decode()
        .unwrap();
    assert_eq!(notify, serde_json::json!({"timestamp": T0, "jobs": {}}));
    assert_eq!(next_events(&out, "pump-07").len(), 1);
    assert!(notifies(&out, "pump-08").is_empty());
}

#[test]
fn removing_a_thing_from_a_finished_execution_changes_nothing() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    update(&mut service, "pump-07", "a", r#"{"status":"FAILED"}"#).accepted::<UpdateReply>();
    assert!(
        service
            .remove_thing(&job("a"), &thing("pump-07"))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        service
            .execution(&thing("pump-07"), &job("a"))
            .unwrap()
            .status,
        JobStatus::Failed
    );
}

#[test]
fn removing_a_thing_that_has_no_execution_is_refused() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    assert_eq!(
        service.remove_thing(&job("a"), &thing("pump-08")),
        Err(ControlError::UnknownExecution {
            thing: thing("pump-08"),
            job: job("a")
        })
    );
    assert!(service.execution(&thing("pump-08"), &job("a")).is_none());
}

#[test]
fn control_errors_are_send_sync_and_display_in_lowercase() {
    fn assert_error<E: std::error::Error + Send + Sync + 'static>() {}
    assert_error::<ControlError>();
    assert_error::<jobs_mock::service::SimulatorError>();
    let shown = ControlError::UnknownJob(job("x")).to_string();
    assert!(shown.starts_with(char::is_lowercase) && !shown.ends_with('.'));
}
