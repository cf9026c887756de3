//! The jobs file of `jobs-service --jobs FILE`: jobs to create at start.
//!
//! ```json
//! {
//!   "jobs": [
//!     {
//!       "jobId": "rotate-logs",
//!       "document": {"operation": "rotate-logs", "keep": 5},
//!       "things": ["pump-07", "pump-08"],
//!       "inProgressTimeoutMinutes": 30
//!     }
//!   ]
//! }
//! ```
//! `jobId` (1–64 of `[a-zA-Z0-9_-]`), `document` (any JSON value) and `things` (at least one)
//! are required; `inProgressTimeoutMinutes` (1–10080) is optional. Unknown fields are errors.
//! Jobs are created in file order, so each thing's queue follows the file. The file is a
//! shortcut, not the AWS API: its things are registered if they are not, and the jobs target
//! their ARNs (as [`JobSpec::thing`](crate::service::JobSpec::thing) does).
//!

use std::error::Error;

use jobs_core::{Document, JobId, ThingName};
use serde::Deserialize;
use serde_json::Value;

use crate::service::JobSpec;

/// One job: an entry of the jobs file, or the body of a `create` command.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobEntry {
    /// The job ID.
    pub job_id: String,
    /// The job document.
    pub document: Value,
    /// The target things.
    pub things: Vec<String>,
    /// The in-progress timeout in minutes, if any.
    #[serde(default)]
    pub in_progress_timeout_minutes: Option<i64>,
}

impl JobEntry {
    /// The simulator's job specification.
    ///
    /// # Errors
    /// An invalid job ID or thing name, or a document that cannot be serialised.
    pub fn to_spec(&self) -> Result<JobSpec, Box<dyn Error>> {
        let things = self
            .things
            .iter()
            .map(|t| ThingName::new(t.as_str()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut spec = JobSpec::new(
            JobId::new(self.job_id.as_str())?,
            Document::from_serialize(&self.document)?,
        )
        .things(things);
        if let Some(minutes) = self.in_progress_timeout_minutes {
            spec = spec.in_progress_timeout_minutes(minutes);
        }
        Ok(spec)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobsFile {
    jobs: Vec<JobEntry>,
}

/// Parses a jobs file (see the [module docs](self)).
///
/// # Errors
/// Invalid JSON, or JSON that is not a jobs file.
pub fn parse_jobs_file(text: &str) -> Result<Vec<JobEntry>, serde_json::Error> {
    Ok(serde_json::from_str::<JobsFile>(text)?.jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_jobs_file_parses_into_valid_job_specs() {
        let entries = parse_jobs_file(include_str!("../../../examples/jobs.json")).unwrap();
        assert!(entries.len() >= 3);
        for entry in entries {
            let _spec = entry.to_spec().unwrap();
        }
    }

    #[test]
    fn a_jobs_file_with_an_unknown_field_is_refused() {
        let text = r#"{"jobs":[{"jobId":"a","document":{},"things":["t"],"colour":"red"}]}"#;
        assert!(parse_jobs_file(text).is_err());
    }
}
