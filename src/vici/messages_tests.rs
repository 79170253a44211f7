use super::*;

#[test]
fn durations_read_as_charon_prints_them() {
    assert_eq!(time_delta(1), "1 second");
    assert_eq!(time_delta(100), "100 seconds");
    assert_eq!(time_delta(600), "10 minutes");
    assert_eq!(time_delta(3 * 86_400), "3 days");
}

#[test]
fn filters_read_numbers_or_fail() {
    let request = Message::new().kv("ike", "a").kv("ike-id", "7");
    let filter = Filter::from_request(&request).unwrap();
    assert_eq!((filter.ike.as_deref(), filter.ike_id), (Some("a"), Some(7)));
    let bad = Filter::from_request(&Message::new().kv("child-id", "x")).unwrap_err();
    assert!(bad.contains("child-id is not a number"), "{bad}");
}

#[test]
fn outcomes_carry_charon_keys() {
    assert_eq!(outcome(Ok(())).str("success"), Some("yes"));
    let failed = outcome(Err("no such IKE SA".into()));
    assert_eq!(failed.str("success"), Some("no"));
    assert_eq!(failed.str("errmsg"), Some("no such IKE SA"));
}
