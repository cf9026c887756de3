//! Many threads and many things over one connection.

#![allow(clippy::unwrap_used, reason = "test helpers fail the test on bad data")]

mod common;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use common::{THING, setup, topic};
use jobs_core::{Client, Jobs};
use jobs_mock::{MockBroker, Script, request_token};
use serde_json::json;

/// Answers a describe of any job of any thing with that job's own ID and a version.
fn echo_job_id() -> Script {
    Script::custom(|request_topic, request| {
        let levels: Vec<&str> = request_topic.split('/').collect();
        let (thing, job) = (levels[2], levels[4]);
        let token = request_token(request).unwrap();
        let body = json!({"execution": {"jobId": job, "versionNumber": 1, "thingName": thing}, "clientToken": token});
        vec![(
            format!("{request_topic}/accepted"),
            body.to_string().into_bytes(),
        )]
    })
}

#[test]
fn eight_threads_with_many_calls_each_get_their_own_replies_on_one_jobs() {
    let s = setup();
    s.broker.script("$aws/things/+/jobs/+/get", echo_job_id());
    s.broker.set_recording(false);
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let (jobs, barrier) = (s.jobs.clone(), Arc::clone(&barrier));
            thread::spawn(move || {
                barrier.wait();
                for i in 0..250 {
                    let id = format!("job-{t}-{i}");
                    let mut job = jobs.job(&id).unwrap();
                    job.describe().unwrap();
                    assert_eq!(job.execution().job_id.as_str(), id);
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
}

#[test]
fn replies_in_reverse_order_reach_the_right_waiting_threads() {
    let s = setup();
    let (requests_tx, requests_rx) = crossbeam_channel::unbounded();
    s.broker.script(
        "$aws/things/+/jobs/+/get",
        Script::custom(move |topic, request| {
            requests_tx
                .send((topic.to_owned(), request_token(request).unwrap()))
                .unwrap();
            Vec::new()
        }),
    );
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let jobs = s.jobs.clone();
            thread::spawn(move || {
                let mut job = jobs.job(format!("job-{t}")).unwrap();
                job.describe().unwrap();
                job.execution().job_id.clone().to_string()
            })
        })
        .collect();
    let mut requests: Vec<(String, String)> = (0..4)
        .map(|_| requests_rx.recv_timeout(Duration::from_secs(5)).unwrap())
        .collect();
    requests.sort();
    for (topic, token) in requests.iter().rev() {
        let job = topic.split('/').nth(4).unwrap();
        let body = json!({"execution": {"jobId": job}, "clientToken": token});
        s.broker
            .inject(&format!("{topic}/accepted"), body.to_string().as_bytes());
    }
    let ids: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(ids, ["job-0", "job-1", "job-2", "job-3"]);
}

#[test]
fn two_things_share_one_transport_and_each_hears_only_its_own_traffic() {
    let broker = MockBroker::new();
    let client = Client::new(broker.connect("gateway")).unwrap();
    let pump = Jobs::new(&client, THING).unwrap();
    let valve = Jobs::new(&client, "valve-3").unwrap();
    broker.script("$aws/things/+/jobs/+/get", echo_job_id());
    let mut a = pump.job("a").unwrap();
    let mut b = valve.job("b").unwrap();
    a.describe().unwrap();
    b.describe().unwrap();
    assert_eq!(a.execution().thing_name.as_deref(), Some(THING));
    assert_eq!(b.execution().thing_name.as_deref(), Some("valve-3"));

    assert!(pump.changed() && valve.changed());
    broker.inject(&topic("notify"), br#"{"timestamp":1,"jobs":{}}"#);
    assert!(pump.changed());
    assert!(!valve.changed());
    assert_eq!(broker.subscribe_requests().len(), 2);
}

#[test]
fn a_thousand_things_share_one_client() {
    let broker = MockBroker::new();
    broker.set_recording(false);
    let client = Client::new(broker.connect("gateway")).unwrap();
    let fleet: Vec<Jobs> = (0..1000)
        .map(|i| Jobs::new(&client, format!("thing-{i}")).unwrap())
        .collect();
    broker.inject("$aws/things/thing-999/jobs/notify", br#"{"jobs":{}}"#);
    for jobs in &fleet {
        jobs.changed();
    }
    broker.inject("$aws/things/thing-500/jobs/notify", br#"{"jobs":{}}"#);
    let changed: Vec<&str> = fleet
        .iter()
        .filter(|j| j.changed())
        .map(|j| j.thing_name().as_str())
        .collect();
    assert_eq!(changed, ["thing-500"]);
}
