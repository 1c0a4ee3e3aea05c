//! What recording a metric costs on the request path, and what a scrape costs.
//! Run: `cargo bench --bench metrics`.
//!
//! `record_request` is what the handler adds to every KMIP batch item (a counter
//! and a histogram, labelled by operation and reason); `record_request under
//! scrape` runs it while another thread scrapes without pause (far more often
//! than Prometheus would), to show scraping does not hold up recording.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use keyward::metrics::Metrics;

const OPERATIONS: [&str; 6] = ["Get", "Create", "Locate", "Activate", "Revoke", "Destroy"];

fn populated() -> Metrics {
    let metrics = Metrics::new();
    for op in OPERATIONS {
        for reason in ["Success", "ItemNotFound", "PermissionDenied"] {
            metrics.record_request(op, reason, Duration::from_micros(100));
        }
    }
    metrics.set_keys_by_state([("Active", 1000), ("PreActive", 10), ("Deactivated", 50)]);
    metrics
}

fn recording(c: &mut Criterion) {
    let metrics = populated();
    let elapsed = Duration::from_micros(420);
    c.bench_function("record_request", |b| {
        b.iter(|| metrics.record_request(black_box("Get"), black_box("Success"), black_box(elapsed)))
    });
    c.bench_function("connection_opened+closed", |b| {
        b.iter(|| drop(black_box(metrics.connection_opened())))
    });
    let hsm = metrics.hsm_instruments();
    c.bench_function("hsm observe_call", |b| {
        b.iter(|| hsm.observe_call(black_box("unseal"), black_box(elapsed), true))
    });

    let stop = Arc::new(AtomicBool::new(false));
    let scraper = {
        let metrics = metrics.clone();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut scrapes = 0u64;
            while !stop.load(Ordering::Relaxed) {
                black_box(metrics.encode());
                scrapes += 1;
            }
            scrapes
        })
    };
    c.bench_function("record_request under scrape", |b| {
        b.iter(|| metrics.record_request(black_box("Get"), black_box("Success"), black_box(elapsed)))
    });
    stop.store(true, Ordering::Relaxed);
    scraper.join().unwrap();

    c.bench_function("encode (one scrape)", |b| b.iter(|| black_box(metrics.encode())));
}

criterion_group!(benches, recording);
criterion_main!(benches);
