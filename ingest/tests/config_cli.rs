//! `sluice config default|check` and SIGHUP reload, as a user runs them.

mod common;

use std::process::Command;
use std::time::Duration;

use common::collector::{wait_until, Collector, Options, TempDir};

fn sluice(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .expect("run sluice")
}

#[test]
fn default_config_checks_and_bad_keys_are_named() {
    let dir = TempDir::new("cfg");
    let out = sluice(&["config", "default"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("[::]:2055") && text.contains("[::]:4739"));
    assert!(text.contains("127.0.0.1:9155") && text.contains("./sluice-data"));
    let good = dir.0.join("good.toml");
    std::fs::write(&good, &text).expect("write");
    let out = sluice(&["config", "check", good.to_str().expect("utf8")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    for (body, key) in [
        ("[store]\nretension = \"1d\"\n", "retension"),
        ("[receive]\nbatch = 5000\n", "receive.batch"),
        ("[store]\nenrich = \"yes\"\n", "enrich"),
        ("[metrics]\naddress = \"nowhere\"\n", "address"),
        (
            "[[listener]]\nname = \"a\"\naddress = \"[::]:1\"\nprotocol = \"sflow9\"\n",
            "protocol",
        ),
    ] {
        let bad = dir.0.join("bad.toml");
        std::fs::write(&bad, body).expect("write");
        let out = sluice(&["config", "check", bad.to_str().expect("utf8")]);
        assert_eq!(out.status.code(), Some(1), "{body}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(key),
            "error for {body:?} does not name {key}: {err}"
        );
    }
}

#[test]
fn sighup_reloads_what_can_change() {
    let dir = TempDir::new("hup");
    let mut c = Collector::start(&dir.0, &Options::default());
    let mut text = std::fs::read_to_string(&c.config).expect("config");
    text = text.replace("[store]\n", "[store]\nretention = \"3d\"\n");
    std::fs::write(&c.config, &text).expect("rewrite");
    let pid = c.child.as_ref().expect("running").id();
    let _ = Command::new("kill")
        .arg("-HUP")
        .arg(pid.to_string())
        .status();
    assert!(
        wait_until(Duration::from_secs(5), || c
            .log_text()
            .contains("SIGHUP: reloaded")),
        "{}",
        c.log_text()
    );
    assert!(
        c.log_text().contains("retention Some(259200)"),
        "{}",
        c.log_text()
    );
    // Still serving, same sockets.
    assert_eq!(c.metric("sluice_up"), 1.0);
    // A broken file keeps the running configuration.
    std::fs::write(&c.config, "[store\n").expect("rewrite");
    let _ = Command::new("kill")
        .arg("-HUP")
        .arg(pid.to_string())
        .status();
    assert!(wait_until(Duration::from_secs(5), || c
        .log_text()
        .contains("keeping the running configuration")));
    assert_eq!(c.stop(), Some(0));
}
