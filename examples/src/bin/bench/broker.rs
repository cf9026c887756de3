//! A private mosquitto for the benchmark (to be replaced by `jobs_paho::local_broker` once it
//! lands): 127.0.0.1 on a free port, `set_tcp_nodelay true`, no persistence, killed by PID on
//! drop.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::BoxError;

/// How long mosquitto may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A running mosquitto, killed when dropped.
#[derive(Debug)]
pub(crate) struct Mosquitto {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Mosquitto {
    /// Writes a config into a temporary directory, spawns mosquitto and waits until it accepts
    /// TCP connections.
    pub(crate) fn start() -> Result<Self, BoxError> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = std::env::temp_dir().join(format!("jobs-bench-{}-{port}", std::process::id()));
        fs::create_dir_all(&dir)?;
        let root = fs::read_to_string("/proc/self/status")
            .map(|s| {
                s.lines()
                    .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
            })
            .unwrap_or(false);
        let config = format!(
            "{}per_listener_settings false\nallow_anonymous true\npersistence false\n\
             set_tcp_nodelay true\nlog_dest none\nlistener {port} 127.0.0.1\n",
            if root { "user root\n" } else { "" }
        );
        let path = dir.join("mosquitto.conf");
        fs::write(&path, config)?;
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("could not start mosquitto (is it installed?): {e}"))?;
        let mut broker = Self { child, port, dir };
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(broker);
            }
            if let Some(status) = broker.child.try_wait()? {
                return Err(format!("mosquitto exited at start-up: {status}").into());
            }
            if Instant::now() > deadline {
                return Err("mosquitto did not accept connections within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `tcp://127.0.0.1:PORT`.
    pub(crate) fn uri(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
