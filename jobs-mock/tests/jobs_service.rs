//! The `jobs-service` program as people run it: in the background exactly as the README shows
//! (no standard input), with `--console`, with its standard output closed, and its flags.
//! Over a real mosquitto started on a free port and stopped by its pid.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test: a panic fails the test"
)]

mod program;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jobs_mock::local_broker::LocalBroker;
use program::{Program, WAIT};
use serde_json::Value;

const JOBS_SERVICE: &str = env!("CARGO_BIN_EXE_jobs-service");

/// The README's command that starts `jobs-service` in the background.
fn readme_command() -> String {
    let readme = include_str!("../../README.md");
    let line = readme
        .lines()
        .find(|line| line.contains("--bin jobs-service") && line.contains("--http"))
        .expect("the README starts jobs-service");
    assert!(
        line.trim_end().ends_with('&'),
        "the README runs it in the background: {line}"
    );
    line.to_owned()
}

/// `GET path` on `address`, the body of the answer.
fn http_get(address: &str, path: &str) -> Value {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{answer}: {e}"))
}

#[test]
fn started_in_the_background_as_the_readme_shows_it_keeps_serving() {
    let broker = LocalBroker::start().unwrap();
    // The README's line, with the built program instead of `cargo run … --`, the test's
    // broker, and a free port; run by a shell script with no standard input, as CI runs it
    // (before the fix the service stopped at once: "standard input closed; stopping").
    let line = readme_command();
    let (_, flags) = line.split_once(" -- ").expect("cargo run … -- flags");
    let flags = flags
        .trim_end()
        .trim_end_matches('&')
        .replace("127.0.0.1:8080", "127.0.0.1:0");
    let script = format!(
        "{JOBS_SERVICE} --broker {} {flags} & echo \"pid $!\"",
        broker.uri()
    );
    let mut shell = Program::start_with_stdin("sh", &["-c", &script], Stdio::null());
    let pid_line = shell.wait_for_line(|line| line.starts_with("pid "));
    let pid = pid_line.trim_start_matches("pid ").to_owned();
    let _kill = KillOnDrop(pid);
    let listening = shell.wait_for_line(|line| line.starts_with("http: listening on "));
    shell.wait_for_line(|line| line == "ready");
    let address = listening
        .trim_start_matches("http: listening on http://")
        .to_owned();
    // The shell has exited; the service still answers, again and again.
    assert!(shell.child.wait().unwrap().success());
    for _ in 0..3 {
        assert_eq!(http_get(&address, "/jobs"), serde_json::json!({"jobs": []}));
    }
}

/// Kills a process by its pid on drop.
struct KillOnDrop(String);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(&self.0).status();
    }
}

#[test]
fn the_console_takes_requests_on_standard_input_and_quit_stops_it() {
    let broker = LocalBroker::start().unwrap();
    let mut service = Program::start_with_stdin(
        JOBS_SERVICE,
        &["--broker", &broker.uri(), "--console"],
        Stdio::piped(),
    );
    service.wait_for_line(|line| line == "ready");
    let mut stdin = service.child.stdin.take().unwrap();
    writeln!(
        stdin,
        r#"{{"operation": "CreateThing", "input": {{"thingName": "t"}}}}"#
    )
    .unwrap();
    writeln!(
        stdin,
        r#"{{"operation": "CreateJob", "requestId": 1, "input": {{"jobId": "j", "targets": ["arn:aws:iot:us-east-1:123456789012:thing/t"], "document": "{{}}"}}}}"#
    )
    .unwrap();
    let reply =
        service.wait_for_line(|line| line.starts_with('{') && line.contains("\"requestId\":1"));
    let reply: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["output"]["jobId"], "j", "{reply}");
    writeln!(stdin, "quit").unwrap();
    let status = service.wait_exit();
    assert!(status.success(), "{status}");
    assert_eq!(service.output.last().map(String::as_str), Some("stopped"));
}

#[test]
fn a_closed_standard_output_stops_it_quietly_instead_of_panicking() {
    let broker = LocalBroker::start().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = Command::new(JOBS_SERVICE)
        .args(["--broker", &broker.uri()])
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn help_goes_to_standard_output_and_bad_flags_are_refused_before_connecting() {
    let output = Command::new(JOBS_SERVICE).arg("--help").output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in ["--broker", "--http", "--console", "--time-scale", "--jobs"] {
        assert!(help.contains(flag), "{flag}: {help}");
    }
    for bad in [
        vec!["--time-scale=0"],
        vec!["--http", "localhost"],
        vec!["--broker=http://127.0.0.1:1883"],
        vec!["--no-such-flag"],
    ] {
        let output = Command::new(JOBS_SERVICE)
            .args(&bad)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{bad:?}");
    }
}
