//! Bad configs are refused, by `run` and by `check-config`, with every problem named; odd ones
//! are warned about; files as editors save them are read.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::e2e::harness::{Backend, Mode, Setup, Target, binary, eventually, http_asset, no_channels};

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

/// `check-config` on the setup's files: exit code, stdout, stderr.
fn check_config(setup: &Setup) -> (Option<i32>, String, String) {
    let mut args = setup.args(&[]);
    args[0] = "check-config".into();
    let output = Command::new(binary()).args(&args).output().expect("run check-config");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code(), text(&output.stdout), text(&output.stderr))
}

#[tokio::test(flavor = "multi_thread")]
async fn config_files_saved_with_a_byte_order_mark_are_accepted() {
    let target = Target::start().await;
    let setup = Setup::new(Backend::Sqlite, json!([]), no_channels()).await;
    // As Notepad saves them: a UTF-8 byte order mark first.
    let manifest = json!({"assets": [http_asset("bom", &target.url())]});
    std::fs::write(setup.path("manifest.json"), format!("\u{FEFF}{manifest}")).expect("write");
    std::fs::write(setup.path("notifiers.json"), format!("\u{FEFF}{}", no_channels())).expect("write");
    setup.write_settings("\u{FEFF}workers = 4\n");

    let (code, stdout, stderr) = check_config(&setup);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("1 assets"), "{stdout}");
    let statusd = setup.start(&[]).await;
    statusd.wait_status("bom", "up", Duration::from_secs(10)).await;
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timeout_longer_than_the_interval_is_a_warning_and_the_ticks_it_covers_are_skipped() {
    let target = Target::start().await;
    target.set(Mode::Hang);
    // Not "slow": degraded.rs reads statusd_asset_degraded{asset="slow"}, and metrics are per process.
    let mut slow = http_asset("slow-ticks", &target.url());
    slow["timeoutSeconds"] = json!(3);
    // Left to its default, which waits for the timeout: no second warning.
    slow.as_object_mut().expect("an object").remove("retryIntervalSeconds");
    // A push asset is never probed: its (default, 5 s) timeout is no concern at any interval.
    let push = json!({"id": "cron", "assetType": "push", "token": "0123456789abcdef", "intervalSeconds": 1});
    let setup = Setup::new(Backend::Sqlite, json!([slow, push]), no_channels()).await;

    let (code, stdout, stderr) = check_config(&setup);
    assert_eq!(code, Some(0), "warnings alone pass: {stderr}");
    let warning = format!(
        "statusd: warning: {}: assets[0].timeoutSeconds: 3s is longer than intervalSeconds (1s): while a probe \
         takes that long, the ticks due meanwhile are skipped (counted in statusd_probes_skipped_total)",
        setup.path("manifest.json").display()
    );
    assert_eq!(stderr.trim(), warning);
    assert!(stdout.contains("no problems found, 1 warning"), "{stdout}");

    // It runs as designed: while the hanging probe lasts, ticks are skipped and counted.
    let statusd = setup.start(&[]).await;
    eventually("ticks skipped behind the hanging probe", Duration::from_secs(10), || async {
        (statusd.asset("slow-ticks").await["skippedTicks"].as_u64() >= Some(2)).then_some(())
    })
    .await;
    // A reload says so too.
    let (status, report) = statusd.post("/api/reload").await;
    assert_eq!(status, reqwest::StatusCode::OK, "{report}");
    assert_eq!(report["warnings"], json!([warning.trim_start_matches("statusd: warning: ")]));
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn config_files_mean_what_they_say_duplicate_keys_refused_and_yaml_merge_keys_applied() {
    let target = Target::start().await;
    let setup = Setup::new(Backend::Sqlite, json!([]), no_channels()).await;
    let check = |manifest: &std::path::Path| {
        let mut args = setup.args(&[]);
        args[0] = "check-config".into();
        args[4] = manifest.display().to_string();
        Command::new(binary()).args(&args).output().expect("run check-config")
    };

    // "address" twice in one asset: refused with the key's path, not silently the last one.
    let json = setup.path("duplicate.json");
    let text = format!(
        r#"{{"assets": [{{"id": "api", "assetType": "http", "address": "{}", "address": "http://127.0.0.1:1/"}}]}}"#,
        target.url()
    );
    std::fs::write(&json, text).expect("write");
    let output = check(&json);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("duplicate.json: assets[0].address: is given twice in one object"), "{stderr}");

    // Gatus users' habit: defaults under an anchor, merged into each asset.
    let yaml = setup.path("manifest.yaml");
    let text = format!(
        "x-defaults: &defaults\n  assetType: http\n  address: {url}\n  intervalSeconds: 1\n  timeoutSeconds: 1\n  \
         expectedStatusCodes: [200]\nassets:\n  - <<: *defaults\n    id: merged-a\n  - <<: *defaults\n    id: merged-b\n    \
         expectedStatusCodes: [500]\n",
        url = target.url()
    );
    std::fs::write(&yaml, text).expect("write");
    let output = check(&yaml);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let mut args = setup.args(&[]);
    args[4] = yaml.display().to_string();
    let (_, settings) = statusd::Settings::from_args(args, &std::collections::BTreeMap::new()).expect("settings");
    let app = statusd::App::build(settings).await.expect("statusd starts");
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.serve(async {
        let _ = stopped.await;
    }));
    let status = |id: &'static str| async move {
        let url = format!("http://{addr}/api/assets/{id}");
        let asset: serde_json::Value = reqwest::get(url).await.ok()?.json().await.ok()?;
        asset["status"].as_str().map(str::to_string)
    };
    // The merged settings apply, and the asset's own key wins over the merged one.
    eventually("merged-a up", Duration::from_secs(10), || async { (status("merged-a").await? == "up").then_some(()) })
        .await;
    eventually("merged-b down", Duration::from_secs(10), || async {
        (status("merged-b").await? == "down").then_some(())
    })
    .await;
    let _ = stop.send(());
    task.await.expect("statusd task").expect("statusd stops cleanly");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_config_refuses_a_route_to_an_unknown_channel_and_warns_about_a_route_nothing_matches() {
    let mut api = http_asset("api", "http://localhost/");
    api["metadata"] = json!({"team": "web"});
    let route = |channel: &str| {
        json!({
            "notifiers": {"hook": {"type": "webhook", "url": "https://example.com/hook"}},
            "notificationPolicy": {"routes": [{"match": {"team": "web"}, "onDown": ["hook"]},
                                              {"match": {"owner": "db"}, "onDown": [channel]}]}
        })
    };
    let setup = Setup::new(Backend::Sqlite, json!([api]), route("pager")).await;
    let (code, _, stderr) = check_config(&setup);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("notificationPolicy.routes[1].onDown[0]: unknown notifier \"pager\" (defined: hook)"),
        "{stderr}"
    );

    setup.write_notifiers(route("hook"));
    let (code, stdout, stderr) = check_config(&setup);
    assert_eq!(code, Some(0), "warnings alone pass: {stderr}");
    assert_eq!(
        stderr.trim(),
        format!(
            "statusd: warning: {}: notificationPolicy.routes[1].match.owner: no asset has the metadata key \"owner\": \
             this route matches nothing",
            setup.path("notifiers.json").display()
        )
    );
    assert!(stdout.contains("no problems found, 1 warning"), "{stdout}");
}
