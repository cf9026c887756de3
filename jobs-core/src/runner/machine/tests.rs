//! The machine's rules, without threads: a scripted "service" answers its requests on a
//! simulated clock.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::time::{Duration, Instant};

use super::*;
use crate::error::Rejection;
use crate::model::{
    ExecutionState, JobExecutionSummary, JobExecutionsChanged, NextJobExecutionChanged,
};
use crate::{Document, ExecutionNumber, JobId, Operation, RejectCode, TransportError};

const MINUTE: Duration = Duration::from_secs(60);

fn key(job: &str, number: i64) -> Key {
    Key {
        job_id: JobId::new(job).unwrap(),
        number: Some(ExecutionNumber::new(number)),
    }
}

fn execution(key: &Key, status: JobStatus) -> JobExecution {
    let mut execution = JobExecution::new(key.job_id.clone());
    execution.execution_number = key.number;
    execution.status = Some(status);
    execution.job_document = Some(Document::from_json(r#"{"operation":"work"}"#).unwrap());
    execution
}

fn rejected(code: RejectCode, state: Option<JobStatus>) -> Error {
    Error::Rejected {
        operation: Operation::Update,
        rejection: Box::new(Rejection {
            code,
            message: Some("no".into()),
            execution_state: state.map(|status| ExecutionState {
                status: Some(status),
                ..ExecutionState::default()
            }),
        }),
    }
}

fn timeout() -> Error {
    Error::Timeout {
        operation: Some(Operation::Update),
        waited: Duration::from_secs(1),
    }
}

fn listed(key: &Key, in_progress: bool) -> Listed {
    Listed {
        key: key.clone(),
        in_progress,
    }
}

fn next_changed(head: Option<&Key>) -> Event {
    Event::NextJobChanged(NextJobExecutionChanged {
        execution: head.map(|key| execution(key, JobStatus::Queued)),
        ..NextJobExecutionChanged::default()
    })
}

fn jobs_changed(queued: &[&Key]) -> Event {
    let mut event = JobExecutionsChanged::default();
    event.jobs.queued = queued
        .iter()
        .map(|key| {
            let mut summary = JobExecutionSummary::new(key.job_id.clone());
            summary.execution_number = key.number;
            summary
        })
        .collect();
    Event::JobsChanged(event)
}

/// The machine on a simulated clock, with everything it did recorded.
struct Harness {
    machine: Machine,
    now: Instant,
    start: Instant,
    sent: Vec<(Instant, Request)>,
    started: Vec<(Key, bool)>,
    canceled: Vec<Key>,
    ended: Vec<(Key, Ending)>,
    stopping: usize,
    exit: Option<Exit>,
}

impl Harness {
    fn new(max_concurrent: usize) -> Self {
        let now = Instant::now();
        let settings = Settings {
            max_concurrent,
            backoff: Backoff::default(),
            stop_grace: Duration::from_secs(10),
            resync_interval: Duration::from_secs(300),
        };
        Self {
            machine: Machine::new(settings, now, Jitter::new(42)),
            now,
            start: now,
            sent: Vec::new(),
            started: Vec::new(),
            canceled: Vec::new(),
            ended: Vec::new(),
            stopping: 0,
            exit: None,
        }
    }

    fn handle(&mut self, input: Input) {
        self.machine.handle(input, self.now);
    }

    /// Polls until the machine asks for a request (returned) or has nothing to do now.
    fn next(&mut self) -> Option<Request> {
        while let Some(action) = self.machine.poll(self.now) {
            match action {
                Action::Send(request) => {
                    self.sent.push((self.now, request.clone()));
                    return Some(request);
                }
                Action::StartHandler { execution, resumed } => {
                    self.started.push((Key::of(&execution), resumed));
                }
                Action::Cancel(key) => self.canceled.push(key),
                Action::Stopping => self.stopping += 1,
                Action::Ended { key, ending } => self.ended.push((key, ending)),
                Action::Exit(exit) => self.exit = Some(exit),
            }
        }
        None
    }

    /// Expects `request` next and answers it.
    fn expect(&mut self, request: Request, answer: Result<Reply, Error>) {
        assert_eq!(self.next(), Some(request));
        self.handle(Input::Answer(answer));
    }

    /// Runs on the simulated clock until `until`, answering every request with `service`.
    fn run_until(
        &mut self,
        until: Instant,
        mut service: impl FnMut(&Request) -> Result<Reply, Error>,
    ) {
        loop {
            if let Some(request) = self.next() {
                let answer = service(&request);
                self.handle(Input::Answer(answer));
                continue;
            }
            match self.machine.next_wake() {
                Some(wake) if wake <= until => self.now = self.now.max(wake),
                _ => {
                    self.now = until;
                    return;
                }
            }
        }
    }

    /// Takes on `key` as the first execution: list, start-next, handler started.
    fn take_on_first(&mut self, key: &Key) {
        self.expect(Request::List, Ok(Reply::Listed(vec![listed(key, false)])));
        self.expect(
            Request::StartNext,
            Ok(Reply::Execution(Some(execution(
                key,
                JobStatus::InProgress,
            )))),
        );
        assert_eq!(self.next(), None);
        assert_eq!(self.started.last(), Some(&(key.clone(), false)));
    }

    fn done(&mut self, key: &Key, outcome: Outcome) {
        self.handle(Input::HandlerDone {
            key: key.clone(),
            outcome,
            ended_by_service: None,
        });
    }

    /// The requests about `key` sent in `[from, to)`.
    fn requests_about(&self, key: &Key, from: Instant, to: Instant) -> usize {
        self.sent
            .iter()
            .filter(|(at, request)| *at >= from && *at < to && about(request) == Some(key))
            .count()
    }
}

fn about(request: &Request) -> Option<&Key> {
    match request {
        Request::Start(key) | Request::Describe { key, .. } | Request::Report { key, .. } => {
            Some(key)
        }
        _ => None,
    }
}

fn report(key: &Key, status: JobStatus) -> Request {
    Request::Report {
        key: key.clone(),
        status,
        details: None,
    }
}

fn describe(key: &Key) -> Request {
    Request::Describe {
        key: key.clone(),
        document: false,
    }
}

#[test]
fn the_terminal_report_names_the_execution_the_handler_ran() {
    let mut h = Harness::new(1);
    let one = key("fw", 2);
    h.take_on_first(&one);
    h.done(&one, Outcome::succeeded());
    h.expect(report(&one, JobStatus::Succeeded), Ok(Reply::Updated));
    // The handler returned: the runner looks for the next execution at once.
    assert_eq!(h.next(), Some(Request::List));
    assert_eq!(h.ended, vec![(one, Ending::Reported(JobStatus::Succeeded))]);
}

#[test]
fn execution_1_ended_by_the_service_during_its_report_backoff_is_never_confused_with_execution_2() {
    // Item 1 of the issue: execution 1 is canceled during a report's backoff and execution 2
    // of the same job is queued. Execution 1 must end CANCELED, and execution 2 must run.
    let mut h = Harness::new(1);
    let (one, two) = (key("fw", 1), key("fw", 2));
    h.take_on_first(&one);
    h.done(&one, Outcome::succeeded());
    h.expect(report(&one, JobStatus::Succeeded), Err(timeout()));
    // During the backoff, execution 1 is canceled and execution 2 queued (a continuous job's
    // re-run).
    h.handle(Input::Event(next_changed(Some(&two))));
    h.run_until(h.now + MINUTE, |request| match request {
        Request::List => Ok(Reply::Listed(vec![listed(&two, false)])),
        // The runner still holds execution 1, so it starts 2 by naming it, never by
        // start-next (which hands back whatever the service's head is).
        Request::Start(key) if *key == two => Ok(Reply::Updated),
        Request::Describe {
            key,
            document: true,
        } if *key == two => Ok(Reply::Execution(Some(execution(
            &two,
            JobStatus::InProgress,
        )))),
        // The retry of execution 1's report names execution 1; the service says it was
        // canceled.
        Request::Report { key, status, .. } if *key == one && *status == JobStatus::Succeeded => {
            Err(rejected(
                RejectCode::InvalidStateTransition,
                Some(JobStatus::Canceled),
            ))
        }
        other => panic!("unexpected {other:?}"),
    });
    assert_eq!(h.started.last(), Some(&(two.clone(), false)));
    assert_eq!(
        h.ended,
        vec![(
            one.clone(),
            Ending::EndedByService(Some(JobStatus::Canceled))
        )]
    );
    // Execution 2 ends on its own, reported as itself.
    h.done(&two, Outcome::succeeded());
    h.expect(report(&two, JobStatus::Succeeded), Ok(Reply::Updated));
    assert_eq!(h.next(), Some(Request::List));
    assert_eq!(
        h.ended.last(),
        Some(&(two, Ending::Reported(JobStatus::Succeeded)))
    );
}

#[test]
fn an_event_about_a_newer_execution_of_the_same_job_checks_the_older_one_and_does_not_end_it() {
    let mut h = Harness::new(1);
    let (one, two) = (key("fw", 1), key("fw", 2));
    h.take_on_first(&one);
    h.handle(Input::Event(next_changed(Some(&two))));
    // The runner asks about its own execution, by number...
    h.expect(
        describe(&one),
        Ok(Reply::Execution(Some(execution(
            &one,
            JobStatus::InProgress,
        )))),
    );
    // ...which is still running: no cancel. Execution 2 is not taken on while 1 runs.
    assert!(h.canceled.is_empty());
    assert_eq!(h.next(), None);
    // When the service ends 1, the check says so and the handler is canceled; its outcome
    // is not reported.
    h.handle(Input::Event(next_changed(Some(&two))));
    h.run_until(h.now + MINUTE, |request| {
        assert_eq!(request, &describe(&one));
        Err(rejected(RejectCode::TerminalStateReached, None))
    });
    assert_eq!(h.canceled, vec![one.clone()]);
    h.done(&one, Outcome::succeeded());
    assert_eq!(h.next(), Some(Request::List));
    assert_eq!(h.ended, vec![(one, Ending::EndedByService(None))]);
    assert!(
        !h.sent
            .iter()
            .any(|(_, r)| matches!(r, Request::Report { .. }))
    );
}

/// Runs one execution whose report the service refuses with `refusal` forever (a describe
/// says it is still IN_PROGRESS), for `minutes`; returns the harness.
fn refused_forever(refusal: impl Fn() -> Error, minutes: u32) -> (Harness, Key) {
    let mut h = Harness::new(1);
    let one = key("fw", 1);
    h.take_on_first(&one);
    h.done(&one, Outcome::succeeded());
    let until = h.now + MINUTE * minutes;
    h.run_until(until, |request| match request {
        Request::List => Ok(Reply::Listed(vec![listed(&key("fw", 1), true)])),
        Request::Report { .. } => Err(refusal()),
        Request::Describe { key, .. } => Ok(Reply::Execution(Some(execution(
            key,
            JobStatus::InProgress,
        )))),
        other => panic!("unexpected {other:?}"),
    });
    (h, one)
}

/// The most requests about `key` in any minute starting at a request, from `from` on.
fn worst_minute(h: &Harness, key: &Key, from: Instant) -> usize {
    h.sent
        .iter()
        .filter(|(at, request)| *at >= from && about(request) == Some(key))
        .map(|(at, _)| h.requests_about(key, *at, *at + MINUTE))
        .max()
        .unwrap_or(0)
}

#[test]
fn a_service_that_refuses_every_report_forever_gets_a_documented_trickle() {
    // Item 2: InvalidRequest, a persistent VersionMismatch, and a transport error that never
    // goes away. The bound of the runner's docs: at most 7 requests about the execution in
    // any minute, at most 2 a minute after its second minute.
    type Refusal = fn() -> Error;
    let refusals: [(&str, Refusal); 3] = [
        ("InvalidRequest", || {
            rejected(RejectCode::InvalidRequest, None)
        }),
        ("VersionMismatch", || {
            rejected(RejectCode::VersionMismatch, Some(JobStatus::InProgress))
        }),
        ("backend", || Error::Transport {
            operation: Some(Operation::Update),
            source: TransportError::backend("queue full"),
        }),
    ];
    for (name, refusal) in refusals {
        let (h, one) = refused_forever(refusal, 60);
        let worst = worst_minute(&h, &one, h.start);
        let later = worst_minute(&h, &one, h.start + 2 * MINUTE);
        let total = h.requests_about(&one, h.start, h.now);
        eprintln!("{name}: worst minute {worst}, after two minutes {later}, in an hour {total}");
        assert!(worst <= 7, "{name}: {worst} requests in one minute");
        assert!(
            later <= 2,
            "{name}: {later} requests a minute after two minutes"
        );
        assert!(
            total <= 7 + 2 * 58 + 2,
            "{name}: {total} requests in an hour"
        );
        assert!(
            total >= 60,
            "{name}: it keeps trying ({total} requests in an hour)"
        );
        assert!(h.ended.is_empty(), "{name}: {:?}", h.ended);
    }
}

#[test]
fn a_refused_outcome_is_sent_again_once_then_replaced_by_failed_with_the_refusal_as_reason() {
    let (h, one) = refused_forever(|| rejected(RejectCode::InvalidRequest, None), 5);
    let reports: Vec<&Request> = h
        .sent
        .iter()
        .map(|(_, r)| r)
        .filter(|r| matches!(r, Request::Report { .. }))
        .collect();
    assert!(matches!(
        reports[0],
        Request::Report {
            status: JobStatus::Succeeded,
            ..
        }
    ));
    assert!(matches!(
        reports[1],
        Request::Report {
            status: JobStatus::Succeeded,
            ..
        }
    ));
    for report in &reports[2..] {
        let Request::Report {
            key,
            status,
            details,
        } = report
        else {
            unreachable!()
        };
        assert_eq!((key, status), (&one, &JobStatus::Failed));
        let reason = details.as_ref().unwrap().get("reason").unwrap();
        assert!(
            reason.starts_with("the service refused SUCCEEDED: InvalidRequest"),
            "{reason}"
        );
    }
}

#[test]
fn one_version_mismatch_is_resolved_by_a_re_read_and_the_outcome_is_reported_once() {
    // Item 4: one VersionMismatch used to end the execution twice (None, then SUCCEEDED).
    let mut h = Harness::new(1);
    let one = key("fw", 1);
    h.take_on_first(&one);
    h.done(&one, Outcome::succeeded());
    h.expect(
        report(&one, JobStatus::Succeeded),
        Err(rejected(
            RejectCode::VersionMismatch,
            Some(JobStatus::InProgress),
        )),
    );
    h.run_until(h.now + MINUTE, |request| match request {
        Request::List => Ok(Reply::Listed(Vec::new())),
        Request::Describe { key, .. } => Ok(Reply::Execution(Some(execution(
            key,
            JobStatus::InProgress,
        )))),
        Request::Report { status, .. } => {
            assert_eq!(status, &JobStatus::Succeeded);
            Ok(Reply::Updated)
        }
        other => panic!("unexpected {other:?}"),
    });
    assert_eq!(h.ended, vec![(one, Ending::Reported(JobStatus::Succeeded))]);
}

#[test]
fn after_a_lost_acknowledgement_the_ending_is_the_status_the_service_holds() {
    // Item 4: after a lost PUBACK of an applied update, on_ended used to get None.
    for (refusal, ending) in [
        (
            rejected(
                RejectCode::InvalidStateTransition,
                Some(JobStatus::Succeeded),
            ),
            Ending::Reported(JobStatus::Succeeded),
        ),
        (
            rejected(
                RejectCode::InvalidStateTransition,
                Some(JobStatus::TimedOut),
            ),
            Ending::EndedByService(Some(JobStatus::TimedOut)),
        ),
        // A service that says only that the execution ended: the runner cannot tell whose
        // status it holds, and says so.
        (
            rejected(RejectCode::InvalidStateTransition, None),
            Ending::Unconfirmed,
        ),
    ] {
        let mut h = Harness::new(1);
        let one = key("fw", 1);
        h.take_on_first(&one);
        h.done(&one, Outcome::succeeded());
        h.expect(report(&one, JobStatus::Succeeded), Err(timeout()));
        let mut refusal = Some(refusal);
        h.run_until(h.now + MINUTE, |request| {
            if request == &Request::List {
                return Ok(Reply::Listed(Vec::new()));
            }
            assert_eq!(request, &report(&one, JobStatus::Succeeded));
            Err(refusal.take().unwrap())
        });
        assert_eq!(h.ended, vec![(one, ending)]);
    }
}

#[test]
fn a_parked_execution_is_not_restarted_by_acquisition_and_other_executions_still_run() {
    // Item 2: start-next / the list returning the parked execution must not restart it.
    let (mut h, one) = refused_forever(|| rejected(RejectCode::InvalidRequest, None), 3);
    let other = key("other", 1);
    h.handle(Input::Event(jobs_changed(&[&other])));
    let before = h.requests_about(&one, h.start, h.now);
    h.run_until(h.now + Duration::from_secs(1), |request| match request {
        Request::List => Ok(Reply::Listed(vec![
            listed(&one, true),
            listed(&other, false),
        ])),
        Request::Start(key) => {
            assert_eq!(key, &other);
            Ok(Reply::Updated)
        }
        Request::Describe {
            key,
            document: true,
        } => Ok(Reply::Execution(Some(execution(
            key,
            JobStatus::InProgress,
        )))),
        Request::Report { .. } | Request::Describe { .. } => {
            Err(rejected(RejectCode::InvalidRequest, None))
        }
        other => panic!("unexpected {other:?}"),
    });
    assert_eq!(h.started.last(), Some(&(other, false)));
    // No request about the parked execution was added by the acquisition.
    assert!(h.requests_about(&one, h.start, h.now) <= before + 1);
    assert!(h.started.iter().filter(|(key, _)| *key == one).count() == 1);
}

#[test]
fn events_that_bring_no_work_are_answered_by_paced_searches() {
    let mut h = Harness::new(1);
    h.expect(Request::List, Ok(Reply::Listed(Vec::new())));
    // A storm of events that show nothing new (a queue of executions the runner knows).
    let until = h.now + 10 * MINUTE;
    let mut lists = 0;
    while h.now < until {
        h.handle(Input::Event(next_changed(None)));
        h.handle(Input::Event(jobs_changed(&[&key("unknown", 1)])));
        if let Some(request) = h.next() {
            assert_eq!(request, Request::List);
            lists += 1;
            h.handle(Input::Answer(Ok(Reply::Listed(Vec::new()))));
        }
        h.now += Duration::from_millis(100);
    }
    // Paced by the backoff: at most 7 in the first minute, then about one a minute.
    assert!(lists <= 7 + 2 * 9, "{lists} searches in 10 minutes");
}

#[test]
fn stop_ends_an_idle_runner_at_once() {
    let mut h = Harness::new(1);
    h.expect(Request::List, Ok(Reply::Listed(Vec::new())));
    h.handle(Input::Stop { at: h.now });
    assert_eq!(h.next(), None);
    assert_eq!(h.exit, Some(Exit::Stopped));
}

#[test]
fn stop_waits_for_a_handler_until_the_grace_ends_then_leaves_it_in_progress() {
    let mut h = Harness::new(1);
    let one = key("fw", 1);
    h.take_on_first(&one);
    let stopped = h.now;
    h.handle(Input::Stop { at: stopped });
    assert_eq!(h.next(), None);
    assert_eq!(h.stopping, 1);
    assert_eq!(h.exit, None);
    // The machine's next wake-up is the end of the grace, not a tick.
    assert_eq!(
        h.machine.next_wake(),
        Some(stopped + Duration::from_secs(10))
    );
    h.now = stopped + Duration::from_secs(10);
    assert_eq!(h.next(), None);
    assert_eq!(h.ended, vec![(one, Ending::LeftInProgress)]);
    assert_eq!(h.exit, Some(Exit::Stopped));
}

#[test]
fn a_handler_that_returns_within_the_grace_is_reported_then_the_runner_exits() {
    let mut h = Harness::new(1);
    let one = key("fw", 1);
    h.take_on_first(&one);
    h.handle(Input::Stop { at: h.now });
    h.now += Duration::from_secs(1);
    h.done(&one, Outcome::failed());
    h.expect(report(&one, JobStatus::Failed), Ok(Reply::Updated));
    assert_eq!(h.next(), None);
    assert_eq!(h.ended, vec![(one, Ending::Reported(JobStatus::Failed))]);
    assert_eq!(h.exit, Some(Exit::Stopped));
}

#[test]
fn after_a_stop_a_report_whose_next_try_falls_after_the_grace_is_given_up_at_once() {
    let mut h = Harness::new(1);
    let one = key("fw", 1);
    h.take_on_first(&one);
    h.done(&one, Outcome::succeeded());
    // Fails until the backoff has grown past the grace.
    h.run_until(h.now + MINUTE, |_| Err(timeout()));
    h.handle(Input::Stop { at: h.now });
    assert_eq!(h.next(), None);
    assert_eq!(h.ended, vec![(one, Ending::Unconfirmed)]);
    assert_eq!(h.exit, Some(Exit::Stopped));
}

#[test]
fn closing_ends_everything_held_and_exits_closed() {
    let mut h = Harness::new(2);
    let one = key("fw", 1);
    h.take_on_first(&one);
    h.handle(Input::Closed);
    assert_eq!(h.next(), None);
    assert_eq!(h.ended, vec![(one, Ending::LeftInProgress)]);
    assert_eq!(h.exit, Some(Exit::Closed));
    // A request that found the thing closed does the same.
    let mut h = Harness::new(1);
    let thing = crate::ThingName::new("t").unwrap();
    h.expect(
        Request::List,
        Err(crate::InvalidInput::Closed(thing).into()),
    );
    assert_eq!(h.next(), None);
    assert_eq!(h.exit, Some(Exit::Closed));
}

#[test]
fn every_execution_taken_on_ends_exactly_once() {
    let mut h = Harness::new(1);
    let one = key("fw", 1);
    h.take_on_first(&one);
    h.done(&one, Outcome::succeeded());
    h.expect(report(&one, JobStatus::Succeeded), Ok(Reply::Updated));
    // Duplicated and late events, a handler reporting twice, a stop: nothing ends it again.
    h.handle(Input::Event(next_changed(Some(&one))));
    h.done(&one, Outcome::failed());
    h.run_until(h.now + MINUTE, |request| match request {
        Request::List => Ok(Reply::Listed(vec![listed(&one, true)])),
        other => panic!("unexpected {other:?}"),
    });
    h.handle(Input::Stop { at: h.now });
    assert_eq!(h.next(), None);
    assert_eq!(h.ended, vec![(one, Ending::Reported(JobStatus::Succeeded))]);
}

#[test]
fn an_execution_whose_reply_cannot_be_decoded_is_rejected_with_the_reason() {
    let mut h = Harness::new(1);
    let one = key("fw", 1);
    h.expect(Request::List, Ok(Reply::Listed(vec![listed(&one, true)])));
    let undecodable = serde_json::from_str::<serde_json::Value>(r#""\ud800""#).unwrap_err();
    h.expect(
        Request::Describe {
            key: one.clone(),
            document: true,
        },
        Err(Error::Decode {
            topic: "t".into(),
            reason: crate::DecodeError::json(undecodable),
        }),
    );
    let Some(Request::Report {
        key,
        status,
        details,
    }) = h.next()
    else {
        panic!("expected a report")
    };
    assert_eq!((&key, &status), (&one, &JobStatus::Rejected));
    let reason = details.unwrap().get("reason").unwrap().to_owned();
    assert!(
        reason.starts_with("the execution could not be read: undecodable reply"),
        "{reason}"
    );
    assert!(h.started.is_empty());
}

#[test]
fn a_reconnect_restores_the_subscriptions_and_checks_the_running_executions() {
    let mut h = Harness::new(1);
    let one = key("fw", 1);
    h.take_on_first(&one);
    h.handle(Input::Reconnected);
    h.expect(Request::Resubscribe, Ok(Reply::Subscribed));
    h.expect(
        describe(&one),
        Ok(Reply::Execution(Some(execution(
            &one,
            JobStatus::InProgress,
        )))),
    );
    assert_eq!(h.next(), None);
}

#[test]
fn resync_checks_and_searches_on_its_interval_without_any_event() {
    let mut h = Harness::new(1);
    h.expect(Request::List, Ok(Reply::Listed(Vec::new())));
    assert_eq!(h.next(), None);
    let wake = h.machine.next_wake().unwrap();
    assert!(wake <= h.start + Duration::from_secs(300));
    h.now = h.start + Duration::from_secs(300);
    assert_eq!(h.next(), Some(Request::List));
}

#[test]
fn a_canceled_handler_that_never_returns_ends_as_the_service_ended_it_at_the_stop() {
    let mut h = Harness::new(1);
    let one = key("fw", 1);
    h.take_on_first(&one);
    h.handle(Input::Event(next_changed(None)));
    h.expect(
        describe(&one),
        Ok(Reply::Execution(Some(execution(&one, JobStatus::Canceled)))),
    );
    assert_eq!(h.next(), None);
    assert_eq!(h.canceled, vec![one.clone()]);
    let stopped = h.now;
    h.handle(Input::Stop { at: stopped });
    h.now = stopped + Duration::from_secs(10);
    assert_eq!(h.next(), None);
    assert_eq!(
        h.ended,
        vec![(one, Ending::EndedByService(Some(JobStatus::Canceled)))]
    );
}

#[test]
fn a_failed_resubscription_while_every_slot_is_busy_is_retried_when_paced() {
    let mut h = Harness::new(1);
    let one = key("fw", 1);
    h.take_on_first(&one);
    h.handle(Input::Reconnected);
    h.expect(Request::Resubscribe, Err(timeout()));
    // The check of the running execution may go; the re-subscription waits for its pacing,
    // with a timer for it (no slot is free, so no search would wake the runner).
    h.expect(
        describe(&one),
        Ok(Reply::Execution(Some(execution(
            &one,
            JobStatus::InProgress,
        )))),
    );
    assert_eq!(h.next(), None);
    assert!(h.machine.next_wake().is_some());
    h.run_until(h.now + MINUTE, |request| match request {
        Request::Resubscribe => Ok(Reply::Subscribed),
        other => panic!("unexpected {other:?}"),
    });
    assert_eq!(
        h.sent
            .iter()
            .filter(|(_, r)| *r == Request::Resubscribe)
            .count(),
        2
    );
}
