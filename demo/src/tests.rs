//! The fleet end to end: what it writes is what the collector understands.

use std::collections::{BTreeMap, BTreeSet};

use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use corral_collector::app_json::{AppFields, KeyConfig, parse_app_json};
use corral_collector::metadata::{Identity, resolve, service_from_pod_name};
use corral_collector::pod_path::PodPath;
use corral_collector::runtime_format::parse_cri;
use corral_schema::{Level, Stream, Timestamp};

use crate::fleet::{MAX_REQUEST_SPAN_NS, NANOS_PER_MS, TICK, WARMUP_REQUESTS};
use crate::generator::{FleetGenerator, Request};
use crate::shop::*;
use crate::{Fleet, FleetConfig, MAX_REQUESTS_PER_SECOND};

const SEED: u64 = 42;
/// 2026-11-23T10:15:00Z.
const T0: i64 = 1_795_428_900 * 1_000_000_000;

fn app(content: &str) -> Option<AppFields> {
    parse_app_json(&mut content.as_bytes().to_vec(), &KeyConfig::default())
}

/// Every request of `count`, one per 50 ms from `T0`.
fn requests(generator: &mut FleetGenerator, count: usize) -> Vec<Request> {
    (0..count)
        .map(|i| generator.random_request(T0 + i as i64 * 50 * NANOS_PER_MS))
        .collect()
}

fn config(root: &Path, requests_per_second: u32) -> FleetConfig {
    FleetConfig {
        root: root.to_owned(),
        requests_per_second,
        seed: SEED,
    }
}

/// Reads every file of the fleet: (pod path, lines).
fn read_files(fleet: &Fleet) -> Vec<(PodPath, Vec<String>)> {
    let mut files: Vec<_> = glob::glob(&fleet.log_glob())
        .unwrap()
        .map(|path| {
            let path = path.unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.ends_with('\n'), "{} ends mid-line", path.display());
            let pod_path =
                PodPath::parse(&path).unwrap_or_else(|| panic!("not kubelet layout: {}", path.display()));
            (pod_path, text.lines().map(str::to_owned).collect())
        })
        .collect();
    files.sort_by(|a, b| a.0.pod.cmp(&b.0.pod));
    files
}

fn identity_of(fleet: &Fleet, path: &PodPath) -> Identity {
    let pods = fleet.pods();
    let meta = pods.iter().find(|meta| meta.name == path.pod);
    assert!(meta.is_some(), "no metadata for {}", path.pod);
    resolve(path, meta)
}

#[test]
fn start_writes_valid_cri_lines_in_the_kubelet_layout() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(config(dir.path(), 0)).unwrap();
    assert_eq!(fleet.requests_written(), WARMUP_REQUESTS as u64);
    let files = read_files(&fleet);
    assert_eq!(files.len(), 12);
    let now = Timestamp::now();
    for (path, lines) in &files {
        assert_eq!(path.namespace, NAMESPACE);
        assert_eq!(path.container, identity_of(&fleet, path).service, "{path:?}");
        assert!(!lines.is_empty(), "{path:?}");
        let mut last = Timestamp::EPOCH;
        for line in lines {
            let cri = parse_cri(line.as_bytes()).unwrap_or_else(|| panic!("not CRI: {line}"));
            assert!(!cri.partial, "{line}");
            let ts = cri.ts.unwrap();
            assert!(last <= ts && ts <= now, "{line} after {last}");
            last = ts;
        }
    }
    let glob = fleet.log_glob();
    assert_eq!(glob, format!("{}/*/*/*.log", dir.path().display()));
    fleet.stop();
}

#[test]
fn the_showcase_request_touches_every_service_in_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(config(dir.path(), 0)).unwrap();
    let corr = fleet.showcase_corr().to_owned();
    assert_eq!(corr.len(), 32);
    assert!(corr.bytes().all(|b| b.is_ascii_hexdigit()));
    let mut services = BTreeMap::<String, usize>::new();
    let mut canary_errors = 0;
    for (path, lines) in read_files(&fleet) {
        let identity = identity_of(&fleet, &path);
        for line in &lines {
            let content = String::from_utf8(parse_cri(line.as_bytes()).unwrap().content.to_vec()).unwrap();
            let Some(fields) = app(&content) else { continue };
            if fields.corr.as_deref() == Some(corr.as_str()) {
                *services.entry(identity.service.clone()).or_default() += 1;
                if identity.version == PAYMENTS_CANARY_VERSION && fields.level == Some(Level::Error) {
                    canary_errors += 1;
                }
            }
        }
    }
    let names: Vec<&str> = services.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["gateway", "inventory", "notifications", "orders", "payments"]
    );
    assert!(services.values().all(|n| (1..=3).contains(n)), "{services:?}");
    assert_eq!(canary_errors, 1);
    fleet.stop();
}

#[test]
fn the_writer_thread_appends_until_stopped_and_a_restart_gets_new_files() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(config(dir.path(), 200)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while fleet.requests_written() < WARMUP_REQUESTS as u64 + 50 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} requests written",
            fleet.requests_written()
        );
        thread::sleep(Duration::from_millis(50));
    }
    let first_corr = fleet.showcase_corr().to_owned();
    let glob = fleet.log_glob();
    let stopping = std::time::Instant::now();
    fleet.stop();
    assert!(
        stopping.elapsed() < Duration::from_secs(2),
        "{:?}",
        stopping.elapsed()
    );
    let sizes = |files: &[PathBuf]| -> Vec<u64> {
        files
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .collect()
    };
    let files: Vec<PathBuf> = glob::glob(&glob).unwrap().map(Result::unwrap).collect();
    assert_eq!(files.len(), 12);
    assert!(files.iter().all(|p| p.ends_with("0.log")), "{files:?}");
    let before = sizes(&files);
    thread::sleep(TICK * 3);
    assert_eq!(sizes(&files), before, "files grew after stop");

    // The same fleet started again is a restart: `1.log` next to the untouched `0.log`.
    let again = Fleet::start(config(dir.path(), 0)).unwrap();
    assert_ne!(again.showcase_corr(), first_corr);
    let all: Vec<PathBuf> = glob::glob(&again.log_glob())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(all.len(), 24);
    assert_eq!(all.iter().filter(|p| p.ends_with("1.log")).count(), 12);
    assert_eq!(sizes(&files), before);
    again.stop();
}

#[test]
fn start_rejects_an_unbounded_rate() {
    let dir = tempfile::tempdir().unwrap();
    let error = Fleet::start(config(dir.path(), MAX_REQUESTS_PER_SECOND + 1)).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(error.to_string(), "demo requests_per_second 5001 exceeds 5000");
}

#[test]
fn pods_resolve_to_service_version_and_instance() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(config(dir.path(), 0)).unwrap();
    let generator = FleetGenerator::new(SEED, 0);
    let pods = fleet.pods();
    assert_eq!(pods.len(), generator.pods().len());
    let mut versions = BTreeMap::<(String, String), usize>::new();
    for (meta, pod) in pods.iter().zip(generator.pods()) {
        let path = PodPath::parse(&dir.path().join(pod.container_dir()).join("0.log")).unwrap();
        assert_eq!(
            (path.namespace.as_str(), path.pod.as_str()),
            (NAMESPACE, meta.name.as_str())
        );
        let identity = resolve(&path, Some(meta));
        assert_eq!(
            identity,
            Identity {
                service: pod.service.name().to_owned(),
                version: pod.version.to_owned(),
                instance: meta.name.clone(),
            }
        );
        // Deployment-style names: the path alone gives the service too.
        assert_eq!(
            service_from_pod_name(&meta.name),
            identity.service,
            "{}",
            meta.name
        );
        *versions.entry((identity.service, identity.version)).or_default() += 1;
    }
    let want: BTreeMap<(String, String), usize> = [
        ("gateway", "1.8.2", 2),
        ("inventory", "5.0.3", 2),
        ("notifications", "0.9.4", 2),
        ("orders", "3.1.0", 3),
        ("payments", "2.3.0", 2),
        ("payments", "2.4.0", 1),
    ]
    .into_iter()
    .map(|(s, v, n)| ((s.to_owned(), v.to_owned()), n))
    .collect();
    assert_eq!(versions, want);
    fleet.stop();
}

#[test]
fn generation_is_deterministic_per_seed() {
    let names = |seed| -> Vec<String> {
        FleetGenerator::new(seed, 0)
            .pods()
            .iter()
            .map(|p| p.name.clone())
            .collect()
    };
    assert_eq!(names(SEED), names(SEED));
    assert_ne!(names(SEED), names(SEED + 1));
    let contents = |seed| -> Vec<String> {
        let mut generator = FleetGenerator::new(seed, 0);
        let requests = requests(&mut generator, 20);
        requests
            .into_iter()
            .flat_map(|r| r.entries)
            .map(|e| e.content)
            .collect()
    };
    assert_eq!(contents(SEED), contents(SEED));
    assert_ne!(contents(SEED), contents(SEED + 1));
    let generator = FleetGenerator::new(SEED, 0);
    let pod_name = &generator.pods()[0].name;
    let segments: Vec<&str> = pod_name.split('-').collect();
    assert_eq!(segments.len(), 3, "{pod_name}");
    assert!(
        (9..=10).contains(&segments[1].len()) && segments[2].len() == 5,
        "{pod_name}"
    );
    for pod in generator.pods() {
        let groups: Vec<&str> = pod.uid.split('-').collect();
        let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
        assert_eq!(lengths, [8, 4, 4, 4, 12], "{}", pod.uid);
        assert!(
            groups[2].starts_with('4') && "89ab".contains(&groups[3][..1]),
            "{}",
            pod.uid
        );
    }
}

#[test]
fn the_canary_fails_more_often_than_the_stable_version() {
    let mut generator = FleetGenerator::new(SEED, 0);
    // (error records, records) per payments version.
    let mut counts = BTreeMap::<&str, (usize, usize)>::new();
    for request in requests(&mut generator, 2_000) {
        for entry in &request.entries {
            let pod = &generator.pods()[entry.pod];
            let Some(fields) = app(&entry.content) else {
                continue;
            };
            if pod.service == Service::Payments {
                let count = counts.entry(pod.version).or_default();
                count.0 += usize::from(fields.level == Some(Level::Error));
                count.1 += 1;
            }
        }
    }
    let share = |version| {
        let (errors, records) = counts[version];
        assert!(records > 500, "{version}: {records} records");
        errors as f64 / records as f64
    };
    let (canary, stable) = (share(PAYMENTS_CANARY_VERSION), share(PAYMENTS_STABLE_VERSION));
    // Expected: 15 % and 1 % of charges fail, a charge logs 3 records: 5 % and 0.33 %.
    assert!((0.03..=0.08).contains(&canary), "canary {canary} {counts:?}");
    assert!(stable <= 0.01, "stable {stable} {counts:?}");
    assert!(canary > 5.0 * stable, "canary {canary}, stable {stable}");
}

#[test]
fn requests_follow_their_call_chain() {
    let mut generator = FleetGenerator::new(SEED, 0);
    let mut services_touched = BTreeMap::<usize, usize>::new();
    let mut levels = BTreeSet::new();
    let mut plain_lines = 0;
    let mut requests = requests(&mut generator, 500);
    requests.push(generator.showcase(T0 + 30_000 * NANOS_PER_MS));
    for request in &requests {
        let start = request.entries[0].at;
        assert_eq!(generator.pods()[request.entries[0].pod].service, Service::Gateway);
        assert!(request.end - start < MAX_REQUEST_SPAN_NS);
        // Per service: (first, last) event time and record count.
        let mut spans = BTreeMap::<Service, (Timestamp, Timestamp, usize)>::new();
        for entry in &request.entries {
            assert!((start..=request.end).contains(&entry.at));
            let Some(fields) = app(&entry.content) else {
                assert_eq!(entry.stream, Stream::Stderr, "{}", entry.content);
                plain_lines += 1;
                continue;
            };
            assert_eq!(
                fields.corr.as_deref(),
                Some(request.corr.as_str()),
                "{}",
                entry.content
            );
            assert!(fields.msg.is_some(), "{}", entry.content);
            levels.insert(fields.level.unwrap());
            let ts = fields.ts.unwrap();
            let span = spans
                .entry(generator.pods()[entry.pod].service)
                .or_insert((ts, ts, 0));
            assert!(span.1 <= ts, "time goes back: {}", entry.content);
            span.1 = ts;
            span.2 += 1;
        }
        assert!(spans.values().all(|span| (1..=3).contains(&span.2)), "{spans:?}");
        let within = |child: Service, parent: Service| {
            if let (Some(c), Some(p)) = (spans.get(&child), spans.get(&parent)) {
                assert!(p.0 < c.0 && c.1 < p.1, "{child:?} {c:?} outside {parent:?} {p:?}");
            }
        };
        assert!(spans.contains_key(&Service::Gateway));
        for service in &Service::ALL[1..] {
            within(*service, Service::Gateway);
        }
        for service in &Service::ALL[2..] {
            within(*service, Service::Orders);
        }
        *services_touched.entry(spans.len()).or_default() += 1;
    }
    let showcase = requests.last().unwrap();
    let showcase_services: BTreeSet<Service> = showcase
        .entries
        .iter()
        .map(|e| generator.pods()[e.pod].service)
        .collect();
    assert_eq!(showcase_services.len(), 5);
    assert!(showcase.entries.iter().any(|e| e.content == CANARY_STACK[0]));
    // Gateway only (login), gateway + one service, all five.
    assert_eq!(
        services_touched.keys().copied().collect::<Vec<_>>(),
        [1, 2, 3, 5],
        "{services_touched:?}"
    );
    assert!(services_touched[&5] >= 100, "{services_touched:?}");
    assert_eq!(
        levels.into_iter().collect::<Vec<_>>(),
        [Level::Debug, Level::Info, Level::Warn, Level::Error]
    );
    assert!(
        plain_lines >= CANARY_STACK.len() * 10,
        "{plain_lines} stack trace lines"
    );
}

#[test]
fn startup_prints_plain_lines_and_json() {
    let mut generator = FleetGenerator::new(SEED, 0);
    let entries = generator.startup(T0);
    let plain = entries.iter().filter(|e| app(&e.content).is_none()).count();
    let json: Vec<AppFields> = entries.iter().filter_map(|e| app(&e.content)).collect();
    // gateway 1 × 2, orders 2 × 3, payments 1 × 3, inventory 4 × 2.
    assert_eq!(plain, 2 + 6 + 3 + 8);
    // orders 3, payments 3, notifications 2; none belongs to a request.
    assert_eq!(json.len(), 8);
    assert!(
        json.iter()
            .all(|f| f.corr.is_none() && f.level == Some(Level::Info) && f.ts.is_some())
    );
}
