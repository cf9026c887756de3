//! The relay between an AWS-mode broker and the Jobs service, and the classification of Jobs
//! topics: the one definition shared by the [`MockBroker`](crate::MockBroker)'s AWS mode, the
//! [`Simulator`](crate::service::Simulator)'s relay mode and the mosquitto plugin
//! (`jobs-mosquitto-plugin`, which compiles this file into itself).
//!
//! AWS IoT Core delivers each reply of the Jobs service (`…/accepted`, `…/rejected`) to the
//! connection that published the request, whether or not it subscribed, and to no other
//! client. A broker can only do that if the service tells it who the reply is for, so an
//! AWS-mode broker hands every Jobs request to the service with the requester's client ID:
//!
//! 1. A client publishes a request, such as `$aws/things/pump-07/jobs/get`. The broker
//!    publishes it, instead, on [`request_topic`]: `$jobs-emulator/request/{client}/{topic}`,
//!    which only the service may subscribe to (filter [`REQUEST_FILTER`]).
//! 2. The service answers on [`reply_topic`]: `$jobs-emulator/reply/{client}/{reply topic}`,
//!    which only the service may publish on.
//! 3. The broker delivers the payload to that one client on the reply topic (QoS 1), whether
//!    or not it subscribed, and to nobody else.
//!
//! Events (`notify`, `notify-next`) are ordinary publishes of the service. `{client}` is the
//! client ID with `%`, `/`, `+`, `#` and NUL percent-encoded ([`encode_client_id`]), so any
//! client ID fits in one topic level; the levels after it are the original topic, unchanged.
//!
//! This file uses only `std`: the plugin includes it with `#[path]`.

/// The first topic level of everything the emulator reserves for itself; no client but the
/// service may subscribe or publish under it.
pub const RESERVED_LEVEL: &str = "$jobs-emulator";

/// The prefix of relayed requests: `$jobs-emulator/request/{client}/{request topic}`.
pub const REQUEST_PREFIX: &str = "$jobs-emulator/request/";

/// The filter the service subscribes to in relay mode.
pub const REQUEST_FILTER: &str = "$jobs-emulator/request/#";

/// The prefix of relayed replies: `$jobs-emulator/reply/{client}/{reply topic}`.
pub const REPLY_PREFIX: &str = "$jobs-emulator/reply/";

/// Publishing anything here asks the mosquitto plugin for its counters; it answers the
/// publisher alone on [`QUOTA_REPORT_TOPIC`]. Exempt from the quotas.
pub const QUOTA_GET_TOPIC: &str = "$jobs-emulator/quota/get";

/// Publishing anything here makes the mosquitto plugin zero every counter and rate window,
/// then answer the publisher alone on [`QUOTA_REPORT_TOPIC`] (the report after the reset).
/// Exempt from the quotas.
pub const QUOTA_RESET_TOPIC: &str = "$jobs-emulator/quota/reset";

/// Where the mosquitto plugin answers [`QUOTA_GET_TOPIC`] and [`QUOTA_RESET_TOPIC`]: a JSON
/// object `{"clients": {"<client ID>": {"<counter>": n, …}, …}}`.
pub const QUOTA_REPORT_TOPIC: &str = "$jobs-emulator/quota/report";

/// What a topic is in the Jobs namespace `$aws/things/{thing}/jobs/…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobsTopic {
    /// Anything a device may publish there: the four request topics, and topics that name no
    /// API (the service answers those with `InvalidTopic` on the topic plus `/rejected`).
    Request,
    /// A reply: the last level is `accepted` or `rejected`.
    Reply,
    /// `…/jobs/notify` or `…/jobs/notify-next`.
    Event,
    /// Outside the Jobs namespace.
    Other,
}

/// Classifies `topic` by its levels: `$aws`, `things`, one level (the thing), `jobs`, then at
/// least one level.
pub fn classify(topic: &str) -> JobsTopic {
    let mut levels = topic.split('/');
    let namespace = [levels.next(), levels.next(), levels.next(), levels.next()];
    let [Some("$aws"), Some("things"), Some(_), Some("jobs")] = namespace else {
        return JobsTopic::Other;
    };
    // Without collecting the levels: this runs for every publish of an AWS-mode broker.
    let Some(first) = levels.next() else {
        return JobsTopic::Other;
    };
    match levels.next_back() {
        None if first == "notify" || first == "notify-next" => JobsTopic::Event,
        Some("accepted" | "rejected") => JobsTopic::Reply,
        _ => JobsTopic::Request,
    }
}

/// Whether `reply` answers `request`: it is `request` plus `/accepted` or `/rejected`.
pub fn is_reply_to(request: &str, reply: &str) -> bool {
    reply
        .strip_prefix(request)
        .is_some_and(|rest| rest == "/accepted" || rest == "/rejected")
}

/// Whether the MQTT filter `filter` starts in the emulator's reserved level
/// ([`RESERVED_LEVEL`]); such filters are the service's alone.
pub fn is_reserved_filter(filter: &str) -> bool {
    filter.split('/').next() == Some(RESERVED_LEVEL)
}

/// The client ID as one topic level: `%`, `/`, `+`, `#` and NUL become `%25`, `%2F`, `%2B`,
/// `%23` and `%00`; everything else is kept. [`decode_client_id`] reverses it.
pub fn encode_client_id(client_id: &str) -> String {
    let mut level = String::with_capacity(client_id.len());
    for c in client_id.chars() {
        match c {
            '%' => level.push_str("%25"),
            '/' => level.push_str("%2F"),
            '+' => level.push_str("%2B"),
            '#' => level.push_str("%23"),
            '\0' => level.push_str("%00"),
            c => level.push(c),
        }
    }
    level
}

/// The client ID encoded by [`encode_client_id`]; `None` unless `level` is exactly what it
/// produces (a `%` that starts none of its five escapes, upper-case hex, or a `/`, `+`, `#` or
/// NUL left unencoded).
pub fn decode_client_id(level: &str) -> Option<String> {
    let mut id = String::with_capacity(level.len());
    let mut chars = level.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => {
                let escape = [chars.next()?, chars.next()?];
                id.push(match escape {
                    ['2', '5'] => '%',
                    ['2', 'F'] => '/',
                    ['2', 'B'] => '+',
                    ['2', '3'] => '#',
                    ['0', '0'] => '\0',
                    _ => return None,
                });
            }
            '/' | '+' | '#' | '\0' => return None,
            c => id.push(c),
        }
    }
    Some(id)
}

/// `$jobs-emulator/request/{client}/{topic}`: where the broker relays `client_id`'s request on
/// `topic`.
pub fn request_topic(client_id: &str, topic: &str) -> String {
    format!("{REQUEST_PREFIX}{}/{topic}", encode_client_id(client_id))
}

/// `$jobs-emulator/reply/{client}/{topic}`: where the service sends `client_id` the reply it
/// must receive on `topic`.
pub fn reply_topic(client_id: &str, topic: &str) -> String {
    format!("{REPLY_PREFIX}{}/{topic}", encode_client_id(client_id))
}

/// The requester and the original topic of a relayed request; `None` if `relay_topic` is not
/// one.
pub fn parse_request(relay_topic: &str) -> Option<(String, &str)> {
    split_relayed(relay_topic.strip_prefix(REQUEST_PREFIX)?)
}

/// The client and the topic of a relayed reply; `None` if `relay_topic` is not one.
pub fn parse_reply(relay_topic: &str) -> Option<(String, &str)> {
    split_relayed(relay_topic.strip_prefix(REPLY_PREFIX)?)
}

fn split_relayed(rest: &str) -> Option<(String, &str)> {
    let (client, topic) = rest.split_once('/')?;
    if topic.is_empty() {
        return None;
    }
    Some((decode_client_id(client)?, topic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_topics_are_classified_by_levels() {
        let cases = [
            ("$aws/things/T/jobs/get", JobsTopic::Request),
            ("$aws/things/T/jobs/start-next", JobsTopic::Request),
            ("$aws/things/T/jobs/j1/get", JobsTopic::Request),
            ("$aws/things/T/jobs/$next/get", JobsTopic::Request),
            ("$aws/things/T/jobs/j1/update", JobsTopic::Request),
            ("$aws/things/T/jobs/no-such-api/x/y", JobsTopic::Request),
            ("$aws/things/T/jobs/notify/get", JobsTopic::Request),
            ("$aws/things/T/jobs/get/accepted", JobsTopic::Reply),
            ("$aws/things/T/jobs/j1/update/rejected", JobsTopic::Reply),
            ("$aws/things/T/jobs/notify", JobsTopic::Event),
            ("$aws/things/T/jobs/notify-next", JobsTopic::Event),
            ("$aws/things/T/jobs", JobsTopic::Other),
            ("$aws/things/T/shadow/get", JobsTopic::Other),
            ("aws/things/T/jobs/get", JobsTopic::Other),
            ("$aws/things", JobsTopic::Other),
            ("", JobsTopic::Other),
        ];
        for (topic, expected) in cases {
            assert_eq!(classify(topic), expected, "{topic}");
        }
    }

    #[test]
    fn replies_match_their_request_exactly() {
        assert!(is_reply_to(
            "$aws/things/T/jobs/get",
            "$aws/things/T/jobs/get/accepted"
        ));
        assert!(is_reply_to(
            "$aws/things/T/jobs/get",
            "$aws/things/T/jobs/get/rejected"
        ));
        assert!(!is_reply_to(
            "$aws/things/T/jobs/get",
            "$aws/things/T/jobs/get"
        ));
        assert!(!is_reply_to(
            "$aws/things/T/jobs/a",
            "$aws/things/T/jobs/a1/accepted"
        ));
        assert!(!is_reply_to(
            "$aws/things/T/jobs/get",
            "$aws/things/T/jobs/notify"
        ));
    }

    #[test]
    fn any_client_id_round_trips_through_one_topic_level() {
        for id in [
            "",
            "pump-07",
            "a/b",
            "+",
            "#",
            "%",
            "%2F",
            "gateway/+/#%\0",
            "émoji-🚀",
            "$aws",
        ] {
            let level = encode_client_id(id);
            assert!(!level.contains(['/', '+', '#', '\0']), "{level:?}");
            assert_eq!(decode_client_id(&level).as_deref(), Some(id), "{id:?}");
            let topic = request_topic(id, "$aws/things/T/jobs/get");
            assert_eq!(
                parse_request(&topic),
                Some((id.to_owned(), "$aws/things/T/jobs/get"))
            );
            let topic = reply_topic(id, "$aws/things/T/jobs/get/accepted");
            assert_eq!(
                parse_reply(&topic),
                Some((id.to_owned(), "$aws/things/T/jobs/get/accepted"))
            );
        }
    }

    #[test]
    fn only_canonical_encodings_decode() {
        for level in ["%", "%2", "%2f", "%41", "a%zz", "a+b", "a#"] {
            assert_eq!(decode_client_id(level), None, "{level:?}");
        }
        assert_eq!(parse_request("$jobs-emulator/request/pump"), None);
        assert_eq!(parse_request("$jobs-emulator/request/pump/"), None);
        assert_eq!(parse_request("$jobs-emulator/reply/pump/x"), None);
        assert_eq!(parse_reply("$jobs-emulator/request/pump/x"), None);
    }

    #[test]
    fn reserved_filters_are_recognised_by_their_first_level() {
        assert!(is_reserved_filter("$jobs-emulator/request/#"));
        assert!(is_reserved_filter("$jobs-emulator"));
        assert!(is_reserved_filter("$jobs-emulator/#"));
        assert!(!is_reserved_filter("#"));
        assert!(!is_reserved_filter("$jobs-emulatorx/#"));
        assert!(!is_reserved_filter("a/$jobs-emulator"));
    }
}
