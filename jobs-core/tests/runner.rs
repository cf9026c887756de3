//! The job runner against the Jobs simulator on the in-memory broker: handlers by operation,
//! one terminal report per execution, cancels, reboots, duplicated events, lost replies, stop.

#![allow(clippy::unwrap_used, reason = "test helpers fail the test on bad data")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::THING;
use common::fleet::{WAIT, fleet, signal, start};
use jobs_core::runner::{Backoff, Ending, Outcome, Runner};
use jobs_core::{ExecutionNumber, JobId, JobStatus, StatusDetails};
use serde_json::json;

#[test]
fn a_job_runs_its_operations_handler_once_and_is_reported_succeeded_once() {
    let f = fleet();
    f.create("rotate", json!({"operation": "rotate-logs", "keep": 3}));
    let runs = Arc::new(AtomicUsize::new(0));
    let (done_tx, done) = signal();
    let runner = Runner::builder(&f.jobs)
        .handler("rotate-logs", {
            let runs = Arc::clone(&runs);
            move |ctx| {
                runs.fetch_add(1, Ordering::SeqCst);
                assert_eq!(ctx.document().to_value()["keep"], json!(3));
                assert_eq!(ctx.operation(), Some("rotate-logs"));
                assert!(!ctx.resumed());
                done_tx.send(()).unwrap();
                Ok(Outcome::succeeded()
                    .with_details(StatusDetails::from_pairs([("kept", "3")]).unwrap()))
            }
        })
        .build()
        .unwrap();
    let (stop, thread) = start(runner);
    done.recv_timeout(WAIT).unwrap();
    f.wait_until("the job succeeded", || {
        f.status("rotate") == JobStatus::Succeeded
    });
    stop.stop();
    thread.join().unwrap().unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(f.terminal_updates("rotate"), 1);
    assert_eq!(f.details("rotate").unwrap().get("kept"), Some("3"));
}

#[test]
fn a_document_no_handler_accepts_is_rejected_with_a_reason() {
    let f = fleet();
    f.create("teleport", json!({"operation": "teleport"}));
    f.create("bare", json!({"keep": 1}));
    let runner = Runner::builder(&f.jobs)
        .handler("rotate-logs", |_| Ok(Outcome::succeeded()))
        .build()
        .unwrap();
    let (stop, thread) = start(runner);
    f.wait_until("both are rejected", || {
        f.status("teleport") == JobStatus::Rejected && f.status("bare") == JobStatus::Rejected
    });
    stop.stop();
    thread.join().unwrap().unwrap();
    let reason = f.details("teleport").unwrap();
    assert_eq!(
        reason.get("reason"),
        Some("no handler for operation \"teleport\"")
    );
    assert_eq!(
        f.details("bare").unwrap().get("reason"),
        Some("the document has no \"operation\" field")
    );
}

#[test]
fn the_fallback_and_a_configured_operation_field_choose_the_handler() {
    let f = fleet();
    f.create("a", json!({"action": "install"}));
    f.create("b", json!({"action": "other"}));
    let runner = Runner::builder(&f.jobs)
        .operation_field("action")
        .handler("install", |_| Ok(Outcome::succeeded()))
        .fallback(|_| Ok(Outcome::failed()))
        .build()
        .unwrap();
    let (stop, thread) = start(runner);
    f.wait_until("both ended", || {
        f.status("a") == JobStatus::Succeeded && f.status("b") == JobStatus::Failed
    });
    stop.stop();
    thread.join().unwrap().unwrap();
}

#[test]
fn a_job_canceled_mid_handler_sets_the_signal_and_is_not_reported_over_canceled() {
    let f = fleet();
    f.create("fw", json!({"operation": "install"}));
    let (started_tx, started) = signal();
    let (saw_tx, saw_cancel) = signal();
    let runner = Runner::builder(&f.jobs)
        .handler("install", move |ctx| {
            started_tx.send(()).unwrap();
            assert!(ctx.cancellation().wait_timeout(WAIT));
            saw_tx.send(ctx.is_canceled()).unwrap();
            Ok(Outcome::succeeded())
        })
        .build()
        .unwrap();
    let (stop, thread) = start(runner);
    started.recv_timeout(WAIT).unwrap();
    f.simulator.cancel_job(&JobId::new("fw").unwrap()).unwrap();
    assert!(saw_cancel.recv_timeout(WAIT).unwrap());
    stop.stop();
    thread.join().unwrap().unwrap();
    assert_eq!(f.status("fw"), JobStatus::Canceled);
    assert_eq!(f.terminal_updates("fw"), 0);
}

#[test]
fn a_runner_rebuilt_after_a_reboot_resumes_the_in_progress_execution() {
    let f = fleet();
    f.create("fw", json!({"operation": "install"}));
    let (started_tx, started) = signal();
    let (release_tx, release) = signal::<()>();
    let first = Runner::builder(&f.jobs)
        .stop_grace(Duration::ZERO)
        .handler("install", move |ctx| {
            started_tx.send(ctx.resumed()).unwrap();
            ctx.progress(StatusDetails::from_pairs([("step", "2")]).unwrap())
                .unwrap();
            // "Reboots" here: never returns a result the runner waits for.
            let _ = release.recv_timeout(WAIT);
            Ok(Outcome::failed())
        })
        .build()
        .unwrap();
    let (stop, thread) = start(first);
    assert!(!started.recv_timeout(WAIT).unwrap());
    f.wait_until("progress is recorded", || {
        f.details("fw").is_some_and(|d| d.get("step") == Some("2"))
    });
    stop.stop();
    thread.join().unwrap().unwrap();
    assert_eq!(f.status("fw"), JobStatus::InProgress);

    let (resumed_tx, resumed) = signal();
    let second = Runner::builder(&f.jobs)
        .handler("install", move |ctx| {
            resumed_tx
                .send((ctx.resumed(), ctx.status_details().cloned()))
                .unwrap();
            Ok(Outcome::succeeded())
        })
        .build()
        .unwrap();
    let (stop, thread) = start(second);
    let (was_resumed, details) = resumed.recv_timeout(WAIT).unwrap();
    assert!(was_resumed);
    assert_eq!(details.unwrap().get("step"), Some("2"));
    f.wait_until("the job succeeded", || {
        f.status("fw") == JobStatus::Succeeded
    });
    stop.stop();
    thread.join().unwrap().unwrap();
    drop(release_tx);
    assert_eq!(f.terminal_updates("fw"), 1);
}

#[test]
fn duplicated_notify_next_events_do_not_run_an_execution_twice() {
    let f = fleet();
    f.create("once", json!({"operation": "count"}));
    let runs = Arc::new(AtomicUsize::new(0));
    let (release_tx, release) = signal::<()>();
    let (started_tx, started) = signal();
    let runner = Runner::builder(&f.jobs)
        .handler("count", {
            let runs = Arc::clone(&runs);
            move |_| {
                runs.fetch_add(1, Ordering::SeqCst);
                started_tx.send(()).unwrap();
                let _ = release.recv_timeout(WAIT);
                Ok(Outcome::succeeded())
            }
        })
        .build()
        .unwrap();
    let (stop, thread) = start(runner);
    started.recv_timeout(WAIT).unwrap();
    let next = f
        .broker
        .published_on(&format!("$aws/things/{THING}/jobs/notify-next"))
        .pop()
        .unwrap();
    for _ in 0..5 {
        f.broker.inject(&next.topic, &next.payload);
    }
    release_tx.send(()).unwrap();
    f.wait_until("the job succeeded", || {
        f.status("once") == JobStatus::Succeeded
    });
    // Replay the old head again after it finished: an out-of-date event.
    f.broker.inject(&next.topic, &next.payload);
    f.create("later", json!({"operation": "count"}));
    release_tx.send(()).unwrap();
    f.wait_until("the later job succeeded", || {
        f.status("later") == JobStatus::Succeeded
    });
    stop.stop();
    thread.join().unwrap().unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(f.terminal_updates("once"), 1);
}

#[test]
fn a_terminal_update_whose_reply_is_lost_is_applied_exactly_once_and_its_status_is_learned() {
    let f = fleet();
    f.create("fw", json!({"operation": "install"}));
    let (release_tx, release) = signal::<()>();
    let (ended_tx, ended) = signal();
    let jobs = f.jobs.with_timeout(Duration::from_millis(200));
    let runner = Runner::builder(&jobs)
        .backoff(Backoff::new(
            Duration::from_millis(10),
            Duration::from_millis(20),
        ))
        .handler("install", move |_| {
            let _ = release.recv_timeout(WAIT);
            Ok(Outcome::succeeded())
        })
        .on_ended(move |ended| ended_tx.send(ended.clone()).unwrap())
        .build()
        .unwrap();
    let (stop, thread) = start(runner);
    f.wait_until("the job started", || {
        f.status("fw") == JobStatus::InProgress
    });
    // The broker hangs: the update reaches it but its acknowledgement never comes back in
    // time; the runner sends it again (naming the execution), which queues behind it.
    f.broker.freeze();
    release_tx.send(()).unwrap();
    assert!(f.broker.wait_for_queued(2, WAIT));
    f.broker.thaw();
    let ended = ended.recv_timeout(WAIT).unwrap();
    stop.stop();
    thread.join().unwrap().unwrap();
    assert_eq!(f.status("fw"), JobStatus::Succeeded);
    // Applied once: the second update was refused, and its refusal told the runner the status.
    assert_eq!(f.replies("fw", "update/accepted"), 1);
    assert_eq!(f.terminal_updates("fw"), 2);
    assert_eq!(ended.ending, Ending::Reported(JobStatus::Succeeded));
    assert_eq!(ended.execution_number, Some(ExecutionNumber::new(1)));
}

#[test]
fn stop_returns_within_the_grace_and_abandons_a_handler_that_does_not_return() {
    let f = fleet();
    f.create("hang", json!({"operation": "hang"}));
    let (started_tx, started) = signal();
    let (release_tx, release) = signal::<()>();
    let runner = Runner::builder(&f.jobs)
        .stop_grace(Duration::from_millis(100))
        .handler("hang", move |ctx| {
            started_tx.send(()).unwrap();
            // Ignores the stop signal on purpose.
            let _ = release.recv_timeout(WAIT);
            let _ = ctx;
            Ok(Outcome::succeeded())
        })
        .build()
        .unwrap();
    let (stop, thread) = start(runner);
    started.recv_timeout(WAIT).unwrap();
    let stopped = Instant::now();
    stop.stop();
    thread.join().unwrap().unwrap();
    // Grace + one tick of the event thread, well under the handler's own wait.
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopped.elapsed()
    );
    assert_eq!(f.status("hang"), JobStatus::InProgress);
    drop(release_tx);
}

#[test]
fn a_handler_that_watches_the_stop_signal_finishes_and_is_reported_within_the_grace() {
    let f = fleet();
    f.create("polite", json!({"operation": "wait"}));
    let (started_tx, started) = signal();
    let runner = Runner::builder(&f.jobs)
        .handler("wait", move |ctx| {
            started_tx.send(()).unwrap();
            assert!(ctx.cancellation().wait_timeout(WAIT));
            assert!(ctx.is_stopping() && !ctx.is_canceled());
            Ok(Outcome::failed()
                .with_details(StatusDetails::from_pairs([("reason", "stopped")]).unwrap()))
        })
        .build()
        .unwrap();
    let (stop, thread) = start(runner);
    started.recv_timeout(WAIT).unwrap();
    stop.stop();
    thread.join().unwrap().unwrap();
    assert_eq!(f.status("polite"), JobStatus::Failed);
}

#[test]
fn a_panicking_handler_is_reported_failed() {
    let f = fleet();
    f.create("boom", json!({"operation": "boom"}));
    let runner = Runner::builder(&f.jobs)
        // resume_unwind: a panic without the panic hook, so no message or backtrace is
        // printed (RUST_BACKTRACE=1 made this deliberate panic look like a failure).
        .handler("boom", |_| {
            std::panic::resume_unwind(Box::new("handler bug"))
        })
        .build()
        .unwrap();
    let (stop, thread) = start(runner);
    f.wait_until("the job failed", || f.status("boom") == JobStatus::Failed);
    stop.stop();
    thread.join().unwrap().unwrap();
    assert_eq!(
        f.details("boom").unwrap().get("reason"),
        Some("the handler panicked")
    );
}

#[test]
fn several_executions_run_at_once_when_allowed() {
    let f = fleet();
    for id in ["a", "b", "c"] {
        f.create(id, json!({"operation": "meet"}));
    }
    let barrier = Arc::new(std::sync::Barrier::new(3));
    let runner = Runner::builder(&f.jobs)
        .max_concurrent(3)
        .handler("meet", {
            let barrier = Arc::clone(&barrier);
            move |_| {
                // All three must be running at once to pass the barrier.
                barrier.wait();
                Ok(Outcome::succeeded())
            }
        })
        .build()
        .unwrap();
    let (stop, thread) = start(runner);
    f.wait_until("all three succeeded", || {
        ["a", "b", "c"]
            .iter()
            .all(|id| f.status(id) == JobStatus::Succeeded)
    });
    stop.stop();
    thread.join().unwrap().unwrap();
}

#[test]
fn a_handler_error_is_reported_failed_with_its_text() {
    let f = fleet();
    f.create("typed", json!({"operation": "typed", "url": 5}));
    #[derive(serde::Deserialize)]
    #[expect(dead_code, reason = "only the shape matters")]
    struct Install {
        url: String,
    }
    let runner = Runner::builder(&f.jobs)
        .handler("typed", |ctx| {
            let _install: Install = ctx.parse_document()?;
            Ok(Outcome::succeeded())
        })
        .build()
        .unwrap();
    let (stop, thread) = start(runner);
    f.wait_until("the job failed", || f.status("typed") == JobStatus::Failed);
    stop.stop();
    thread.join().unwrap().unwrap();
    let reason = f.details("typed").unwrap();
    assert!(
        reason
            .get("reason")
            .unwrap()
            .starts_with("job document does not fit"),
        "{reason:?}"
    );
}
