//! Shared helpers of the tests that run the example programs as child processes.
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test file uses a different subset of the helpers"
)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a panic fails the test"
)]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use std::sync::{Arc, Mutex};

use clap::Parser as _;
use jobs_mock::local_broker::LocalBroker;
use jobs_mock::server::Server;
use jobs_mock::server::cli::Args;

/// The longest any one step may take (generous: CI machines are slow and shared).
pub const WAIT: Duration = Duration::from_secs(30);

/// The lines `output` gives, read on a thread of their own until it ends.
pub fn lines_of(output: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// A child process whose standard output is read line by line; killed by its pid and reaped
/// on drop.
pub struct Program {
    pub name: String,
    pub child: Child,
    lines: Receiver<String>,
    pub output: Vec<String>,
}

impl Program {
    pub fn start(exe: &str, args: &[&str]) -> Self {
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {exe}: {e}"));
        let lines = lines_of(child.stdout.take().unwrap());
        let name = format!(
            "{} {}",
            exe.rsplit('/').next().unwrap_or(exe),
            args.join(" ")
        );
        Self {
            name,
            child,
            lines,
            output: Vec::new(),
        }
    }

    /// Waits (at most [`WAIT`]) for an output line matching `wanted`, and returns it.
    pub fn wait_for_line(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.output.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(error) => panic!(
                    "{}: no expected line ({error:?}); output so far:\n{}",
                    self.name,
                    self.output.join("\n")
                ),
            }
        }
    }

    /// Waits (at most [`WAIT`]) for the program to close its output and exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.output.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{}: did not finish; output so far:\n{}",
                    self.name,
                    self.output.join("\n")
                ),
            }
        }
        // Output closed: the process is exiting. Poll its status, bounded.
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "{}: did not exit", self.name);
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `jobs-service` emulator on `broker` with `extra` flags, run in-process; its output
/// lines are collected in the second value.
pub fn start_service(broker: &LocalBroker, extra: &[&str]) -> (Server, Arc<Mutex<Vec<String>>>) {
    let uri = broker.uri();
    let mut args = vec!["jobs-service", "--broker", uri.as_str()];
    args.extend(extra);
    let args = Args::try_parse_from(args).unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let lines = Arc::clone(&log);
    let service = Server::start(
        &args,
        Arc::new(move |line: &str| lines.lock().unwrap().push(line.to_owned())),
    )
    .unwrap();
    (service, log)
}

pub fn start_device(broker: &LocalBroker, thing: &str, extra: &[&str]) -> Program {
    let uri = broker.uri();
    let mut args = vec![
        "--broker",
        uri.as_str(),
        "--thing",
        thing,
        "--work-scale",
        "0",
    ];
    args.extend(extra);
    Program::start(env!("CARGO_BIN_EXE_device"), &args)
}
