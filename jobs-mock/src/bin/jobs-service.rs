//! jobs-service: a local stand-in for AWS IoT Jobs on a real MQTT broker, with the AWS IoT API
//! over HTTP. See `jobs_mock::server` and `jobs-service --help`.

fn main() -> std::process::ExitCode {
    jobs_mock::server::main()
}
