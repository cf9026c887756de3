//! The job configurations CreateJob takes and DescribeJob returns, with AWS's members and
//! ranges (botocore's model): `presignedUrlConfig`, `jobExecutionsRolloutConfig`,
//! `jobExecutionsRetryConfig`, `abortConfig`. What each does is in the
//! [service docs](crate::service); the checks here are the model's ranges plus the rules the
//! docs state (our choices marked).

use serde::{Deserialize, Serialize};

use super::ApiError;

/// `presignedUrlConfig`: how the `${aws:iot:s3-presigned-url…}` placeholders of the document
/// are signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct PresignedUrlConfig {
    /// The IAM role AWS IoT would use to read the bucket (20–2048 characters; not checked
    /// further). Required when the document has placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// How long a URL stays valid, 60–3600 seconds. Defaults to 3600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_sec: Option<i64>,
}

/// Default `expiresInSec` (documented).
pub(crate) const DEFAULT_EXPIRES_IN_SEC: i64 = 3600;

impl PresignedUrlConfig {
    pub(crate) fn check(&self) -> Result<(), ApiError> {
        if let Some(role) = &self.role_arn
            && !(20..=2048).contains(&role.chars().count())
        {
            return Err(ApiError::invalid(
                "presignedUrlConfig.roleArn must be 20 to 2048 characters",
            ));
        }
        if let Some(seconds) = self.expires_in_sec
            && !(60..=3600).contains(&seconds)
        {
            return Err(ApiError::invalid(format!(
                "presignedUrlConfig.expiresInSec {seconds} is outside 60 to 3600"
            )));
        }
        Ok(())
    }

    /// The lifetime of a URL, in seconds.
    pub(crate) fn expires_in(&self) -> i64 {
        self.expires_in_sec.unwrap_or(DEFAULT_EXPIRES_IN_SEC)
    }
}

/// `jobExecutionsRolloutConfig`: how fast executions are queued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct RolloutConfig {
    /// At most this many executions queued per minute (≥ 1); with `exponentialRate`, the cap
    /// on its rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_per_minute: Option<i64>,
    /// A rate that starts at a base and grows by a factor as things are notified or succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exponential_rate: Option<ExponentialRate>,
}

/// `exponentialRate` of a rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ExponentialRate {
    /// The starting rate, 1–1000 per minute.
    pub base_rate_per_minute: i64,
    /// The factor the rate grows by, 1.1–5.
    pub increment_factor: f64,
    /// When the rate grows.
    pub rate_increase_criteria: RateIncreaseCriteria,
}

/// `rateIncreaseCriteria`: the rate grows after this many more things were notified, or
/// succeeded, whichever comes first (at least one of the two, each ≥ 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct RateIncreaseCriteria {
    /// Things notified (executions queued) since the last increase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_notified_things: Option<i64>,
    /// Executions succeeded since the last increase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_succeeded_things: Option<i64>,
}

impl RolloutConfig {
    pub(crate) fn check(&self) -> Result<(), ApiError> {
        if let Some(max) = self.maximum_per_minute
            && max < 1
        {
            return Err(ApiError::invalid(format!(
                "jobExecutionsRolloutConfig.maximumPerMinute {max} is below 1"
            )));
        }
        if let Some(rate) = &self.exponential_rate {
            if !(1..=1000).contains(&rate.base_rate_per_minute) {
                return Err(ApiError::invalid(
                    "exponentialRate.baseRatePerMinute must be 1 to 1000",
                ));
            }
            if !(1.1..=5.0).contains(&rate.increment_factor) {
                return Err(ApiError::invalid(
                    "exponentialRate.incrementFactor must be 1.1 to 5",
                ));
            }
            let criteria = &rate.rate_increase_criteria;
            let counts = [
                criteria.number_of_notified_things,
                criteria.number_of_succeeded_things,
            ];
            if counts.iter().all(Option::is_none) || counts.iter().flatten().any(|n| *n < 1) {
                return Err(ApiError::invalid(
                    "rateIncreaseCriteria needs numberOfNotifiedThings or \
                     numberOfSucceededThings, each at least 1",
                ));
            }
        }
        if self.maximum_per_minute.is_none() && self.exponential_rate.is_none() {
            return Err(ApiError::invalid(
                "jobExecutionsRolloutConfig needs maximumPerMinute or exponentialRate",
            ));
        }
        Ok(())
    }
}

/// A failure type of retry criteria (`RetryableFailureType`) and abort criteria
/// (`JobExecutionFailureType`, which adds REJECTED).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum FailureType {
    /// The device reported FAILED.
    Failed,
    /// A timer expired.
    TimedOut,
    /// The device reported REJECTED (abort criteria only).
    Rejected,
    /// Any of them.
    All,
}

/// `jobExecutionsRetryConfig`: FAILED and TIMED_OUT executions retried as new executions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct RetryConfig {
    /// One or two criteria, each for a different failure type.
    pub criteria_list: Vec<RetryCriteria>,
}

/// One retry criterion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct RetryCriteria {
    /// FAILED, TIMED_OUT or ALL.
    pub failure_type: FailureType,
    /// 0–10 retries.
    pub number_of_retries: i64,
}

impl RetryConfig {
    pub(crate) fn check(&self) -> Result<(), ApiError> {
        if !(1..=2).contains(&self.criteria_list.len()) {
            return Err(ApiError::invalid(
                "jobExecutionsRetryConfig.criteriaList must have 1 or 2 criteria",
            ));
        }
        for (i, criteria) in self.criteria_list.iter().enumerate() {
            if criteria.failure_type == FailureType::Rejected {
                return Err(ApiError::invalid(
                    "retry failureType must be FAILED, TIMED_OUT or ALL (REJECTED is never retried)",
                ));
            }
            if !(0..=10).contains(&criteria.number_of_retries) {
                return Err(ApiError::invalid(format!(
                    "retry numberOfRetries {} is outside 0 to 10",
                    criteria.number_of_retries
                )));
            }
            if self.criteria_list[..i]
                .iter()
                .any(|c| c.failure_type == criteria.failure_type)
            {
                return Err(ApiError::invalid(
                    "jobExecutionsRetryConfig names a failureType twice",
                ));
            }
        }
        Ok(())
    }

    /// How many retries a failure of `kind` (FAILED or TIMED_OUT) may have: its own
    /// criterion, else ALL's, else none.
    pub(crate) fn retries_for(&self, kind: FailureType) -> Option<(FailureType, i64)> {
        let find = |t: FailureType| {
            self.criteria_list
                .iter()
                .find(|c| c.failure_type == t)
                .map(|c| (t, c.number_of_retries))
        };
        find(kind).or_else(|| find(FailureType::All))
    }
}

/// `abortConfig`: the job is cancelled when too many executions fail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct AbortConfig {
    /// The criteria; any one met aborts the job.
    pub criteria_list: Vec<AbortCriteria>,
}

/// The only abort action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum AbortAction {
    /// Cancel the job.
    Cancel,
}

/// One abort criterion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct AbortCriteria {
    /// FAILED, REJECTED, TIMED_OUT or ALL.
    pub failure_type: FailureType,
    /// CANCEL.
    pub action: AbortAction,
    /// The percentage of executed things that failed so, 0–100 with at most two decimals.
    pub threshold_percentage: f64,
    /// How many things must have been notified first (≥ 1).
    pub min_number_of_executed_things: i64,
}

impl AbortConfig {
    pub(crate) fn check(&self) -> Result<(), ApiError> {
        if self.criteria_list.is_empty() {
            return Err(ApiError::invalid("abortConfig.criteriaList is empty"));
        }
        for criteria in &self.criteria_list {
            let percent = criteria.threshold_percentage;
            let hundredths = percent * 100.0;
            if !(0.0..=100.0).contains(&percent) || (hundredths - hundredths.round()).abs() > 1e-6 {
                return Err(ApiError::invalid(format!(
                    "abort thresholdPercentage {percent} must be 0 to 100 with at most two \
                     decimals"
                )));
            }
            if criteria.min_number_of_executed_things < 1 {
                return Err(ApiError::invalid(
                    "abort minNumberOfExecutedThings must be at least 1",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn ranges_are_the_models() {
        let ok: PresignedUrlConfig =
            parse(json!({"roleArn": "arn:aws:iam::123456789012:role/s3", "expiresInSec": 60}));
        assert!(ok.check().is_ok());
        assert_eq!(ok.expires_in(), 60);
        for bad in [
            json!({"expiresInSec": 59}),
            json!({"expiresInSec": 3601}),
            json!({"roleArn": "short"}),
        ] {
            assert!(parse::<PresignedUrlConfig>(bad).check().is_err());
        }
        let rollout: RolloutConfig = parse(json!({"exponentialRate": {"baseRatePerMinute": 5,
            "incrementFactor": 2.0, "rateIncreaseCriteria": {"numberOfNotifiedThings": 10}}}));
        assert!(rollout.check().is_ok());
        for bad in [
            json!({"maximumPerMinute": 0}),
            json!({}),
            json!({"exponentialRate": {"baseRatePerMinute": 5, "incrementFactor": 1.0,
                   "rateIncreaseCriteria": {"numberOfNotifiedThings": 10}}}),
            json!({"exponentialRate": {"baseRatePerMinute": 5, "incrementFactor": 2.0,
                   "rateIncreaseCriteria": {}}}),
        ] {
            assert!(parse::<RolloutConfig>(bad).check().is_err());
        }
        for bad in [
            json!({"criteriaList": []}),
            json!({"criteriaList": [{"failureType": "FAILED", "numberOfRetries": 11}]}),
            json!({"criteriaList": [{"failureType": "REJECTED", "numberOfRetries": 1}]}),
            json!({"criteriaList": [{"failureType": "ALL", "numberOfRetries": 1},
                                    {"failureType": "ALL", "numberOfRetries": 2}]}),
        ] {
            assert!(parse::<RetryConfig>(bad).check().is_err());
        }
        for bad in [
            json!({"criteriaList": [{"failureType": "FAILED", "action": "CANCEL",
                   "thresholdPercentage": 10.999, "minNumberOfExecutedThings": 1}]}),
            json!({"criteriaList": [{"failureType": "FAILED", "action": "CANCEL",
                   "thresholdPercentage": 10, "minNumberOfExecutedThings": 0}]}),
        ] {
            assert!(parse::<AbortConfig>(bad).check().is_err());
        }
    }

    #[test]
    fn a_failure_uses_its_own_retry_criterion_before_all() {
        let config: RetryConfig = parse(json!({"criteriaList": [
            {"failureType": "ALL", "numberOfRetries": 3},
            {"failureType": "TIMED_OUT", "numberOfRetries": 1}]}));
        assert_eq!(
            config.retries_for(FailureType::TimedOut),
            Some((FailureType::TimedOut, 1))
        );
        assert_eq!(
            config.retries_for(FailureType::Failed),
            Some((FailureType::All, 3))
        );
    }
}
