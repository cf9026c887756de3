//! The AWS IoT API over HTTP for `jobs-service`: AWS's REST-JSON protocol (paths, query
//! strings, JSON bodies, error headers and status codes from botocore's model of the `iot`
//! service), so the AWS CLI (`aws iot … --endpoint-url http://127.0.0.1:PORT`) and boto3
//! (`boto3.client("iot", endpoint_url=…)`) work unchanged. Request signatures are not checked:
//! any credentials do.
//!
//! This module only translates: [`route`] turns a request into an [`Operation`] and its JSON
//! input (path, query and body members merged under their AWS names), the simulator's
//! [`call_json`](crate::service::Simulator::call_json) runs it — the same dispatcher as the MQTT
//! control topic — and [`respond`] turns the outcome into status, headers and body.
//! [`HttpServer`] serves it with `tiny_http` on one thread.
//!
//! | Method and path | Operation |
//! |---|---|
//! | `PUT /jobs/{jobId}` | CreateJob |
//! | `GET /jobs/{jobId}` | DescribeJob |
//! | `GET /jobs/{jobId}/job-document` | GetJobDocument |
//! | `GET /jobs` | ListJobs |
//! | `PUT /jobs/{jobId}/cancel` | CancelJob |
//! | `DELETE /jobs/{jobId}` | DeleteJob |
//! | `POST /jobs/{jobId}/targets` | AssociateTargetsWithJob |
//! | `GET /jobs/{jobId}/things` | ListJobExecutionsForJob |
//! | `GET /things/{thingName}/jobs` | ListJobExecutionsForThing |
//! | `GET /things/{thingName}/jobs/{jobId}` | DescribeJobExecution |
//! | `PUT /things/{thingName}/jobs/{jobId}/cancel` | CancelJobExecution |
//! | `DELETE /things/{thingName}/jobs/{jobId}/executionNumber/{executionNumber}` | DeleteJobExecution |
//! | `POST /things/{thingName}` | CreateThing |
//! | `GET /things/{thingName}` | DescribeThing |
//! | `GET /things` | ListThings |
//! | `DELETE /things/{thingName}` | DeleteThing |
//! | `POST /thing-groups/{thingGroupName}` | CreateThingGroup |
//! | `GET /thing-groups/{thingGroupName}` | DescribeThingGroup |
//! | `GET /thing-groups` | ListThingGroups |
//! | `DELETE /thing-groups/{thingGroupName}` | DeleteThingGroup |
//! | `PUT /thing-groups/addThingToThingGroup` | AddThingToThingGroup |
//! | `PUT /thing-groups/removeThingFromThingGroup` | RemoveThingFromThingGroup |
//! | `GET /thing-groups/{thingGroupName}/things` | ListThingsInThingGroup |
//! | `GET /things/{thingName}/thing-groups` | ListThingGroupsForThing |
//! | `POST /jobs-service/advance-clock` | AdvanceClock (the emulator's own) |
//! | `POST /jobs-service/reset` | Reset (the emulator's own) |
//! | `GET`, `PUT /jobs-service/files/{bucket}/{key}` | the object store ([`files`](super::files)) |
//!
//! Success is HTTP 200 with the operation's output as JSON. A refusal has the status of its
//! exception (400, 404, 409, 410), the exception's name in the `x-amzn-ErrorType` header and
//! `{"__type": NAME, "message": …}` as body. A path or method that names no operation gets 404
//! `UnknownOperationException`.

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::service::api::Operation;
use crate::service::{ApiError, Simulator};
use serde_json::{Map, Value, json};

use super::files::{FILES_PREFIX, FileReply, Files};

/// The header carrying the exception name of an error response, as AWS sends it.
pub const ERROR_TYPE_HEADER: &str = "x-amzn-ErrorType";

/// An HTTP response: status, exception name (for errors) and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The exception name for the `x-amzn-ErrorType` header, on errors.
    pub error_type: Option<String>,
    /// The JSON body.
    pub body: Value,
}

/// Why a request names no operation, or its parts are not what the operation takes (over
/// HTTP, and on the control topic: [`handle_control`](super::control::handle_control)).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RouteError {
    /// No operation has this method and path (or name): 404 `UnknownOperationException`.
    UnknownOperation(String),
    /// The body is not a JSON object (or the control request is malformed): 400
    /// `InvalidRequestException`.
    Invalid(String),
}

impl RouteError {
    /// AWS's exception name: `UnknownOperationException` or `InvalidRequestException`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownOperation(_) => "UnknownOperationException",
            Self::Invalid(_) => "InvalidRequestException",
        }
    }

    /// The HTTP status: 404 or 400.
    pub fn status(&self) -> u16 {
        match self {
            Self::UnknownOperation(_) => 404,
            Self::Invalid(_) => 400,
        }
    }

    /// What was wrong, for a person.
    pub fn message(&self) -> &str {
        match self {
            Self::UnknownOperation(message) | Self::Invalid(message) => message,
        }
    }

    /// The error as AWS's JSON error body: `{"__type": code, "message": message}`.
    pub fn to_json(&self) -> Value {
        json!({"__type": self.code(), "message": self.message()})
    }
}

/// Query members that are booleans and integers on the wire (everything else is a string).
const BOOLEAN_MEMBERS: [&str; 5] = [
    "force",
    "beforeSubstitution",
    "usePrefixAttributeValue",
    "recursive",
    "overrideDynamicGroups",
];
const INTEGER_MEMBERS: [&str; 3] = ["executionNumber", "maxResults", "expectedVersion"];

/// Maps a request to its operation and JSON input (see the [module docs](self)).
///
/// # Errors
/// [`RouteError`] when nothing matches or the body is not a JSON object.
pub fn route(method: &str, url: &str, body: &[u8]) -> Result<(Operation, Value), RouteError> {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let unknown = || RouteError::UnknownOperation(format!("no operation for {method} {path}"));
    let (operation, members): (Operation, Vec<(&str, &str)>) = match (method, segments.as_slice()) {
        ("PUT", ["jobs", job]) => (Operation::CreateJob, vec![("jobId", job)]),
        ("GET", ["jobs", job]) => (Operation::DescribeJob, vec![("jobId", job)]),
        ("GET", ["jobs", job, "job-document"]) => (Operation::GetJobDocument, vec![("jobId", job)]),
        ("GET", ["jobs"]) => (Operation::ListJobs, vec![]),
        ("PUT", ["jobs", job, "cancel"]) => (Operation::CancelJob, vec![("jobId", job)]),
        ("DELETE", ["jobs", job]) => (Operation::DeleteJob, vec![("jobId", job)]),
        ("POST", ["jobs", job, "targets"]) => {
            (Operation::AssociateTargetsWithJob, vec![("jobId", job)])
        }
        ("GET", ["jobs", job, "things"]) => {
            (Operation::ListJobExecutionsForJob, vec![("jobId", job)])
        }
        ("GET", ["things", thing, "jobs"]) => (
            Operation::ListJobExecutionsForThing,
            vec![("thingName", thing)],
        ),
        ("GET", ["things", thing, "jobs", job]) => (
            Operation::DescribeJobExecution,
            vec![("thingName", thing), ("jobId", job)],
        ),
        ("PUT", ["things", thing, "jobs", job, "cancel"]) => (
            Operation::CancelJobExecution,
            vec![("thingName", thing), ("jobId", job)],
        ),
        ("DELETE", ["things", thing, "jobs", job, "executionNumber", number]) => (
            Operation::DeleteJobExecution,
            vec![
                ("thingName", thing),
                ("jobId", job),
                ("executionNumber", number),
            ],
        ),
        ("POST", ["things", thing]) => (Operation::CreateThing, vec![("thingName", thing)]),
        ("GET", ["things", thing]) => (Operation::DescribeThing, vec![("thingName", thing)]),
        ("GET", ["things"]) => (Operation::ListThings, vec![]),
        ("DELETE", ["things", thing]) => (Operation::DeleteThing, vec![("thingName", thing)]),
        ("PUT", ["thing-groups", "addThingToThingGroup"]) => {
            (Operation::AddThingToThingGroup, vec![])
        }
        ("PUT", ["thing-groups", "removeThingFromThingGroup"]) => {
            (Operation::RemoveThingFromThingGroup, vec![])
        }
        ("POST", ["thing-groups", group]) => {
            (Operation::CreateThingGroup, vec![("thingGroupName", group)])
        }
        ("GET", ["thing-groups", group]) => (
            Operation::DescribeThingGroup,
            vec![("thingGroupName", group)],
        ),
        ("GET", ["thing-groups"]) => (Operation::ListThingGroups, vec![]),
        ("DELETE", ["thing-groups", group]) => {
            (Operation::DeleteThingGroup, vec![("thingGroupName", group)])
        }
        ("GET", ["thing-groups", group, "things"]) => (
            Operation::ListThingsInThingGroup,
            vec![("thingGroupName", group)],
        ),
        ("GET", ["things", thing, "thing-groups"]) => (
            Operation::ListThingGroupsForThing,
            vec![("thingName", thing)],
        ),
        ("POST", ["jobs-service", "advance-clock"]) => (Operation::AdvanceClock, vec![]),
        ("POST", ["jobs-service", "reset"]) => (Operation::Reset, vec![]),
        _ => return Err(unknown()),
    };
    let mut input = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(object)) => object,
            Ok(_) => return Err(RouteError::Invalid("the body is not a JSON object".into())),
            Err(error) => {
                return Err(RouteError::Invalid(format!(
                    "the body is not JSON: {error}"
                )));
            }
        }
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(name);
        let value = percent_decode(value);
        let value = typed(&name, value);
        input.insert(name, value);
    }
    for (name, value) in members {
        input.insert(name.to_owned(), typed(name, value.to_owned()));
    }
    Ok((operation, Value::Object(input)))
}

/// A query or path value as the JSON type of its member.
fn typed(name: &str, value: String) -> Value {
    if BOOLEAN_MEMBERS.contains(&name) {
        match value.as_str() {
            "true" => return Value::Bool(true),
            "false" => return Value::Bool(false),
            _ => {}
        }
    }
    if INTEGER_MEMBERS.contains(&name)
        && let Ok(number) = value.parse::<i64>()
    {
        return Value::from(number);
    }
    Value::String(value)
}

/// Decodes `%XX` escapes; a malformed escape is kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (byte, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            _ => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The HTTP reply for the outcome of an operation (or of routing).
pub fn respond(outcome: Result<Value, ResponseError>) -> Reply {
    match outcome {
        Ok(body) => Reply {
            status: 200,
            error_type: None,
            body,
        },
        Err(ResponseError::Api(error)) => Reply {
            status: error.kind.http_status(),
            error_type: Some(error.kind.code().to_owned()),
            body: error.to_json(),
        },
        Err(ResponseError::Route(error)) => Reply {
            status: error.status(),
            error_type: Some(error.code().to_owned()),
            body: error.to_json(),
        },
    }
}

/// Why a request failed: routing or the operation.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ResponseError {
    /// The request named no operation, or its body was not a JSON object.
    Route(RouteError),
    /// The operation refused.
    Api(ApiError),
}

/// Handles one request on `simulator`: route, run, respond.
pub fn handle(simulator: &Simulator, method: &str, url: &str, body: &[u8]) -> Reply {
    let outcome = route(method, url, body)
        .map_err(ResponseError::Route)
        .and_then(|(operation, input)| {
            simulator
                .call_json(operation, input)
                .map_err(ResponseError::Api)
        });
    respond(outcome)
}

/// A bound HTTP address, not serving yet (so that the service can learn its URL first).
pub struct Listener {
    server: Arc<tiny_http::Server>,
    address: SocketAddr,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// Binds `address` (port 0: any free port).
    ///
    /// # Errors
    /// The address cannot be bound.
    pub fn bind(address: &str) -> Result<Self, Box<dyn Error>> {
        let server = Arc::new(tiny_http::Server::http(address).map_err(|e| e.to_string())?);
        let address = server
            .server_addr()
            .to_ip()
            .ok_or("the HTTP server is not on an IP address")?;
        Ok(Self { server, address })
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The base URL of the object store on this address (`http://ADDRESS/jobs-service/files`;
    /// an unspecified address such as `0.0.0.0` is named `127.0.0.1`).
    pub fn files_url(&self) -> String {
        let mut address = self.address;
        if address.ip().is_unspecified() {
            address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{address}{FILES_PREFIX}")
    }
}

/// The HTTP server: one thread answering API requests in arrival order, and a thread per
/// object-store transfer. Dropping it stops the API thread (after the request in progress, if
/// any); transfers under way finish on their own threads.
pub struct HttpServer {
    server: Arc<tiny_http::Server>,
    address: SocketAddr,
    handle: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl HttpServer {
    /// Serves `simulator`'s API and `files` on `listener`.
    ///
    /// # Errors
    /// The thread cannot be spawned.
    pub fn start(
        listener: Listener,
        simulator: Arc<Simulator>,
        files: Arc<Files>,
    ) -> Result<Self, Box<dyn Error>> {
        let Listener { server, address } = listener;
        let handle = {
            let server = Arc::clone(&server);
            std::thread::Builder::new()
                .name("jobs-service-http".into())
                .spawn(move || serve(&server, &simulator, &files))?
        };
        Ok(Self {
            server,
            address,
            handle: Some(handle),
        })
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(handle) = self.handle.take()
            && handle.join().is_err()
        {
            log::error!("the HTTP server thread panicked");
        }
    }
}

fn serve(server: &tiny_http::Server, simulator: &Simulator, files: &Arc<Files>) {
    for mut request in server.incoming_requests() {
        if request.url().starts_with(&format!("{FILES_PREFIX}/")) {
            let files = Arc::clone(files);
            let spawned = std::thread::Builder::new()
                .name("jobs-service-file".into())
                .spawn(move || transfer(&files, request));
            if let Err(error) = spawned {
                log::warn!("could not start a file transfer: {error}");
            }
            continue;
        }
        let mut body = Vec::new();
        let reply = match std::io::Read::read_to_end(request.as_reader(), &mut body) {
            Ok(_) => handle(simulator, request.method().as_str(), request.url(), &body),
            Err(error) => respond(Err(ResponseError::Route(RouteError::Invalid(format!(
                "could not read the body: {error}"
            ))))),
        };
        log::info!(
            "http {} {} -> {}",
            request.method(),
            request.url(),
            reply.status
        );
        let mut response =
            tiny_http::Response::from_string(reply.body.to_string()).with_status_code(reply.status);
        let headers = [
            Some(("Content-Type", "application/json".to_owned())),
            reply.error_type.map(|name| (ERROR_TYPE_HEADER, name)),
        ];
        for (name, value) in headers.into_iter().flatten() {
            match tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
                Ok(header) => response.add_header(header),
                Err(()) => log::warn!("invalid header {name}: {value}"),
            }
        }
        if let Err(error) = request.respond(response) {
            log::warn!("could not send an HTTP response: {error}");
        }
    }
}

/// One object-store request, on its own thread.
fn transfer(files: &Files, mut request: tiny_http::Request) {
    let method = request.method().as_str().to_owned();
    let url = request.url().to_owned();
    let range = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Range"))
        .map(|h| h.value.as_str().to_owned());
    // Held until the response is sent.
    let slot = files.slot();
    let reply = match &slot {
        Some(_) => files.handle(&method, &url, range.as_deref(), request.as_reader()),
        None => files.error(503, "SlowDown", "Please reduce your request rate.", ""),
    };
    log::info!("http {method} {url} -> {}", reply.status);
    let FileReply {
        status,
        headers,
        body,
    } = reply;
    let (reader, len) = body.into_reader();
    let headers: Vec<tiny_http::Header> = headers
        .into_iter()
        .filter_map(|(name, value)| {
            tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
        })
        .collect();
    let response = tiny_http::Response::new(
        tiny_http::StatusCode(status),
        headers,
        reader,
        usize::try_from(len).ok(),
        None,
    )
    // Content-Length, never chunked, as S3 sends objects: downloaders learn the size.
    .with_chunked_threshold(usize::MAX);
    if let Err(error) = request.respond(response) {
        log::info!("file transfer {url} ended early: {error}");
    }
    drop(slot);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_query_strings_and_bodies_merge_into_one_input() {
        let (operation, input) = route(
            "DELETE",
            "/things/pump-07/jobs/j1/executionNumber/2?force=true&namespaceId=x%2Dy",
            b"",
        )
        .unwrap();
        assert_eq!(operation, Operation::DeleteJobExecution);
        assert_eq!(
            input,
            json!({"thingName": "pump-07", "jobId": "j1", "executionNumber": 2,
                   "force": true, "namespaceId": "x-y"})
        );
        let (operation, input) = route("PUT", "/jobs/j1", br#"{"targets":["t"]}"#).unwrap();
        assert_eq!(operation, Operation::CreateJob);
        assert_eq!(input, json!({"jobId": "j1", "targets": ["t"]}));
        let (operation, input) = route("GET", "/jobs?maxResults=2&nextToken=2", b"").unwrap();
        assert_eq!(operation, Operation::ListJobs);
        assert_eq!(input, json!({"maxResults": 2, "nextToken": "2"}));
    }

    #[test]
    fn every_operation_has_a_route() {
        let routes = [
            ("PUT", "/jobs/j"),
            ("GET", "/jobs/j"),
            ("GET", "/jobs/j/job-document"),
            ("GET", "/jobs"),
            ("PUT", "/jobs/j/cancel"),
            ("DELETE", "/jobs/j"),
            ("POST", "/jobs/j/targets"),
            ("GET", "/things/t/jobs/j"),
            ("GET", "/jobs/j/things"),
            ("GET", "/things/t/jobs"),
            ("PUT", "/things/t/jobs/j/cancel"),
            ("DELETE", "/things/t/jobs/j/executionNumber/1"),
            ("POST", "/things/t"),
            ("GET", "/things/t"),
            ("GET", "/things"),
            ("DELETE", "/things/t"),
            ("POST", "/thing-groups/g"),
            ("GET", "/thing-groups/g"),
            ("GET", "/thing-groups"),
            ("DELETE", "/thing-groups/g"),
            ("PUT", "/thing-groups/addThingToThingGroup"),
            ("PUT", "/thing-groups/removeThingFromThingGroup"),
            ("GET", "/thing-groups/g/things"),
            ("GET", "/things/t/thing-groups"),
            ("POST", "/jobs-service/advance-clock"),
            ("POST", "/jobs-service/reset"),
        ];
        let seen: Vec<Operation> = routes
            .iter()
            .map(|(method, path)| route(method, path, b"").unwrap().0)
            .collect();
        assert_eq!(seen, Operation::ALL);
    }

    #[test]
    fn unknown_routes_and_bad_bodies_get_aws_shaped_errors() {
        let reply = respond(
            route("PATCH", "/jobs/j", b"")
                .map(|(_, input)| input)
                .map_err(ResponseError::Route),
        );
        assert_eq!(reply.status, 404);
        assert_eq!(
            reply.error_type.as_deref(),
            Some("UnknownOperationException")
        );
        let reply = respond(
            route("PUT", "/jobs/j", b"[1]")
                .map(|(_, input)| input)
                .map_err(ResponseError::Route),
        );
        assert_eq!(reply.status, 400);
        assert_eq!(reply.body["__type"], "InvalidRequestException");
    }

    #[test]
    fn requests_run_on_the_simulator_and_refusals_carry_the_exception_and_status() {
        let broker = crate::MockBroker::new();
        let simulator = Simulator::start(
            Arc::new(broker.connect("jobs-service")),
            crate::service::JobsService::new(crate::service::Clock::virtual_at(1_750_000_000)),
        )
        .unwrap();
        let reply = handle(&simulator, "POST", "/things/pump-07", b"");
        assert_eq!(
            reply.body["thingArn"], "arn:aws:iot:us-east-1:123456789012:thing/pump-07",
            "{reply:?}"
        );
        let body = br#"{"targets":["arn:aws:iot:us-east-1:123456789012:thing/pump-07"],"document":"{\"a\":1}"}"#;
        let reply = handle(&simulator, "PUT", "/jobs/j1", body);
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.body["jobId"], "j1");
        let reply = handle(&simulator, "PUT", "/jobs/j1", body);
        assert_eq!(reply.status, 409);
        assert_eq!(
            reply.error_type.as_deref(),
            Some("ResourceAlreadyExistsException")
        );
        let reply = handle(&simulator, "GET", "/things/pump-07/jobs/j1", b"");
        assert_eq!(reply.body["execution"]["status"], "QUEUED");
        let reply = handle(&simulator, "GET", "/things/pump-07/jobs/nope", b"");
        assert_eq!(
            (reply.status, reply.body["__type"].as_str()),
            (404, Some("ResourceNotFoundException"))
        );
    }
}
