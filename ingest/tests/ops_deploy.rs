//! Deployment files: the systemd unit (`ops/systemd/`) passes `systemd-analyze verify` without
//! a warning and scores at most [`MAX_EXPOSURE`] in `systemd-analyze security --offline=true`;
//! the sysctl snippet allows the receive buffer Sluice asks for; the Kubernetes manifests
//! (`ops/k8s/`) pass `kubernetes-validate --strict`, their ConfigMap's sluice.toml passes
//! `sluice config check`, and the ports, probes, volume and shared-address Services agree with
//! that config. Broken copies show each check failing.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::collector::TempDir;
use serde_json::Value;
use sluice_ingest::config::{Config, Protocol};

/// Highest exposure score `systemd-analyze security` may give the unit (0 = locked down,
/// 10 = unprotected; systemd calls up to 2.0 "OK"). The shipped unit scores 1.4 with
/// systemd 252.
const MAX_EXPOSURE: f64 = 2.0;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(cmd: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (.ci/run installs what the tests need)"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Writes the unit into `dir` with ExecStart pointing at the binary under test (verify wants
/// the executables to exist) and returns its path.
fn unit_copy(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("sluice.service");
    std::fs::write(
        &path,
        text.replace("/usr/local/bin/sluice", env!("CARGO_BIN_EXE_sluice")),
    )
    .expect("write unit");
    path
}

/// Problems `systemd-analyze` finds in a unit, and its exposure score.
fn unit_problems(unit: &Path) -> (Vec<String>, f64) {
    let mut p = Vec::new();
    let u = unit.to_str().expect("utf8 path");
    let (ok, out) = run("systemd-analyze", &["verify", u]);
    // verify exits 0 on unknown keys and similar mistakes: any output is a problem.
    if !ok || !out.trim().is_empty() {
        p.push(format!("systemd-analyze verify: {out}"));
    }
    let (_, out) = run("systemd-analyze", &["security", "--offline=true", u]);
    let score = out
        .lines()
        .find_map(|l| {
            let rest = l.split("Overall exposure level for ").nth(1)?;
            rest.split_once(": ")?
                .1
                .split_whitespace()
                .next()?
                .parse::<f64>()
                .ok()
        })
        .unwrap_or_else(|| panic!("no exposure score in: {out}"));
    if score > MAX_EXPOSURE {
        p.push(format!("exposure {score} is above {MAX_EXPOSURE}"));
    }
    // The same limit through systemd's own threshold (in tenths).
    let threshold = format!("--threshold={}", (MAX_EXPOSURE * 10.0) as u32);
    let (ok, _) = run(
        "systemd-analyze",
        &["security", "--offline=true", &threshold, u],
    );
    if !ok {
        p.push(format!("systemd-analyze security {threshold} failed"));
    }
    (p, score)
}

fn shipped_unit() -> String {
    std::fs::read_to_string(root().join("ops/systemd/sluice.service")).expect("unit")
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let text = shipped_unit();
    for line in [
        "DynamicUser=yes",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "Restart=on-failure",
        "ProtectSystem=strict",
        "StateDirectory=sluice",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
    ] {
        assert!(text.lines().any(|l| l == line), "the unit lacks {line}");
    }
    let dir = TempDir::new("systemd");
    let (p, score) = unit_problems(&unit_copy(&dir.0, &text));
    assert!(p.is_empty(), "{p:#?}");
    eprintln!("systemd-analyze security: exposure {score}");
}

#[test]
fn a_weakened_or_mistyped_unit_is_caught() {
    let text = shipped_unit();
    let dir = TempDir::new("systemd-bad");
    let weak: String = text
        .lines()
        .filter(|l| {
            ![
                "Protect",
                "Private",
                "Restrict",
                "SystemCall",
                "NoNew",
                "Capability",
                "MemoryDeny",
                "LockPersonality",
                "DynamicUser",
            ]
            .iter()
            .any(|k| l.starts_with(k))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let (p, score) = unit_problems(&unit_copy(&dir.0, &weak));
    assert!(score > MAX_EXPOSURE, "exposure {score}");
    assert!(p.iter().any(|x| x.contains("above")), "{p:#?}");
    let typo = text.replace("ProtectSystem=strict", "ProtectSytem=strict");
    let (p, _) = unit_problems(&unit_copy(&dir.0, &typo));
    assert!(p.iter().any(|x| x.contains("ProtectSytem")), "{p:#?}");
}

#[test]
fn the_sysctl_snippet_allows_the_default_receive_buffer() {
    let text = std::fs::read_to_string(root().join("ops/sysctl/90-sluice.conf")).expect("sysctl");
    let rmem_max: u64 = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "net.core.rmem_max").then(|| v.trim().parse().ok())?
        })
        .expect("net.core.rmem_max in the snippet");
    let wanted = Config::defaults().receive.recv_buffer.0;
    assert!(
        rmem_max >= wanted,
        "rmem_max {rmem_max} < recv_buffer {wanted}"
    );
    assert!(shipped_unit().contains("ops/sysctl/90-sluice.conf"));
}

// --- Kubernetes. ---------------------------------------------------------------------------

fn k8s_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("ops/k8s"))
        .expect("ops/k8s")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    v.sort();
    v
}

/// Every document of the manifests as JSON (PyYAML comes with kubernetes-validate).
fn manifests() -> Vec<Value> {
    let mut out = Vec::new();
    for f in k8s_files() {
        let (ok, json) = run(
            "python3",
            &[
                "-c",
                "import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))",
                f.to_str().expect("utf8"),
            ],
        );
        assert!(ok, "{}: {json}", f.display());
        let docs: Vec<Value> = serde_json::from_str(&json).expect("JSON from python");
        out.extend(docs);
    }
    out
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

#[test]
fn the_kubernetes_manifests_validate() {
    let files = k8s_files();
    assert!(files.len() >= 4, "{files:?}");
    let mut args = vec!["--strict"];
    args.extend(files.iter().map(|f| f.to_str().expect("utf8")));
    let (ok, out) = run("kubernetes-validate", &args);
    assert!(ok, "{out}");
    // A mistyped field and a wrong type are refused.
    let dir = TempDir::new("k8s-bad");
    let svc = std::fs::read_to_string(root().join("ops/k8s/services.yaml")).expect("services");
    let dep = std::fs::read_to_string(root().join("ops/k8s/deployment.yaml")).expect("deployment");
    for (name, text) in [
        (
            "s.yaml",
            svc.replace("externalTrafficPolicy:", "externalTraficPolicy:"),
        ),
        (
            "d.yaml",
            dep.replace("containerPort: 9155", "containerPort: \"9155\""),
        ),
    ] {
        let path = dir.0.join(name);
        std::fs::write(&path, text).expect("write");
        let (ok, out) = run(
            "kubernetes-validate",
            &["--strict", path.to_str().expect("utf8")],
        );
        assert!(!ok, "{name} passed: {out}");
    }
}

#[test]
fn the_configmap_config_checks_and_agrees_with_the_manifests() {
    let docs = manifests();
    let cm = kind(&docs, "ConfigMap");
    let toml = cm[0]["data"]["sluice.toml"]
        .as_str()
        .expect("sluice.toml in the ConfigMap");
    let dir = TempDir::new("k8s-config");
    let path = dir.0.join("sluice.toml");
    std::fs::write(&path, toml).expect("write");
    let (ok, out) = run(
        env!("CARGO_BIN_EXE_sluice"),
        &["config", "check", path.to_str().expect("utf8")],
    );
    assert!(ok, "sluice config check: {out}");
    let cfg = Config::parse(toml, "configmap").expect("parses");

    // Metrics and /healthz reachable from other pods.
    assert!(
        cfg.metrics.address.ip().is_unspecified(),
        "{}",
        cfg.metrics.address
    );

    let dep = kind(&docs, "Deployment");
    let pod = &dep[0]["spec"]["template"]["spec"];
    let ctr = &pod["containers"][0];
    let ports: Vec<(String, u64, String)> = ctr["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or("").to_owned(),
                p["containerPort"].as_u64().unwrap_or(0),
                p["protocol"].as_str().unwrap_or("TCP").to_owned(),
            )
        })
        .collect();
    let udp: BTreeSet<u64> = ports.iter().filter(|p| p.2 == "UDP").map(|p| p.1).collect();
    let listeners: BTreeSet<u64> = cfg
        .listeners
        .iter()
        .map(|l| u64::from(l.address.port()))
        .collect();
    assert_eq!(
        udp, listeners,
        "container UDP ports vs the config's listeners"
    );
    assert!(cfg.listeners.iter().any(|l| l.protocol == Protocol::Sflow));
    let metrics_port = u64::from(cfg.metrics.address.port());
    let metrics_name = ports
        .iter()
        .find(|p| p.1 == metrics_port && p.2 == "TCP")
        .map(|p| p.0.clone())
        .expect("a container port for the metrics address");
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let h = &ctr[probe]["httpGet"];
        assert_eq!(h["path"], "/healthz", "{probe}");
        assert_eq!(h["port"], metrics_name.as_str(), "{probe}");
    }
    assert_eq!(
        dep[0]["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"],
        metrics_port.to_string()
    );

    // The store and spool live on the claimed volume.
    let mounts = ctr["volumeMounts"].as_array().expect("mounts");
    let data = mounts
        .iter()
        .find(|m| Path::new(m["mountPath"].as_str().unwrap_or("")) == cfg.store.data_dir)
        .expect("a volume mounted at store.data_dir");
    let vol = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == data["name"])
        .expect("the data volume");
    let claim = vol["persistentVolumeClaim"]["claimName"]
        .as_str()
        .expect("a claim");
    assert!(kind(&docs, "PersistentVolumeClaim")
        .iter()
        .any(|c| c["metadata"]["name"] == claim));
    assert_eq!(ctr["securityContext"]["readOnlyRootFilesystem"], true);

    // UDP and TCP LoadBalancers on one shared address, keeping exporters' source addresses.
    let svcs = kind(&docs, "Service");
    assert_eq!(svcs.len(), 2);
    let key = "metallb.universe.tf/allow-shared-ip";
    let ip = "metallb.universe.tf/loadBalancerIPs";
    let mut protocols = BTreeSet::new();
    for s in &svcs {
        assert_eq!(s["spec"]["type"], "LoadBalancer");
        assert_eq!(s["spec"]["externalTrafficPolicy"], "Local");
        assert_eq!(s["spec"]["selector"], svcs[0]["spec"]["selector"]);
        assert_eq!(
            s["metadata"]["annotations"][key],
            svcs[0]["metadata"]["annotations"][key]
        );
        assert_eq!(
            s["metadata"]["annotations"][ip],
            svcs[0]["metadata"]["annotations"][ip]
        );
        assert!(s["metadata"]["annotations"][key].is_string());
        for p in s["spec"]["ports"].as_array().expect("ports") {
            protocols.insert(p["protocol"].as_str().unwrap_or("TCP").to_owned());
            let target = p["targetPort"].as_str().expect("named target port");
            assert!(
                ports.iter().any(|c| c.0 == target),
                "no container port {target}"
            );
        }
    }
    assert_eq!(
        protocols,
        BTreeSet::from(["TCP".to_owned(), "UDP".to_owned()])
    );
    let svc_udp: BTreeSet<u64> = svcs
        .iter()
        .flat_map(|s| s["spec"]["ports"].as_array().into_iter().flatten())
        .filter(|p| p["protocol"] == "UDP")
        .filter_map(|p| p["port"].as_u64())
        .collect();
    assert_eq!(
        svc_udp, listeners,
        "Service UDP ports vs the config's listeners"
    );
    let selector = svcs[0]["spec"]["selector"].as_object().expect("selector");
    for (k, v) in selector {
        assert_eq!(&dep[0]["spec"]["template"]["metadata"]["labels"][k], v);
    }
}
