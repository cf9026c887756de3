//! MQTT topic filter matching.

/// MQTT topic matching: `+` matches exactly one level, `#` (last) matches the parent level and
/// everything below, and wildcards in the first level do not match a topic starting with `$`.
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    // Level by level on bytes rather than `str::split`: every publish used to be matched
    // against every filter of every client, and the split machinery dominated in-process
    // benchmarks (routes are now cached too, see `State::routes`).
    let (mut filter, mut topic) = (Some(filter.as_bytes()), Some(topic.as_bytes()));
    loop {
        let Some(rest) = filter else {
            return topic.is_none();
        };
        let (level, filter_rest) = split_level(rest);
        if level == b"#" {
            return filter_rest.is_none();
        }
        let Some(rest) = topic else {
            return false;
        };
        let (topic_level, topic_rest) = split_level(rest);
        if level != b"+" && level != topic_level {
            return false;
        }
        (filter, topic) = (filter_rest, topic_rest);
    }
}

/// The first level of `levels` and what follows its `/` (`None`: it was the last level).
fn split_level(levels: &[u8]) -> (&[u8], Option<&[u8]>) {
    match levels.iter().position(|&b| b == b'/') {
        Some(slash) => (
            levels.get(..slash).unwrap_or_default(),
            levels.get(slash + 1..),
        ),
        None => (levels, None),
    }
}

#[cfg(test)]
mod tests {
    use super::topic_matches;

    #[test]
    fn wildcards_match_like_mqtt() {
        let cases = [
            ("a/+/c", "a/b/c", true),
            ("a/+/c", "a/b/d", false),
            ("a/+", "a/b/c", false),
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("#", "a/b", true),
            ("+/b", "a/b", true),
            ("#", "$aws/things", false),
            ("+/things", "$aws/things", false),
            (
                "$aws/things/+/jobs/+/get/+",
                "$aws/things/T/jobs/$next/get/accepted",
                true,
            ),
            ("$aws/things/T/jobs/get/+", "$aws/things/T/jobs/get", false),
            ("a/b", "a/b", true),
            ("a/b", "a/bc", false),
            ("a/+/+", "a/b/", true),
            ("a/b/c", "a/b", false),
            ("a/b", "a/b/c", false),
            ("+", "", true),
            ("a/+", "a/", true),
            ("a//c", "a//c", true),
            ("a/#/c", "a/b/c", false),
        ];
        for (filter, topic, expected) in cases {
            assert_eq!(
                topic_matches(filter, topic),
                expected,
                "{filter} vs {topic}"
            );
        }
    }
}
