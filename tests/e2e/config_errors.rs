//! Bad configs are refused, by `run` and by `check-config`, with every problem named.

use std::process::Command;

use serde_json::json;

use crate::e2e::harness::{Backend, Setup, binary, http_asset, no_channels};

#[tokio::test(flavor = "multi_thread")]
async fn bad_configs_are_refused_with_every_problem_named() {
    let setup = Setup::new(
        Backend::Sqlite,
        json!([
            {"id": "a", "assetType": "http", "address": "http://localhost/", "intervalSeconds": 0},
            {"id": "a", "assetType": "gopher", "address": "x"},
            {"id": "b", "assetType": "http", "address": ""}
        ]),
        json!({
            "notifiers": {"hook": {"type": "webhook", "url": "ftp://example.com/"}},
            "notificationPolicy": {"onDown": ["pager"]}
        }),
    )
    .await;
    let expected = [
        "assets[0].intervalSeconds: must be at least 1",
        "assets[1].assetType: unknown asset type \"gopher\" (one of: http, tcp, dns, tls, icmp, push)",
        "assets[2].address: must not be empty: an http asset needs a URL",
        "notifiers.hook.webhookUrl: scheme \"ftp\" is not http or https",
        "notificationPolicy.onDown[0]: unknown notifier \"pager\" (defined: hook)",
    ];

    // `run` refuses to start...
    let outcome = statusd::run(setup.args(&[]), Vec::<(String, String)>::new(), std::future::pending()).await;
    let Err(statusd::Error::Config(problems)) = outcome else { panic!("expected config problems, got {outcome:?}") };
    let text = problems.to_string();
    assert!(text.starts_with("5 problems in the config:"), "{text}");
    for line in expected {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }

    // ...and `check-config` prints the same and exits 1.
    let mut args = setup.args(&[]);
    args[0] = "check-config".into();
    let output = Command::new(binary()).args(&args).output().expect("run check-config");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for line in expected {
        assert!(stderr.contains(line), "missing {line:?} in:\n{stderr}");
    }

    // A good config passes.
    setup.write_manifest(json!([http_asset("fine", "http://127.0.0.1:1/")]));
    std::fs::write(setup.path("notifiers.json"), no_channels().to_string()).expect("write");
    let output = Command::new(binary()).args(&args).output().expect("run check-config");
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("1 assets"));
}
