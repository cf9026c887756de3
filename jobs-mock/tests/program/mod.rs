//! A program run as a child process, its standard output read line by line; for the tests
//! of the `jobs-service` binary.
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

/// The longest any one step may take (generous: CI machines are slow and shared).
pub const WAIT: Duration = Duration::from_secs(30);

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
        Self::start_with_stdin(exe, args, Stdio::null())
    }

    pub fn start_with_stdin(exe: &str, args: &[&str], stdin: Stdio) -> Self {
        let mut child = Command::new(exe)
            .args(args)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {exe}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
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
