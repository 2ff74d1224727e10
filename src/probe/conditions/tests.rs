use super::error::{Bracket, ConditionErrorKind, Place};
use super::evaluator::glob;
use super::values::{Num, format_duration, parse_duration, parse_number};
use super::*;
use crate::probe::dns::RcodeName;
use proptest::prelude::*;
use serde_json::Value;

const BODY: &str = r#"{
    "status": "UP", "name": "john doe", "text": "héllo", "count": 5, "ratio": 0.5, "ok": true,
    "nothing": null, "items": [], "tags": ["x", "y"], "big": 12345678901234567890,
    "data": [{"id": 1, "name": "a"}, {"id": "2"}], "nested": {"a": {"b": "deep"}},
    "msg": "line1\nline2", "long": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
}"#;

fn http() -> Facts {
    Facts {
        status: Some(200),
        response_time_ms: Some(120),
        body: Some(BODY.as_bytes().to_vec()),
        connected: Some(true),
        certificate_expiration_seconds: Some(36 * 3600),
        dns_rcode: Some("NOERROR".to_string()),
        ip: Some("10.0.0.1".to_string()),
        body_note: None,
    }
}

fn with_body(body: &str) -> Facts {
    Facts { body: Some(body.as_bytes().to_vec()), ..Facts::default() }
}

fn run_table(facts: &Facts, table: &[(&str, Result<(), &str>)]) {
    for (text, expected) in table {
        let condition = Condition::parse(text).unwrap_or_else(|e| panic!("{text}: does not parse: {e}"));
        let got = condition.check(facts);
        assert_eq!(got, expected.map_err(str::to_string), "{text}");
        // `first_failure` shares the parsed body between conditions: same verdicts.
        assert_eq!(first_failure(std::slice::from_ref(&condition), facts), got.err(), "{text}");
    }
}

#[test]
fn placeholders_operators_and_functions() {
    let long = "a".repeat(100);
    let long_failure = format!("[BODY].long ({long}…) == b");
    run_table(
        &http(),
        &[
            // [STATUS] and every operator.
            ("[STATUS] == 200", Ok(())),
            ("[STATUS]==200", Ok(())),
            ("  [STATUS]   ==   200  ", Ok(())),
            ("[STATUS] == 500", Err("[STATUS] (200) == 500")),
            ("[STATUS]==500", Err("[STATUS] (200) == 500")),
            ("[STATUS] != 500", Ok(())),
            ("[STATUS] != 200", Err("[STATUS] (200) != 200")),
            ("[STATUS] < 300", Ok(())),
            ("[STATUS] < 200", Err("[STATUS] (200) < 200")),
            ("[STATUS] <= 200", Ok(())),
            ("[STATUS] <= 199", Err("[STATUS] (200) <= 199")),
            ("[STATUS] > 199", Ok(())),
            ("[STATUS] > 200", Err("[STATUS] (200) > 200")),
            ("[STATUS] >= 200", Ok(())),
            ("[STATUS] >= 201", Err("[STATUS] (200) >= 201")),
            ("[STATUS] == 200.0", Ok(())),
            ("[STATUS] == 2e2", Ok(())),
            // any() and pat().
            ("[STATUS] == any(200, 301)", Ok(())),
            ("[STATUS] == any(301,302)", Err("[STATUS] (200) == any(301,302)")),
            ("[STATUS] != any(500, 503)", Ok(())),
            ("[STATUS] != any(200, 503)", Err("[STATUS] (200) != any(200, 503)")),
            ("[STATUS] == pat(2*)", Ok(())),
            ("[STATUS] == pat(3*)", Err("[STATUS] (200) == pat(3*)")),
            // [RESPONSE_TIME]: ms, or a duration.
            ("[RESPONSE_TIME] < 300", Ok(())),
            ("[RESPONSE_TIME] < 100", Err("[RESPONSE_TIME] (120) < 100")),
            ("[RESPONSE_TIME] < 1s", Ok(())),
            ("[RESPONSE_TIME] > 100ms", Ok(())),
            ("[RESPONSE_TIME] <= 120ms", Ok(())),
            ("[RESPONSE_TIME] > 1m", Err("[RESPONSE_TIME] (120) > 1m")),
            // [BODY] JSON paths.
            ("[BODY].status == UP", Ok(())),
            ("[BODY].status == DOWN", Err("[BODY].status (UP) == DOWN")),
            ("[BODY].status != DOWN", Ok(())),
            ("[BODY].data[0].id == 1", Ok(())),
            ("[BODY].data[0].id == 1.0", Ok(())),
            ("[BODY].data[1].id == 2", Ok(())),
            ("[BODY].data[1].id > 1", Ok(())),
            ("[BODY].data[0].name == a", Ok(())),
            ("[BODY].data[2].id == 1", Err("[BODY].data[2].id (no such path) == 1")),
            ("[BODY].data.id == 1", Err("[BODY].data.id (no such path) == 1")),
            ("[BODY].status.x == 1", Err("[BODY].status.x (no such path) == 1")),
            ("[BODY][0] == 1", Err("[BODY][0] (no such path) == 1")),
            ("[BODY].nested.a.b == deep", Ok(())),
            ("[BODY].nested == {\"a\": {\"b\": \"deep\"}}", Ok(())),
            ("[BODY].tags == [\"x\",\"y\"]", Ok(())),
            ("[BODY].tags == [\"y\"]", Err("[BODY].tags ([\"x\",\"y\"]) == [\"y\"]")),
            ("[BODY].count == 5", Ok(())),
            ("[BODY].count > 4", Ok(())),
            ("[BODY].count >= 6", Err("[BODY].count (5) >= 6")),
            ("[BODY].ratio < 1", Ok(())),
            ("[BODY].ratio == 0.50", Ok(())),
            ("[BODY].status > 1", Err("[BODY].status (UP) > 1")),
            ("[BODY].ok == true", Ok(())),
            ("[BODY].ok == false", Err("[BODY].ok (true) == false")),
            ("[BODY].nothing == null", Ok(())),
            ("[BODY].big == 12345678901234567890", Ok(())),
            ("[BODY].big == 12345678901234567891", Err("[BODY].big (12345678901234567890) == 12345678901234567891")),
            ("[BODY].text == héllo", Ok(())),
            ("[BODY].name == john doe", Ok(())),
            ("[BODY].name == pat(john*)", Ok(())),
            ("[BODY].name == pat(*doe)", Ok(())),
            ("[BODY].name == pat(j*n*e)", Ok(())),
            ("[BODY].name == pat(*)", Ok(())),
            ("[BODY].name == pat(jane*)", Err("[BODY].name (john doe) == pat(jane*)")),
            ("[BODY].name != pat(jane*)", Ok(())),
            ("[BODY].name != pat(john*)", Err("[BODY].name (john doe) != pat(john*)")),
            ("[BODY].status == any(UP, OK)", Ok(())),
            ("[BODY].status == any(DOWN, KO)", Err("[BODY].status (UP) == any(DOWN, KO)")),
            // Messages stay on one line and short.
            ("[BODY].msg == x", Err("[BODY].msg (line1\\nline2) == x")),
            ("[BODY].long == b", Err(long_failure.as_str())),
            // len() and has().
            ("len([BODY].data) == 2", Ok(())),
            ("len([BODY].items) > 0", Err("len([BODY].items) (0) > 0")),
            ("len([BODY].name) == 8", Ok(())),
            ("len([BODY].text) == 5", Ok(())),
            ("len([BODY].nested) == 1", Ok(())),
            ("len([BODY].count) == 1", Ok(())),
            ("len([BODY].nothing) == 0", Ok(())),
            ("len( [BODY].tags ) == 2", Ok(())),
            ("len([BODY].missing) == 0", Err("len([BODY].missing) (no such path) == 0")),
            ("has([BODY].errors) == false", Ok(())),
            ("has([BODY].errors) == true", Err("has([BODY].errors) (false) == true")),
            ("has([BODY].status) == true", Ok(())),
            ("has([BODY].nothing) == true", Ok(())),
            ("has([BODY].data[1].id) == true", Ok(())),
            ("has([BODY]) == true", Ok(())),
            ("has([IP]) != false", Ok(())),
            // [CONNECTED].
            ("[CONNECTED] == true", Ok(())),
            ("[CONNECTED] != true", Err("[CONNECTED] (true) != true")),
            // [CERTIFICATE_EXPIRATION]: durations.
            ("[CERTIFICATE_EXPIRATION] > 24h", Ok(())),
            ("[CERTIFICATE_EXPIRATION] > 48h", Err("[CERTIFICATE_EXPIRATION] (1day 12h) > 48h")),
            ("[CERTIFICATE_EXPIRATION] > 1h30m", Ok(())),
            ("[CERTIFICATE_EXPIRATION] < 2d", Ok(())),
            ("[CERTIFICATE_EXPIRATION] >= 129600s", Ok(())),
            ("[CERTIFICATE_EXPIRATION] > 2160m", Err("[CERTIFICATE_EXPIRATION] (1day 12h) > 2160m")),
            ("[CERTIFICATE_EXPIRATION] > 0", Ok(())),
            ("[CERTIFICATE_EXPIRATION] == 36h", Ok(())),
            ("[CERTIFICATE_EXPIRATION] == any(12h, 36h)", Ok(())),
            // [DNS_RCODE] and [IP].
            ("[DNS_RCODE] == NOERROR", Ok(())),
            ("[DNS_RCODE] == noerror", Ok(())),
            ("[DNS_RCODE] == NXDOMAIN", Err("[DNS_RCODE] (NOERROR) == NXDOMAIN")),
            ("[DNS_RCODE] == any(NOERROR, NXDOMAIN)", Ok(())),
            ("[DNS_RCODE] != SERVFAIL", Ok(())),
            ("len([DNS_RCODE]) == 7", Ok(())),
            ("[IP] == 10.0.0.1", Ok(())),
            ("[IP] == 10.0.0.2", Err("[IP] (10.0.0.1) == 10.0.0.2")),
            ("[IP] != 10.0.0.2", Ok(())),
            ("[IP] == pat(10.*)", Ok(())),
            ("[IP] == any(10.0.0.1, ::1)", Ok(())),
            ("len([IP]) == 8", Ok(())),
        ],
    );
}

#[test]
fn raw_bodies_and_missing_values() {
    run_table(
        &with_body("  PONG\r\n"),
        &[
            ("[BODY] == PONG", Ok(())),
            ("[BODY] == PING", Err("[BODY] (PONG) == PING")),
            ("[BODY] == pat(*ON*)", Ok(())),
            ("[BODY] == pat(P*G)", Ok(())),
            ("len([BODY]) == 8", Ok(())),
            ("[BODY].a == 1", Err("[BODY].a (not JSON) == 1")),
            ("len([BODY].a) == 1", Err("len([BODY].a) (not JSON) == 1")),
            ("has([BODY].a) == false", Ok(())),
            ("has([BODY]) == true", Ok(())),
            ("[BODY] > 1", Err("[BODY] (PONG) > 1")),
        ],
    );
    run_table(
        &with_body("42\n"),
        &[("[BODY] > 41", Ok(())), ("[BODY] == 42.0", Ok(())), ("[BODY] < 42", Err("[BODY] (42) < 42"))],
    );
    run_table(
        &with_body(r#"[{"x": 1}, {"x": 2}]"#),
        &[
            ("[BODY][1].x == 2", Ok(())),
            ("[BODY][0] == {\"x\":1}", Ok(())),
            ("[BODY] == [{\"x\":1},{\"x\":2}]", Ok(())),
            ("len([BODY]) == 20", Ok(())),
            ("[BODY][2].x == 2", Err("[BODY][2].x (no such path) == 2")),
        ],
    );
    run_table(&with_body(""), &[("[BODY] == x", Err("[BODY] (\"\") == x")), ("len([BODY]) == 0", Ok(()))]);
    run_table(&with_body("\u{ff}\u{fe}"), &[("[BODY] == pat(*)", Ok(()))]);
    run_table(
        &Facts { body: Some(vec![0xff, b'{']), ..Facts::default() },
        &[("[BODY].a == 1", Err("[BODY].a (not JSON) == 1")), ("[BODY] == x", Err("[BODY] (\u{fffd}{) == x"))],
    );
    run_table(
        &Facts { certificate_expiration_seconds: Some(-7200), ..Facts::default() },
        &[("[CERTIFICATE_EXPIRATION] > 0", Err("[CERTIFICATE_EXPIRATION] (-2h) > 0"))],
    );
    run_table(
        &Facts { certificate_expiration_seconds: Some(90061), ip: Some("::1".to_string()), ..Facts::default() },
        &[
            ("[CERTIFICATE_EXPIRATION] > 48h", Err("[CERTIFICATE_EXPIRATION] (1day 1h 1m 1s) > 48h")),
            ("[IP] == 0:0:0:0:0:0:0:1", Ok(())),
        ],
    );
    // Nothing filled: every value is missing, whatever the operator; has() says so.
    run_table(
        &Facts::default(),
        &[
            ("[STATUS] == 200", Err("[STATUS] (n/a) == 200")),
            ("[STATUS] != 200", Err("[STATUS] (n/a) != 200")),
            ("[RESPONSE_TIME] < 300", Err("[RESPONSE_TIME] (n/a) < 300")),
            ("[BODY] == x", Err("[BODY] (n/a) == x")),
            ("[BODY].status == UP", Err("[BODY].status (n/a) == UP")),
            ("len([BODY]) == 0", Err("len([BODY]) (n/a) == 0")),
            ("len([IP]) == 0", Err("len([IP]) (n/a) == 0")),
            ("[CONNECTED] == false", Err("[CONNECTED] (n/a) == false")),
            ("[CERTIFICATE_EXPIRATION] > 48h", Err("[CERTIFICATE_EXPIRATION] (n/a) > 48h")),
            ("[DNS_RCODE] == NOERROR", Err("[DNS_RCODE] (n/a) == NOERROR")),
            ("[IP] == pat(*)", Err("[IP] (n/a) == pat(*)")),
            ("has([BODY].x) == false", Ok(())),
            ("has([IP]) == false", Ok(())),
        ],
    );
}

#[test]
fn first_failure_reports_the_first_that_does_not_hold() {
    let parse = |texts: &[&str]| texts.iter().map(|t| Condition::parse(t)).collect::<Result<Vec<_>, _>>();
    let all_hold = parse(&["[STATUS] == 200", "[BODY].status == UP"]).expect("valid");
    assert_eq!(first_failure(&all_hold, &http()), None);
    assert_eq!(first_failure(&[], &http()), None);
    let some_fail = parse(&["[STATUS] == 200", "[BODY].count > 9", "[CONNECTED] == false"]).expect("valid");
    assert_eq!(first_failure(&some_fail, &http()), Some("[BODY].count (5) > 9".to_string()));
}

#[test]
fn parse_errors() {
    let rcodes = RcodeName::all();
    let unknown_rcode = format!("unknown DNS rcode `NXDOMIAN` (one of {rcodes})");
    let too_long = format!("[BODY] == {}", "a".repeat(MAX_TEXT_BYTES));
    let too_long_error = format!("condition too long ({} bytes, at most {MAX_TEXT_BYTES})", MAX_TEXT_BYTES + 10);
    let too_deep = format!("[BODY]{} == 1", ".a".repeat(MAX_PATH_STEPS + 1));
    let table: &[(&str, &str)] = &[
        // Sides and operators.
        ("", "empty condition: expected e.g. `[STATUS] == 200`"),
        ("   ", "empty condition: expected e.g. `[STATUS] == 200`"),
        ("== 200", "empty left side before `==`: expected a placeholder such as [STATUS]"),
        ("[STATUS] ==", "empty right side after `==`: expected a value to compare `[STATUS]` with"),
        ("[STATUS]", "missing operator after `[STATUS]` (one of ==, !=, <, <=, >, >=)"),
        ("[STATUS] 200", "missing operator between `[STATUS]` and `200` (one of ==, !=, <, <=, >, >=)"),
        ("[STATUS]200", "unexpected `2` right after `[STATUS]`"),
        ("[STATUS] = 200", "unknown operator `=` (did you mean `==`?)"),
        ("[STATUS] => 200", "unknown operator `=>` (one of ==, !=, <, <=, >, >=)"),
        ("[STATUS] === 200", "unknown operator `===` (one of ==, !=, <, <=, >, >=)"),
        ("[STATUS] ! 200", "unknown operator `!` (one of ==, !=, <, <=, >, >=)"),
        (
            "[STATUS] == 200 == 300",
            "more than one operator (another `==` in `200 == 300`): a condition compares one placeholder with one value; any(a, b) lists alternatives",
        ),
        (
            "[STATUS] == 200 || [STATUS] == 301",
            "`||` is not supported: list each check as its own condition (all must hold), or use any(a, b)",
        ),
        // Placeholders and paths.
        (
            "[STATU] == 200",
            "unknown placeholder [STATU] (one of [STATUS], [RESPONSE_TIME], [BODY], [CONNECTED], [CERTIFICATE_EXPIRATION], [DNS_RCODE], [IP])",
        ),
        (
            "[status] == 200",
            "unknown placeholder [status] (one of [STATUS], [RESPONSE_TIME], [BODY], [CONNECTED], [CERTIFICATE_EXPIRATION], [DNS_RCODE], [IP]; placeholders are upper case)",
        ),
        (
            "[] == 200",
            "unknown placeholder [] (one of [STATUS], [RESPONSE_TIME], [BODY], [CONNECTED], [CERTIFICATE_EXPIRATION], [DNS_RCODE], [IP])",
        ),
        ("STATUS == 200", "placeholders go in brackets: `[STATUS]`, not `STATUS`"),
        (
            "200 == [STATUS]",
            "the left side must be a placeholder ([STATUS], [RESPONSE_TIME], [BODY], [CONNECTED], [CERTIFICATE_EXPIRATION], [DNS_RCODE], [IP]) or len()/has() of one, not `200`",
        ),
        (
            "foo == 1",
            "the left side must be a placeholder ([STATUS], [RESPONSE_TIME], [BODY], [CONNECTED], [CERTIFICATE_EXPIRATION], [DNS_RCODE], [IP]) or len()/has() of one, not `foo`",
        ),
        ("[STATUS == 200", "unbalanced brackets: `[STATUS` has no closing `]`"),
        ("[BODY", "unbalanced brackets: `[BODY` has no closing `]`"),
        ("[BODY].a] == 1", "unbalanced brackets: unexpected `]` after `[BODY].a`"),
        ("[BODY].data[0 == 1", "unbalanced brackets: `[0` in `[BODY].data[0` has no closing `]`"),
        ("[BODY]. == 1", "empty key after `.` in `[BODY].`"),
        ("[BODY]..a == 1", "empty key after `.` in `[BODY].`"),
        ("[BODY].data[*].id == 1", "wildcard `[*]` is not supported: index one element, e.g. `[0]`"),
        ("[BODY].data[-1] == 1", "invalid index `[-1]` in path: expected a number such as [0]"),
        ("[BODY].data[x] == 1", "invalid index `[x]` in path: expected a number such as [0]"),
        ("[BODY].data[] == 1", "invalid index `[]` in path: expected a number such as [0]"),
        ("[BODY].data[12345678901] == 1", "index `[12345678901]` too large"),
        ("[STATUS].code == 1", "only [BODY] takes a path (.key or [index]), not [STATUS]"),
        (&too_deep, "path too deep: at most 32 steps after [BODY]"),
        (&too_long, &too_long_error),
        // Functions.
        ("foo([BODY]) == 1", "unknown function foo() (one of len(), has(), pat(), any())"),
        ("LEN([BODY]) == 1", "unknown function LEN() (one of len(), has(), pat(), any())"),
        ("[BODY].name == regex(j.*)", "unknown function regex() (one of len(), has(), pat(), any())"),
        ("len() == 1", "len() needs a placeholder, e.g. `len([BODY].items)`"),
        ("len(len([BODY])) == 1", "len() takes a placeholder such as [BODY].items, not `len([BODY]))`"),
        ("len([BODY] == 1", "unbalanced parentheses: `len(` has no closing `)`"),
        ("len([BODY]", "unbalanced parentheses: `len(` has no closing `)`"),
        ("len(", "unbalanced parentheses: `len(` has no closing `)`"),
        ("len([BODY] [IP]) == 1", "unexpected `[IP])` in `len(...)`: it takes one placeholder"),
        ("len([BODY])) == 1", "unbalanced parentheses: unexpected `)` after `len([BODY])`"),
        (")[STATUS] == 1", "unbalanced parentheses: unexpected `)`"),
        ("len([STATUS]) == 1", "len() applies to [BODY], [IP] and [DNS_RCODE], not [STATUS]"),
        ("len([CONNECTED]) == 1", "len() applies to [BODY], [IP] and [DNS_RCODE], not [CONNECTED]"),
        ("pat(john*) == [BODY].name", "pat() goes on the right side, e.g. `[BODY].name == pat(john*)`"),
        ("any(200, 301) == [STATUS]", "any() goes on the right side, e.g. `[STATUS] == any(200, 301)`"),
        ("[BODY] == len([BODY])", "len() goes on the left side, e.g. `len([BODY].items) == ...`"),
        ("[BODY].a == has(x)", "has() goes on the left side, e.g. `has([BODY].items) == ...`"),
        (
            "[STATUS] == [STATUS]",
            "a placeholder goes on the left side, not the right (`[STATUS]`): compare it with a value, e.g. `[STATUS] == 200`",
        ),
        ("[BODY].name == pat(john*", "unbalanced parentheses: `pat(` has no closing `)`"),
        ("[BODY].name == pat(john*))", "unexpected `)` after `pat(...)`"),
        ("[BODY].name == pat(john*) x", "unexpected `x` after `pat(...)`"),
        ("[BODY].name == pat()", "pat() needs a pattern, e.g. `pat(john*)`"),
        ("[STATUS] == any()", "any() needs at least one value, e.g. `any(200, 301)`"),
        ("[STATUS] == any(200,,301)", "empty value in `any(200,,301)`"),
        ("[STATUS] == any(200, abc)", "`[STATUS]` is a number, so it never equals `abc`"),
        ("[BODY].a == any(pat(x*), y)", "any() takes plain values, not `pat(x*)`"),
        (
            "[BODY].a == any([IP])",
            "a placeholder goes on the left side, not the right (`[IP]`): compare it with a value, e.g. `[STATUS] == 200`",
        ),
        ("[STATUS] < pat(2*)", "`<` cannot compare with pat(): pat() and any() go with == or !="),
        ("[STATUS] >= any(200, 300)", "`>=` cannot compare with any(): pat() and any() go with == or !="),
        ("[CONNECTED] == pat(t*)", "pat() matches text, but `[CONNECTED]` is true or false"),
        ("[CERTIFICATE_EXPIRATION] == pat(1*)", "pat() matches text, but `[CERTIFICATE_EXPIRATION]` is a duration"),
        // Values the left side can never compare with.
        ("[STATUS] < abc", "`<` needs a number on the right, not `abc`"),
        ("[STATUS] == OK", "`[STATUS]` is a number, so it never equals `OK`"),
        ("[STATUS] == inf", "`[STATUS]` is a number, so it never equals `inf`"),
        ("[STATUS] == 0x10", "`[STATUS]` is a number, so it never equals `0x10`"),
        ("len([BODY].items) > many", "`>` needs a number on the right, not `many`"),
        ("[BODY].count > five", "`>` needs a number on the right, not `five`"),
        ("[BODY].count >= 1h", "`>=` needs a number on the right, not `1h`"),
        ("[BODY].a == b)", "unbalanced parentheses: unexpected `)` in `b)`"),
        ("[BODY].a == (b", "unbalanced parentheses: `(` in `(b` has no closing `)`"),
        ("[BODY].a == [b", "unbalanced brackets: `[` in `[b` has no closing `]`"),
        ("[BODY].a == b]", "unbalanced brackets: unexpected `]` in `b]`"),
        (
            "[RESPONSE_TIME] < fast",
            "`[RESPONSE_TIME]` is in milliseconds: compare it with a number or a duration such as 300 or 1s, not `fast`",
        ),
        ("[RESPONSE_TIME] < 1500us", "invalid duration `1500us` (e.g. 48h, 30m, 1h30m, 90s, 7d, 500ms)"),
        ("[RESPONSE_TIME] < 1,5s", "invalid duration `1,5s` (e.g. 48h, 30m, 1h30m, 90s, 7d, 500ms)"),
        ("[CERTIFICATE_EXPIRATION] > 48x", "invalid duration `48x` (e.g. 48h, 30m, 1h30m, 90s, 7d, 500ms)"),
        ("[CERTIFICATE_EXPIRATION] > 1h30", "invalid duration `1h30` (e.g. 48h, 30m, 1h30m, 90s, 7d, 500ms)"),
        (
            "[CERTIFICATE_EXPIRATION] > -h",
            "`[CERTIFICATE_EXPIRATION]` compares with a duration (e.g. 48h, 30m, 1h30m, 90s, 7d, 500ms), not `-h`",
        ),
        (
            "[CERTIFICATE_EXPIRATION] > 99999999999999999999d",
            "invalid duration `99999999999999999999d` (e.g. 48h, 30m, 1h30m, 90s, 7d, 500ms)",
        ),
        (
            "[CERTIFICATE_EXPIRATION] > 172800",
            "`[CERTIFICATE_EXPIRATION]` compares with a duration: `172800` needs a unit (e.g. 48h, 30m, 1h30m, 90s, 7d, 500ms)",
        ),
        (
            "[CERTIFICATE_EXPIRATION] > soon",
            "`[CERTIFICATE_EXPIRATION]` compares with a duration (e.g. 48h, 30m, 1h30m, 90s, 7d, 500ms), not `soon`",
        ),
        ("[CONNECTED] == yes", "`[CONNECTED]` is true or false, never `yes`"),
        ("[CONNECTED] < 1", "`<` needs numbers, but `[CONNECTED]` is true or false: use == or !="),
        ("has([BODY].a) == 1", "`has([BODY].a)` is true or false, never `1`"),
        ("has([BODY].a) > 0", "`>` needs numbers, but `has([BODY].a)` is true or false: use == or !="),
        ("[IP] == 10.0.0", "`10.0.0` is not an IP address"),
        ("[IP] > 10.0.0.1", "`>` needs numbers, but `[IP]` is text: use == or !="),
        ("[DNS_RCODE] == NXDOMIAN", &unknown_rcode),
        ("[DNS_RCODE] <= NOERROR", "`<=` needs numbers, but `[DNS_RCODE]` is text: use == or !="),
    ];
    for (text, expected) in table {
        assert_eq!(Condition::parse(text).map_err(|e| e.to_string()), Err(expected.to_string()), "{text}");
    }
}

#[test]
fn errors_say_which_mistake_and_where() {
    use ConditionErrorKind as E;
    let s = str::to_string;
    let table: &[(&str, usize, ConditionErrorKind)] = &[
        ("", 0, E::Empty),
        ("  [STATU] == 200", 3, E::UnknownPlaceholder { name: s("STATU"), upper_case_known: false }),
        ("[status] == 200", 1, E::UnknownPlaceholder { name: s("status"), upper_case_known: true }),
        ("[STATUS]", 8, E::MissingOperator { left: s("[STATUS]"), right: None }),
        ("[STATUS] 200", 9, E::MissingOperator { left: s("[STATUS]"), right: Some(s("200")) }),
        ("[STATUS] = 200", 9, E::UnknownOperator { op: s("=") }),
        ("[STATUS] ==  ", 11, E::EmptyRight { op: "==", left: s("[STATUS]") }),
        ("[STATUS] == abc", 12, E::NeverEqualsNumber { left: s("[STATUS]"), value: s("abc") }),
        ("[STATUS] == any(200, abc)", 21, E::NeverEqualsNumber { left: s("[STATUS]"), value: s("abc") }),
        ("[STATUS] == 1 || 2", 14, E::LogicalOperator { op: s("||") }),
        ("[CONNECTED] < 1", 12, E::NotOrdered { op: "<", left: s("[CONNECTED]"), left_is: "true or false" }),
        ("[BODY].a == 1(b", 13, E::Unclosed { bracket: Bracket::Parenthesis, opened: s("("), within: Some(s("1(b")) }),
        ("[BODY].a == x(b", 12, E::Unclosed { bracket: Bracket::Parenthesis, opened: s("x("), within: None }),
        ("[BODY].a == b]", 13, E::UnexpectedClose { bracket: Bracket::Square, place: Place::In(s("b]")) }),
        ("[BODY].data[x] == 1", 12, E::InvalidIndex { index: s("x") }),
        ("[BODY].data[*] == 1", 12, E::WildcardIndex),
        ("len([STATUS]) == 1", 4, E::NoLength { placeholder: s("[STATUS]") }),
        ("pat(x*) == 1", 0, E::WrongSide { function: "pat" }),
        ("[BODY].name == pat(john*) x", 26, E::AfterCall { function: s("pat"), found: s("x") }),
        ("[CERTIFICATE_EXPIRATION] > 48x", 27, E::InvalidDuration { value: s("48x") }),
        ("[DNS_RCODE] == NOPE", 15, E::UnknownRcode { value: s("NOPE") }),
    ];
    for (text, at, kind) in table {
        let error = Condition::parse(text).expect_err(text);
        assert_eq!((error.at, &error.kind), (*at, kind), "{text}");
        assert_eq!(error.to_string(), kind.to_string(), "{text}");
    }
}

#[test]
fn parts_that_are_not_errors() {
    for text in [
        "[BODY].message == all good",
        "[BODY].version == v1.2 (beta)",
        "[BODY].a == -1",
        "[BODY].a ==-1",
        "[BODY].some-key_2.é == x",
        "[BODY].a == pat(f(x)*)",
        "[BODY][0][1].a == 1",
        "[CERTIFICATE_EXPIRATION] > -1h",
        "[CERTIFICATE_EXPIRATION] < 7d12h",
        "[RESPONSE_TIME] < 1m30s",
        "[RESPONSE_TIME] < 1.5s",
        "[CERTIFICATE_EXPIRATION] > 1h 30m",
        "[CERTIFICATE_EXPIRATION] > 2 weeks",
        "[CERTIFICATE_EXPIRATION] > 9999999999999d",
    ] {
        let condition = Condition::parse(text);
        assert!(condition.is_ok(), "{text}: {condition:?}");
    }
}

#[test]
fn durations_numbers_and_patterns() {
    assert_eq!(parse_duration("48h"), Some(48 * 3_600_000));
    assert_eq!(parse_duration("1h30m"), Some(5_400_000));
    assert_eq!(parse_duration("90s"), Some(90_000));
    assert_eq!(parse_duration("7d"), Some(7 * 86_400_000));
    assert_eq!(parse_duration("500ms"), Some(500));
    assert_eq!(parse_duration("-2h"), Some(-7_200_000));
    assert_eq!(parse_duration("0"), Some(0));
    // humantime's syntax: fractions, spaces and long unit names too.
    assert_eq!(parse_duration("1.5h"), Some(5_400_000));
    assert_eq!(parse_duration("1h 30m"), Some(5_400_000));
    assert_eq!(parse_duration("2 weeks"), Some(14 * 86_400_000));
    assert_eq!(parse_duration("1day 12h"), Some(36 * 3_600_000));
    for bad in ["", "-", "h", "1", "1hh", "1H", "+1h", "--1h", "1mss", "1h30", "1500us", "1.5ns"] {
        assert_eq!(parse_duration(bad), None, "{bad}");
    }
    assert_eq!(format_duration(0), "0s");
    assert_eq!(format_duration(5_400_000), "1h 30m");
    assert_eq!(format_duration(3_615_000), "1h 15s");
    assert_eq!(format_duration(-1_500), "-1s 500ms");
    // What a failed condition shows, a duration can be compared with.
    for ms in [0, 1, 999, 90_061_000, -7_200_000, 7_776_000_000, 40_000_000_000] {
        assert_eq!(parse_duration(&format_duration(ms)), Some(ms), "{ms}");
    }
    assert_eq!(parse_number("-12"), Some(Num::Int(-12)));
    assert_eq!(parse_number("1.5e3"), Some(Num::Float(1500.0)));
    for bad in ["", "-", "1.", ".5", "1e", "NaN", "inf", "+1", "0x10", "1 ", "1e999"] {
        assert_eq!(parse_number(bad), None, "{bad}");
    }
    for (pattern, text, expected) in [
        ("*", "", true),
        ("", "", true),
        ("", "a", false),
        ("a", "a", true),
        ("a*", "abc", true),
        ("*c", "abc", true),
        ("a*c", "ac", true),
        ("a*b*c", "aXbYc", true),
        ("a*b*c", "acb", false),
        ("ab*ba", "aba", false),
        ("*a*a*", "a", false),
        ("*a*a*", "aa", true),
        ("**", "x", true),
        ("x*", "yx", false),
    ] {
        assert_eq!(glob(pattern, text), expected, "{pattern} on {text}");
    }
}

#[test]
fn serde_round_trip() {
    for text in ["[STATUS] == 200", "  len([BODY].items)>0 ", "[BODY].name == pat(john*)"] {
        let condition = Condition::parse(text).expect("valid");
        let json = serde_json::to_string(&condition).expect("serializes");
        assert_eq!(json, serde_json::to_string(text).expect("serializes"));
        let back: Condition = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, condition);
        assert_eq!(back.text(), text);
    }
    let error = serde_json::from_str::<Vec<Condition>>(r#"["[STATUS] == 200", "[STATU] == 200"]"#)
        .expect_err("an unknown placeholder");
    let expected = Condition::parse("[STATU] == 200").expect_err("invalid").to_string();
    assert!(error.to_string().starts_with(&expected), "{error}");
    let mut json = serde_json::Deserializer::from_str(r#"{"conditions": ["[STATUS] == 200", "[STATUS] < abc"]}"#);
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Asset {
        conditions: Vec<Condition>,
    }
    let error = serde_path_to_error::deserialize::<_, Asset>(&mut json).expect_err("a non-numeric value");
    assert_eq!(error.path().to_string(), "conditions[1]");
    assert_eq!(error.inner().to_string().split(" at line").next(), Some("`<` needs a number on the right, not `abc`"));
}

// Property tests: never a panic, whatever the text or the facts.

const TOKENS: &[&str] = &[
    "[STATUS]",
    "[RESPONSE_TIME]",
    "[BODY]",
    "[CONNECTED]",
    "[CERTIFICATE_EXPIRATION]",
    "[DNS_RCODE]",
    "[IP]",
    "[",
    "]",
    "(",
    ")",
    ",",
    ".",
    "*",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "=",
    "!",
    " ",
    "  ",
    "len(",
    "has(",
    "pat(",
    "any(",
    "foo(",
    "0",
    "1",
    "200",
    "-",
    "1.5",
    "1e3",
    "48h",
    "1h30m",
    "500ms",
    "7d",
    "a",
    "data",
    "true",
    "false",
    "null",
    "NOERROR",
    "10.0.0.1",
    "::1",
    "é",
    "\u{0}",
    "\n",
    "[0]",
    "[*]",
    ".a",
    "[BODY].a",
    "{",
    "}",
    "\"",
    ":",
    "&&",
    "||",
    "9999999999999999999999999999999999999999",
];

fn token_soup() -> impl Strategy<Value = String> {
    (prop::collection::vec(prop::sample::select(TOKENS), 0..14), prop::bool::ANY)
        .prop_map(|(tokens, spaced)| tokens.join(if spaced { " " } else { "" }))
}

fn placeholder() -> impl Strategy<Value = String> {
    let path = prop::collection::vec(
        prop_oneof![
            prop::sample::select(&["a", "b", "data", "items", "id", "name", "0", "é"][..])
                .prop_map(|k| format!(".{k}")),
            (0usize..4).prop_map(|i| format!("[{i}]")),
        ],
        0..4,
    );
    prop_oneof![
        prop::sample::select(
            &["[STATUS]", "[RESPONSE_TIME]", "[CONNECTED]", "[CERTIFICATE_EXPIRATION]", "[DNS_RCODE]", "[IP]"][..]
        )
        .prop_map(str::to_string),
        path.prop_map(|steps| format!("[BODY]{}", steps.concat())),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        (0u32..1000).prop_map(|n| n.to_string()),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| f.to_string()),
        prop::sample::select(
            &[
                "true",
                "false",
                "null",
                "0",
                "48h",
                "-1h30m",
                "500ms",
                "7d",
                "NOERROR",
                "nxdomain",
                "10.0.0.1",
                "::1",
                "[]",
                "{}",
                "[1,2]",
                "{\"a\":1}",
                "UP",
                "a b"
            ][..]
        )
        .prop_map(str::to_string),
        "[a-z0-9 .*-]{1,8}",
    ]
}

fn condition() -> impl Strategy<Value = (String, String)> {
    let left = prop_oneof![
        3 => placeholder(),
        1 => placeholder().prop_map(|p| format!("len({p})")),
        1 => placeholder().prop_map(|p| format!("has({p})")),
    ];
    let right = prop_oneof![
        3 => value(),
        1 => "[a-z0-9*]{0,6}".prop_map(|p| format!("pat({p})")),
        1 => prop::collection::vec(value(), 1..4).prop_map(|vs| format!("any({})", vs.join(", "))),
    ];
    // Orderings refuse most values: weigh the operators that accept all, so more conditions parse.
    let op = prop::sample::select(&["==", "==", "==", "!=", "!=", "<", "<=", ">", ">="][..]);
    (left, op, right)
        .prop_map(|(l, o, r)| (format!("{l} {o} {r}"), format!("{l} {} {r}", if o == "==" { "!=" } else { o })))
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z0-9 ]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(&["a", "b", "data", "items", "id", "name", "0", "é"][..]).prop_map(str::to_string),
                inner,
                0..4
            )
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        // Nearly JSON: cut short, or deeply nested.
        (json_value(), 0usize..64).prop_map(|(v, cut)| v.to_string().into_bytes().into_iter().take(cut).collect()),
        (1usize..300).prop_map(|depth| format!("{}1{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()),
        prop::collection::vec(
            prop::sample::select(&["{", "}", "[", "]", "\"a\"", ":", ",", "1", "-", "null", " "][..]),
            0..24
        )
        .prop_map(|tokens| tokens.concat().into_bytes()),
    ]
}

fn facts() -> impl Strategy<Value = Facts> {
    let text = || {
        prop_oneof![
            "\\PC{0,12}",
            prop::sample::select(&["NOERROR", "NXDOMAIN", "10.0.0.1", "::1", "42"][..]).prop_map(str::to_string)
        ]
    };
    (
        any::<Option<u16>>(),
        any::<Option<u64>>(),
        prop::option::of(body()),
        any::<Option<bool>>(),
        any::<Option<i64>>(),
        prop::option::of(text()),
        prop::option::of(text()),
    )
        .prop_map(|(status, response_time_ms, body, connected, certificate_expiration_seconds, dns_rcode, ip)| {
            Facts {
                status,
                response_time_ms,
                body,
                connected,
                certificate_expiration_seconds,
                dns_rcode,
                ip,
                body_note: None,
            }
        })
}

fn is_missing(message: &str) -> bool {
    ["(n/a)", "(no such path)", "(not JSON)"].iter().any(|m| message.contains(m))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parse_never_panics_on_any_text(text in any::<String>()) {
        if let Err(error) = Condition::parse(&text) {
            prop_assert!(text.is_char_boundary(error.at), "{error:?} in {text:?}");
        }
    }

    #[test]
    fn token_soup_never_panics(text in token_soup(), facts in facts()) {
        if let Ok(condition) = Condition::parse(&text) {
            let _ = condition.check(&facts);
            prop_assert_eq!(Condition::parse(condition.text()), Ok(condition));
        }
    }

    /// Every parsed condition can be checked on any facts; `==` and `!=` disagree unless the
    /// value is missing, when both fail.
    #[test]
    fn check_never_panics_and_eq_ne_disagree((eq, ne) in condition(), facts in facts()) {
        let (Ok(eq), Ok(ne)) = (Condition::parse(&eq), Condition::parse(&ne)) else {
            // `==` and `!=` accept the same sides.
            prop_assert_eq!(Condition::parse(&eq).is_ok(), Condition::parse(&ne).is_ok());
            return Ok(());
        };
        let (eq_result, ne_result) = (eq.check(&facts), ne.check(&facts));
        if eq.text() != ne.text() {
            match (&eq_result, &ne_result) {
                (Err(a), Err(b)) => prop_assert!(is_missing(a) && is_missing(b), "{a} / {b}"),
                (Ok(()), Ok(())) => prop_assert!(false, "both hold: {} / {}", eq.text(), ne.text()),
                _ => {}
            }
        }
        prop_assert_eq!(first_failure(&[eq, ne], &facts), eq_result.err().or(ne_result.err()));
    }
}
