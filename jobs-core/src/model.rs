//! The wire model of the Jobs device API: every request, response, event and rejection.
//!
//! Decoding is tolerant (unknown fields ignored, documented fields optional, versions,
//! execution numbers and timestamps accepted as numbers or numeric strings — see [`Version`],
//! [`ExecutionNumber`], [`Timestamp`] —, unknown statuses and codes kept verbatim); encoding
//! is exact (numbers as numbers, unset options absent). Wire spellings live only in serde
//! attributes.
//!
//! The structs are `#[non_exhaustive]` because AWS adds fields over time; build them with
//! `Default` (or `new` where a field is required) and assign the public fields. The values
//! used everywhere — [`JobStatus`], [`RejectCode`], [`Document`] — live at the crate root.

use serde::{Deserialize, Serialize};

use crate::names::{JobId, StatusDetails};
use crate::{Document, ExecutionNumber, JobStatus, RejectCode, Timestamp, Version};

/// A job execution as sent in StartNext and Describe replies and in `notify-next`.
///
/// `jobId` is required: a reply or event whose execution lacks it does not decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct JobExecution {
    /// The job's ID.
    pub job_id: JobId,
    /// The thing's name (documented, but usually absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thing_name: Option<String>,
    /// The job document (absent when not requested).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_document: Option<Document>,
    /// The execution's status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<JobStatus>,
    /// The status details last set (absent when never set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_details: Option<StatusDetails>,
    /// When the execution was queued, in seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued_at: Option<Timestamp>,
    /// When the execution started, in seconds since the epoch (absent until started).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// When the execution last changed, in seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_updated_at: Option<Timestamp>,
    /// Seconds left before a timer moves the execution to `TIMED_OUT`, when a timer applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approximate_seconds_before_timed_out: Option<i64>,
    /// The version, incremented by each device update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_number: Option<Version>,
    /// Identifies this execution of the job on this thing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_number: Option<ExecutionNumber>,
}

/// A pending execution as listed by GetPending and `notify` (no status, no document).
///
/// `jobId` is required: a list or event with a summary that lacks it does not decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct JobExecutionSummary {
    /// The job's ID.
    pub job_id: JobId,
    /// When the execution was queued, in seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued_at: Option<Timestamp>,
    /// When the execution started (absent until started).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// When the execution last changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_updated_at: Option<Timestamp>,
    /// The version, incremented by each device update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_number: Option<Version>,
    /// Identifies this execution of the job on this thing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_number: Option<ExecutionNumber>,
}

impl JobExecution {
    /// An execution of `job_id` with nothing else known.
    pub fn new(job_id: JobId) -> Self {
        Self {
            job_id,
            thing_name: None,
            job_document: None,
            status: None,
            status_details: None,
            queued_at: None,
            started_at: None,
            last_updated_at: None,
            approximate_seconds_before_timed_out: None,
            version_number: None,
            execution_number: None,
        }
    }
}

impl JobExecutionSummary {
    /// A summary of an execution of `job_id` with nothing else known.
    pub fn new(job_id: JobId) -> Self {
        Self {
            job_id,
            queued_at: None,
            started_at: None,
            last_updated_at: None,
            version_number: None,
            execution_number: None,
        }
    }
}

/// `executionState` of Update replies, `VersionMismatch` and `InvalidStateTransition`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ExecutionState {
    /// The execution's status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<JobStatus>,
    /// Its status details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_details: Option<StatusDetails>,
    /// Its version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_number: Option<Version>,
}

/// GetPendingJobExecutions request on `…/jobs/get`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct GetPendingRequest {
    /// Correlation token, echoed in the reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// StartNextPendingJobExecution request on `…/jobs/start-next`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct StartNextRequest {
    /// Details to set when a QUEUED execution is started (omitted: unchanged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_details: Option<StatusDetails>,
    /// Step timer in minutes, 1–10080.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_timeout_in_minutes: Option<i64>,
    /// Correlation token, echoed in the reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// DescribeJobExecution request on `…/jobs/{job}/get` (or `…/jobs/$next/get`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DescribeRequest {
    /// The execution to describe (omitted: the latest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_number: Option<ExecutionNumber>,
    /// Whether to include the job document (the service's default is `true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_job_document: Option<bool>,
    /// Correlation token, echoed in the reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// UpdateJobExecution request on `…/jobs/{job}/update`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct UpdateRequest {
    /// The new status (required by the service on every update).
    pub status: Option<JobStatus>,
    /// Details to set (omitted: unchanged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_details: Option<StatusDetails>,
    /// Optimistic lock: the update fails with `VersionMismatch` unless this is the stored
    /// version. Sent as a number; a numeric string is accepted when decoding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<Version>,
    /// The execution to update (omitted: the latest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_number: Option<ExecutionNumber>,
    /// Ask for `executionState` in the accepted reply (service default `false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_job_execution_state: Option<bool>,
    /// Ask for `jobDocument` in the accepted reply (service default `false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_job_document: Option<bool>,
    /// Step timer in minutes, 1–10080, or `-1` to cancel it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_timeout_in_minutes: Option<i64>,
    /// Correlation token, echoed in the reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// Accepted reply of GetPendingJobExecutions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct PendingJobs {
    /// Executions that are IN_PROGRESS.
    #[serde(default)]
    pub in_progress_jobs: Vec<JobExecutionSummary>,
    /// Executions that are QUEUED.
    #[serde(default)]
    pub queued_jobs: Vec<JobExecutionSummary>,
    /// When the reply was sent, in seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    /// The request's token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// Accepted reply of StartNext and Describe; `execution` is absent when nothing is pending.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ExecutionReply {
    /// The execution, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution: Option<JobExecution>,
    /// When the reply was sent, in seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    /// The request's token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// Accepted reply of UpdateJobExecution.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct UpdateReply {
    /// The new state; present only if the request set `includeJobExecutionState`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_state: Option<ExecutionState>,
    /// The job document; present only if the request set `includeJobDocument`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_document: Option<Document>,
    /// When the reply was sent, in seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    /// The request's token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// A reply on a `/rejected` topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ErrorReply {
    /// The error code (the only field the service guarantees).
    pub code: RejectCode,
    /// The explanation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The request's token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    /// When the reply was sent, in seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    /// The execution's state, with `VersionMismatch` and `InvalidStateTransition`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_state: Option<ExecutionState>,
}

impl ErrorReply {
    /// A rejection with `code` and nothing else set.
    pub fn new(code: RejectCode) -> Self {
        Self {
            code,
            message: None,
            client_token: None,
            timestamp: None,
            execution_state: None,
        }
    }
}

/// `notify` (JobExecutionsChanged): the list of pending executions changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobExecutionsChanged {
    /// When the event was sent, in seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    /// The pending executions by status; empty when nothing is pending.
    #[serde(default)]
    pub jobs: PendingByStatus,
}

/// The `jobs` object of `notify`. Keys other than `IN_PROGRESS` and `QUEUED` are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PendingByStatus {
    /// Executions that are IN_PROGRESS.
    #[serde(rename = "IN_PROGRESS", default, skip_serializing_if = "Vec::is_empty")]
    pub in_progress: Vec<JobExecutionSummary>,
    /// Executions that are QUEUED.
    #[serde(rename = "QUEUED", default, skip_serializing_if = "Vec::is_empty")]
    pub queued: Vec<JobExecutionSummary>,
}

/// `notify-next` (NextJobExecutionChanged): the head of the pending queue changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NextJobExecutionChanged {
    /// When the event was sent, in seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    /// The new head of the queue, with its document; absent when the queue became empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution: Option<JobExecution>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statuses_round_trip_and_unknown_ones_are_kept() {
        let status: JobStatus = serde_json::from_str("\"IN_PROGRESS\"").unwrap();
        assert_eq!(status, JobStatus::InProgress);
        let status: JobStatus = serde_json::from_str("\"PAUSED\"").unwrap();
        assert_eq!(status, JobStatus::Unknown("PAUSED".into()));
        assert_eq!(serde_json::to_string(&status).unwrap(), "\"PAUSED\"");
        assert_eq!(JobStatus::TimedOut.to_string(), "TIMED_OUT");
        assert!(JobStatus::Canceled.is_terminal());
        assert!(!JobStatus::Unknown("X".into()).is_terminal());
    }

    #[test]
    fn reject_codes_round_trip_and_unknown_ones_are_kept() {
        let reply: ErrorReply =
            serde_json::from_str(r#"{"code":"SomethingNew","message":"m"}"#).unwrap();
        assert_eq!(reply.code, RejectCode::Unknown("SomethingNew".into()));
        let reply: ErrorReply = serde_json::from_str(r#"{"code":"VersionMismatch"}"#).unwrap();
        assert_eq!(reply.code, RejectCode::VersionMismatch);
        assert_eq!(RejectCode::RequestThrottled.to_string(), "RequestThrottled");
    }

    #[test]
    fn requests_encode_numbers_as_numbers_and_leave_unset_options_out() {
        let request = UpdateRequest {
            status: Some(JobStatus::Succeeded),
            expected_version: Some(Version::new(3)),
            client_token: Some("t".into()),
            ..UpdateRequest::default()
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({"status":"SUCCEEDED","expectedVersion":3,"clientToken":"t"})
        );
        assert_eq!(
            serde_json::to_string(&GetPendingRequest::default()).unwrap(),
            "{}"
        );
    }

    #[test]
    fn expected_version_is_accepted_as_a_numeric_string() {
        let request: UpdateRequest =
            serde_json::from_str(r#"{"status":"QUEUED","expectedVersion":"1"}"#).unwrap();
        assert_eq!(request.expected_version, Some(Version::new(1)));
        assert!(serde_json::from_str::<UpdateRequest>(r#"{"expectedVersion":"1.0.1"}"#).is_err());
    }

    #[test]
    fn millisecond_timestamps_are_read_as_seconds() {
        let reply: PendingJobs = serde_json::from_str(r#"{"timestamp":1489096425069}"#).unwrap();
        assert_eq!(reply.timestamp, Some(Timestamp::new(1_489_096_425)));
        let reply: PendingJobs = serde_json::from_str(r#"{"timestamp":1517016948}"#).unwrap();
        assert_eq!(reply.timestamp, Some(Timestamp::new(1_517_016_948)));
    }

    #[test]
    fn the_reference_examples_decode() {
        let pending: PendingJobs = serde_json::from_str(
            r#"{"inProgressJobs":[{"jobId":"firmware-2-4","queuedAt":1750000100,"startedAt":1750000400,
               "lastUpdatedAt":1750000460,"versionNumber":3,"executionNumber":1}],
               "queuedJobs":[{"jobId":"rotate-logs","queuedAt":1750000200,"lastUpdatedAt":1750000200,
               "versionNumber":1,"executionNumber":2}],"timestamp":1750000500,"clientToken":"k3x9-0001"}"#,
        )
        .unwrap();
        assert_eq!(
            pending.in_progress_jobs[0].version_number,
            Some(Version::new(3))
        );
        assert_eq!(pending.queued_jobs[0].job_id.as_str(), "rotate-logs");

        let reply: ExecutionReply = serde_json::from_str(
            r#"{"execution":{"jobId":"rotate-logs","status":"IN_PROGRESS","statusDetails":{"phase":"archive"},
               "queuedAt":1750000200,"startedAt":1750000800,"lastUpdatedAt":1750000800,"versionNumber":2,
               "executionNumber":2,"approximateSecondsBeforeTimedOut":1200,"jobDocument":{"action":"rotate","keep":5}},
               "timestamp":1750000800,"clientToken":"k3x9-0005","someNewField":true}"#,
        )
        .unwrap();
        let execution = reply.execution.unwrap();
        assert_eq!(execution.status, Some(JobStatus::InProgress));
        assert_eq!(execution.approximate_seconds_before_timed_out, Some(1200));
        assert_eq!(
            execution.job_document.unwrap().to_value(),
            json!({"action":"rotate","keep":5})
        );

        let idle: ExecutionReply =
            serde_json::from_str(r#"{"timestamp":1750000990,"clientToken":"k3x9-0009"}"#).unwrap();
        assert!(idle.execution.is_none());

        let empty: JobExecutionsChanged =
            serde_json::from_str(r#"{"timestamp":1750001100,"jobs":{}}"#).unwrap();
        assert!(empty.jobs.in_progress.is_empty() && empty.jobs.queued.is_empty());
        assert_eq!(
            serde_json::to_string(&empty).unwrap(),
            r#"{"timestamp":1750001100,"jobs":{}}"#
        );

        let next: NextJobExecutionChanged =
            serde_json::from_str(r#"{"timestamp":1750001100}"#).unwrap();
        assert!(next.execution.is_none());

        let rejected: ErrorReply = serde_json::from_str(
            r#"{"code":"InvalidStateTransition","message":"…","clientToken":"k3x9-0007","timestamp":1750000910,
               "executionState":{"status":"SUCCEEDED","statusDetails":{"result":"ok","image":"2.4.0"},"versionNumber":4}}"#,
        )
        .unwrap();
        let state = rejected.execution_state.unwrap();
        assert_eq!(state.version_number, Some(Version::new(4)));
        assert_eq!(state.status_details.unwrap().get("image"), Some("2.4.0"));
    }

    #[test]
    fn a_document_that_would_not_parse_is_refused_when_received_or_made() {
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        for document in [deep.as_str(), "1e400", r#"{"a":[-1e999]}"#] {
            let reply = format!(r#"{{"execution":{{"jobId":"j","jobDocument":{document}}}}}"#);
            assert!(
                serde_json::from_str::<ExecutionReply>(&reply).is_err(),
                "{document}"
            );
            assert!(Document::from_json(document).is_err(), "{document}");
        }
        let fine = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        let document = Document::from_json(fine).unwrap();
        assert!(document.to_value().is_array());
        assert_eq!(
            Document::from_json("1e300").unwrap().to_value(),
            json!(1e300)
        );
    }

    #[test]
    fn an_execution_or_summary_without_a_job_id_does_not_decode() {
        let error = serde_json::from_str::<ExecutionReply>(r#"{"execution":{"status":"QUEUED"}}"#)
            .unwrap_err();
        assert!(error.to_string().contains("jobId"), "{error}");
        assert!(
            serde_json::from_str::<PendingJobs>(r#"{"queuedJobs":[{"versionNumber":1}]}"#).is_err()
        );
    }

    #[test]
    fn a_document_may_be_any_json_value_and_debug_hides_it() {
        let reply: ExecutionReply =
            serde_json::from_str(r#"{"execution":{"jobId":"j","jobDocument":"secret-url"}}"#)
                .unwrap();
        let document = reply.execution.unwrap().job_document.unwrap();
        assert_eq!(document.as_json(), "\"secret-url\"");
        assert_eq!(format!("{document:?}"), "Document(12 bytes)");
    }
}
